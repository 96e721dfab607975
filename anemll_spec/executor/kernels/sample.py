"""Sampling at runtime coordinates: resample and affine (PyTorch's grid_sample, plus a
constant padding value and TensorFlow-style symmetric padding).

Coordinates become pixel positions (x across the width, y down the height), the padding
mode folds positions outside the image back in (border: clamp; reflection: mirror about
the first and last pixel centres; symmetric: mirror about the image edges), and the image
is read at them: nearest rounds half to even (as grid_sample), bilinear mixes the four
neighbours. In constant mode a neighbour outside the image reads `padding_value`.
coremltools' own expected values for these ops agree (tests).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from anemll_spec.executor.kernels.base import Prep, Run, kernel
from anemll_spec.executor.kernels.image import float_x

COORDS = ("unnormalized", "normalized_minus_one_to_one", "normalized_zero_to_one")
PADDING = ("constant", "border", "reflection", "symmetric")


def _pixels(xp, c: Any, size: int, mode: str, align: bool) -> Any:
    if mode == "unnormalized":
        return c
    if mode == "normalized_minus_one_to_one":
        return (c + 1) * ((size - 1) / 2) if align else ((c + 1) * size - 1) / 2
    return c * (size - 1) if align else c * size - 0.5


def _fold(xp, c: Any, size: int, padding: str) -> Any:
    """Positions folded into the image (constant: unchanged), clamped to [0, size - 1]."""
    if padding == "reflection" and size > 1:
        period = 2 * (size - 1)
        c = xp.mod(xp.abs(c), period)
        c = xp.where(c > size - 1, period - c, c)
    elif padding == "symmetric":
        u = xp.mod(c + 0.5, 2 * size)
        c = xp.where(u > size, 2 * size - u, u) - 0.5
    return c if padding == "constant" else xp.clip(c, 0, size - 1)


def grid_sample(xp, v: Any, px: Any, py: Any, nearest: bool, padding: str, pad_value: float):
    """v (B, C, H, W) read at pixel positions px, py (B, H2, W2) -> (B, C, H2, W2)."""
    b, c, h, w = xp.shape(v)
    h2, w2 = xp.shape(px)[1:]
    px, py = _fold(xp, px, w, padding), _fold(xp, py, h, padding)
    flat = xp.reshape(v, [b, c, h * w])

    def read(ix: Any, iy: Any) -> Any:  # integer-valued float positions
        inside = (ix >= 0) & (ix <= w - 1) & (iy >= 0) & (iy <= h - 1)
        lin = xp.astype(xp.clip(iy, 0, h - 1) * w + xp.clip(ix, 0, w - 1), "int32")
        lin = xp.broadcast_to(xp.reshape(lin, [b, 1, h2 * w2]), [b, c, h2 * w2])
        vals = xp.reshape(xp.take_along_axis(flat, lin, 2), [b, c, h2, w2])
        if padding != "constant":
            return vals
        return xp.where(xp.expand_dims(inside, [1]), vals, pad_value)

    if nearest:
        return read(xp.round(px), xp.round(py))
    x0, y0 = xp.floor(px), xp.floor(py)
    wx, wy = xp.expand_dims(px - x0, [1]), xp.expand_dims(py - y0, [1])
    top = read(x0, y0) * (1 - wx) + read(x0 + 1, y0) * wx
    bottom = read(x0, y0 + 1) * (1 - wx) + read(x0 + 1, y0 + 1) * wx
    return top * (1 - wy) + bottom * wy


@kernel("resample")
def _resample(p: Prep) -> Run:
    xp, x, coords = p.xp, p.ref("x"), p.ref("coordinates")
    float_x(p)
    p.check(p.rank("x") == 4, f"x must have rank 4, got rank {p.rank('x')}")
    p.check(p.rank("coordinates") == 4, "coordinates must have rank 4 (B, H2, W2, 2)")
    nearest = p.choice("sampling_mode", ("bilinear", "nearest")) == "nearest"
    padding = p.choice("padding_mode", PADDING)
    pad_value = p.scalar("padding_value")
    mode = p.choice("coordinates_mode", COORDS)
    align = p.bool("align_corners")

    def resample(env):
        v, c = env[x], xp.astype(env[coords], xp.float_dtype)
        h, w = xp.shape(v)[2:]
        px = _pixels(xp, xp.getitem(c, (Ellipsis, 0)), w, mode, align)
        py = _pixels(xp, xp.getitem(c, (Ellipsis, 1)), h, mode, align)
        return grid_sample(xp, v, px, py, nearest, padding, pad_value)

    return resample


@kernel("affine")
def _affine(p: Prep) -> Run:
    """Output pixel (x, y), in [-1, 1] corner-aligned coordinates, reads the input at
    (a0 x + a1 y + a2, b0 x + b1 y + b2), bilinearly, zero outside (the only settings the
    def allows)."""
    xp, x, matrix = p.xp, p.ref("x"), p.ref("transform_matrix")
    float_x(p)
    p.check(p.rank("x") == 4, f"x must have rank 4, got rank {p.rank('x')}")
    oh, ow = p.int("output_height"), p.int("output_width")
    p.check(oh >= 1 and ow >= 1, f"output size {oh} x {ow} must be >= 1")
    p.choice("sampling_mode", ("bilinear",))
    p.choice("padding_mode", ("constant",))
    p.choice("coordinates_mode", ("normalized_minus_one_to_one",))
    p.check(p.float("padding_value") == 0.0, "padding_value must be 0 (the def's only value)")
    p.check(p.bool("align_corners"), "align_corners must be True (the def's only value)")

    def base():
        ys, xs = np.meshgrid(
            np.linspace(-1, 1, oh) if oh > 1 else np.zeros(1),
            np.linspace(-1, 1, ow) if ow > 1 else np.zeros(1),
            indexing="ij",
        )
        return np.stack([xs, ys, np.ones_like(xs)]).astype(np.float32).reshape(1, 3, oh * ow)

    def affine(env):
        v = env[x]
        b, c, h, w = xp.shape(v)
        p.sized([b, c, oh, ow], "the transformed tensor")
        m = xp.reshape(xp.astype(env[matrix], xp.float_dtype), [-1, 2, 3])
        if xp.shape(m)[0] not in (1, b):
            raise p.fail(f"transform_matrix has {xp.shape(m)[0]} rows for a batch of {b}")
        grid = p.derived(("base", oh, ow), lambda: base().astype(xp.float_dtype))
        src = xp.matmul(m, grid)  # (D, 2, oh * ow)
        src = xp.broadcast_to(src, [b, 2, oh * ow])
        cx = xp.reshape(xp.getitem(src, (slice(None), 0)), [b, oh, ow])
        cy = xp.reshape(xp.getitem(src, (slice(None), 1)), [b, oh, ow])
        px = _pixels(xp, cx, w, "normalized_minus_one_to_one", True)
        py = _pixels(xp, cy, h, "normalized_minus_one_to_one", True)
        return grid_sample(xp, v, px, py, False, "constant", 0.0)

    return affine
