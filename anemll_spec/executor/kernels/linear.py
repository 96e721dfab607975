"""Matrix kernels: conv, linear, matmul, einsum, scaled_dot_product_attention.

Constant weights are decoded once, at prepare time, to contiguous float matrices in the
layout the kernel multiplies with; a 1x1 stride-1 unpadded conv is a plain matmul.
"""

from __future__ import annotations

import math

import numpy as np

from anemll_spec.executor.kernels.base import Prep, Run, kernel


def _float_const(p: Prep, param: str) -> np.ndarray:
    """A float constant as stored (fp16 stays fp16); `p.tensor` makes it a tensor."""
    w = np.asarray(p.const(param))
    return w if w.dtype.kind == "f" else w.astype(np.float32)


def _conv_pads(p: Prep, pad_type: str, custom: list[int], ksize, dilations, strides, dims):
    nd = len(ksize)
    if pad_type == "valid":
        return [(0, 0)] * nd
    if pad_type == "custom":
        return [(custom[2 * i], custom[2 * i + 1]) for i in range(nd)]
    if pad_type in ("same", "same_lower"):
        pads = []
        for i in range(nd):
            k = (ksize[i] - 1) * dilations[i] + 1
            total = max(0, (math.ceil(dims[i] / strides[i]) - 1) * strides[i] + k - dims[i])
            small, big = total // 2, total - total // 2
            pads.append((small, big) if pad_type == "same" else (big, small))
        return pads
    raise p.fail(f"unknown pad_type '{pad_type}'")


@kernel("conv")
def _conv(p: Prep) -> Run:
    x = p.ref("x")
    groups = p.int("groups", 1)
    pad_type = p.str("pad_type", "valid")
    custom = p.ints("pad", None)
    bias = None
    if p.has("bias"):
        bias = _float_const(p, "bias")

    if not p.is_const("weight"):  # runtime weight: general path, nothing to precompute
        wkey = p.ref("weight")
        return _general_conv(p, x, None, wkey, bias, groups, pad_type, custom)

    w = _float_const(p, "weight")
    nd = w.ndim - 2
    strides = p.ints("strides", [1] * nd)
    ksize = w.shape[2:]
    trivial_pad = pad_type != "custom" or not any(custom or [])
    if all(k == 1 for k in ksize) and all(s == 1 for s in strides) and groups == 1 and trivial_pad:
        return _pointwise_conv(p, x, w, bias)
    return _general_conv(p, x, w, None, bias, groups, pad_type, custom)


def _pointwise_conv(p: Prep, x: str, w: np.ndarray, bias: np.ndarray | None) -> Run:
    """1x1 conv as W @ x with W a contiguous (out, in) matrix."""
    xp = p.xp
    out_ch, in_ch = w.shape[:2]
    wm = p.tensor(np.ascontiguousarray(w.reshape(out_ch, in_ch)))
    b = None if bias is None else p.tensor(bias.reshape(out_ch, 1))

    def pointwise(env):
        v = env[x]
        shape = xp.shape(v)
        n, spatial = shape[0], shape[2:]
        length = math.prod(spatial)
        if n * length == 1:  # a single vector: gemv, no reshuffles
            y = xp.reshape(xp.matmul(wm, xp.reshape(v, [in_ch])), [out_ch, 1])
        else:
            y = xp.matmul(wm, xp.reshape(v, [n, in_ch, length]))
        if b is not None:
            y = y + b
        return xp.reshape(y, [n, out_ch, *spatial])

    return pointwise


def _general_conv(p, x, w, wkey, bias, groups, pad_type, custom) -> Run:
    xp = p.xp
    wt = None if w is None else p.tensor(w)
    xtype = p.input_type("x")
    nd = (w.ndim - 2) if w is not None else (len(xtype.shape) - 2 if xtype else None)
    if nd is None:
        raise p.fail("conv with a runtime weight needs an input of known rank")
    strides = p.ints("strides", [1] * nd)
    dilations = p.ints("dilations", [1] * nd)
    b = None if bias is None else p.tensor(bias.reshape((1, -1) + (1,) * nd))

    def conv(env):
        v = env[x]
        weight = wt if wt is not None else env[wkey]
        ksize = xp.shape(weight)[2:]
        pads = _conv_pads(p, pad_type, custom or [], ksize, dilations, strides, xp.shape(v)[2:])
        y = xp.conv(v, weight, strides, pads, dilations, groups)
        return y if b is None else y + b

    return conv


@kernel("linear")
def _linear(p: Prep) -> Run:
    xp, x = p.xp, p.ref("x")
    bias = None
    if p.has("bias") and p.is_const("bias"):
        b = _float_const(p, "bias")
        bias = p.tensor(b) if np.any(b) else None
    if p.is_const("weight"):
        w = _float_const(p, "weight")
        wt = p.tensor(np.ascontiguousarray(w.T))  # (in, out): x @ wt

        def linear(env):
            y = xp.matmul(env[x], wt)
            return y if bias is None else y + bias

        return linear
    wkey = p.ref("weight")
    bkey = p.ref("bias") if p.has("bias") and not p.is_const("bias") else None

    def linear_runtime(env):
        w = env[wkey]
        y = xp.matmul(env[x], xp.permute_dims(w, [1, 0]))
        if bkey is not None:
            return y + env[bkey]
        return y if bias is None else y + bias

    return linear_runtime


def _swap_last(xp, v):
    rank = len(xp.shape(v))
    if rank < 2:
        return v
    return xp.permute_dims(v, [*range(rank - 2), rank - 1, rank - 2])


@kernel("matmul")
def _matmul(p: Prep) -> Run:
    xp, x, y = p.xp, p.ref("x"), p.ref("y")
    tx, ty = p.bool("transpose_x", False), p.bool("transpose_y", False)

    def matmul(env):
        a, b = env[x], env[y]
        if tx:
            a = _swap_last(xp, a)
        if ty:
            b = _swap_last(xp, b)
        return xp.matmul(a, b)

    return matmul


@kernel("einsum")
def _einsum(p: Prep) -> Run:
    xp, (x, y) = p.xp, p.refs("values")
    equation = p.str("equation")

    def einsum(env):
        a, b = env[x], env[y]
        sa, sb = list(xp.shape(a)), list(xp.shape(b))
        # the def broadcasts the batch-like dims (-2, and -4 for rank 4) before contracting
        for d in [-2, -4] if len(sa) == 4 else [-2]:
            m = max(sa[d], sb[d])
            sa[d] = sb[d] = m
        return xp.einsum(equation, xp.broadcast_to(a, sa), xp.broadcast_to(b, sb))

    return einsum


@kernel("scaled_dot_product_attention")
def _sdpa(p: Prep) -> Run:
    xp, q, k, v = p.xp, p.ref("query"), p.ref("key"), p.ref("value")
    mask = p.opt_ref("attn_mask")
    mtype = p.input_type("attn_mask") if mask else None
    bool_mask = None
    if mask is not None:
        bool_mask = (mtype.dtype == "bool") if mtype else None

    def sdpa(env):
        qv, kv, vv = env[q], env[k], env[v]
        scale = 1.0 / math.sqrt(xp.shape(qv)[-1])
        scores = xp.matmul(qv, _swap_last(xp, kv)) * scale
        if mask is not None:
            m = env[mask]
            is_bool = bool_mask if bool_mask is not None else xp.dtype_name(m) == "bool"
            # bool: True takes part, False is excluded (-inf); float masks are added
            scores = xp.where(m, scores, -math.inf) if is_bool else scores + m
        e = xp.exp(scores - xp.max(scores, (-1,), True))
        return xp.matmul(e / xp.sum(e, (-1,), True), vv)

    return sdpa
