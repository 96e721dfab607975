"""Shape, slicing and layout ops (reshape_like, flatten2d, squeeze, band_part, cumsum,
sliding_windows, reverse_sequence, crop, pixel_(un)shuffle, depth/space/batch moves)
against numpy formulas written from their definitions, fp32 and fp16, numpy and torch."""

from __future__ import annotations

import itertools

import numpy as np
from fixtures.executor.mil_models import mb
from fixtures.executor.op_cases import Case, op_tests

RNG = np.random.default_rng(7)


def rand(*shape):
    return RNG.standard_normal(shape).astype(np.float32)


X3 = rand(2, 3, 4)
X4 = rand(2, 8, 3, 4)


def _band(x, lower, upper):
    m, n = x.shape[-2:]
    keep = np.array(
        [
            [(lower < 0 or i - j <= lower) and (upper < 0 or j - i <= upper) for j in range(n)]
            for i in range(m)
        ]
    )
    return x * keep


def _cumsum(x, axis, exclusive, reverse):
    """out[i] = sum of x[j] for j < i (exclusive) or j <= i, counted from the end (reverse)."""
    x = np.moveaxis(x, axis, 0)
    n = x.shape[0]
    out = np.zeros_like(x)
    for i in range(n):
        js = (
            range(i + 1, n)
            if reverse and exclusive
            else range(i, n)
            if reverse
            else range(i)
            if exclusive
            else range(i + 1)
        )
        for j in js:
            out[i] = out[i] + x[j]
    return np.moveaxis(out, 0, axis)


def _windows(x, axis, size, stride):
    x = np.moveaxis(x, axis, 0)
    count = (x.shape[0] - size) // stride + 1
    out = np.stack([np.stack([x[w * stride + s] for s in range(size)]) for w in range(count)])
    return np.moveaxis(np.moveaxis(out, 1, axis + 1), 0, axis)


def _reverse_sequence(x, lengths, seq, batch):
    out = x.copy()
    for b in range(x.shape[batch]):
        n = lengths[b]
        for t in range(n):
            src = [slice(None)] * x.ndim
            dst = [slice(None)] * x.ndim
            src[batch] = dst[batch] = b
            src[seq], dst[seq] = n - 1 - t, t
            out[tuple(dst)] = x[tuple(src)]
    return out


def _to_space(x, f, torch_order):
    n, c, h, w = x.shape
    co = c // (f * f)
    out = np.zeros((n, co, h * f, w * f))
    for ci, hi, wi, i, j in itertools.product(range(co), range(h), range(w), range(f), range(f)):
        src = ci * f * f + i * f + j if torch_order else (i * f + j) * co + ci
        out[:, ci, hi * f + i, wi * f + j] = x[:, src, hi, wi]
    return out


def _to_depth(x, f, torch_order):
    n, c, h, w = x.shape
    out = np.zeros((n, c * f * f, h // f, w // f))
    for ci, hi, wi, i, j in itertools.product(
        range(c), range(h // f), range(w // f), range(f), range(f)
    ):
        dst = ci * f * f + i * f + j if torch_order else (i * f + j) * c + ci
        out[:, dst, hi, wi] = x[:, ci, hi * f + i, wi * f + j]
    return out


def _space_to_batch(x, block, pads):
    x = np.pad(x, [(0, 0), (0, 0), tuple(pads[0]), tuple(pads[1])])
    n, c, h, w = x.shape
    (b0, b1) = block
    out = np.zeros((n * b0 * b1, c, h // b0, w // b1))
    for i, j, b, hi, wi in itertools.product(
        range(b0), range(b1), range(n), range(h // b0), range(w // b1)
    ):
        out[(i * b1 + j) * n + b, :, hi, wi] = x[b, :, hi * b0 + i, wi * b1 + j]
    return out


def _batch_to_space(x, block, crops):
    nb, c, h, w = x.shape
    (b0, b1) = block
    n = nb // (b0 * b1)
    full = np.zeros((n, c, h * b0, w * b1))
    for i, j, b, hi, wi in itertools.product(range(b0), range(b1), range(n), range(h), range(w)):
        full[b, :, hi * b0 + i, wi * b1 + j] = x[(i * b1 + j) * n + b, :, hi, wi]
    (t, bo), (le, r) = crops
    return full[:, :, t : h * b0 - bo, le : w * b1 - r]


CASES = [
    Case(
        "reshape_like",
        {"x": X3, "r1": rand(6, 1), "r2": rand(1, 2, 2)},
        lambda v, f: mb.reshape_like(
            x=v["x"],
            ref_tensors=(v["r1"], v["r2"]),
            begins=(0, 1),
            ends=(1, 0),
            end_masks=(False, True),
        ),
        lambda v, f: v["x"].reshape(6, 2, 2),
    ),
    *[
        Case(
            f"flatten2d_axis{a}".replace("-", "m"),
            {"x": X3},
            lambda v, f, a=a: mb.flatten2d(x=v["x"], axis=a),
            lambda v, f, a=a: v["x"].reshape(int(np.prod(X3.shape[:a])), -1),
        )
        for a in (1, -1, 0, 3)
    ],
    Case(
        "range_1d_constant_and_runtime",
        {"n": np.array([7], np.int32)},
        lambda v, f: (
            mb.range_1d(start=f(0.5), end=f(3.0), step=f(0.75)),
            mb.range_1d(start=np.int32(-2), end=mb.squeeze(x=v["n"]), step=np.int32(3)),
        ),
        lambda v, f: (np.arange(0.5, 3.0, 0.75), np.arange(-2, 7, 3).astype(np.int32)),
    ),
    Case(
        "squeeze_ignores_non_single_axes",
        {"x": rand(2, 1, 3)},
        lambda v, f: mb.squeeze(x=v["x"], axes=[0, 1]),
        lambda v, f: v["x"][:, 0, :],
    ),
    *[
        Case(
            f"band_part_{lo}_{up}".replace("-", "m"),
            {"x": X3},
            lambda v, f, lo=lo, up=up: mb.band_part(x=v["x"], lower=lo, upper=up),
            lambda v, f, lo=lo, up=up: _band(v["x"], lo, up),
        )
        for lo, up in ((-1, -1), (1, -1), (0, 0), (-1, 0), (2, 1))
    ],
    *[
        Case(
            f"cumsum_axis{a}_ex{int(e)}_rev{int(r)}".replace("-", "m"),
            {"x": X3},
            lambda v, f, a=a, e=e, r=r: mb.cumsum(x=v["x"], axis=a, exclusive=e, reverse=r),
            lambda v, f, a=a, e=e, r=r: _cumsum(v["x"], a, e, r),
            tol16=2e-2,
        )
        for a, e, r in ((0, False, False), (-1, True, False), (1, False, True), (2, True, True))
    ],
    Case(
        "cumsum_int32",
        {"x": RNG.integers(-50, 50, (3, 4)).astype(np.int32)},
        lambda v, f: mb.cumsum(x=v["x"], axis=1, exclusive=True),
        lambda v, f: _cumsum(v["x"], 1, True, False).astype(np.int32),
    ),
    Case(
        "sliding_windows_stride2",
        {"x": rand(2, 7, 3)},
        lambda v, f: mb.sliding_windows(x=v["x"], axis=1, size=3, stride=2),
        lambda v, f: _windows(v["x"], 1, 3, 2),
    ),
    Case(
        "sliding_windows_last_axis",
        {"x": rand(2, 5)},
        lambda v, f: mb.sliding_windows(x=v["x"], axis=-1, size=2),
        lambda v, f: _windows(v["x"], 1, 2, 1),
    ),
    Case(
        "reverse_sequence_batch0",
        {"x": rand(4, 5, 2), "n": np.array([0, 5, 2, 3], np.int32)},
        lambda v, f: mb.reverse_sequence(x=v["x"], lengths=v["n"], seq_axis=1, batch_axis=0),
        lambda v, f: _reverse_sequence(v["x"], v["n"], 1, 0),
    ),
    Case(
        "reverse_sequence_seq0",
        {"x": rand(5, 3, 2), "n": np.array([1, 4, 5], np.int32)},
        lambda v, f: mb.reverse_sequence(x=v["x"], lengths=v["n"], seq_axis=0, batch_axis=1),
        lambda v, f: _reverse_sequence(v["x"], v["n"], 0, 1),
    ),
    Case(
        "crop",
        {"x": rand(1, 2, 5, 6)},
        lambda v, f: mb.crop(x=v["x"], crop_height=[1, 2], crop_width=[0, 3]),
        lambda v, f: v["x"][:, :, 1:3, 0:3],
    ),
    Case(
        "pixel_shuffle",
        {"x": X4},
        lambda v, f: mb.pixel_shuffle(x=v["x"], upscale_factor=2),
        lambda v, f: _to_space(v["x"], 2, True),
    ),
    Case(
        "pixel_unshuffle",
        {"x": rand(1, 2, 4, 6)},
        lambda v, f: mb.pixel_unshuffle(x=v["x"], downscale_factor=np.uint32(2)),
        lambda v, f: _to_depth(v["x"], 2, True),
    ),
    Case(
        "depth_to_space",
        {"x": X4},
        lambda v, f: mb.depth_to_space(x=v["x"], block_size=2),
        lambda v, f: _to_space(v["x"], 2, False),
    ),
    Case(
        "space_to_depth",
        {"x": rand(1, 2, 4, 6)},
        lambda v, f: mb.space_to_depth(x=v["x"], block_size=2),
        lambda v, f: _to_depth(v["x"], 2, False),
    ),
    Case(
        "space_to_batch",
        {"x": rand(2, 3, 4, 5)},
        lambda v, f: mb.space_to_batch(x=v["x"], block_shape=[2, 3], paddings=[[0, 0], [1, 0]]),
        lambda v, f: _space_to_batch(v["x"], (2, 3), ((0, 0), (1, 0))),
    ),
    Case(
        "batch_to_space",
        {"x": rand(12, 3, 2, 2)},
        lambda v, f: mb.batch_to_space(x=v["x"], block_shape=[2, 3], crops=[[0, 1], [1, 2]]),
        lambda v, f: _batch_to_space(v["x"], (2, 3), ((0, 1), (1, 2))),
    ),
    *[  # shape arithmetic of traced models: scalars picked by gather, joined by concat
        Case(
            f"concat_of_scalars{'_interleave' if il else ''}",
            {"x": rand(4)},
            lambda v, f, il=il: (
                mb.gather(x=v["x"], indices=np.int32(1), axis=0),
                mb.concat(
                    values=[mb.gather(x=v["x"], indices=np.int32(i), axis=0) for i in (0, 2)],
                    axis=0,
                    interleave=il,
                ),
            ),
            lambda v, f: (v["x"][1], v["x"][[0, 2]]),
        )
        for il in (False, True)
    ],
]


group, test_numpy, test_torch = op_tests(CASES, "ops_shape")
