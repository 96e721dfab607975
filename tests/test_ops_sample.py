"""resample and affine against coremltools' own expected values and a per-pixel reading
of the resample definition (coordinate modes, padding modes, nearest and bilinear), fp32
and fp16, numpy and torch; torch's grid_sample agrees where it defines the same thing."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from fixtures.executor.mil_models import mb
from fixtures.executor.op_cases import Case, op_tests

RNG = np.random.default_rng(19)
IMG = np.array([11.0, 22.0, 33.0, 44.0], np.float32).reshape(1, 1, 2, 2)
COORDS = np.array([-1.0, -2.0, -3.7, -1.0, 0.0, 0.0, 3.5, 1.2], np.float32).reshape(1, 2, 2, 2)


def _pixel(c, size, mode, align):
    if mode == "unnormalized":
        return c
    if mode == "normalized_minus_one_to_one":
        return (c + 1) / 2 * (size - 1) if align else ((c + 1) * size - 1) / 2
    return c * (size - 1) if align else c * size - 0.5


def _padded(img, i, j, padding, value):
    """img[i, j] with the padding mode's value outside (integer positions)."""
    h, w = img.shape

    def fold(k, n):
        if padding == "border":
            return min(max(k, 0), n - 1)
        if padding == "reflection":  # |1 2 3| -> 2 3 2 1 2 3 2 1
            period = 2 * (n - 1) or 1
            k = abs(k) % period
            return period - k if k > n - 1 else k
        period = 2 * n  # symmetric: |1 2 3| -> 3 2 1 1 2 3 3 2 1
        k %= period
        return period - 1 - k if k >= n else k

    if padding == "constant":
        return img[i, j] if 0 <= i < h and 0 <= j < w else value
    return img[fold(i, h), fold(j, w)]


def resample(x, coords, sampling, padding, value, mode, align):
    b, c, h, w = x.shape
    out = np.zeros((b, c, coords.shape[1], coords.shape[2]))
    for n, ch, i, j in itertools.product(
        range(b), range(c), range(coords.shape[1]), range(coords.shape[2])
    ):
        px = _pixel(coords[n, i, j, 0], w, mode, align)
        py = _pixel(coords[n, i, j, 1], h, mode, align)
        if padding != "constant":  # positions fold back inside, then clamp to the pixels
            px = _fold_continuous(px, w, padding)
            py = _fold_continuous(py, h, padding)
        img = x[n, ch]
        if sampling == "nearest":
            out[n, ch, i, j] = _padded(img, int(np.rint(py)), int(np.rint(px)), padding, value)
            continue
        x0, y0 = int(np.floor(px)), int(np.floor(py))
        wx, wy = px - x0, py - y0
        out[n, ch, i, j] = (
            _padded(img, y0, x0, padding, value) * (1 - wx) * (1 - wy)
            + _padded(img, y0, x0 + 1, padding, value) * wx * (1 - wy)
            + _padded(img, y0 + 1, x0, padding, value) * (1 - wx) * wy
            + _padded(img, y0 + 1, x0 + 1, padding, value) * wx * wy
        )
    return out


def _fold_continuous(p, n, padding):
    if padding == "reflection" and n > 1:
        period = 2 * (n - 1)
        p = abs(p) % period
        p = period - p if p > n - 1 else p
    elif padding == "symmetric":
        u = (p + 0.5) % (2 * n)
        p = (2 * n - u if u > n else u) - 0.5
    return min(max(p, 0.0), n - 1.0)


def _affine(x, m, oh, ow):
    """Output (x, y) on a [-1, 1] grid reads (a0 x + a1 y + a2, b0 x + b1 y + b2)."""
    ys, xs = np.meshgrid(np.linspace(-1, 1, oh), np.linspace(-1, 1, ow), indexing="ij")
    coords = np.zeros((x.shape[0], oh, ow, 2))
    for n in range(x.shape[0]):
        a = m[n if m.shape[0] > 1 else 0]
        coords[n, ..., 0] = a[0] * xs + a[1] * ys + a[2]
        coords[n, ..., 1] = a[3] * xs + a[4] * ys + a[5]
    return resample(x, coords, "bilinear", "constant", 0.0, "normalized_minus_one_to_one", True)


def _resample_op(v, f, sampling, padding, value, mode, align, key="c"):
    return mb.resample(
        x=v["x"],
        coordinates=v[key],
        sampling_mode=sampling,
        padding_mode=padding,
        padding_value=f(value),
        coordinates_mode=mode,
        align_corners=align,
    )


REFERENCE = [  # coremltools' expected values (tests/iOS15) for IMG at COORDS
    (
        ("bilinear", "constant", 6.17, "normalized_minus_one_to_one", True),
        [8.585, 6.17, 27.5, 6.17],
    ),
    (("nearest", "border", -1.0, "unnormalized", False), [11.0, 11.0, 11.0, 44.0]),
    (("bilinear", "reflection", -1.0, "normalized_zero_to_one", True), [22.0, 36.3, 11.0, 34.1]),
    (("nearest", "symmetric", -1.0, "normalized_zero_to_one", False), [22.0, 33.0, 11.0, 33.0]),
]
X = RNG.standard_normal((2, 3, 4, 5)).astype(np.float32)
# in and well outside [-1, 1], multiples of 1/16: every position is exact in fp16 too, so
# nearest rounds the same ties (half to even) whatever the precision of the arithmetic
C = (np.round((RNG.random((2, 3, 4, 2)) * 3 - 1.5) * 16) / 16).astype(np.float32)
SETTINGS = list(
    itertools.product(
        ("bilinear", "nearest"),
        ("constant", "border", "reflection", "symmetric"),
        ("unnormalized", "normalized_minus_one_to_one", "normalized_zero_to_one"),
        (True, False),
    )
)
SHORT = {
    "unnormalized": "pixels",
    "normalized_minus_one_to_one": "m1p1",
    "normalized_zero_to_one": "z1",
}
M = np.array([[-1.0, -2.0, -3.7, -1.0, 3.5, 1.2]], np.float32)

CASES = [
    Case(
        "resample_reference",
        {
            "x": IMG,
            "c": COORDS,
            "ci": np.array([0, 0, 1, 1, 0, 0, 1, 1], np.int32).reshape(1, 2, 2, 2),
        },
        lambda v, f: (
            tuple(_resample_op(v, f, *s) for s, _ in REFERENCE)
            + (_resample_op(v, f, *REFERENCE[0][0], key="ci"),)
        ),
        lambda v, f: (
            tuple(np.array(e).reshape(1, 1, 2, 2) for _, e in REFERENCE)
            + (np.array([27.5, 44, 27.5, 44]).reshape(1, 1, 2, 2),)
        ),
        tol=2e-5,
    ),
    *[
        Case(
            f"resample_{s}_{p}_{SHORT[m]}_align{int(a)}",
            {"x": X, "c": C * (3 if m == "unnormalized" else 1)},
            lambda v, f, s=s, p=p, m=m, a=a: _resample_op(v, f, s, p, 0.5, m, a),
            lambda v, f, s=s, p=p, m=m, a=a: resample(v["x"], v["c"], s, p, float(f(0.5)), m, a),
            tol16=3e-2,
        )
        for s, p, m, a in SETTINGS
    ],
    Case(
        "affine_reference",  # coremltools' expected values (tests/iOS15)
        {"x": IMG, "m": M},
        lambda v, f: tuple(
            mb.affine(
                x=v["x"],
                transform_matrix=v["m"],
                output_height=h,
                output_width=w,
                sampling_mode="bilinear",
                padding_mode="constant",
                padding_value=f(0),
                coordinates_mode="normalized_minus_one_to_one",
                align_corners=True,
            )
            for h, w in ((3, 3), (2, 5))
        ),
        lambda v, f: (
            np.array([10.752501, 2.5025, 0, 1.9799997, 0, 0, 0, 0, 0]).reshape(1, 1, 3, 3),
            np.array([10.752501, 5.94, 2.5025, 0.44000006, 0, 0, 0, 0, 0, 0]).reshape(1, 1, 2, 5),
        ),
    ),
    Case(
        "affine_per_batch",
        {"x": X, "m": (RNG.standard_normal((2, 6)) * 0.7).astype(np.float32)},
        lambda v, f: mb.affine(
            x=v["x"],
            transform_matrix=v["m"],
            output_height=3,
            output_width=6,
            sampling_mode="bilinear",
            padding_mode="constant",
            padding_value=f(0),
            coordinates_mode="normalized_minus_one_to_one",
            align_corners=True,
        ),
        lambda v, f: _affine(v["x"], v["m"], 3, 6),
        tol16=3e-2,
    ),
]


group, test_numpy, test_torch = op_tests(CASES, "ops_sample")


@pytest.mark.torch
@pytest.mark.parametrize("sampling", ["bilinear", "nearest"])
@pytest.mark.parametrize("padding", ["zeros", "border", "reflection"])
@pytest.mark.parametrize("align", [True, False])
def test_reference_agrees_with_torch_grid_sample(sampling, padding, align):
    """resample's reference is grid_sample where grid_sample defines the same thing:
    constant 0 = zeros, border, and reflection = reflection (align_corners=True) or
    symmetric (align_corners=False)."""
    import torch
    import torch.nn.functional as F  # noqa: N812

    mode = {"zeros": "constant", "border": "border"}.get(
        padding, "reflection" if align else "symmetric"
    )
    want = F.grid_sample(
        torch.from_numpy(X),
        torch.from_numpy(C),
        mode=sampling,
        padding_mode=padding,
        align_corners=align,
    )
    got = resample(
        X.astype(np.float64),
        C.astype(np.float64),
        sampling,
        mode,
        0.0,
        "normalized_minus_one_to_one",
        align,
    )
    np.testing.assert_allclose(got, want.numpy(), rtol=1e-5, atol=1e-5)
