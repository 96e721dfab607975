"""Reductions, softmax and normalizations."""

from __future__ import annotations

import numpy as np

from anemll_spec.executor.kernels.base import Prep, Run, kernel

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
    if t == "reduce_sum_square":
        return lambda env: xp.sum(env[x] * env[x], axes, keep)
    if t == "reduce_l1_norm":
        return lambda env: xp.sum(xp.abs(env[x]), axes, keep)
    if t == "reduce_l2_norm":
        return lambda env: xp.sqrt(xp.sum(env[x] * env[x], axes, keep))
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


@kernel("layer_norm")
def _layer_norm(p: Prep) -> Run:
    xp, x = p.xp, p.ref("x")
    rank = len(p.input_type("x").shape) if p.input_type("x") else None  # type: ignore[union-attr]
    axes_list = p.ints("axes", None)
    if axes_list is None:
        if rank is None:
            raise p.fail("layer_norm without axes needs an input of known rank")
        axes_list = list(range(rank))
    eps = p.float("epsilon", 1e-5)
    gamma = _affine(p, "gamma", axes_list, rank)
    beta = _affine(p, "beta", axes_list, rank)

    def layer_norm(env):
        v = env[x]
        r = len(xp.shape(v))
        axes = tuple(sorted(a + r if a < 0 else a for a in axes_list))
        centered = v - xp.mean(v, axes, True)
        out = centered / xp.sqrt(xp.mean(centered * centered, axes, True) + eps)
        if gamma is not None:
            out = out * gamma
        if beta is not None:
            out = out + beta
        return out

    return layer_norm


def _affine(p: Prep, param: str, axes: list[int], rank: int | None):
    """gamma/beta (shape x.shape[axes]) reshaped to broadcast against x."""
    if not p.has(param):
        return None
    if rank is None:
        raise p.fail(f"layer_norm with {param} needs an input of known rank")
    value = np.asarray(p.const(param), dtype=np.float32)
    norm = sorted(a + rank if a < 0 else a for a in axes)
    shape = [1] * rank
    for a, d in zip(norm, value.shape, strict=True):
        shape[a] = d
    return p.tensor(value.reshape(shape))


@kernel("batch_norm")
def _batch_norm(p: Prep) -> Run:
    x = p.ref("x")
    rank = len(p.input_type("x").shape)  # type: ignore[union-attr]
    shape = (1, -1) + (1,) * (rank - 2)

    def vec(name, default=None):
        if not p.has(name):
            return default
        return np.asarray(p.const(name), dtype=np.float64).reshape(shape)

    mean, var = vec("mean"), vec("variance")
    gamma, beta = vec("gamma", 1.0), vec("beta", 0.0)
    scale = gamma / np.sqrt(var + p.float("epsilon", 1e-5))
    a = p.tensor(np.asarray(scale, np.float32))
    b = p.tensor(np.asarray(beta - mean * scale, np.float32))
    return lambda env: env[x] * a + b
