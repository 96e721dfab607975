"""Reductions and softmax (normalizations are in `normalization.py`)."""

from __future__ import annotations

from anemll_spec.executor.kernels.base import Prep, Run, kernel
from anemll_spec.executor.kernels.normalization import narrow, wide

SIMPLE = {
    "reduce_sum": "sum",
    "reduce_mean": "mean",
    "reduce_max": "max",
    "reduce_min": "min",
    "reduce_prod": "prod",
}


def _axes(p: Prep) -> tuple[int, ...] | None:
    axes = p.ints("axes", None)
    return None if axes is None else tuple(axes)


@kernel(*SIMPLE)
def _reduce(p: Prep) -> Run:
    f = getattr(p.xp, SIMPLE[p.op.type])
    x, axes, keep = p.ref("x"), _axes(p), p.bool("keep_dims", False)
    return lambda env: f(env[x], axes, keep)


@kernel(
    "reduce_sum_square",
    "reduce_l1_norm",
    "reduce_l2_norm",
    "reduce_log_sum",
    "reduce_log_sum_exp",
)
def _reduce_composite(p: Prep) -> Run:
    xp, x, axes, keep = p.xp, p.ref("x"), _axes(p), p.bool("keep_dims", False)
    t = p.op.type
    if t in ("reduce_sum_square", "reduce_l2_norm"):  # squares in fp32 (see wide)
        root = xp.sqrt if t == "reduce_l2_norm" else (lambda s: s)

        def sum_square(env):
            v = wide(xp, env[x])
            return narrow(xp, root(xp.sum(v * v, axes, keep)))

        return sum_square
    if t == "reduce_l1_norm":
        return lambda env: xp.sum(xp.abs(env[x]), axes, keep)
    if t == "reduce_log_sum":
        return lambda env: xp.log(xp.sum(env[x], axes, keep))

    def log_sum_exp(env):
        v = env[x]
        m = xp.max(v, axes, True)
        out = xp.log(xp.sum(xp.exp(v - m), axes, True)) + m
        if keep:
            return out
        rank = len(xp.shape(v))
        return xp.squeeze(out, tuple(range(rank)) if axes is None else axes)

    return log_sum_exp


@kernel("reduce_argmax", "reduce_argmin")
def _reduce_arg(p: Prep) -> Run:
    f = p.xp.argmax if p.op.type == "reduce_argmax" else p.xp.argmin
    x, axis, keep = p.ref("x"), p.int("axis", -1), p.bool("keep_dims", False)
    return lambda env: f(env[x], axis, keep)


@kernel("softmax")
def _softmax(p: Prep) -> Run:
    xp, x, axis = p.xp, p.ref("x"), p.int("axis", -1)

    def softmax(env):
        v = env[x]
        e = xp.exp(v - xp.max(v, (axis,), True))
        return e / xp.sum(e, (axis,), True)

    return softmax
