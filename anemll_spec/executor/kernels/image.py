"""Resizing kernels: upsample_nearest_neighbor, resize_nearest_neighbor, upsample_bilinear,
resize_bilinear, resize (iOS17), crop_resize.

Every resize is separable: along each resized axis, output i reads the input at a grid
coordinate g(i) (the sampling modes of the resize_bilinear def, clamped to [0, in - 1]);
linear modes mix the two neighbours, nearest ones read one. Grids depend on shapes only, so
their indices and weights are made once per shape. crop_resize's grids depend on runtime
boxes and are computed with the array library.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from anemll_spec.executor.kernels.base import Prep, Run, kernel

SAMPLING = ("STRICT_ALIGN_CORNERS", "ALIGN_CORNERS", "DEFAULT", "OFFSET_CORNERS", "UNALIGN_CORNERS")
BOX_MODES = (
    "CORNERS_HEIGHT_FIRST",
    "CORNERS_WIDTH_FIRST",
    "CENTER_SIZE_HEIGHT_FIRST",
    "CENTER_SIZE_WIDTH_FIRST",
)


def grid(mode: str, xin: int, xout: int) -> np.ndarray:
    """Input coordinates of the xout output positions (resize_bilinear's Notes)."""
    i = np.arange(xout, dtype=np.float64)
    if mode in ("STRICT_ALIGN_CORNERS", "ALIGN_CORNERS"):
        if xout == 1:
            g = np.full(1, (xin - 1) / 2 if mode == "ALIGN_CORNERS" else 0.0)
        else:
            g = i * (xin - 1) / (xout - 1)
    elif mode == "DEFAULT":
        g = i * ((xin - xin / xout) / (xout - 1) if xout > 1 else 0.0)
    elif mode == "OFFSET_CORNERS":
        delta = max(1, xin - 1) / xout
        g = 0.5 * delta + i * delta
    elif mode == "UNALIGN_CORNERS":
        spacing = xin / xout
        g = i * spacing + 0.5 * spacing - 0.5
    else:  # "ASYMMETRIC": upsample_bilinear without align_corners or half-pixel centres
        g = i * xin / xout
    return np.clip(g, 0, xin - 1)


def _linear_along(p: Prep, v: Any, axis: int, mode: str, dout: int) -> Any:
    """v resampled linearly along `axis` to `dout` points of the sampling `mode`'s grid.
    The index and weight tables depend only on (axis, mode, sizes): made on the first
    call that needs them and kept, so a call does no numpy work besides the takes."""
    xp = p.xp
    size, rank = xp.shape(v)[axis], len(xp.shape(v))
    key = ("linear", axis, mode, size, dout)

    def tables():
        g = grid(mode, size, dout)
        lo = np.floor(g).astype(np.int32)
        hi = np.minimum(lo + 1, size - 1).astype(np.int32)
        w = (g - lo).astype(np.float32).reshape([-1] + [1] * (rank - 1 - axis))
        return lo, hi, w

    def table(i: int) -> Callable[[], np.ndarray]:
        return lambda: tables()[i]

    lo, hi, w = (p.derived(key + (i,), table(i)) for i in range(3))
    a, b = xp.take(v, lo, axis), xp.take(v, hi, axis)
    return a + (b - a) * w


def _nearest_along(p: Prep, v: Any, axis: int, rule: str, dout: int) -> Any:
    """v read along `axis` at `dout` nearest points (`rule`: see _nearest_index); the
    index table is made once per (axis, rule, sizes), as _linear_along's."""
    din = p.xp.shape(v)[axis]
    table = p.derived(
        ("nearest", axis, rule, din, dout),
        lambda: _nearest_index(rule, din, dout).astype(np.int32),
    )
    return p.xp.take(v, table, axis)


def _nearest_index(rule: str, xin: int, xout: int) -> np.ndarray:
    """ "floor": floor(i * in / out), what upsample with a recomputed scale and
    TensorFlow's legacy resize_nearest_neighbor read (coremltools' reference values
    agree); a sampling mode: that mode's grid point rounded half up (resize)."""
    if rule == "floor":
        return np.minimum((np.arange(xout) * xin) // xout, xin - 1)
    return np.minimum(np.floor(grid(rule, xin, xout) + 0.5), xin - 1)


def _x_dtype(p: Prep) -> str:
    """x's MIL dtype: its declared type, or (an inline x) the output's, which is x's."""
    t = p.input_type("x")
    return t.dtype if t is not None else p.out().dtype


def float_x(p: Prep) -> None:
    """The defs of upsample_*, resize_nearest_neighbor, resize_bilinear, crop_resize,
    resample and affine (iOS15-iOS17) take an fp16 or fp32 x (T: fp16, fp32); an int32 x
    was interpolated in float and cast back, a result no def gives. iOS17's resize also
    takes int32 (_resize)."""
    dtype = _x_dtype(p)
    p.check(dtype in ("fp16", "fp32"), f"x is {dtype}; the {p.op.type} def takes fp16 or fp32")


def _rank3(p: Prep) -> int:
    float_x(p)
    rank = p.rank("x")
    p.check(rank >= 3, f"x must have rank >= 3, got rank {rank}")
    return rank


def _scales(p: Prep) -> tuple[float, float]:
    """An upsample op's (height, width) scale factors, each checked finite and > 0 at load
    (a NaN passed a check of the smaller one, an inf passed > 0: both failed at run)."""
    scales = []
    for name in ("scale_factor_height", "scale_factor_width"):
        value = p.float(name, 1)
        p.check(math.isfinite(value) and value > 0, f"{name} {value} must be finite and > 0")
        scales.append(value)
    return scales[0], scales[1]


def _resized(
    p: Prep,
    rank: int,
    shape: Sequence[int],
    sizes: Sequence[int] | None,
    scales: Sequence[float] | None,
) -> list[tuple[int, int]]:
    """(axis, size out) of the last two axes of x of `shape`: the output size is `sizes`
    (resize ops) or floor(size * scale) (upsample ops), refused below 1, and the output
    checked before it is made (a scale of 1e9 is a constant the def allows)."""
    dims = shape[-2:]
    if scales is not None:
        outs: Sequence[int] = [math.floor(d * s) for d, s in zip(dims, scales, strict=True)]
    else:
        assert sizes is not None, "a resize has sizes, an upsample scales"
        outs = sizes
    for axis, dout in zip((rank - 2, rank - 1), outs, strict=True):
        if dout < 1:
            raise p.fail(f"output size {dout} along axis {axis} must be >= 1")
    p.sized([*shape[:-2], *outs], "the resized tensor")
    return list(zip((rank - 2, rank - 1), outs, strict=True))


@kernel("upsample_nearest_neighbor", "resize_nearest_neighbor")
def _nearest(p: Prep) -> Run:
    xp, x = p.xp, p.ref("x")
    rank = _rank3(p)
    if p.op.type == "resize_nearest_neighbor":
        sizes = (p.int("target_size_height"), p.int("target_size_width"))
        scales = None
    else:
        sizes, scales = None, _scales(p)

    def nearest(env):
        v = env[x]
        for axis, dout in _resized(p, rank, xp.shape(v), sizes, scales):
            v = _nearest_along(p, v, axis, "floor", dout)
        return v

    return nearest


@kernel("upsample_bilinear", "resize_bilinear")
def _bilinear(p: Prep) -> Run:
    xp, x = p.xp, p.ref("x")
    rank = _rank3(p)
    if p.op.type == "resize_bilinear":
        sizes = (p.int("target_size_height", 1), p.int("target_size_width", 1))
        scales, mode = None, p.choice("sampling_mode", SAMPLING, "DEFAULT")
    else:
        sizes, scales = None, _scales(p)
        align = p.bool("align_corners", True)
        half = p.bool("half_pixel_centers", not align)  # iOS16; iOS15 behaves as the default
        p.check(not (align and half), "align_corners and half_pixel_centers are both set")
        mode = "STRICT_ALIGN_CORNERS" if align else "UNALIGN_CORNERS" if half else "ASYMMETRIC"

    def bilinear(env):
        v = env[x]
        for axis, dout in _resized(p, rank, xp.shape(v), sizes, scales):
            v = _linear_along(p, v, axis, mode, dout)
        return v

    return bilinear


@kernel("resize", reads="a runtime target shape")
def _resize(p: Prep) -> Run:
    """The last `resized_dims` dims of x take the last `resized_dims` values of `shape`
    (0: keep); NEAREST_NEIGHBOR reads the input at the grid point rounded (half up).
    The def takes an int32 x (T: fp16, fp32, int32) but defines no rounding of an
    interpolated int32 value (no value_inference, nothing in its text): LINEAR of an int32
    x is refused, not truncated; NEAREST_NEIGHBOR only copies elements."""
    xp, x = p.xp, p.ref("x")
    rank = p.rank("x")
    count = p.int("resized_dims")
    linear = p.choice("interpolation_mode", ("LINEAR", "NEAREST_NEIGHBOR"), "LINEAR") == "LINEAR"
    dtype = _x_dtype(p)
    allowed = dtype in ("fp16", "fp32", "int32")
    p.check(allowed, f"x is {dtype}; the resize def takes fp16, fp32 or int32")
    p.check(
        not linear or dtype != "int32",
        "LINEAR interpolation of an int32 x: the def defines no rounding of the "
        "interpolated values (NEAREST_NEIGHBOR copies elements and is defined)",
    )
    mode = p.choice("sampling_mode", SAMPLING, "DEFAULT")
    p.check(0 <= count <= rank, f"resized_dims {count} is outside [0, {rank}]")
    static = p.ints("shape") if p.is_const("shape") else None
    key = None if static is not None else p.ref("shape")

    def resize(env):
        v = env[x]
        target = (
            static if static is not None else [int(t) for t in xp.to_numpy(env[key]).reshape(-1)]
        )
        if not count <= len(target) <= rank:
            raise p.fail(f"shape {target} must hold resized_dims {count} to {rank} values")
        sizes = _resize_sizes(p, xp.shape(v), target, count)
        for j, dout in enumerate(sizes):
            along = _linear_along if linear else _nearest_along
            v = along(p, v, rank - count + j, mode, dout)
        return v

    return resize


def _resize_sizes(p: Prep, dims: Sequence[int], target: Sequence[int], count: int) -> list[int]:
    """Sizes of the last `count` axes (a target 0 keeps the input's size). A runtime target
    is untrusted: a negative size is refused (it gave an empty tensor), and the output is
    checked before it is made (Prep.sized)."""
    wanted = list(target[len(target) - count :])
    if any(t < 0 for t in wanted):
        raise p.fail(f"shape {list(target)} holds a negative size")
    sizes = [t or d for t, d in zip(wanted, dims[len(dims) - count :], strict=True)]
    p.sized([*dims[: len(dims) - count], *sizes], "the resized tensor")
    return sizes


@kernel("crop_resize")
def _crop_resize(p: Prep) -> Run:
    """Boxes resampled bilinearly to target_height x target_width: within a box of extent
    [start, end] output i reads start + a * i + b, the sampling mode's grid with in - 1 =
    end - start; a point outside the image reads pad_value (iOS16+, 0 before)."""
    xp, x = p.xp, p.ref("x")
    float_x(p)
    p.check(p.rank("x") == 4, f"x must have rank 4, got rank {p.rank('x')}")
    ios17 = p.has("boxes")
    th, tw = p.int("target_height", 1), p.int("target_width", 1)
    p.check(th >= 1 and tw >= 1, f"target size {th} x {tw} must be >= 1")
    normalized = p.bool("normalized_coordinates", False)
    scale = p.float("spatial_scale", 1.0)
    # NaN or inf put every box off the image: each output read pad_value, silently
    p.check(math.isfinite(scale), f"spatial_scale {scale} must be finite")
    box_mode = p.choice("box_coordinate_mode", BOX_MODES, "CORNERS_HEIGHT_FIRST")
    mode = p.choice("sampling_mode", SAMPLING, "DEFAULT")
    pad_value = p.scalar("pad_value", 0.0)
    boxes_key = p.ref("boxes" if ios17 else "roi")
    index_key = p.opt_ref("box_indices") if ios17 else None

    def crop_resize(env):
        v = env[x]
        batch, channels, height, width = xp.shape(v)
        boxes = xp.astype(env[boxes_key], xp.float_dtype)
        n = xp.shape(boxes)[0]
        _check_crop_sizes(p, n, xp.shape(v), ios17 or xp.shape(boxes)[2] == 5, th, tw)
        if ios17:
            index = env[index_key] if index_key else p.derived(("arange", n), lambda: np.arange(n))
            # an image index, never wrapped: iOS17's defs call negative indices out of
            # bound (gather, scatter) and check only the upper bound here
            index = xp.checked_indices(index, batch, p.fail, wrap=False)
            images = xp.expand_dims(xp.take(v, index, 0), [1])
        else:
            width4 = xp.shape(boxes)[2]
            boxes = xp.reshape(boxes, [n, width4])
            if width4 == 5:  # the first value picks the image
                index = xp.astype(xp.getitem(boxes, (slice(None), 0)), "int32")
                images = xp.expand_dims(
                    xp.take(v, xp.checked_indices(index, batch, p.fail), 0), [1]
                )
                boxes = xp.getitem(boxes, (slice(None), slice(1, 5)))
            else:
                images = xp.broadcast_to(
                    xp.expand_dims(v, [0]), [n, batch, channels, height, width]
                )
        h0, w0, h1, w1 = _corners(xp, boxes, box_mode)
        hs = (height - 1) if normalized else 1
        ws = (width - 1) if normalized else 1
        ys = _box_grid(p, h0 * (scale * hs), h1 * (scale * hs), th, mode)  # (N, th)
        xs = _box_grid(p, w0 * (scale * ws), w1 * (scale * ws), tw, mode)  # (N, tw)
        out = _sample_boxes(xp, images, ys, xs, pad_value)
        return xp.reshape(out, [n, channels, th, tw]) if ios17 else out

    return crop_resize


def _check_crop_sizes(
    p: Prep, n: int, shape: Sequence[int], indexed: bool, th: int, tw: int
) -> None:
    """The tensors crop_resize makes for `n` boxes (a runtime count) times the constant
    target size, checked before any is made: the boxes' images (copied where each box picks
    one), the rows sampled, the output."""
    batch, channels, height, width = shape
    lead = [n, 1 if indexed else batch, channels]
    if indexed:
        p.sized([n, channels, height, width], "the boxes' images")
    p.sized([*lead, th, width], "the rows sampled")
    p.sized([*lead, th, tw], "the cropped tensor")


def _sample_boxes(xp, images: Any, ys: Any, xs: Any, pad_value: float) -> Any:
    """images (N, B, C, H, W) read at rows ys (N, th) and columns xs (N, tw), bilinearly;
    a coordinate outside [0, size - 1] reads pad_value."""
    n, lead = xp.shape(images)[0], list(xp.shape(images)[:3])
    out = images
    for axis, coords in ((3, ys), (4, xs)):
        size, k = xp.shape(images)[axis], xp.shape(coords)[1]
        c = xp.reshape(coords, [n, 1, 1, k, 1] if axis == 3 else [n, 1, 1, 1, k])
        valid = (c >= 0) & (c <= size - 1)
        lo = xp.clip(xp.floor(c), 0, size - 1)
        lo_i = xp.astype(lo, "int32")
        hi_i = xp.minimum(lo_i + 1, size - 1)
        target = lead + ([k, xp.shape(out)[4]] if axis == 3 else [xp.shape(out)[3], k])
        a = xp.take_along_axis(out, xp.broadcast_to(lo_i, target), axis)
        b = xp.take_along_axis(out, xp.broadcast_to(hi_i, target), axis)
        out = xp.where(xp.broadcast_to(valid, target), a + (b - a) * (c - lo), pad_value)
    return out


def _corners(xp, boxes: Any, mode: str) -> tuple:
    """(h_start, w_start, h_end, w_end), each of shape (N, 1), from the box convention."""
    cols = [xp.getitem(boxes, (slice(None), slice(i, i + 1))) for i in range(4)]
    if mode == "CORNERS_HEIGHT_FIRST":
        return tuple(cols)
    if mode == "CORNERS_WIDTH_FIRST":
        return cols[1], cols[0], cols[3], cols[2]
    hc, wc, bh, bw = (
        cols if mode == "CENTER_SIZE_HEIGHT_FIRST" else (cols[1], cols[0], cols[3], cols[2])
    )
    return hc - bh * 0.5, wc - bw * 0.5, hc + bh * 0.5, wc + bw * 0.5


def _box_grid(p: Prep, start: Any, end: Any, xout: int, mode: str) -> Any:
    """start + a * i + b for i < xout: `grid` with in - 1 = end - start (negative: the box
    read backwards), not clamped (outside the image reads the pad value); (N, xout)."""
    xp, span = p.xp, end - start
    i = p.derived(("i", xout), lambda: np.arange(xout, dtype=np.float32).reshape(1, -1))
    if mode in ("STRICT_ALIGN_CORNERS", "ALIGN_CORNERS"):
        if xout == 1:
            return start + span * (0.5 if mode == "ALIGN_CORNERS" else 0.0) + i
        return start + span * (i / (xout - 1))
    xin = span + 1
    if mode == "DEFAULT":
        step = (xin - xin / xout) / (xout - 1) if xout > 1 else span * 0
        return start + step * i
    if mode == "OFFSET_CORNERS":
        return start + xp.maximum(span, 1.0) / xout * (i + 0.5)
    return start + xin / xout * (i + 0.5) - 0.5  # UNALIGN_CORNERS
