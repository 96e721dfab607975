"""batch_norm, instance_norm, l2_norm, local_response_norm, softplus_parametric and iOS17
quantize / dequantize against the formulas of their definitions, fp32 and fp16, numpy and
torch."""

from __future__ import annotations

import numpy as np
from fixtures.executor.mil_models import mb
from fixtures.executor.op_cases import Case, op_tests

RNG = np.random.default_rng(13)


def rand(*shape):
    return RNG.standard_normal(shape).astype(np.float32)


G = rand(3)
B = rand(3)


def _instance_norm(x, gamma, beta, eps):
    axes = tuple(range(2, x.ndim))
    mean = x.mean(axis=axes, keepdims=True)
    var = ((x - mean) ** 2).mean(axis=axes, keepdims=True)
    shape = (1, -1) + (1,) * (x.ndim - 2)
    return gamma.reshape(shape) * (x - mean) / np.sqrt(var + eps) + beta.reshape(shape)


def _batch_norm(x, mean, var, gamma, beta, eps):
    """gamma * (x - mean) / sqrt(var + eps) + beta, each per channel (the second axis)."""
    shape = (1, -1) + (1,) * (x.ndim - 2)
    m, v, g, b = (np.asarray(a, np.float64).reshape(shape) for a in (mean, var, gamma, beta))
    return g * (x - m) / np.sqrt(v + eps) + b


def _l2_norm(x, eps):
    out = np.empty_like(x)
    for pos in np.ndindex(*x.shape[:-3]):
        block = x[pos]
        out[pos] = block / np.sqrt(np.sum(block**2) + eps)
    return out


def _lrn(x, size, alpha, beta, k):
    """Channel c (the third dimension from the end) sums the squares of channels
    c - size // 2 ... c + (size - 1) // 2."""
    x = np.moveaxis(x, x.ndim - 3, 0)
    out = np.empty_like(x)
    channels = x.shape[0]
    for c in range(channels):
        lo, hi = max(0, c - size // 2), min(channels - 1, c + (size - 1) // 2)
        total = np.sum(x[lo : hi + 1] ** 2, axis=0)
        out[c] = x[c] / (k + alpha / size * total) ** beta
    return np.moveaxis(out, 0, out.ndim - 3)


def _softplus_parametric(x, alpha, beta):
    shape = (1, -1) + (1,) * (x.ndim - 2)
    return alpha.reshape(shape) * np.log1p(np.exp(beta.reshape(shape) * x))


def _quantize(x, scale, zero, lo, hi, f, axis=None):
    """clip(round(x / scale) + zero_point), x / scale held in the program's float type."""
    if axis is not None:
        shape = [1] * x.ndim
        shape[axis] = -1
        scale, zero = scale.reshape(shape), zero.reshape(shape)
    return np.clip(np.round((x / scale).astype(f)) + zero, lo, hi)


X4 = rand(2, 3, 4, 5)
MEAN = rand(3)
VAR = np.abs(rand(3)) + 0.2
SCALE = np.array([0.05, 0.1, 0.02], np.float32)

CASES = [
    Case(
        "instance_norm_4d",
        {"x": X4},
        lambda v, f: mb.instance_norm(
            x=v["x"], gamma=G.astype(f), beta=B.astype(f), epsilon=f(1e-3)
        ),
        lambda v, f: _instance_norm(
            v["x"], G.astype(f).astype(float), B.astype(f).astype(float), float(f(1e-3))
        ),
        tol16=2e-2,
    ),
    Case(
        "instance_norm_3d_defaults",
        {"x": rand(2, 3, 7)},
        lambda v, f: mb.instance_norm(x=v["x"]),
        lambda v, f: _instance_norm(v["x"], np.ones(3), np.zeros(3), 1e-5),
        tol16=2e-2,
    ),
    Case(
        "batch_norm_4d",
        {"x": X4},
        lambda v, f: mb.batch_norm(
            x=v["x"],
            mean=MEAN.astype(f),
            variance=VAR.astype(f),
            gamma=G.astype(f),
            beta=B.astype(f),
            epsilon=f(0.1),
        ),
        lambda v, f: _batch_norm(v["x"], *(a.astype(f) for a in (MEAN, VAR, G, B)), float(f(0.1))),
        tol16=2e-2,
    ),  # fmt: skip
    Case(
        "batch_norm_3d_defaults",
        {"x": rand(2, 3, 7)},
        lambda v, f: mb.batch_norm(x=v["x"], mean=MEAN.astype(f), variance=VAR.astype(f)),
        lambda v, f: _batch_norm(
            v["x"], MEAN.astype(f), VAR.astype(f), np.ones(3), np.zeros(3), float(f(1e-5))
        ),
        tol16=2e-2,
    ),
    Case(
        "l2_norm_rank3",
        {"x": rand(3, 4, 5)},
        lambda v, f: mb.l2_norm(x=v["x"]),
        lambda v, f: _l2_norm(v["x"], 1e-6),
    ),
    Case(
        "l2_norm_rank5_eps",
        {"x": rand(2, 2, 3, 2, 4)},
        lambda v, f: mb.l2_norm(x=v["x"], epsilon=f(0.5)),
        lambda v, f: _l2_norm(v["x"], 0.5),
    ),
    *[
        Case(
            f"local_response_norm_size{n}",
            {"x": rand(2, 6, 3, 4)},
            lambda v, f, n=n: mb.local_response_norm(
                x=v["x"], size=n, alpha=f(0.3), beta=f(0.8), k=f(1.5)
            ),
            lambda v, f, n=n: _lrn(v["x"], n, float(f(0.3)), float(f(0.8)), 1.5),
        )
        for n in (1, 3, 4)
    ],
    Case(
        "local_response_norm_defaults_rank3",
        {"x": rand(5, 3, 2)},
        lambda v, f: mb.local_response_norm(x=v["x"], size=5),
        lambda v, f: _lrn(v["x"], 5, 1e-4, 0.75, 1.0),
    ),
    Case(
        "softplus_parametric",
        {"x": X4},
        lambda v, f: mb.softplus_parametric(x=v["x"], alpha=G.astype(f), beta=B.astype(f)),
        lambda v, f: _softplus_parametric(
            v["x"], G.astype(f).astype(float), B.astype(f).astype(float)
        ),
    ),
    Case(
        "quantize_int8_scalar",
        {"x": rand(3, 4) * 3},
        lambda v, f: mb.quantize(
            input=v["x"], scale=f(0.05), zero_point=np.int8(3), output_dtype="int8"
        ),
        lambda v, f: _quantize(v["x"], float(f(0.05)), 3, -128, 127, f).astype(np.int8),
    ),
    Case(
        "quantize_uint8_per_channel",
        {"x": rand(2, 3, 4)},
        lambda v, f: mb.quantize(
            input=v["x"],
            scale=SCALE.astype(f),
            zero_point=np.array([128, 100, 0], np.uint8),
            axis=1,
            output_dtype="uint8",
        ),
        lambda v, f: _quantize(
            v["x"], SCALE.astype(f).astype(float), np.array([128, 100, 0]), 0, 255, f, 1
        ).astype(np.uint8),
    ),
    Case(
        "dequantize_int8_per_channel",
        {"q": RNG.integers(-128, 128, (2, 3, 4)).astype(np.int8)},
        lambda v, f: mb.dequantize(
            input=v["q"], scale=SCALE.astype(f), zero_point=np.array([1, -2, 0], np.int8), axis=1
        ),
        lambda v, f: (
            (v["q"] - np.array([1, -2, 0]).reshape(1, 3, 1))
            * SCALE.astype(f).astype(float).reshape(1, 3, 1)
        ),
    ),
    Case(
        "dequantize_uint8_scalar",
        {"q": RNG.integers(0, 256, (5,)).astype(np.uint8)},
        lambda v, f: mb.dequantize(input=v["q"], scale=f(0.25)),
        lambda v, f: v["q"] * 0.25,
    ),
]


group, test_numpy, test_torch = op_tests(CASES, "ops_norm")
