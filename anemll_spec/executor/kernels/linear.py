"""Matrix kernels: linear, matmul, einsum, scaled_dot_product_attention.

Constant weights are decoded once, at prepare time, to contiguous float matrices in the
layout the kernel multiplies with (convolutions are in `conv.py`).
"""

from __future__ import annotations

import math

import numpy as np

from anemll_spec.executor.kernels.base import Prep, Run, kernel
from anemll_spec.executor.kernels.conv import float_const


@kernel("linear")
def _linear(p: Prep) -> Run:
    xp, x = p.xp, p.ref("x")
    bias = None
    if p.has("bias") and p.is_const("bias"):
        b = float_const(p, "bias")
        bias = p.tensor(b) if np.any(b) else None
    if p.is_const("weight"):
        w = float_const(p, "weight")
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
        # q scaled first: q.k summed over a head overflows fp16 before a later scale would
        scores = xp.matmul(qv * scale, _swap_last(xp, kv))
        if mask is not None:
            m = env[mask]
            is_bool = bool_mask if bool_mask is not None else xp.dtype_name(m) == "bool"
            # bool: True takes part, False is excluded (-inf); float masks are added
            scores = xp.where(m, scores, -math.inf) if is_bool else scores + m
        e = xp.exp(scores - xp.max(scores, (-1,), True))
        return xp.matmul(e / xp.sum(e, (-1,), True), vv)

    return sdpa
