"""The ops the executor ran before (elementwise, activations, reductions, softmax, shape,
slicing, gather, conv, linear, matmul, einsum) in fp16 as well as fp32, and on the torch
executor: the same cases and numpy formulas as test_executor_{elementwise,tensor,linear},
each program saved once per precision. fp16 programs are the fp32 ones converted by
coremltools' own fp16 pass (fp16 compute, fp32 I/O), as a user's fp16 model is."""

from __future__ import annotations

import numpy as np
import test_executor_elementwise as ew
import test_executor_linear as lin
import test_executor_tensor as tensor
from fixtures.executor.mil_models import mb
from fixtures.executor.op_cases import Case, op_tests

RNG = np.random.default_rng(29)
A = (RNG.standard_normal((3, 4)) * 3).astype(np.float32)
B = ew.ROW.copy()
B[B == 0] = 1
A_POS = np.abs(A) + 0.5


def _unary(name, build, expect):
    return Case(
        f"unary_{name}",
        {"p": ew.POS, "s": ew.SIG},
        lambda v, f: build(v["p"], v["s"]),
        lambda v, f: expect(v["p"], v["s"]),
    )


def _binary(name, op, fn):
    a = A_POS if name == "pow" else A
    return Case(
        f"binary_{name}",
        {"a": a, "b": B},
        lambda v, f: op(x=v["a"], y=v["b"]),
        lambda v, f: fn(v["a"], v["b"]),
    )


def _compare(name, op, fn):
    return Case(
        f"compare_{name}",
        {"a": A, "b": B},
        lambda v, f: mb.cast(x=op(x=v["a"], y=v["b"]), dtype="int32"),
        lambda v, f: fn(v["a"], v["b"]).astype(np.int32),
    )


def _tensor(name, build, expect):
    inputs = {"x": tensor.X, "i": tensor.IDX, "p": tensor.POS}
    return Case(
        f"tensor_{name}",
        inputs,
        lambda v, f: build(v["x"], v["i"], v["p"]),
        lambda v, f: expect(v["x"]),
    )


def _int_case(name, build, expect):
    return Case(
        f"int_{name}",
        {"x": tensor.X},
        lambda v, f: build(v["x"]),
        lambda v, f: expect(v["x"]).astype(np.int32),
    )


def _conv(name, kw, expect):
    return Case(
        f"conv_{name}",
        {"x": lin.X},
        lambda v, f: mb.conv(x=v["x"], **kw),
        lambda v, f: expect(v["x"]),
    )


def _int_pow(x, y):
    """x ** y for integers: a negative y gives 1 / x ** |y| truncated toward 0 (0 for x = 0,
    as an integer division by 0 gives 0); numpy itself refuses negative integer powers."""
    x64, y64 = x.astype(np.float64), y.astype(np.float64)
    with np.errstate(divide="ignore"):
        inverse = np.where(x == 0, 0.0, np.trunc(1.0 / x64 ** np.abs(y64)))
    return np.where(y >= 0, x64 ** np.maximum(y64, 0), inverse).astype(np.int32)


POW_X = np.array([2, 1, -1, 0, -1, 3, -2, 0, 5, 7, -3, 1], np.int32)
POW_Y = np.array([-1, -1, -1, -1, -2, 2, 3, 0, -3, 1, -4, -7], np.int32)
LA = RNG.standard_normal((2, 5, 6)).astype(np.float32)
LB = RNG.standard_normal((3, 1, 4, 6)).astype(np.float32)
LV = RNG.standard_normal((6,)).astype(np.float32)
UNSTABLE_IN_FP16 = {"unary_cosh", "unary_sinh", "unary_exp", "unary_exp2", "tensor_reduce_prod"}

CASES = [
    *[_unary(n, b, e) for n, (b, e) in ew.UNARY.items()],
    *[_binary(n, op, fn) for n, (op, fn) in ew.BINARY.items()],
    *[_compare(n, op, fn) for n, (op, fn) in ew.COMPARE.items()],
    Case(
        "logic_select_cast",
        {"a": A, "b": B},
        lambda v, f: (
            mb.cast(
                x=mb.logical_xor(x=mb.greater(x=v["a"], y=0.0), y=mb.less(x=v["b"], y=0.5)),
                dtype="int32",
            ),
            mb.select(cond=mb.greater(x=v["a"], y=0.0), a=v["a"], b=v["b"]),
            mb.cast(x=v["a"], dtype="int32"),
        ),
        lambda v, f: (
            ((v["a"] > 0) ^ (v["b"] < 0.5)).astype(np.int32),
            np.where(v["a"] > 0, v["a"], np.broadcast_to(v["b"], v["a"].shape)),
            np.trunc(v["a"]).astype(np.int32),
        ),
    ),
    Case(  # numpy raised on a negative integer exponent, torch computed (values below)
        "int_pow_negative_exponent",
        {"x": POW_X, "y": POW_Y},
        lambda v, f: mb.pow(x=v["x"], y=v["y"]),
        lambda v, f: _int_pow(v["x"], v["y"]),
    ),
    Case(  # torch gave sign(NaN) = 0
        "unary_sign_nan",
        {"x": np.array([np.nan, 1.5, -0.0, 0.0, -3.0, np.inf, -np.inf, np.nan], np.float32)},
        lambda v, f: mb.sign(x=v["x"]),
        lambda v, f: np.where(np.isnan(v["x"]), np.nan, (v["x"] > 0) * 1.0 - (v["x"] < 0)),
    ),
    *[_tensor(n, b, e) for n, (b, e) in tensor.CASES.items()],
    *[_int_case(n, b, e) for n, (b, e) in tensor.INT_CASES.items()],
    *[_conv(n, kw, e) for n, (kw, e) in lin.CONVS.items()],
    Case(
        "linear_matmul_einsum",
        {"a": LA, "b": LB, "v": LV},
        lambda v, f: (
            mb.linear(x=v["a"], weight=lin.LW, bias=lin.LB),
            mb.matmul(x=v["a"], y=v["b"], transpose_y=True),
            mb.matmul(x=v["v"], y=np.ascontiguousarray(lin.LW.T)),
            mb.einsum(
                values=(
                    mb.reshape(x=v["a"], shape=[2, 5, 1, 6]),
                    mb.reshape(
                        x=mb.slice_by_size(x=v["b"], begin=[0, 0, 0, 0], size=[1, 1, 4, 6]),
                        shape=[1, 6, 1, 4],
                    ),
                ),
                equation="nchw,nwhu->nchu",
            ),
        ),
        lambda v, f: (
            v["a"] @ lin.LW.T + lin.LB,
            v["a"] @ np.swapaxes(v["b"], -1, -2),
            v["v"] @ lin.LW.T,
            np.einsum(
                "nchw,nwhu->nchu",
                v["a"].reshape(2, 5, 1, 6),
                np.broadcast_to(v["b"][:1, :1].reshape(1, 6, 1, 4), (2, 6, 1, 4)),
            ),
        ),
        tol16=2e-2,
    ),
]
CASES = [
    c if c.name not in UNSTABLE_IN_FP16 else Case(**{**c.__dict__, "tol16": 5e-2}) for c in CASES
]


group, test_numpy, test_torch = op_tests(CASES, "ops_existing", fp16_pass=True)
