"""Hostile saved models (issue 15 items 5 and 10): every declared size is checked with
Python integers against the blob, the immediate value and the memory available, at load,
before anything is allocated; manifest and weight paths may not leave the model. Each
case builds the hostile model from a real saved package and expects one line, exit 2,
from `inspect` and `predict`, and an InputError from the readers."""

from __future__ import annotations

import json
import os
import shutil
import struct
from pathlib import Path

import coremltools as ct
import numpy as np
import pytest
from coremltools.converters.mil.mil import types
from coremltools.proto import Model_pb2
from fixtures.executor.mil_models import mb, save_program

from anemll_spec.cli import main as cli_main
from anemll_spec.errors import InputError
from anemll_spec.executor import load
from anemll_spec.mlmodel.inspect import inspect_model
from anemll_spec.model_io import describe, synth_inputs

W = (np.arange(8 * 16, dtype=np.float32).reshape(8, 16) - 60) / 64  # stored in weight.bin
B = np.array([0.5, -1.0, 2.0], np.float32)  # small: an immediate value


@pytest.fixture(scope="module")
def good(tmp_path_factory) -> Path:
    @mb.program(
        input_specs=[mb.TensorSpec((2, 16)), mb.TensorSpec((3,), dtype=types.fp32)],
        opset_version=ct.target.iOS18,
    )
    def prog(x, z):
        return mb.linear(x=x, weight=W, name="y"), mb.add(x=z, y=B, name="zb")

    return save_program(prog, tmp_path_factory.mktemp("hostile") / "good.mlpackage")


def _copy(good: Path, tmp_path: Path) -> Path:
    dst = tmp_path / "m.mlpackage"
    shutil.copytree(good, dst)
    return dst


def _model_file(pkg: Path) -> Path:
    return pkg / "Data" / "com.apple.CoreML" / "model.mlmodel"


def _edit(pkg: Path, fn) -> None:
    spec = Model_pb2.Model()
    spec.ParseFromString(_model_file(pkg).read_bytes())
    fn(spec)
    _model_file(pkg).write_bytes(spec.SerializeToString())


def _ops(spec):
    f = spec.mlProgram.functions["main"]
    return f.block_specializations[f.opset].operations


def _const(spec, kind: str):
    """The const op whose value is a blob ('blobFileValue') or an immediate value."""
    for op in _ops(spec):
        val = op.attributes["val"] if op.type == "const" else None
        if val is None or val.WhichOneof("value") != kind:
            continue
        dims = [d.constant.size for d in val.type.tensorType.dimensions]
        if kind == "blobFileValue" or dims == [len(B)]:
            return op
    raise AssertionError(f"no {kind} const")


def _set_dims(op, dims) -> None:
    for tt in (op.attributes["val"].type.tensorType, op.outputs[0].type.tensorType):
        del tt.dimensions[:]
        for d in dims:
            tt.dimensions.add().constant.size = d
        tt.rank = len(dims)


def _refused(path: Path, match: str, capsys, commands=("inspect", "predict")) -> None:
    """One line, exit 2, from the commands; InputError from the executor."""
    with pytest.raises(InputError, match=match):
        load(path)
    for cmd in commands:
        assert cli_main([cmd, str(path)]) == 2, cmd
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "Traceback" not in err, err
        assert err.startswith(f"anemll-spec {cmd}: error: "), err


def test_the_good_model_runs(good):
    out = load(good).predict({"x": np.ones((2, 16), np.float32), "z": np.zeros(3, np.float32)})
    np.testing.assert_allclose(out["y"], np.ones((2, 16)) @ W.T, rtol=1e-6)
    np.testing.assert_array_equal(out["zb"], B)


def test_shape_that_wraps_int64_is_refused(good, tmp_path, capsys):
    pkg = _copy(good, tmp_path)
    # 2**32 * 2**32 is 0 in int64: the blob-size check must not be fooled by it
    _edit(pkg, lambda s: _set_dims(_const(s, "blobFileValue"), [2**32, 2**32]))
    _refused(pkg, r"18,446,744,073,709,551,616 elements", capsys)


def test_shape_larger_than_its_blob_is_refused(good, tmp_path, capsys):
    pkg = _copy(good, tmp_path)
    _edit(pkg, lambda s: _set_dims(_const(s, "blobFileValue"), [8, 1 << 20]))
    _refused(pkg, r"too few for 8,388,608 fp32 values", capsys)


def test_immediate_value_shorter_than_its_shape_is_refused(good, tmp_path, capsys):
    pkg = _copy(good, tmp_path)
    _edit(pkg, lambda s: _set_dims(_const(s, "immediateValue"), [5]))
    _refused(pkg, r"holds 3 values, shape needs 5", capsys)


def test_empty_constant_of_a_huge_shape_is_refused(good, tmp_path, capsys):
    pkg = _copy(good, tmp_path)

    def empty(spec):
        op = _const(spec, "immediateValue")
        op.attributes["val"].immediateValue.tensor.Clear()  # no data at all
        _set_dims(op, [10**6, 10**6])

    _edit(pkg, empty)
    _refused(pkg, r"1,000,000,000,000 elements holds no data", capsys)


def test_input_of_a_huge_shape_is_refused_before_allocating(good, tmp_path, capsys):
    pkg = _copy(good, tmp_path)

    def huge(spec):
        f = spec.mlProgram.functions["main"]
        tt = [i for i in f.inputs if i.name == "x"][0].type.tensorType
        del tt.dimensions[:]
        for d in (1, 10**6, 10**6):
            tt.dimensions.add().constant.size = d
        tt.rank = 3
        arr = [i for i in spec.description.input if i.name == "x"][0].type.multiArrayType
        del arr.shape[:]
        arr.shape.extend([1, 10**6, 10**6])

    _edit(pkg, huge)
    io = describe(pkg)  # describing is fine: nothing is allocated
    assert io.input("x").shape == (1, 10**6, 10**6)
    with pytest.raises(InputError, match=r"GiB of memory"):
        synth_inputs(io)  # what bench's preflight calls
    _refused(pkg, r"'x' of shape \[1, 1000000, 1000000\] needs", capsys, commands=["predict"])
    assert cli_main(["inspect", str(pkg), "--json"]) == 0  # reading allocates nothing
    assert json.loads(capsys.readouterr().out)["inputs"][0]["shape"] == [1, 10**6, 10**6]


def _blob_meta_offset(pkg: Path) -> tuple[Path, int]:
    spec = Model_pb2.Model()
    spec.ParseFromString(_model_file(pkg).read_bytes())
    op = _const(spec, "blobFileValue")
    return pkg / "Data/com.apple.CoreML/weights/weight.bin", op.attributes[
        "val"
    ].blobFileValue.offset


def _as_bf16(pkg: Path, nbytes: int) -> None:
    """Declare the weight bf16 (program and blob metadata) with a blob of nbytes."""
    wb, offset = _blob_meta_offset(pkg)
    data = bytearray(wb.read_bytes())
    struct.pack_into("<IQ", data, offset + 4, 5, nbytes)  # BlobDataType 5 = bf16, sizeInBytes
    wb.write_bytes(bytes(data))

    def declare(spec):
        op = _const(spec, "blobFileValue")
        for tt in (op.attributes["val"].type.tensorType, op.outputs[0].type.tensorType):
            tt.dataType = 13  # BFLOAT16

    _edit(pkg, declare)


def test_bf16_blob_of_odd_length_too_short_is_refused(good, tmp_path, capsys):
    pkg = _copy(good, tmp_path)
    _as_bf16(pkg, 2 * W.size - 1)  # odd, one byte short of 128 values
    _refused(pkg, r"255 bytes, too few for 128 bf16 values", capsys)


def test_bf16_blob_of_odd_length_is_read_exactly(good, tmp_path):
    """An odd size with enough bytes: the 128 bf16 values are the blob's first 256 bytes."""
    pkg = _copy(good, tmp_path)
    _as_bf16(pkg, 2 * W.size + 1)
    wb, offset = _blob_meta_offset(pkg)
    data_offset = struct.unpack_from("<Q", wb.read_bytes(), offset + 16)[0]
    bits = np.frombuffer(wb.read_bytes(), np.uint16, W.size, data_offset)
    w_bf16 = (bits.astype(np.uint32) << 16).view(np.float32).reshape(W.shape)  # bf16 -> fp32
    x = np.ones((2, 16), np.float32)
    out = load(pkg).predict({"x": x, "z": np.zeros(3, np.float32)})
    np.testing.assert_allclose(out["y"], x @ w_bf16.T.astype(np.float64), rtol=1e-6)


@pytest.mark.parametrize(
    "manifest_edit, match",
    [
        (lambda m, root: m["itemInfoEntries"][root].update(path=5), "must be a non-empty string"),
        (lambda m, root: m["itemInfoEntries"][root].update(path=["a"]), "must be a non-empty"),
        (lambda m, root: m.update(rootModelIdentifier=[root]), "rootModelIdentifier must be"),
        (lambda m, root: m.update(itemInfoEntries=[1]), "itemInfoEntries must be an object"),
        (lambda m, root: m["itemInfoEntries"].update({root: "x"}), "no item entry"),
        (lambda m, root: m["itemInfoEntries"][root].update(path="/etc/passwd"), "outside"),
        (lambda m, root: m["itemInfoEntries"][root].update(path="../../x.mlmodel"), "outside"),
    ],
)
def test_manifest_type_confusion_and_escapes_are_refused(
    good, tmp_path, capsys, manifest_edit, match
):
    pkg = _copy(good, tmp_path)
    mpath = pkg / "Manifest.json"
    doc = json.loads(mpath.read_text())
    manifest_edit(doc, doc["rootModelIdentifier"])
    mpath.write_text(json.dumps(doc))
    with pytest.raises(InputError, match=match):
        describe(pkg)
    _refused(pkg, match, capsys)


def test_manifest_symlink_out_of_the_package_is_refused(good, tmp_path, capsys):
    pkg = _copy(good, tmp_path)
    outside = tmp_path / "elsewhere.mlmodel"
    shutil.move(_model_file(pkg), outside)
    os.symlink(outside, _model_file(pkg))
    _refused(pkg, r"links outside the model", capsys)


def test_a_data_folder_linked_out_of_the_package_is_refused(good, tmp_path, capsys):
    """Data/ itself a symlink to another model's: its manifest path stays 'inside Data/',
    which is elsewhere; predict ran the other model."""
    pkg = _copy(good, tmp_path)
    elsewhere = tmp_path / "elsewhere"
    shutil.move(pkg / "Data", elsewhere)
    os.symlink(elsewhere, pkg / "Data")
    _refused(pkg, r"links outside the model", capsys)


def test_brackets_nested_too_deeply_in_model_mil_are_refused(tmp_path, capsys):
    """The parser descends once per bracket: 5,000 of them were a RecursionError traceback."""
    from fixtures.build.make_compiled import HERE

    mlc = shutil.copytree(HERE / "lm_head_tiny.mlmodelc", tmp_path / "m.mlmodelc")
    mil = mlc / "model.mil"
    text = mil.read_text()
    arg = "x = hidden_states"  # an argument of the first transpose, wrapped in brackets
    mil.write_text(text.replace(arg, "x = " + "(" * 5000 + "hidden_states" + ")" * 5000, 1))
    _refused(mlc, r"nested too deeply", capsys)


@pytest.mark.parametrize("name", ["@model_path/../../../outside.bin", "/tmp/outside.bin"])
def test_weight_path_outside_the_model_is_refused(good, tmp_path, capsys, name):
    pkg = _copy(good, tmp_path)
    _edit(
        pkg,
        lambda s: setattr(
            _const(s, "blobFileValue").attributes["val"].blobFileValue, "fileName", name
        ),
    )
    _refused(pkg, r"points outside the model", capsys)


def test_weight_file_symlinked_out_of_the_model_is_refused(good, tmp_path, capsys):
    pkg = _copy(good, tmp_path)
    wb = pkg / "Data/com.apple.CoreML/weights/weight.bin"
    outside = tmp_path / "secret.bin"
    shutil.move(wb, outside)
    os.symlink(outside, wb)
    _refused(pkg, r"links outside the model", capsys)
    with pytest.raises(InputError, match="links outside"):
        inspect_model(pkg, sha=True)  # the hash must not read the outside file either


@pytest.mark.parametrize("how", ["cycle", "out_of_order"])
def test_an_op_reading_what_nothing_defined_before_it_is_refused(good, tmp_path, capsys, how):
    """A cycle (an op reading its own output) or a read of a later op's output: coremltools
    never writes either, and both used to pass `inspect` and fail only mid-run."""
    pkg = _copy(good, tmp_path)

    def rebind(spec):
        ops = _ops(spec)
        linear = next(op for op in ops if op.type == "linear")
        add = next(op for op in ops if op.type == "add")
        if how == "cycle":
            linear.inputs["x"].arguments[0].name = "y"
        else:  # the linear reads the add's output, which comes after it
            linear.inputs["x"].arguments[0].name = "zb"
            assert list(ops).index(linear) < list(ops).index(add)

    _edit(pkg, rebind)
    want = "y" if how == "cycle" else "zb"
    _refused(pkg, rf"op \d+ 'y' \(linear\) reads '{want}', which nothing defines before it", capsys)
