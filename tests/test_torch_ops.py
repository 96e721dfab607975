"""TorchOps primitive by primitive against NumpyOps (the reference semantics), fp32 on CPU,
on random data: the parts of the seam the built families do not reach (negative steps,
pads, gathers, reductions over several axes)."""

from __future__ import annotations

import numpy as np
import pytest

from anemll_spec.executor.arrays import numpy_ops as npx

pytestmark = pytest.mark.torch
RNG = np.random.default_rng(10)


@pytest.fixture(scope="module")
def tx():
    from anemll_spec.executor.torch_arrays import TorchOps

    return TorchOps("cpu", "float32")


def same(tx, got, want, **kw):
    got = tx.to_numpy(got)
    assert got.shape == np.shape(want)
    np.testing.assert_allclose(got, want, rtol=kw.get("rtol", 1e-6), atol=kw.get("atol", 1e-6))


X = RNG.standard_normal((3, 4, 5)).astype(np.float32)
INDEXES = [
    (slice(None, None, -1), slice(1, 3), slice(None)),
    (slice(2, 0, -1), 1, slice(None, None, -2)),
    (Ellipsis, slice(4, None, -3)),
    (slice(None), slice(-1, -5, -1), 0),
]


@pytest.mark.parametrize("index", INDEXES)
def test_getitem_and_setitem_with_negative_steps(tx, index):
    t = tx.asarray(X, "float32")
    same(tx, tx.getitem(t, index), X[index])
    value = RNG.standard_normal(X[index].shape).astype(np.float32)
    same(tx, tx.setitem(t, index, tx.asarray(value, "float32")), npx.setitem(X, index, value))
    same(tx, t, X)  # setitem returns a copy


@pytest.mark.parametrize("mode", ["constant", "reflect", "replicate"])
def test_pad(tx, mode):
    pads = [(0, 0), (2, 1), (3, 4)]
    same(tx, tx.pad(tx.asarray(X, "float32"), pads, mode, 1.5), npx.pad(X, pads, mode, 1.5))


@pytest.mark.parametrize("name", ["sum", "mean", "max", "min", "prod"])
@pytest.mark.parametrize(
    ("axis", "keep"), [((0, 2), True), ((1,), False), (None, False), (None, True), ((-1,), True)]
)
def test_reductions(tx, name, axis, keep):
    t = tx.asarray(X, "float32")
    same(tx, getattr(tx, name)(t, axis, keep), getattr(npx, name)(X, axis, keep), rtol=1e-5)


def test_arg_reductions_and_cumsum(tx):
    t = tx.asarray(X, "float32")
    for name in ("argmax", "argmin"):
        for axis, keep in ((1, True), (-1, False), (None, False)):
            np.testing.assert_array_equal(
                tx.to_numpy(getattr(tx, name)(t, axis, keep)), getattr(npx, name)(X, axis, keep)
            )
    same(tx, tx.cumsum(t, 1), npx.cumsum(X, 1), rtol=1e-5)


def test_gathers(tx):
    t = tx.asarray(X, "float32")
    idx = np.array([[2, 0], [1, 1]], np.int32)
    same(tx, tx.take(t, tx.asarray(idx), 1), npx.take(X, idx, 1))
    same(tx, tx.take(t, tx.asarray(np.int32(3)), 2), npx.take(X, np.int32(3), 2))
    along = RNG.integers(0, 5, (3, 4, 2)).astype(np.int32)
    same(tx, tx.take_along_axis(t, tx.asarray(along), 2), npx.take_along_axis(X, along, 2))


def test_shapes(tx):
    t = tx.asarray(X, "float32")
    same(tx, tx.expand_dims(t, [0, -1]), npx.expand_dims(X, [0, -1]))
    same(tx, tx.squeeze(tx.expand_dims(t, [1]), [1]), X)
    same(tx, tx.permute_dims(t, [2, 0, 1]), npx.permute_dims(X, [2, 0, 1]))
    same(tx, tx.tile(t, [2, 1, 1]), npx.tile(X, [2, 1, 1]))
    same(
        tx,
        tx.broadcast_to(tx.asarray(X[:, :1], "float32"), [3, 4, 5]),
        npx.broadcast_to(X[:, :1], [3, 4, 5]),
    )
    same(tx, tx.concat([t, t], 1), npx.concat([X, X], 1))
    same(tx, tx.stack([t, t], -1), npx.stack([X, X], -1))


def test_elementwise_semantics(tx):
    a = RNG.integers(-7, 8, 20).astype(np.int32)
    b = (RNG.integers(1, 5, 20) * RNG.choice([-1, 1], 20)).astype(np.int32)  # no zeros
    ta, tb = tx.asarray(a), tx.asarray(b)
    for name in ("floor_divide", "mod", "maximum", "minimum", "equal", "less_equal"):
        np.testing.assert_array_equal(
            tx.to_numpy(getattr(tx, name)(ta, tb)), getattr(npx, name)(a, b), err_msg=name
        )
    f = RNG.standard_normal(50).astype(np.float32) * 3
    tf = tx.asarray(f, "float32")
    for name in ("erf", "sigmoid", "tanh", "exp", "sin", "round", "sign", "floor"):
        same(tx, getattr(tx, name)(tf), getattr(npx, name)(f), rtol=1e-5, atol=1e-6)
    same(tx, tx.where(tf > 0, tf, -np.inf), npx.where(f > 0, f, -np.inf))
    same(tx, tx.maximum(tf, 0.0), npx.maximum(f, 0.0))
    same(tx, tx.clip(tf, -1.0, 2.0), npx.clip(f, -1.0, 2.0))


def test_integer_division_by_zero_and_integer_means_as_numpy(tx):
    """torch raised ZeroDivisionError on an integer floor_divide or mod by 0 where numpy
    gives 0, so a program finished on one executor and failed on the other; and torch took
    an integer mean in float32, which loses integers above 2**24 (numpy: float64)."""
    a = np.array([-7, 7, 5, -5, 0], np.int32)
    b = np.array([2, 0, 0, -3, 0], np.int32)
    with np.errstate(divide="ignore"):
        for name in ("floor_divide", "mod"):
            got = tx.to_numpy(getattr(tx, name)(tx.asarray(a), tx.asarray(b)))
            want = getattr(npx, name)(a, b)
            np.testing.assert_array_equal(got, want, err_msg=name)
            assert got.dtype == want.dtype == np.int32
            assert list(want[[1, 2, 4]]) == [0, 0, 0]
    big = np.full((4,), 2**25 + 1, np.int32)
    got = tx.to_numpy(tx.mean(tx.asarray(big), None, False))
    assert got == npx.mean(big, None, False) == 2**25 + 1
    clipped = tx.to_numpy(tx.clip(tx.asarray(X, "float32"), 2.0, 1.0))  # alpha > beta: beta
    np.testing.assert_array_equal(clipped, npx.clip(X, 2.0, 1.0))
    assert (clipped == 1.0).all()


def test_conv_and_matmul(tx):
    x = RNG.standard_normal((2, 4, 7, 6)).astype(np.float32)
    w = RNG.standard_normal((6, 2, 3, 2)).astype(np.float32)
    args = ([2, 1], [(1, 2), (0, 1)], [1, 2], 2)
    same(
        tx,
        tx.conv(tx.asarray(x, "float32"), tx.asarray(w, "float32"), *args),
        npx.conv(x, w, *args),
        rtol=1e-5,
        atol=1e-5,
    )
    m = RNG.standard_normal((5, 4)).astype(np.float32)
    v = RNG.standard_normal((2, 4, 3)).astype(np.float32)
    same(
        tx,
        tx.matmul(tx.asarray(m, "float32"), tx.asarray(v, "float32")),
        npx.matmul(m, v),
        rtol=1e-5,
    )


def test_fp16_rounding_and_dtypes(tx):
    from anemll_spec.executor.torch_arrays import TorchOps

    h = TorchOps("cpu", "float16")
    f = np.array([1 / 3, 70000.0, 1e-8], np.float32)  # rounds, overflows to inf, underflows
    with np.errstate(over="ignore"):
        same(tx, tx.round_to_fp16(tx.asarray(f, "float32")), npx.round_to_fp16(f))
        assert h.dtype_name(h.asarray(f, "float16")) == "float16"
    assert tx.dtype_name(tx.asarray(np.array([1, 2], np.int32))) == "int32"
    assert tx.dtype_name(tx.full([2, 3], 0, "bool")) == "bool"


def _fail(message: str) -> Exception:
    return ValueError(message)


UPDATE = RNG.standard_normal((2, 1, 5)).astype(np.float32)  # into X (3, 4, 5)


@pytest.mark.parametrize(
    "begin, end",
    [
        ([0, 0, 0], [2, 1, 5]),
        ([1, 3, 0], [3, 4, 5]),
        ([-2, -1, 0], [3, 4, 5]),
        ([1, 2, 0], [3, 3, 5]),
    ],
)
def test_update_slice_on_the_device_matches_numpy(begin, end):
    """Runtime bounds as tensors, checked on the device: no host read, numpy's result."""
    from anemll_spec.executor.torch_arrays import TorchOps

    dx = TorchOps("cpu", "float32", device_checks=True)
    b, e = dx.asarray(np.array(begin, np.int32)), dx.asarray(np.array(end, np.int32))
    x, u = dx.asarray(X, "float32"), dx.asarray(UPDATE, "float32")
    dx.slice_where(b, e, X.shape, UPDATE.shape, _fail)  # makes the per-shape constants
    reads = dx.host_reads
    got = dx.write_slice(x, dx.slice_where(b, e, X.shape, UPDATE.shape, _fail), u)
    assert dx.host_reads == reads
    dx.raise_device_errors()
    want = X.copy()  # plain numpy slice assignment, independent of the seam
    want[tuple(slice(bi, ei) for bi, ei in zip(begin, end, strict=True))] = UPDATE
    same(dx, got, want)
    same(dx, x, X)  # a copy, like setitem


@pytest.mark.parametrize(
    "begin, end",
    [
        ([2, 0, 0], [4, 1, 5]),
        ([0, 4, 0], [2, 5, 5]),
        ([0, 0, 0], [2, 2, 5]),
        ([0, 2, 0], [2, 1, 5]),
    ],
)
def test_update_slice_out_of_range_or_wrong_size_is_an_error(begin, end):
    from anemll_spec.executor.torch_arrays import TorchOps

    with pytest.raises(ValueError, match="does not match the slice"):
        npx.slice_where(np.array(begin), np.array(end), X.shape, UPDATE.shape, _fail)
    dx = TorchOps("cpu", "float32", device_checks=True)
    b, e = dx.asarray(np.array(begin, np.int32)), dx.asarray(np.array(end, np.int32))
    dx.slice_where(b, e, X.shape, UPDATE.shape, _fail)
    with pytest.raises(ValueError, match="does not match the slice.*checked on the device"):
        dx.raise_device_errors()
    dx.raise_device_errors()  # cleared once raised


def test_checked_indices_on_the_device_wrap_and_flag():
    from anemll_spec.executor.torch_arrays import TorchOps

    dx = TorchOps("cpu", "float32", device_checks=True)
    idx = np.array([0, -1, 3, -4], np.int32)
    got = dx.checked_indices(dx.asarray(idx), 4, _fail)
    dx.raise_device_errors()
    same(dx, got, npx.checked_indices(idx, 4, _fail))
    for bad in ([4], [-5]):
        with pytest.raises(ValueError, match="out of range"):
            npx.checked_indices(np.array(bad), 4, _fail)
        dx.checked_indices(dx.asarray(np.array(bad, np.int32)), 4, _fail)
        with pytest.raises(ValueError, match=r"out of range \[-4, 4\) \(checked on the device"):
            dx.raise_device_errors()
