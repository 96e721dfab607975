"""Executor vs numpy: elementwise unary/binary ops, activations, select, cast, clip."""

from __future__ import annotations

import math

import coremltools as ct
import numpy as np
import pytest
from coremltools.converters.mil.mil import types
from fixtures.executor.mil_models import mb, patch_const_input, save_program, saved_op_types

from anemll_spec.executor import load

RNG = np.random.default_rng(0)
POS = RNG.uniform(0.1, 0.9, (3, 4)).astype(np.float32)  # domain of log/sqrt/asin/acos/atanh
SIG = (RNG.standard_normal((3, 4)) * 2).astype(np.float32)
SIG[0, :3] = [-2.5, 0.5, 1.5]  # round half to even corners
ROW = RNG.standard_normal((4,)).astype(np.float32)  # broadcasts against (3, 4)

erf = np.vectorize(math.erf)
PRELU_ALPHA = np.array([0.1, -0.5, 2.0], np.float32)  # one per channel


def _sigmoid(v):
    return 1 / (1 + np.exp(-v.astype(np.float64)))


# op name -> (builder call, numpy expectation); p = POS input, s = SIG input
UNARY = {
    "abs": (lambda p, s: mb.abs(x=s), lambda p, s: np.abs(s)),
    "acos": (lambda p, s: mb.acos(x=p), lambda p, s: np.arccos(p)),
    "asin": (lambda p, s: mb.asin(x=p), lambda p, s: np.arcsin(p)),
    "atan": (lambda p, s: mb.atan(x=s), lambda p, s: np.arctan(s)),
    "atanh": (lambda p, s: mb.atanh(x=p), lambda p, s: np.arctanh(p)),
    "ceil": (lambda p, s: mb.ceil(x=s), lambda p, s: np.ceil(s)),
    "cos": (lambda p, s: mb.cos(x=s), lambda p, s: np.cos(s)),
    "cosh": (lambda p, s: mb.cosh(x=s), lambda p, s: np.cosh(s)),
    "erf": (lambda p, s: mb.erf(x=s), lambda p, s: erf(s)),
    "exp": (lambda p, s: mb.exp(x=s), lambda p, s: np.exp(s)),
    "exp2": (lambda p, s: mb.exp2(x=s), lambda p, s: np.exp2(s)),
    "floor": (lambda p, s: mb.floor(x=s), lambda p, s: np.floor(s)),
    "round": (lambda p, s: mb.round(x=s), lambda p, s: np.round(s)),
    "sign": (lambda p, s: mb.sign(x=s), lambda p, s: np.sign(s)),
    "sin": (lambda p, s: mb.sin(x=s), lambda p, s: np.sin(s)),
    "sinh": (lambda p, s: mb.sinh(x=s), lambda p, s: np.sinh(s)),
    "sqrt": (lambda p, s: mb.sqrt(x=p), lambda p, s: np.sqrt(p)),
    "square": (lambda p, s: mb.square(x=s), lambda p, s: s * s),
    "tan": (lambda p, s: mb.tan(x=p), lambda p, s: np.tan(p)),
    "tanh": (lambda p, s: mb.tanh(x=s), lambda p, s: np.tanh(s)),
    "rsqrt": (lambda p, s: mb.rsqrt(x=p), lambda p, s: 1 / np.sqrt(p + 1e-12)),
    "rsqrt_eps": (lambda p, s: mb.rsqrt(x=p, epsilon=0.5), lambda p, s: 1 / np.sqrt(p + 0.5)),
    "log": (lambda p, s: mb.log(x=p), lambda p, s: np.log(p)),
    "log_eps": (lambda p, s: mb.log(x=p, epsilon=2.0), lambda p, s: np.log(p + 2.0)),
    "inverse": (lambda p, s: mb.inverse(x=p), lambda p, s: 1 / (p + 1e-4)),
    "inverse_eps": (lambda p, s: mb.inverse(x=p, epsilon=1.0), lambda p, s: 1 / (p + 1.0)),
    "clip": (lambda p, s: mb.clip(x=s, alpha=-1.0, beta=0.5), lambda p, s: np.clip(s, -1, 0.5)),
    "threshold": (lambda p, s: mb.threshold(x=s, alpha=0.3), lambda p, s: np.maximum(s, 0.3)),
    "relu": (lambda p, s: mb.relu(x=s), lambda p, s: np.maximum(s, 0)),
    "relu6": (lambda p, s: mb.relu6(x=mb.mul(x=s, y=4.0)), lambda p, s: np.clip(s * 4, 0, 6)),
    "sigmoid": (lambda p, s: mb.sigmoid(x=s), lambda p, s: _sigmoid(s)),
    "silu": (lambda p, s: mb.silu(x=s), lambda p, s: s * _sigmoid(s)),
    "gelu_exact": (lambda p, s: mb.gelu(x=s), lambda p, s: 0.5 * s * (1 + erf(s / np.sqrt(2)))),
    "gelu_tanh": (
        lambda p, s: mb.gelu(x=s, mode="TANH_APPROXIMATION"),
        lambda p, s: 0.5 * s * (1 + np.tanh(np.sqrt(2 / np.pi) * (s + 0.044715 * s**3))),
    ),
    "gelu_sigmoid": (
        lambda p, s: mb.gelu(x=s, mode="SIGMOID_APPROXIMATION"),
        lambda p, s: s * _sigmoid(1.702 * s),
    ),
    "softplus": (lambda p, s: mb.softplus(x=s), lambda p, s: np.log1p(np.exp(s))),
    "softsign": (lambda p, s: mb.softsign(x=s), lambda p, s: s / (1 + np.abs(s))),
    "leaky_relu": (
        lambda p, s: mb.leaky_relu(x=s, alpha=0.1),
        lambda p, s: np.where(s >= 0, s, 0.1 * s),
    ),
    "elu": (
        lambda p, s: mb.elu(x=s, alpha=0.7),
        lambda p, s: np.where(s > 0, s, 0.7 * np.expm1(s)),
    ),
    "scaled_tanh": (
        lambda p, s: mb.scaled_tanh(x=s, alpha=2.0, beta=0.5),
        lambda p, s: 2 * np.tanh(0.5 * s),
    ),
    "sigmoid_hard": (
        lambda p, s: mb.sigmoid_hard(x=s, alpha=0.2, beta=0.5),
        lambda p, s: np.clip(0.2 * s + 0.5, 0, 1),
    ),
    "linear_activation": (
        lambda p, s: mb.linear_activation(x=s, alpha=3.0, beta=-1.0),
        lambda p, s: 3 * s - 1,
    ),
    # min(beta, x) where x >= 0, min(beta, alpha * x) elsewhere
    "clamped_relu": (
        lambda p, s: mb.clamped_relu(x=s, alpha=0.3, beta=1.0),
        lambda p, s: np.minimum(np.where(s >= 0, s, 0.3 * s), 1.0),
    ),
    # x where x >= alpha, else 0
    "thresholded_relu": (
        lambda p, s: mb.thresholded_relu(x=s, alpha=0.5),
        lambda p, s: np.where(s >= 0.5, s, 0.0),
    ),
    # x where x > 0, else alpha[c] * x, c the channel (second) axis of a rank-4 x
    "prelu": (
        lambda p, s: mb.reshape(
            x=mb.prelu(x=mb.reshape(x=s, shape=[1, 3, 2, 2]), alpha=PRELU_ALPHA), shape=[3, 4]
        ),
        lambda p, s: np.where(s > 0, s, PRELU_ALPHA.astype(np.float64)[:, None] * s),
    ),
}

BINARY = {
    "add": (mb.add, np.add),
    "sub": (mb.sub, np.subtract),
    "mul": (mb.mul, np.multiply),
    "real_div": (mb.real_div, np.divide),
    "pow": (mb.pow, np.power),
    "maximum": (mb.maximum, np.maximum),
    "minimum": (mb.minimum, np.minimum),
    "floor_div": (mb.floor_div, np.floor_divide),
    "mod": (mb.mod, np.mod),
}

COMPARE = {
    "equal": (mb.equal, np.equal),
    "not_equal": (mb.not_equal, np.not_equal),
    "less": (mb.less, np.less),
    "less_equal": (mb.less_equal, np.less_equal),
    "greater": (mb.greater, np.greater),
    "greater_equal": (mb.greater_equal, np.greater_equal),
}


@pytest.fixture(scope="module")
def unary_model(tmp_path_factory):
    names = list(UNARY)

    @mb.program(
        input_specs=[
            mb.TensorSpec((3, 4), dtype=types.fp32),
            mb.TensorSpec((3, 4), dtype=types.fp32),
        ],
        opset_version=ct.target.iOS18,
    )
    def prog(p, s):
        return tuple(mb.identity(x=UNARY[n][0](p, s), name=n) for n in names)

    path = save_program(prog, tmp_path_factory.mktemp("ew") / "unary.mlpackage")
    return path, names


@pytest.fixture(scope="module")
def binary_model(tmp_path_factory):
    @mb.program(
        input_specs=[
            mb.TensorSpec((3, 4), dtype=types.fp32),
            mb.TensorSpec((4,), dtype=types.fp32),
        ],
        opset_version=ct.target.iOS18,
    )
    def prog(a, b):
        outs = [mb.identity(x=f(x=a, y=b), name=n) for n, (f, _) in BINARY.items()]
        outs += [mb.cast(x=f(x=a, y=b), dtype="int32", name=n) for n, (f, _) in COMPARE.items()]
        ga, gb = mb.greater(x=a, y=0.0), mb.less(x=b, y=0.5)
        outs += [
            mb.cast(x=mb.logical_and(x=ga, y=gb), dtype="int32", name="logical_and"),
            mb.cast(x=mb.logical_or(x=ga, y=gb), dtype="int32", name="logical_or"),
            mb.cast(x=mb.logical_xor(x=ga, y=gb), dtype="int32", name="logical_xor"),
            mb.cast(x=mb.logical_not(x=ga), dtype="int32", name="logical_not"),
            mb.select(cond=ga, a=a, b=b, name="select"),
            mb.cast(x=a, dtype="int32", name="cast_int"),
            mb.cast(x=mb.cast(x=a, dtype="int32"), dtype="fp32", name="cast_roundtrip"),
        ]
        return tuple(outs)

    return save_program(prog, tmp_path_factory.mktemp("ew") / "binary.mlpackage")


def test_unary_ops_are_in_the_saved_program(unary_model):
    path, names = unary_model
    saved = set(saved_op_types(path))
    mil_types = {n.split("_eps")[0] for n in names} - {"gelu_exact", "gelu_tanh", "gelu_sigmoid"}
    assert mil_types <= saved
    assert "gelu" in saved


def test_unary_ops_match_numpy(unary_model):
    path, names = unary_model
    out = load(path).predict({"p": POS, "s": SIG})
    for n in names:
        expected = UNARY[n][1](POS.astype(np.float64), SIG.astype(np.float64))
        np.testing.assert_allclose(out[n], expected, rtol=2e-6, atol=2e-6, err_msg=n)
        assert out[n].dtype == np.float32


def test_binary_ops_broadcast_and_match_numpy(binary_model):
    a = (RNG.standard_normal((3, 4)) * 3).astype(np.float32)
    b = ROW.copy()
    b[b == 0] = 1
    a_pos = np.abs(a) + 0.5  # pow needs a positive base for fractional exponents
    out = load(binary_model).predict({"a": a, "b": b})
    for n, (_, f) in BINARY.items():
        if n == "pow":
            continue
        np.testing.assert_allclose(out[n], f(a, b), rtol=1e-6, atol=1e-6, err_msg=n)
    pow_out = load(binary_model).predict({"a": a_pos, "b": b})["pow"]
    np.testing.assert_allclose(pow_out, np.power(a_pos, b), rtol=1e-5)
    for n, (_, f) in COMPARE.items():
        np.testing.assert_array_equal(out[n], f(a, b).astype(np.int32), err_msg=n)
        assert out[n].dtype == np.int32
    ga, gb = a > 0, b < 0.5
    np.testing.assert_array_equal(out["logical_and"], ga & gb)
    np.testing.assert_array_equal(out["logical_or"], ga | gb)
    np.testing.assert_array_equal(out["logical_xor"], ga ^ gb)
    np.testing.assert_array_equal(out["logical_not"], ~ga)
    np.testing.assert_array_equal(out["select"], np.where(ga, a, np.broadcast_to(b, a.shape)))
    np.testing.assert_array_equal(out["cast_int"], a.astype(np.int32))  # toward zero
    np.testing.assert_array_equal(out["cast_roundtrip"], np.trunc(a))


def test_fp16_mode_rounds_every_op_and_overflows_like_fp16(tmp_path):
    @mb.program(input_specs=[mb.TensorSpec((4,), dtype=types.fp32)], opset_version=ct.target.iOS18)
    def prog(x):
        big = mb.mul(x=x, y=1000.0, name="big")  # 100 * 1000 = 1e5 > fp16 max (65504)
        return big, mb.mul(x=mb.mul(x=x, y=1000.0), y=0.001, name="back")

    path = save_program(prog, tmp_path / "ovf.mlpackage")
    x = np.array([100.0, 1.0, 0.1, -70.0], np.float32)
    ref = load(path).predict({"x": x})
    np.testing.assert_allclose(ref["big"], x * 1000, rtol=1e-6)
    np.testing.assert_allclose(ref["back"], x, rtol=1e-6)
    half = load(path, fp16=True).predict({"x": x})
    assert half["big"].dtype == np.float16
    assert np.isposinf(half["big"][0]) and np.isneginf(half["big"][3])
    assert np.isposinf(half["back"][0])  # the overflow propagates, as on fp16 hardware
    # finite values are the fp16 roundings of each op's result
    x16 = x.astype(np.float16).astype(np.float32)
    expected = (x16[1:3] * np.float32(1000)).astype(np.float16)
    np.testing.assert_array_equal(half["big"][1:3], expected)


def test_erf_and_softplus_keep_their_relative_precision_in_the_tails(tmp_path):
    """Absolute tolerances hide these: erf near 0 (the erfc fit's error is relative to
    erfc ~ 1, so 1 - erfc lost erf(1e-8) by 66%) and softplus far below 0 (1 + e^x rounds
    to 1 in fp32 from x = -17, and log gave 0)."""
    tiny = np.array([1e-8, -1e-7, 1e-6, 1e-5, 1e-4, 0.3, 0.49, 0.51, 2.0, -3.0], np.float32)
    low = np.array([-10.0, -17.0, -20.0, -30.0, -80.0, 0.0, 5.0, 30.0], np.float32)
    c = np.array([1.0, 2.0], np.float32).reshape(2, 1, 1)

    @mb.program(
        input_specs=[mb.TensorSpec((10,), dtype=types.fp32), mb.TensorSpec((8,), dtype=types.fp32),
                     mb.TensorSpec((1, 2, 8), dtype=types.fp32)],
        opset_version=ct.target.iOS18,
    )  # fmt: skip
    def prog(t, s, s3):
        return (
            mb.erf(x=t, name="erf"),
            mb.softplus(x=s, name="softplus"),
            mb.softplus_parametric(x=s3, alpha=c.ravel(), beta=c.ravel(), name="parametric"),
        )

    out = load(save_program(prog, tmp_path / "tails.mlpackage")).predict(
        {"t": tiny, "s": low, "s3": np.stack([low, low])[None]}
    )
    x = tiny.astype(np.float64)
    np.testing.assert_allclose(out["erf"], erf(x), rtol=1e-6, atol=0)
    y = low.astype(np.float64)
    softplus = np.maximum(y, 0) + np.log1p(np.exp(-np.abs(y)))
    np.testing.assert_allclose(out["softplus"], softplus, rtol=1e-6, atol=0)
    assert out["softplus"][3] > 0  # softplus(-30) = 9.4e-14, representable in fp32
    cz = c.reshape(1, 2, 1) * np.stack([y, y])[None]
    parametric = c.reshape(1, 2, 1) * (np.maximum(cz, 0) + np.log1p(np.exp(-np.abs(cz))))
    np.testing.assert_allclose(out["parametric"], parametric, rtol=1e-6, atol=1e-37)  # fp32 range


def test_clip_follows_its_opset(tmp_path):
    """iOS15/16 define clip for any alpha and beta (alpha > beta: beta everywhere); only
    iOS17 refuses alpha >= beta. The executor refused alpha > beta for every opset, and
    let iOS17's alpha == beta through."""
    from anemll_spec.errors import InputError

    @mb.program(input_specs=[mb.TensorSpec((3, 4))], opset_version=ct.target.iOS16)
    def old(x):
        return mb.clip(x=x, alpha=2.0, beta=1.0, name="y")

    path = save_program(old, tmp_path / "old.mlpackage", target=ct.target.iOS16)
    got = load(path).predict({"x": SIG})["y"]
    np.testing.assert_array_equal(got, np.minimum(np.maximum(SIG, 2.0), 1.0))
    assert (got == 1.0).all()

    @mb.program(input_specs=[mb.TensorSpec((3, 4))], opset_version=ct.target.iOS18)
    def new(x):
        return mb.clip(x=x, alpha=0.5, beta=1.0, name="y")

    path = save_program(new, tmp_path / "new.mlpackage")
    np.testing.assert_array_equal(load(path).predict({"x": SIG})["y"], np.clip(SIG, 0.5, 1.0))
    patch_const_input(path, "clip", "alpha", np.float32(1.0))  # alpha = beta: iOS17 refuses
    with pytest.raises(InputError, match=r"alpha 1\.0 must be below beta 1\.0"):
        load(path)


@pytest.mark.parametrize("executor", ["numpy", pytest.param("torch", marks=pytest.mark.torch)])
def test_clip_checks_alpha_below_beta_before_fp16_rounding(tmp_path, executor):
    """alpha 1.0 < beta 1.0001 is a valid iOS17 clip; both round to 1.0 in fp16, and fp16
    mode refused the program ("alpha 1.0 must be below beta 1.0") that fp32 ran."""

    @mb.program(input_specs=[mb.TensorSpec((3, 4))], opset_version=ct.target.iOS17)
    def prog(x):
        return mb.clip(x=x, alpha=1.0, beta=1.0001, name="y")

    path = save_program(prog, tmp_path / "clip.mlpackage", target=ct.target.iOS17)

    def run(fp16: bool) -> np.ndarray:
        if executor == "numpy":
            return load(path, fp16=fp16).predict({"x": SIG})["y"]
        from anemll_spec.executor.torch_runner import load_torch

        return load_torch(path, device="cpu", fp16=fp16).predict({"x": SIG})["y"]

    beta32 = np.float32(1.0001)
    np.testing.assert_array_equal(run(False), np.minimum(np.maximum(SIG, 1.0), beta32))
    assert (run(False) == beta32).any()  # beta clips some values above 1.0
    got16 = run(True)  # both bounds round to fp16 1.0: every value becomes 1.0
    assert np.float16(beta32) == 1.0
    np.testing.assert_array_equal(np.asarray(got16, np.float32), np.ones((3, 4), np.float32))
