"""Normalization kernels: layer_norm, batch_norm, instance_norm, l2_norm,
local_response_norm (the formulas of coremltools' normalization defs)."""

from __future__ import annotations

import numpy as np

from anemll_spec.executor.kernels.base import Prep, Run, kernel


def wide(xp, v):
    """`v` in fp32 where the executor computes in fp16 (torch on an fp16 model), else as
    it is. Squares of activations overflow fp16 (300^2 > 65504: LLaMA's outlier channels
    reach that), so a norm's statistics are taken in fp32 and only its result is rounded
    back (`narrow`): the numpy reference computes every op in fp32 the same way."""
    return xp.astype(v, "float32") if xp.float_dtype == "float16" else v


def narrow(xp, out):
    return xp.astype(out, "float16") if xp.float_dtype == "float16" else out


@kernel("layer_norm")
def _layer_norm(p: Prep) -> Run:
    xp, x = p.xp, p.ref("x")
    rank = len(p.input_type("x").shape) if p.input_type("x") else None  # type: ignore[union-attr]
    axes_list = p.ints("axes", None)
    if axes_list is None:
        if rank is None:
            raise p.fail("layer_norm without axes needs an input of known rank")
        axes_list = list(range(rank))
    eps = p.scalar("epsilon", 1e-5)
    gamma = _affine(p, "gamma", axes_list, rank)
    beta = _affine(p, "beta", axes_list, rank)

    def layer_norm(env):
        v = wide(xp, env[x])
        r = len(xp.shape(v))
        axes = tuple(sorted(a + r if a < 0 else a for a in axes_list))
        centered = v - xp.mean(v, axes, True)
        out = centered / xp.sqrt(xp.mean(centered * centered, axes, True) + eps)
        if gamma is not None:
            out = out * gamma
        if beta is not None:
            out = out + beta
        return narrow(xp, out)

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


def _channel_vec(p: Prep, name: str, rank: int):
    """A per-channel constant (gamma, beta) shaped (1, C, 1...), or None when absent."""
    if not p.has(name):
        return None
    value = np.asarray(p.const(name), dtype=np.float32)
    return p.tensor(value.reshape((1, -1) + (1,) * (rank - 2)))


@kernel("instance_norm")
def _instance_norm(p: Prep) -> Run:
    """Per sample and channel over the spatial dims: (x - mean) / sqrt(var + eps), biased
    variance, then gamma and beta per channel."""
    xp, x = p.xp, p.ref("x")
    rank = p.rank("x")
    p.check(rank >= 3, f"x must have rank >= 3 (n, C, *D), got rank {rank}")
    axes = tuple(range(2, rank))
    eps = p.scalar("epsilon", 1e-5)
    gamma, beta = _channel_vec(p, "gamma", rank), _channel_vec(p, "beta", rank)

    def instance_norm(env):
        v = wide(xp, env[x])
        centered = v - xp.mean(v, axes, True)
        out = centered / xp.sqrt(xp.mean(centered * centered, axes, True) + eps)
        if gamma is not None:
            out = out * gamma
        return narrow(xp, out if beta is None else out + beta)

    return instance_norm


@kernel("l2_norm")
def _l2_norm(p: Prep) -> Run:
    """x / sqrt(sum(x^2) + eps) over the last three dims (the leading ones are batch)."""
    xp, x = p.xp, p.ref("x")
    rank = p.rank("x")
    p.check(rank >= 3, f"x must have rank >= 3, got rank {rank}")
    eps = p.scalar("epsilon", 1e-6)
    axes = (rank - 3, rank - 2, rank - 1)

    def l2_norm(env):
        v = wide(xp, env[x])
        return narrow(xp, v / xp.sqrt(xp.sum(v * v, axes, True) + eps))

    return l2_norm


@kernel("local_response_norm")
def _local_response_norm(p: Prep) -> Run:
    """x / (k + alpha / size * sum of x^2 over a window of `size` channels)^beta. The
    channels are the third dimension from the end: axis 1 of (n, C, H, W) as the def says;
    of a rank-3 input, axis 0 (the def says (n, C, D), but coremltools' own expected values
    for Core ML normalize each element of a (1, 3, 2) input by itself alone). The window
    of channel c is [c - size // 2, c + (size - 1) // 2]: centred for odd sizes (as
    TensorFlow's depth_radius), PyTorch's split for even ones."""
    xp, x = p.xp, p.ref("x")
    rank = p.rank("x")
    p.check(rank >= 3, f"x must have rank >= 3 (n, C, *D), got rank {rank}")
    size = p.int("size")
    p.check(size >= 1, f"size {size} must be >= 1")
    alpha, beta, k = p.scalar("alpha", 1e-4), p.scalar("beta", 0.75), p.scalar("k", 1.0)
    axis = rank - 3
    pads = [(0, 0)] * rank
    pads[axis] = (size // 2, (size - 1) // 2)

    def local_response_norm(env):
        v = env[x]
        channels = xp.shape(v)[axis]
        sq = xp.pad(v * v, pads, "constant", 0.0)
        total = None
        for j in range(size):
            index = tuple(slice(j, j + channels) if i == axis else slice(None) for i in range(rank))
            part = xp.getitem(sq, index)
            total = part if total is None else total + part
        return v / xp.power(total * (alpha / size) + k, beta)

    return local_response_norm
