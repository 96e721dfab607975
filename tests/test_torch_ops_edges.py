"""Edges where torch reads an op differently from numpy (and Core ML): the torch executor
must compute what the numpy one does. Expected values are numpy formulas of the op's
definition (coremltools' defs: reduce_* over `axes=[]` reduce nothing; uint16 tensors in
reverse, slice_by_index, gather_along_axis from iOS17, slice_update from iOS18)."""

from __future__ import annotations

import coremltools as ct
import numpy as np
import pytest
from coremltools.converters.mil.mil import get_new_symbol
from fixtures.executor.mil_models import mb, save_program

from anemll_spec.executor import load

pytestmark = pytest.mark.torch


def _both(path, feed) -> list[dict]:
    from anemll_spec.executor.torch_runner import load_torch

    got = [load(path).predict(feed), load_torch(path, device="cpu").predict(feed)]
    return [{k: np.asarray(v) for k, v in out.items()} for out in got]


@pytest.mark.parametrize(
    "op",
    [
        "reduce_sum",
        "reduce_mean",
        "reduce_max",
        "reduce_min",
        "reduce_log_sum_exp",
        "reduce_l1_norm",
        "reduce_l2_norm",
    ],
)
@pytest.mark.parametrize("flexible", [False, True])
def test_a_reduction_over_no_axes_reduces_nothing(tmp_path, op, flexible):
    """torch's dim=() means every axis: axes=[] summed the tensor (a flexible shape let
    the (1, 1) result through unchecked)."""
    shape = (get_new_symbol(), 3) if flexible else (2, 3)

    @mb.program(input_specs=[mb.TensorSpec(shape=shape)], opset_version=ct.target.iOS18)
    def prog(x):
        return getattr(mb, op)(x=x, axes=np.array([], np.int32), keep_dims=True, name="y")

    path = save_program(prog, tmp_path / "m.mlpackage")
    x = np.arange(6, dtype=np.float32).reshape(2, 3)
    for out in _both(path, {"x": x}):
        np.testing.assert_allclose(out["y"], x, rtol=1e-6)  # np.sum(x, axis=()) is x (x >= 0)


def test_uint16_tensors_run_on_torch_as_on_numpy(tmp_path):
    """torch 2.13's CPU flip, gather and index_put lack UInt16: a valid iOS18
    program failed as bad input (exit 2) on the torch backend."""
    rows = np.array([[1, 0, 1]], np.int32)

    @mb.program(input_specs=[mb.TensorSpec(shape=(2, 3))], opset_version=ct.target.iOS18)
    def prog(x):
        u = mb.cast(x=x, dtype="uint16")
        outs = {
            "rev": mb.reverse(x=u, axes=[1]),
            "back": mb.slice_by_index(x=u, begin=[0, 2], end=[2, 0], stride=[1, -1]),
            "gath": mb.gather_along_axis(x=u, indices=rows, axis=0),
            "upd": mb.slice_update(x=u, update=mb.reverse(x=u, axes=[0]), begin=[0, 0], end=[2, 3]),
            "updback": mb.slice_update(
                x=u,
                update=u,
                begin=[0, 2],
                end=[2, 0],
                stride=[1, -1],
                end_mask=[True, True],
            ),  # fmt: skip
        }
        return [mb.cast(x=v, dtype="fp32", name=k) for k, v in outs.items()]

    path = save_program(prog, tmp_path / "m.mlpackage")
    x = np.array([[1, 2, 3], [4, 5, 65535]], np.float32)
    u = x.astype(np.uint16)
    updback = u.copy()
    updback[:, ::-1] = u
    want = {
        "rev": u[:, ::-1],
        "back": u[:, 2:0:-1],
        "gath": np.take_along_axis(u, rows, axis=0),
        "upd": u[::-1],
        "updback": updback,
    }
    for out in _both(path, {"x": x}):
        for name, value in want.items():
            np.testing.assert_array_equal(out[name], value.astype(np.float32), err_msg=name)
