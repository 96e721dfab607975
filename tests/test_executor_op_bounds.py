"""What an op's definition bounds, refused by both executors alike (numpy and torch on
CPU) in one line rather than computed into something the definition does not give:
slice_update's update shape at runtime bounds (iOS18 def: the update has the slice's shape)."""

from __future__ import annotations

import coremltools as ct
import numpy as np
import pytest
from coremltools.converters.mil.mil import types
from fixtures.executor.mil_models import mb, save_program

from anemll_spec.errors import InputError
from anemll_spec.executor import load

EXECUTORS = ["numpy", pytest.param("torch", marks=pytest.mark.torch)]


def _run(path, feed: dict, executor: str, **kw) -> dict:
    if executor == "numpy":
        return load(path).predict(feed)
    from anemll_spec.executor.torch_runner import load_torch

    return load_torch(path, device="cpu", **kw).predict(feed)


# -- slice_update -------------------------------------------------------------------------

X46 = np.zeros((4, 6), np.float32)
U23 = np.arange(1, 7, dtype=np.float32).reshape(2, 3)


@pytest.fixture(scope="module")
def slice_update(tmp_path_factory):
    """A (2, 3) update into a (4, 6) x at runtime bounds: unit strides (b, e) and
    stride [1, 2] (b2, e2)."""
    i32 = {"dtype": types.int32}

    @mb.program(
        input_specs=[
            mb.TensorSpec((4, 6)),
            mb.TensorSpec((2, 3)),
            *(mb.TensorSpec((2,), **i32) for _ in range(4)),
        ],
        opset_version=ct.target.iOS18,
    )
    def prog(x, u, b, e, b2, e2):
        unit = mb.slice_update(x=x, update=u, begin=b, end=e, name="unit")
        strided = mb.slice_update(x=x, update=u, begin=b2, end=e2, stride=[1, 2], name="strided")
        return unit, strided

    return save_program(prog, tmp_path_factory.mktemp("slice_update") / "su.mlpackage")


def _su_feed(end=(2, 3), end2=(2, 6)) -> dict:
    zero = np.zeros(2, np.int32)
    return {
        "x": X46,
        "u": U23,
        "b": zero,
        "e": np.array(end, np.int32),
        "b2": zero,
        "e2": np.array(end2, np.int32),
    }


@pytest.mark.parametrize("executor", EXECUTORS)
def test_slice_update_writes_an_update_of_the_slices_shape(slice_update, executor):
    out = _run(slice_update, _su_feed(), executor)
    want = X46.copy()
    want[:2, :3] = U23
    np.testing.assert_array_equal(out["unit"], want)
    want = X46.copy()
    want[:2, ::2] = U23
    np.testing.assert_array_equal(out["strided"], want)


@pytest.mark.parametrize("executor", EXECUTORS)
@pytest.mark.parametrize(
    "end, end2, shape",
    [((3, 2), (2, 6), (3, 2)), ((1, 6), (2, 6), (1, 6)), ((2, 3), (3, 4), (3, 2))],
)
def test_slice_update_refuses_an_update_of_another_shape(slice_update, executor, end, end2, shape):
    """Six elements into a (3, 2) or (1, 6) slice: they were reshaped into it (the (2, 3)
    update scrambled across rows), as the stride-2 (3, 2) slice took them too."""
    rows, cols = shape
    bad = rf"update of shape \(2, 3\) does not match the slice.* shape \({rows}, {cols}\)"
    with pytest.raises(InputError, match=bad):
        _run(slice_update, _su_feed(end, end2), executor)
    if executor == "torch":  # bounds checked on the device too (as on CUDA)
        with pytest.raises(InputError, match="does not match the slice"):
            _run(slice_update, _su_feed(end, end2), executor, device_checks=True)


def test_predict_refuses_a_misshapen_update_in_one_line(slice_update, tmp_path, cli):
    inputs = tmp_path / "in.npz"
    np.savez(inputs, **_su_feed(end=(3, 2)))
    r = cli("predict", slice_update, "--inputs", inputs, "--out", tmp_path / "out.npz")
    assert r.returncode == 2, (r.returncode, r.stderr)
    assert r.stderr.count("\n") == 1 and "Traceback" not in r.stderr, r.stderr
    assert "'unit' (slice_update)" in r.stderr and "of shape (3, 2)" in r.stderr, r.stderr
    assert not (tmp_path / "out.npz").exists()
