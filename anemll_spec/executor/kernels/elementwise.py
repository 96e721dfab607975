"""Elementwise kernels: binary (with broadcasting), unary, activations, select, cast."""

from __future__ import annotations

import math

import numpy as np

from anemll_spec.executor.kernels.base import Prep, Run, kernel
from anemll_spec.mlmodel.dtypes import BY_NAME

BINARY = {
    "add": "add",
    "sub": "subtract",
    "mul": "multiply",
    "real_div": "divide",
    "pow": "power",
    "maximum": "maximum",
    "minimum": "minimum",
    "floor_div": "floor_divide",
    "mod": "mod",
    "equal": "equal",
    "not_equal": "not_equal",
    "less": "less",
    "less_equal": "less_equal",
    "greater": "greater",
    "greater_equal": "greater_equal",
    "logical_and": "logical_and",
    "logical_or": "logical_or",
    "logical_xor": "logical_xor",
}

UNARY = {
    "abs": "abs",
    "acos": "acos",
    "asin": "asin",
    "atan": "atan",
    "atanh": "atanh",
    "ceil": "ceil",
    "cos": "cos",
    "cosh": "cosh",
    "erf": "erf",
    "exp": "exp",
    "exp2": "exp2",
    "floor": "floor",
    "logical_not": "logical_not",
    "round": "round",
    "sign": "sign",
    "sin": "sin",
    "sinh": "sinh",
    "sqrt": "sqrt",
    "square": "square",
    "tan": "tan",
    "tanh": "tanh",
    "sigmoid": "sigmoid",
}

# default epsilons of the ops that take one (iOS15 elementwise_unary defs)
EPSILON_DEFAULTS = {"rsqrt": 1e-12, "log": 1e-45, "inverse": 1e-4}


@kernel(*BINARY)
def _binary(p: Prep) -> Run:
    f = getattr(p.xp, BINARY[p.op.type])
    x, y = p.ref("x"), p.ref("y")
    return lambda env: f(env[x], env[y])


@kernel(*UNARY)
def _unary(p: Prep) -> Run:
    f = getattr(p.xp, UNARY[p.op.type])
    x = p.ref("x")
    return lambda env: f(env[x])


@kernel("rsqrt", "log", "inverse")
def _unary_eps(p: Prep) -> Run:
    xp, x = p.xp, p.ref("x")
    eps = p.scalar("epsilon", EPSILON_DEFAULTS[p.op.type])
    if p.op.type == "rsqrt":
        return lambda env: xp.reciprocal(xp.sqrt(env[x] + eps))
    if p.op.type == "log":
        return lambda env: xp.log(env[x] + eps)
    return lambda env: xp.reciprocal(env[x] + eps)


@kernel("clip")
def _clip(p: Prep) -> Run:
    """min(max(x, alpha), beta). iOS17 refuses alpha >= beta; iOS15/16 define any pair
    (alpha > beta: beta everywhere). The check reads the values as saved; fp16 mode then
    rounds them for computing (alpha 1.0, beta 1.0001 is a valid pair that rounds equal)."""
    xp, x = p.xp, p.ref("x")
    if p.since(17):
        alpha, beta = p.float("alpha"), p.float("beta")
        p.check(alpha < beta, f"alpha {alpha} must be below beta {beta}")
    lo, hi = p.scalar("alpha"), p.scalar("beta")
    return lambda env: xp.clip(env[x], lo, hi)


@kernel("threshold")
def _threshold(p: Prep) -> Run:
    xp, x, alpha = p.xp, p.ref("x"), p.scalar("alpha")
    return lambda env: xp.maximum(env[x], alpha)


@kernel("select")
def _select(p: Prep) -> Run:
    xp, c, a, b = p.xp, p.ref("cond"), p.ref("a"), p.ref("b")
    return lambda env: xp.where(env[c], env[a], env[b])


@kernel("cast")
def _cast(p: Prep) -> Run:
    xp, x = p.xp, p.ref("x")
    target = BY_NAME.get(p.str("dtype"))
    if target is None or target.np_dtype is None:
        raise p.fail(f"cast to unsupported dtype '{p.str('dtype')}'")
    if target.name == "fp16":
        # the cast itself rounds: fp16 range and precision apply from here on
        return lambda env: xp.round_to_fp16(xp.astype(env[x], xp.float_dtype))
    if target.is_float:
        return lambda env: xp.astype(env[x], xp.float_dtype)
    name = target.np_dtype.name
    return lambda env: xp.astype(env[x], name)


# -- activations ------------------------------------------------------------------------


@kernel("relu")
def _relu(p: Prep) -> Run:
    xp, x = p.xp, p.ref("x")
    return lambda env: xp.maximum(env[x], 0.0)


@kernel("relu6")
def _relu6(p: Prep) -> Run:
    xp, x = p.xp, p.ref("x")
    return lambda env: xp.clip(env[x], 0.0, 6.0)


@kernel("silu")
def _silu(p: Prep) -> Run:
    xp, x = p.xp, p.ref("x")
    return lambda env: env[x] * xp.sigmoid(env[x])


@kernel("gelu")
def _gelu(p: Prep) -> Run:
    xp, x = p.xp, p.ref("x")
    mode = p.str("mode", "EXACT")
    if mode == "EXACT":
        inv_sqrt2 = 1.0 / math.sqrt(2.0)
        return lambda env: 0.5 * env[x] * (1.0 + xp.erf(env[x] * inv_sqrt2))
    if mode == "TANH_APPROXIMATION":
        c = math.sqrt(2.0 / math.pi)

        def tanh_gelu(env):
            v = env[x]
            return 0.5 * v * (1.0 + xp.tanh(c * (v + 0.044715 * v * v * v)))

        return tanh_gelu
    if mode == "SIGMOID_APPROXIMATION":
        return lambda env: env[x] * xp.sigmoid(1.702 * env[x])
    raise p.fail(f"unknown gelu mode '{mode}'")


@kernel("leaky_relu")
def _leaky_relu(p: Prep) -> Run:
    xp, x, alpha = p.xp, p.ref("x"), p.scalar("alpha", 0.01)
    return lambda env: xp.where(env[x] >= 0, env[x], alpha * env[x])


@kernel("elu")
def _elu(p: Prep) -> Run:
    xp, x, alpha = p.xp, p.ref("x"), p.scalar("alpha", 1.0)
    return lambda env: xp.where(env[x] > 0, env[x], alpha * (xp.exp(xp.minimum(env[x], 0.0)) - 1))


@kernel("thresholded_relu")
def _thresholded_relu(p: Prep) -> Run:
    xp, x, alpha = p.xp, p.ref("x"), p.scalar("alpha", 1.0)
    return lambda env: xp.where(env[x] >= alpha, env[x], 0.0 * env[x])


@kernel("clamped_relu")
def _clamped_relu(p: Prep) -> Run:
    xp, x = p.xp, p.ref("x")
    alpha, beta = p.scalar("alpha"), p.scalar("beta")
    return lambda env: xp.minimum(xp.where(env[x] >= 0, env[x], alpha * env[x]), beta)


@kernel("linear_activation")
def _linear_activation(p: Prep) -> Run:
    x, alpha, beta = p.ref("x"), p.scalar("alpha"), p.scalar("beta", 0.0)
    return lambda env: env[x] * alpha + beta


@kernel("scaled_tanh")
def _scaled_tanh(p: Prep) -> Run:
    xp, x, alpha, beta = p.xp, p.ref("x"), p.scalar("alpha", 1.0), p.scalar("beta", 1.0)
    return lambda env: alpha * xp.tanh(beta * env[x])


@kernel("sigmoid_hard")
def _sigmoid_hard(p: Prep) -> Run:
    xp, x, alpha, beta = p.xp, p.ref("x"), p.scalar("alpha", 0.2), p.scalar("beta", 0.5)
    return lambda env: xp.clip(alpha * env[x] + beta, 0.0, 1.0)


@kernel("softplus")
def _softplus(p: Prep) -> Run:
    xp, x = p.xp, p.ref("x")
    # log(1 + e^x) = max(x, 0) + log1p(e^-|x|): never overflows, and log1p keeps the
    # tail (x <= -17 in fp32: 1 + e^x rounds to 1, log would give 0)
    return lambda env: xp.maximum(env[x], 0.0) + xp.log1p(xp.exp(-xp.abs(env[x])))


@kernel("softsign")
def _softsign(p: Prep) -> Run:
    xp, x = p.xp, p.ref("x")
    return lambda env: env[x] / (1.0 + xp.abs(env[x]))


@kernel("softplus_parametric")
def _softplus_parametric(p: Prep) -> Run:
    """alpha_c * log(1 + e^(beta_c * x)) per channel (axis 1), without overflow."""
    xp, x = p.xp, p.ref("x")
    rank = p.rank("x")
    p.check(rank >= 3, f"x must have rank >= 3 (b, C, ...), got rank {rank}")
    shape = (1, -1) + (1,) * (rank - 2)
    alpha = p.tensor(np.asarray(p.const("alpha"), dtype=np.float32).reshape(shape))
    beta = p.tensor(np.asarray(p.const("beta"), dtype=np.float32).reshape(shape))

    def softplus_parametric(env):
        z = env[x] * beta
        return alpha * (xp.maximum(z, 0.0) + xp.log1p(xp.exp(-xp.abs(z))))

    return softplus_parametric


@kernel("prelu")
def _prelu(p: Prep) -> Run:
    xp, x = p.xp, p.ref("x")
    alpha = np.asarray(p.const("alpha"), dtype=np.float32)
    rank = len(p.input_type("x").shape)  # type: ignore[union-attr]
    a = p.tensor(alpha.reshape((1, -1) + (1,) * (rank - 2)))
    return lambda env: xp.where(env[x] > 0, env[x], a * env[x])
