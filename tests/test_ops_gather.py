"""gather_nd (with batch_dims) and the scatter ops in every mode, against loops written
from the definitions' formulas (repeated indices accumulate), fp32 and fp16, numpy and
torch; out-of-range runtime indices are an error."""

from __future__ import annotations

import coremltools as ct
import numpy as np
import pytest
from fixtures.executor.mil_models import mb
from fixtures.executor.op_cases import Case, op_tests

from anemll_spec.errors import InputError

RNG = np.random.default_rng(11)
MODES = ("update", "add", "sub", "mul", "div", "max", "min")


def rand(*shape):
    return RNG.standard_normal(shape).astype(np.float32)


def positive(*shape):
    return (1.0 + RNG.random(shape)).astype(np.float32)


def _combine(mode, old, new):
    return {
        "update": lambda: new,
        "add": lambda: old + new,
        "sub": lambda: old - new,
        "mul": lambda: old * new,
        "div": lambda: old / new,
        "max": lambda: np.maximum(old, new),
        "min": lambda: np.minimum(old, new),
    }[mode]()


def _scatter(data, idx, upd, axis, mode):
    """output[..., idx[i...], ...] = mode(output[..., idx[i...], ...], updates[..., i..., ...])
    (updates: data.shape[:axis] + indices.shape + data.shape[axis + 1:])."""
    out = np.moveaxis(data.copy(), axis, 0)
    u = np.moveaxis(upd, list(range(axis, axis + idx.ndim)), list(range(idx.ndim)))
    for pos in np.ndindex(*idx.shape):
        j = idx[pos]
        out[j] = _combine(mode, out[j], u[pos])
    return np.moveaxis(out, 0, axis)


def _scatter_along(data, idx, upd, axis, mode):
    out = data.copy()
    for pos in np.ndindex(*idx.shape):
        dst = list(pos)
        dst[axis] = idx[pos]
        out[tuple(dst)] = _combine(mode, out[tuple(dst)], upd[pos])
    return out


def _scatter_nd(data, idx, upd, mode):
    out = data.copy()
    for pos in np.ndindex(*idx.shape[:-1]):
        dst = tuple(idx[pos])
        out[dst] = _combine(mode, out[dst], upd[pos])
    return out


def _gather_nd(x, idx, batch_dims):
    """out[b..., i...] = x[b..., idx[b..., i..., :]] with negative indices wrapped."""
    lead = idx.shape[:-1]
    k = idx.shape[-1]
    out = np.zeros(lead + x.shape[batch_dims + k :], x.dtype)
    for pos in np.ndindex(*lead):
        src = tuple(int(j) % x.shape[batch_dims + n] for n, j in enumerate(idx[pos]))
        out[pos] = x[pos[:batch_dims] + src]
    return out


D = rand(4, 3)
I2 = np.array([3, 1], np.int32)

CASES = [
    Case(
        "gather_nd_k1",
        {"x": rand(4, 5, 3), "i": np.array([[2], [0], [3]], np.int32)},
        lambda v, f: mb.gather_nd(x=v["x"], indices=v["i"]),
        lambda v, f: _gather_nd(v["x"], v["i"], 0),
    ),
    Case(
        "gather_nd_batch1",
        {"x": rand(2, 4, 3), "i": np.array([[[1], [3]], [[0], [0]]], np.int32)},
        lambda v, f: mb.gather_nd(x=v["x"], indices=v["i"], batch_dims=1),
        lambda v, f: _gather_nd(v["x"], v["i"], 1),
    ),
    Case(
        "gather_nd_batch1_k2",
        {"x": rand(2, 4, 3, 5), "i": RNG.integers(0, 3, (2, 3, 2)).astype(np.int32)},
        lambda v, f: mb.gather_nd(x=v["x"], indices=v["i"], batch_dims=1),
        lambda v, f: _gather_nd(v["x"], v["i"], 1),
    ),
    *[
        Case(
            f"scatter_{m}",
            {"d": D, "i": I2, "u": positive(2, 3)},
            lambda v, f, m=m: mb.scatter(
                data=v["d"], indices=v["i"], updates=v["u"], axis=0, mode=m
            ),
            lambda v, f, m=m: _scatter(v["d"], v["i"], v["u"], 0, m),
        )
        for m in MODES
    ],
    Case(
        "scatter_axis1_add",
        {"d": rand(2, 5, 3), "i": np.array([4, 0, 2], np.int32), "u": rand(2, 3, 3)},
        lambda v, f: mb.scatter(data=v["d"], indices=v["i"], updates=v["u"], axis=1, mode="add"),
        lambda v, f: _scatter(v["d"], v["i"], v["u"], 1, "add"),
    ),
    Case(
        "scatter_axis_m1_repeated_add",
        {"d": rand(2, 4), "i": np.array([1, 1, 3], np.int32), "u": rand(2, 3)},
        lambda v, f: mb.scatter(data=v["d"], indices=v["i"], updates=v["u"], axis=-1, mode="add"),
        lambda v, f: _scatter(v["d"], v["i"], v["u"], 1, "add"),
    ),
    Case(
        "scatter_reference",  # coremltools' expected values (default mode: add)
        {
            "d": np.array([[1, 2, 3], [4, 5, 6]], np.float32),
            "i": np.array([1, 0], np.int32),
            "u": np.array([[5, 6, 7], [8, 9, 10]], np.float32),
        },
        lambda v, f: mb.scatter(data=v["d"], indices=v["i"], updates=v["u"]),
        lambda v, f: np.array([[9, 11, 13], [9, 11, 13]]),
    ),
    Case(
        "scatter_2d_indices_axis1_sub",
        {"d": rand(2, 5, 3), "i": np.array([[4, 0], [2, 4]], np.int32), "u": rand(2, 2, 2, 3)},
        lambda v, f: mb.scatter(data=v["d"], indices=v["i"], updates=v["u"], axis=1, mode="sub"),
        lambda v, f: _scatter(v["d"], v["i"], v["u"], 1, "sub"),
    ),
    Case(
        "scatter_int32_max",
        {
            "d": RNG.integers(-9, 9, (4, 2)).astype(np.int32),
            "i": I2,
            "u": RNG.integers(-9, 9, (2, 2)).astype(np.int32),
        },
        lambda v, f: mb.scatter(data=v["d"], indices=v["i"], updates=v["u"], mode="max"),
        lambda v, f: _scatter(v["d"], v["i"], v["u"], 0, "max"),
    ),
    *[
        Case(
            f"scatter_along_axis_{m}",
            {
                "d": rand(3, 4),
                "i": np.array([[0, 2], [3, 3], [1, 0]], np.int32),
                "u": positive(3, 2),
            },
            lambda v, f, m=m: mb.scatter_along_axis(
                data=v["d"], indices=v["i"], updates=v["u"], axis=1, mode=m
            ),
            lambda v, f, m=m: _scatter_along(v["d"], v["i"], v["u"], 1, m),
        )
        for m in ("add", "mul", "min", "div")
    ],
    Case(
        "scatter_along_axis_update_axis0",
        {"d": rand(3, 4), "i": np.array([[2, 0, 1, 2]], np.int32), "u": rand(1, 4)},
        lambda v, f: mb.scatter_along_axis(
            data=v["d"], indices=v["i"], updates=v["u"], axis=0, mode="update"
        ),
        lambda v, f: _scatter_along(v["d"], v["i"], v["u"], 0, "update"),
    ),
    *[
        Case(
            f"scatter_nd_elements_{m}",
            {"d": rand(4, 5), "i": np.array([[0, 1], [3, 4], [0, 1]], np.int32), "u": positive(3)},
            lambda v, f, m=m: mb.scatter_nd(data=v["d"], indices=v["i"], updates=v["u"], mode=m),
            lambda v, f, m=m: _scatter_nd(v["d"], v["i"], v["u"], m),
        )
        for m in ("add", "sub", "max", "mul")
    ],
    Case(
        "scatter_nd_rows_update",
        {"d": rand(4, 5), "i": np.array([[2], [0]], np.int32), "u": rand(2, 5)},
        lambda v, f: mb.scatter_nd(data=v["d"], indices=v["i"], updates=v["u"], mode="update"),
        lambda v, f: _scatter_nd(v["d"], v["i"], v["u"], "update"),
    ),
]


group, test_numpy, test_torch = op_tests(CASES, "ops_gather")

# Negative indices wrap up to iOS16 (from iOS17 they are out of range: test_executor_op_bounds)
CASES16 = [
    Case(
        "gather_nd_k2_negative",
        {"x": rand(4, 5, 3), "i": np.array([[1, 2], [3, -1]], np.int32)},
        lambda v, f: mb.gather_nd(x=v["x"], indices=v["i"]),
        lambda v, f: _gather_nd(v["x"], v["i"], 0),
    ),
    Case(
        "scatter_negative_add",
        {"d": D, "i": np.array([-1, 1, -3], np.int32), "u": positive(3, 3)},
        lambda v, f: mb.scatter(data=v["d"], indices=v["i"], updates=v["u"], mode="add"),
        lambda v, f: _scatter(v["d"], v["i"] % 4, v["u"], 0, "add"),
    ),
    Case(
        "scatter_nd_negative_update",
        {"d": rand(4, 5), "i": np.array([[-4, 1], [3, -1]], np.int32), "u": positive(2)},
        lambda v, f: mb.scatter_nd(data=v["d"], indices=v["i"], updates=v["u"], mode="update"),
        lambda v, f: _scatter_nd(v["d"], v["i"] % [4, 5], v["u"], "update"),
    ),
]

group16, test_numpy16, test_torch16 = op_tests(
    CASES16, "ops_gather16", fixture="group16", target=ct.target.iOS16
)


def test_out_of_range_scatter_index_is_an_error(group):
    from fixtures.executor.op_cases import feeds

    from anemll_spec.executor import load

    inputs = feeds(list(group.cases.values()), "fp32")
    inputs["scatter_add__i"] = np.array([4, 1], np.int32)  # data has 4 rows
    with pytest.raises(
        InputError, match=r"\(scatter\) in function 'main': index out of range \[0, 4\)"
    ):
        load(group.path("fp32")).predict(inputs)
