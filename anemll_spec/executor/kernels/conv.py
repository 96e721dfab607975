"""Convolution and pooling kernels: conv, conv_quantized, conv_transpose, avg_pool,
max_pool, l2_pool.

A constant weight is decoded once, at prepare time, in the layout the kernel multiplies
with; a 1x1 stride-1 unpadded conv is a plain matmul. Weights and biases may be runtime
tensors (iOS17). Pooling windows are strided views of the padded input, reduced at once.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np

from anemll_spec.executor.arrays import numpy_ops
from anemll_spec.executor.kernels.base import Prep, Run, kernel

CONV_PADS = ("valid", "same", "custom", "same_lower")


def float_const(p: Prep, param: str) -> np.ndarray:
    """A float constant as stored (fp16 stays fp16); `p.tensor` makes it a tensor."""
    w = np.asarray(p.const(param))
    return w if w.dtype.kind == "f" else w.astype(np.float32)


def conv_pads(pad_type: str, custom: list[int], ksize, dilations, strides, dims):
    """(before, after) padding per spatial dim (aggregated_pad in coremltools' _utils.py:
    `same` puts the odd element after, `same_lower` before)."""
    nd = len(ksize)
    if pad_type == "valid":
        return [(0, 0)] * nd
    if pad_type == "custom":
        return [(custom[2 * i], custom[2 * i + 1]) for i in range(nd)]
    pads = []
    for i in range(nd):
        k = (ksize[i] - 1) * dilations[i] + 1
        total = max(0, (math.ceil(dims[i] / strides[i]) - 1) * strides[i] + k - dims[i])
        small, big = total // 2, total - total // 2
        pads.append((small, big) if pad_type == "same" else (big, small))
    return pads


def _custom_pad(p: Prep, pad_type: str, nd: int | None) -> list[int]:
    pad = p.ints("pad", None) or []
    if pad_type == "custom":
        p.check(nd is None or len(pad) == 2 * nd, f"pad needs {2 * (nd or 0)} values, got {pad}")
        p.check(all(v >= 0 for v in pad), f"pad values must be >= 0, got {pad}")
    return pad


def _bias(p: Prep, nd: int) -> Callable[[dict], Any] | None:
    """The bias as a (1, C, 1...) tensor: constant (made once) or runtime (iOS17)."""
    if not p.has("bias"):
        return None
    shape = [1, -1] + [1] * nd
    if p.is_const("bias"):
        b = p.tensor(float_const(p, "bias").reshape(shape))
        return lambda env: b
    key, xp = p.ref("bias"), p.xp
    return lambda env: xp.reshape(env[key], shape)


@kernel("conv")
def _conv(p: Prep) -> Run:
    return _conv_with(p, float_const(p, "weight") if p.is_const("weight") else None)


@kernel("conv_quantized")
def _conv_quantized(p: Prep) -> Run:
    """W = W_q * quant_scale + quant_bias (the def's formula), then a conv; scale and bias
    are scalars or one value per output channel."""
    qtype = p.choice("quantization_type", ("linear", "lut"))
    if qtype == "lut":
        raise p.fail("quantization_type 'lut': the op defines no lookup table to read")
    nbits = p.int("nbits", 8)
    p.check(1 <= nbits <= 8, f"nbits {nbits} is outside [1, 8]")
    wq = np.asarray(p.const("weight"))
    p.check(int(wq.max(initial=0)) < 2**nbits, f"weights exceed {nbits} bits")
    per = (-1,) + (1,) * (wq.ndim - 1)
    scale = np.asarray(p.const("quant_scale"), dtype=np.float64)
    offset = np.asarray(p.const("quant_bias"), dtype=np.float64)
    scale = scale.reshape(per) if scale.size > 1 else scale.reshape(())
    offset = offset.reshape(per) if offset.size > 1 else offset.reshape(())
    return _conv_with(p, (wq * scale + offset).astype(np.float32))


def _conv_with(p: Prep, w: np.ndarray | None) -> Run:
    x = p.ref("x")
    nd = p.rank("x") - 2
    groups = p.int("groups", 1)
    pad_type = p.choice("pad_type", CONV_PADS, "valid")
    custom = _custom_pad(p, pad_type, nd)
    strides = p.ints("strides", [1] * nd)
    dilations = p.ints("dilations", [1] * nd)
    p.check(groups >= 1, f"groups {groups} must be >= 1")
    p.check(min(strides + dilations, default=1) >= 1, "strides and dilations must be >= 1")
    bias = _bias(p, nd)
    if w is not None:
        trivial_pad = pad_type != "custom" or not any(custom)
        ones = all(k == 1 for k in w.shape[2:]) and all(s == 1 for s in strides)
        if ones and groups == 1 and trivial_pad:
            return _pointwise_conv(p, x, w, bias)
    xp = p.xp
    wt = None if w is None else p.tensor(w)
    wkey = None if w is not None else p.ref("weight")

    def conv(env):
        v = env[x]
        weight = wt if wt is not None else env[wkey]
        ksize = xp.shape(weight)[2:]
        pads = conv_pads(pad_type, custom, ksize, dilations, strides, xp.shape(v)[2:])
        y = xp.conv(v, weight, strides, pads, dilations, groups)
        return y if bias is None else y + bias(env)

    return conv


def _pointwise_conv(p: Prep, x: str, w: np.ndarray, bias) -> Run:
    """1x1 conv as W @ x with W a contiguous (out, in) matrix."""
    xp = p.xp
    out_ch, in_ch = w.shape[:2]
    wm = p.tensor(np.ascontiguousarray(w.reshape(out_ch, in_ch)))

    def pointwise(env):
        v = env[x]
        shape = xp.shape(v)
        n, spatial = shape[0], shape[2:]
        length = math.prod(spatial)
        if n * length == 1:  # a single vector: gemv, no reshuffles
            y = xp.reshape(xp.matmul(wm, xp.reshape(v, [in_ch])), [out_ch, 1])
        else:
            y = xp.matmul(wm, xp.reshape(v, [n, in_ch, length]))
        y = xp.reshape(y, [n, out_ch, *spatial])
        return y if bias is None else y + xp.reshape(bias(env), [1, out_ch] + [1] * len(spatial))

    return pointwise


@kernel("conv_transpose")
def _conv_transpose(p: Prep) -> Run:
    """The full transposed convolution, then cropped (pad) or zero-extended to the output
    size: out[o] = full[o + before], before = pad[2i] (custom), 0 (valid), or half of
    max(k_eff - s, 0) (same, as the forward conv's same padding puts it)."""
    xp, x = p.xp, p.ref("x")
    nd = p.rank("x") - 2
    groups = p.int("groups", 1)
    pad_type = p.choice("pad_type", ("valid", "same", "custom"), "valid")
    custom = _custom_pad(p, pad_type, nd) or [0] * (2 * nd)
    strides = p.ints("strides", [1] * nd)
    dilations = p.ints("dilations", [1] * nd)
    out_shape = p.ints("output_shape", None)
    if out_shape is not None:
        p.check(len(out_shape) in (nd, nd + 2), f"output_shape {out_shape} has the wrong rank")
        out_shape = out_shape[-nd:]
    p.check(groups >= 1 and min(strides + dilations) >= 1, "groups, strides, dilations >= 1")
    wt = p.tensor(float_const(p, "weight")) if p.is_const("weight") else None
    wkey = None if wt is not None else p.ref("weight")
    bias = _bias(p, nd)

    def conv_transpose(env):
        v = env[x]
        w = wt if wt is not None else env[wkey]
        dims, ksize = xp.shape(v)[2:], xp.shape(w)[2:]
        full = xp.conv_transpose(v, w, strides, dilations, groups)
        index, extend = [slice(None), slice(None)], []
        for i in range(nd):
            length = xp.shape(full)[2 + i]
            keff = (ksize[i] - 1) * dilations[i] + 1
            if pad_type == "same":
                before, size = max(keff - strides[i], 0) // 2, dims[i] * strides[i]
            else:
                before = custom[2 * i] if pad_type == "custom" else 0
                after = custom[2 * i + 1] if pad_type == "custom" else 0
                size = length - before - after
            if out_shape is not None:
                size = out_shape[i]
            index.append(slice(before, before + size))
            extend.append((0, max(0, before + size - length)))
        y = xp.getitem(full, tuple(index))
        if any(e for _, e in extend):  # an output longer than the full result: zeros
            y = xp.pad(y, [(0, 0), (0, 0), *extend], "constant", 0.0)
        return y if bias is None else y + bias(env)

    return conv_transpose


# -- pooling ----------------------------------------------------------------------------


def _pool_geometry(p: Prep, ksize, strides, pad_type, custom, ceil_mode, dims):
    """(pads, out_dims, overhang): overhang extends the padded input at the end so the
    last ceil_mode window fits; it never counts as padding (spatial_dimensions_out_shape)."""
    pads = conv_pads(pad_type, custom, ksize, [1] * len(ksize), strides, dims)
    out, over = [], []
    for d, k, s, (b, a) in zip(dims, ksize, strides, pads, strict=True):
        span = d + b + a
        n = (span - k + (s - 1 if ceil_mode else 0)) // s + 1
        if ceil_mode and (n - 1) * s >= d + b and b + a > 0:
            n -= 1
        if n < 1:
            raise p.fail(f"kernel {k} does not fit a padded dimension of {span}")
        out.append(n)
        over.append(max(0, (n - 1) * s + k - span))
    return pads, out, over


def _pool(p: Prep, kind: str) -> Run:
    xp, x = p.xp, p.ref("x")
    ksize = p.ints("kernel_sizes")
    nd = len(ksize)
    p.check(p.rank("x") == nd + 2, f"kernel_sizes {ksize} need an input of rank {nd + 2}")
    strides = p.ints("strides", [1] * nd)
    pad_type = p.choice("pad_type", CONV_PADS, "valid")
    custom = _custom_pad(p, pad_type, nd)
    ceil_mode = p.bool("ceil_mode", False)
    exclude = p.bool("exclude_padding_from_average", False)
    p.check(min(ksize + strides) >= 1, "kernel_sizes and strides must be >= 1")
    p.check(not (ceil_mode and pad_type in ("same", "same_lower")), "ceil_mode with same pad")
    if ceil_mode and pad_type == "custom":
        p.check(custom[0::2] == custom[1::2], f"ceil_mode needs symmetric pad, got {custom}")
    fill = -math.inf if kind == "max" else 0.0
    dims = p.dims("x")
    if dims is not None:  # a kernel that does not fit fails at load
        _pool_geometry(p, ksize, strides, pad_type, custom, ceil_mode, dims[2:])

    def counts(dims, pads, out, over):
        """Window sizes of avg_pool: real elements (+ explicit padding unless excluded)."""
        inside = np.pad(
            np.ones(dims), [(b, a) for b, a in pads], constant_values=0 if exclude else 1
        )
        inside = np.pad(inside, [(0, o) for o in over])
        return (
            np.stack(_windows(numpy_ops, inside, ksize, strides, out))
            .sum(axis=0)
            .astype(np.float32)
        )

    def pool(env):
        v = env[x]
        dims = xp.shape(v)[2:]
        pads, out, over = _pool_geometry(p, ksize, strides, pad_type, custom, ceil_mode, dims)
        padded = xp.pad(
            v,
            [(0, 0), (0, 0)] + [(b, a + o) for (b, a), o in zip(pads, over, strict=True)],
            "constant",
            fill,
        )
        if kind == "l2":
            padded = padded * padded
        taps = xp.stack(_windows(xp, padded, ksize, strides, out), 0)
        if kind == "max":
            return xp.max(taps, (0,), False)
        total = xp.sum(taps, (0,), False)
        if kind == "l2":
            return xp.sqrt(total)
        n = p.derived(("counts", tuple(dims)), lambda: counts(dims, pads, out, over))
        return total / n

    return pool


def _windows(xp, v, ksize, strides, out) -> list:
    """One strided view per kernel tap: view[t][..., o] = v[..., o * stride + tap]."""
    views = []
    for k in np.ndindex(*ksize):
        index = tuple(
            slice(k[i], k[i] + (out[i] - 1) * strides[i] + 1, strides[i]) for i in range(len(ksize))
        )
        views.append(xp.getitem(v, (Ellipsis, *index)))
    return views


@kernel("max_pool")
def _max_pool(p: Prep) -> Run:
    return _pool(p, "max")


@kernel("avg_pool")
def _avg_pool(p: Prep) -> Run:
    return _pool(p, "avg")


@kernel("l2_pool")
def _l2_pool(p: Prep) -> Run:
    return _pool(p, "l2")
