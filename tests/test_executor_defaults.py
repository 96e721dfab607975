"""The executor's value for an optional input a program leaves out is coremltools' own
default. coremltools' builder writes every optional input into the saved program, so the
executor's defaults are reached only by a program written otherwise (by hand, another
tool): here every optional input that holds its default is deleted from the saved op
cases of each op module, and the program must compute exactly what it did."""

from __future__ import annotations

import importlib
import shutil
from pathlib import Path

import numpy as np
import pytest
from fixtures.executor.mil_models import saved_ops
from fixtures.executor.op_cases import feeds, save_group

# the op modules whose cases are saved at the default target, one program each
# (test_ops_sample's cases set every optional input to something else)
MODULES = [
    "test_ops_conv", "test_ops_existing", "test_ops_gather", "test_ops_image", "test_ops_norm",
    "test_ops_recurrent", "test_ops_reference", "test_ops_shape", "test_ops_sort",
]  # fmt: skip


def _same(value, default) -> bool:
    v, d = np.asarray(value), np.asarray(default)
    if v.shape != d.shape:
        return False
    if v.dtype.kind in "USO" or d.dtype.kind in "USO":
        return v.tolist() == d.tolist()
    return bool(np.array_equal(v, d.astype(v.dtype)))


def defaulted_inputs(path: Path) -> list[tuple[str, str, str]]:
    """(op output name, op type, input) of every top-level op input whose value is the
    default coremltools' op definition declares, read with coremltools' own loader."""
    import coremltools as ct
    from coremltools.converters.mil.frontend.milproto.load import load

    spec = ct.utils.load_spec(str(path))
    weights = Path(path) / "Data" / "com.apple.CoreML" / "weights"
    prog = load(spec, spec.specificationVersion, file_weights_dir=str(weights))
    found = []
    for op in prog.functions["main"].operations:
        for name, default in op.default_inputs().items():
            var = op.inputs.get(name)
            held = None if var is None else var.val
            if default is not None and held is not None and _same(held, default):
                found.append((op.outputs[0].name, op.op_type, name))
    return found


def delete_inputs(path: Path, which: list[tuple[str, str, str]]) -> None:
    by_output = {(out, name) for out, _, name in which}
    with saved_ops(path) as ops:
        for op in ops:
            for name in list(op.inputs):
                if op.outputs and (op.outputs[0].name, name) in by_output:
                    del op.inputs[name]


@pytest.mark.parametrize("module", MODULES)
def test_a_program_without_its_default_inputs_computes_the_same(module, tmp_path):
    from anemll_spec.executor import load as load_program

    cases = importlib.import_module(module).CASES
    full = save_group(cases, "fp32", tmp_path)
    which = defaulted_inputs(full)
    assert len(which) >= 6, which  # a module that loses none tests nothing
    bare = tmp_path / "bare.mlpackage"
    shutil.copytree(full, bare)
    delete_inputs(bare, which)
    with saved_ops(bare) as ops:  # the inputs are gone from the file
        left = {(op.outputs[0].name, n) for op in ops if op.outputs for n in op.inputs}
    assert not left & {(out, name) for out, _, name in which}
    inputs = feeds(cases, "fp32")
    want = load_program(full).predict(inputs)
    got = load_program(bare).predict(inputs)
    assert got.keys() == want.keys()
    for k, w in want.items():
        np.testing.assert_allclose(got[k], w, rtol=1e-6, atol=1e-7, equal_nan=True, err_msg=k)
