"""conv_transpose, pooling, conv with a runtime bias and conv_quantized against loops
written from the definitions (output sizes, pad types, ceil_mode, exclude_padding), fp32
and fp16, numpy and torch."""

from __future__ import annotations

import itertools
import math

import coremltools as ct
import numpy as np
import pytest
from fixtures.executor.mil_models import mb
from fixtures.executor.op_cases import Case, group_fixture, op_tests

RNG = np.random.default_rng(3)


def rand(*shape):
    return RNG.standard_normal(shape).astype(np.float32)


def _conv_transpose(
    x, w, strides, dil, groups, pad_type="valid", pad=None, out_shape=None, bias=None
):
    """Every input element adds x * w[tap] at position * stride + tap * dilation; the
    result is cropped by the padding (same: half of max(k_eff - s, 0) first)."""
    n, cin = x.shape[:2]
    cg, og, ksize, dims = cin // groups, w.shape[1], w.shape[2:], x.shape[2:]
    nd = len(dims)
    full = [(dims[i] - 1) * strides[i] + (ksize[i] - 1) * dil[i] + 1 for i in range(nd)]
    y = np.zeros((n, groups * og, *full))
    for b, ci in itertools.product(range(n), range(cin)):
        g = ci // cg
        for pos in np.ndindex(*dims):
            for k in np.ndindex(*ksize):
                at = tuple(pos[i] * strides[i] + k[i] * dil[i] for i in range(nd))
                y[(b, slice(g * og, (g + 1) * og), *at)] += (
                    x[(b, ci, *pos)] * w[(ci, slice(None), *k)]
                )
    out = y
    for i in range(nd):
        keff = (ksize[i] - 1) * dil[i] + 1
        if pad_type == "same":
            before, size = max(keff - strides[i], 0) // 2, dims[i] * strides[i]
        elif pad_type == "custom":
            before, size = pad[2 * i], full[i] - pad[2 * i] - pad[2 * i + 1]
        else:
            before, size = 0, full[i]
        if out_shape is not None:
            size = out_shape[2 + i]
        taken = np.take(out, range(before, min(before + size, full[i])), axis=2 + i)
        extra = before + size - full[i]
        if extra > 0:
            widths = [(0, 0)] * out.ndim
            widths[2 + i] = (0, extra)
            taken = np.pad(taken, widths)
        out = taken
    return out if bias is None else out + bias.reshape((1, -1) + (1,) * nd)


def _conv(x, w, bias, strides=(1, 1), groups=1):
    n, cin, h, wd = x.shape
    co, cg, kh, kw = w.shape
    oh, ow = (h - kh) // strides[0] + 1, (wd - kw) // strides[1] + 1
    out = np.zeros((n, co, oh, ow))
    for b, o, i, j in itertools.product(range(n), range(co), range(oh), range(ow)):
        g = o // (co // groups)
        patch = x[
            b,
            g * cg : (g + 1) * cg,
            i * strides[0] : i * strides[0] + kh,
            j * strides[1] : j * strides[1] + kw,
        ]
        out[b, o, i, j] = np.sum(patch * w[o]) + bias[o]
    return out


def _same_pads(dims, k, s, lower=False):
    pads = []
    for d, kk, ss in zip(dims, k, s, strict=True):
        total = max(0, ss * math.ceil(d / ss) - d + kk - ss)
        small, big = total // 2, total - total // 2
        pads.append((big, small) if lower else (small, big))
    return pads


def _pool(x, kind, k, s, pads, ceil=False, exclude=False):
    """Window o covers [o * s - before, o * s - before + k); inside the input it reads
    x, inside the padding a pad element (0, counted for avg unless excluded), beyond the
    padding (ceil_mode's last window) nothing."""
    dims = x.shape[2:]
    out_dims = []
    for d, kk, ss, (b, a) in zip(dims, k, s, pads, strict=True):
        o = (d + b + a - kk + (ss - 1 if ceil else 0)) // ss + 1
        if ceil and (o - 1) * ss >= d + b and b + a > 0:
            o -= 1
        out_dims.append(o)
    out = np.zeros(x.shape[:2] + tuple(out_dims))
    for pos in np.ndindex(*out_dims):
        values, count = [], 0
        for tap in np.ndindex(*k):
            at = [pos[i] * s[i] - pads[i][0] + tap[i] for i in range(len(k))]
            if all(0 <= at[i] < dims[i] for i in range(len(k))):
                values.append(x[(slice(None), slice(None), *at)])
                count += 1
            elif all(-pads[i][0] <= at[i] < dims[i] + pads[i][1] for i in range(len(k))):
                values.append(
                    np.zeros(x.shape[:2]) if kind != "max" else np.full(x.shape[:2], -np.inf)
                )
                count += 0 if exclude else 1
        stack = np.stack(values)
        if kind == "max":
            out[(slice(None), slice(None), *pos)] = stack.max(axis=0)
        elif kind == "avg":
            out[(slice(None), slice(None), *pos)] = stack.sum(axis=0) / count
        else:
            out[(slice(None), slice(None), *pos)] = np.sqrt((stack**2).sum(axis=0))
    return out


X2 = rand(1, 2, 5, 6)
W_T = rand(4, 3, 3)
_W2 = rand(4, 1, 2, 3)
_B2 = rand(2)
_W3 = rand(2, 3, 3, 3)
_W1 = rand(2, 2, 1, 1)
_W4 = rand(2, 2, 4, 4)
_W5 = rand(2, 2, 2, 2, 2)
_WC = rand(6, 2, 3, 2)
POOLS = [
    # name, kind, kernel, strides, pad_type, pad, ceil, exclude, x
    ("max_valid", "max", [2, 2], [2, 2], "valid", None, False, False, X2),
    ("max_same", "max", [3, 3], [2, 2], "same", None, False, False, X2),
    ("max_same_lower", "max", [2, 2], [1, 2], "same_lower", None, False, False, X2),
    ("max_custom", "max", [3, 2], [2, 1], "custom", [1, 0, 0, 1], False, False, X2),
    ("max_ceil", "max", [3, 3], [2, 2], "custom", [1, 1, 0, 0], True, False, X2),
    ("max_1d_ceil_nopad", "max", [2], [2], "valid", None, True, False, rand(2, 3, 7)),
    ("avg_valid", "avg", [2, 3], [1, 2], "valid", None, False, False, X2),
    ("avg_same_counted", "avg", [3, 3], [2, 2], "same", None, False, False, X2),
    ("avg_same_excluded", "avg", [3, 3], [2, 2], "same", None, False, True, X2),
    ("avg_ceil", "avg", [2, 2], [2, 2], "custom", [1, 1, 1, 1], True, False, X2),
    (
        "avg_3d",
        "avg",
        [2, 2, 2],
        [1, 2, 1],
        "custom",
        [0, 1, 1, 0, 0, 0],
        False,
        True,
        rand(1, 2, 3, 4, 3),
    ),
    ("l2_valid", "l2", [2, 2], [2, 2], "valid", None, False, False, X2),
    ("l2_same", "l2", [3, 2], [1, 1], "same", None, False, False, X2),
]


def _pool_case(name, kind, k, s, pad_type, pad, ceil, exclude, x):
    def build(v, f):
        kw = dict(x=v["x"], kernel_sizes=k, strides=s, pad_type=pad_type)
        if pad is not None:
            kw["pad"] = pad
        if kind != "l2":
            kw["ceil_mode"] = ceil
        if kind == "avg":
            kw["exclude_padding_from_average"] = exclude
        return getattr(mb, f"{kind}_pool")(**kw)

    def expect(v, f):
        dims = x.shape[2:]
        if pad_type in ("same", "same_lower"):
            pads = _same_pads(dims, k, s, pad_type == "same_lower")
        elif pad_type == "custom":
            pads = [(pad[2 * i], pad[2 * i + 1]) for i in range(len(k))]
        else:
            pads = [(0, 0)] * len(k)
        return _pool(v["x"], kind, k, s, pads, ceil, exclude)

    return Case(f"pool_{name}", {"x": x}, build, expect)


CASES = [
    Case(
        "conv_transpose_1d_custom",
        {"x": rand(1, 4, 5)},
        lambda v, f: mb.conv_transpose(
            x=v["x"], weight=W_T.astype(f), strides=[2], pad_type="custom", pad=[1, 0]
        ),
        lambda v, f: _conv_transpose(
            v["x"], W_T.astype(f).astype(np.float64), [2], [1], 1, "custom", [1, 0]
        ),
    ),
    Case(
        "conv_transpose_2d_groups_dilations_bias",
        {"x": rand(2, 4, 3, 4)},
        lambda v, f: mb.conv_transpose(
            x=v["x"],
            weight=_W2.astype(f),
            bias=_B2.astype(f),
            strides=[2, 1],
            dilations=[1, 2],
            groups=2,
        ),
        lambda v, f: _conv_transpose(
            v["x"],
            _W2.astype(f).astype(np.float64),
            [2, 1],
            [1, 2],
            2,
            bias=_B2.astype(f).astype(np.float64),
        ),
    ),
    Case(
        "conv_transpose_same",
        {"x": rand(1, 2, 3, 3)},
        lambda v, f: mb.conv_transpose(
            x=v["x"], weight=_W3.astype(f), strides=[2, 2], pad_type="same"
        ),
        lambda v, f: _conv_transpose(
            v["x"], _W3.astype(f).astype(np.float64), [2, 2], [1, 1], 1, "same"
        ),
    ),
    Case(
        "conv_transpose_same_k4",  # half of k - s = 2 is cropped first
        {"x": rand(1, 2, 3, 3)},
        lambda v, f: mb.conv_transpose(
            x=v["x"], weight=_W4.astype(f), strides=[2, 2], pad_type="same"
        ),
        lambda v, f: _conv_transpose(
            v["x"], _W4.astype(f).astype(np.float64), [2, 2], [1, 1], 1, "same"
        ),
    ),
    Case(
        "conv_transpose_same_kernel_below_stride",
        {"x": rand(1, 2, 3, 3)},
        lambda v, f: mb.conv_transpose(
            x=v["x"], weight=_W1.astype(f), strides=[3, 3], pad_type="same"
        ),
        lambda v, f: _conv_transpose(
            v["x"], _W1.astype(f).astype(np.float64), [3, 3], [1, 1], 1, "same"
        ),
    ),
    Case(
        "conv_transpose_output_shape",  # PyTorch's output_padding=1 with padding=1
        {"x": rand(1, 2, 3, 3)},
        lambda v, f: mb.conv_transpose(
            x=v["x"],
            weight=_W3.astype(f),
            strides=[2, 2],
            pad_type="custom",
            pad=[1, 1, 1, 1],
            output_shape=[1, 3, 6, 6],
        ),
        lambda v, f: _conv_transpose(
            v["x"],
            _W3.astype(f).astype(np.float64),
            [2, 2],
            [1, 1],
            1,
            "custom",
            [1, 1, 1, 1],
            [1, 3, 6, 6],
        ),
    ),
    Case(
        "conv_transpose_3d",
        {"x": rand(1, 2, 2, 3, 2)},
        lambda v, f: mb.conv_transpose(x=v["x"], weight=_W5.astype(f)),
        lambda v, f: _conv_transpose(
            v["x"], _W5.astype(f).astype(np.float64), [1, 1, 1], [1, 1, 1], 1
        ),
    ),
    Case(
        "conv_transpose_runtime_weight",
        {"x": rand(1, 2, 3, 3), "w": rand(2, 2, 2, 2)},
        lambda v, f: mb.conv_transpose(x=v["x"], weight=v["w"], strides=[2, 2]),
        lambda v, f: _conv_transpose(v["x"], v["w"], [2, 2], [1, 1], 1),
    ),
    Case(
        "conv_runtime_bias",
        {"x": rand(1, 4, 5, 5), "b": rand(6)},
        lambda v, f: mb.conv(x=v["x"], weight=_WC.astype(f), bias=v["b"], strides=[2, 1], groups=2),
        lambda v, f: _conv(v["x"], _WC.astype(f).astype(np.float64), v["b"], (2, 1), 2),
    ),
    *[_pool_case(*p) for p in POOLS],
]

WQ = RNG.integers(0, 256, (3, 2, 3, 3)).astype(np.uint8)
QSCALE = np.array([0.01, 0.02, -0.015], np.float32)
CASES_15 = [
    Case(
        "conv_quantized_linear",  # W = W_q * scale (per output channel) + bias
        {"x": rand(1, 2, 4, 5)},
        lambda v, f: mb.conv_quantized(
            x=v["x"],
            weight=WQ,
            quantization_type="linear",
            nbits=8,
            quant_scale=QSCALE,
            quant_bias=np.float32(-1.25),
        ),
        lambda v, f: _conv(
            v["x"], WQ * QSCALE.reshape(-1, 1, 1, 1).astype(np.float64) - 1.25, np.zeros(3)
        ),
        tol=1e-4,
        precisions=("fp32",),
    ),
]


group, test_numpy, test_torch = op_tests(CASES, "ops_conv")


group15 = group_fixture(CASES_15, "ops_conv15", "group15", target=ct.target.iOS15)


@pytest.mark.parametrize("executor", ["numpy", pytest.param("torch", marks=pytest.mark.torch)])
def test_conv_quantized(group15, executor):
    group15.check("conv_quantized_linear", "fp32", executor)


@pytest.mark.torch
def test_conv_transpose_agrees_with_torch_output_padding():
    """The output_shape form of a PyTorch ConvTranspose2d(padding=1, output_padding=1)."""
    import torch
    import torch.nn.functional as F  # noqa: N812

    x = rand(1, 2, 3, 3)
    want = F.conv_transpose2d(
        torch.from_numpy(x), torch.from_numpy(_W3), stride=2, padding=1, output_padding=1
    )
    got = _conv_transpose(x, _W3, [2, 2], [1, 1], 1, "custom", [1, 1, 1, 1], [1, 3, 6, 6])
    np.testing.assert_allclose(got, want.numpy(), rtol=1e-5, atol=1e-5)
