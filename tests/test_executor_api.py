"""Executor API contracts: input checking, unsupported ops, multifunction models, the CLI."""

from __future__ import annotations

import json

import coremltools as ct
import numpy as np
import pytest
from coremltools.converters.mil.mil import types
from fixtures.executor.mil_models import mb, save_program

from anemll_spec.cli import main as cli_main
from anemll_spec.errors import InputError
from anemll_spec.executor import load
from anemll_spec.mlmodel.ir import Arg

RNG = np.random.default_rng(5)
W = RNG.standard_normal((3, 4)).astype(np.float32)


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    @mb.program(
        input_specs=[
            mb.TensorSpec((2, 4), dtype=types.fp16),
            mb.TensorSpec((2,), dtype=types.int32),
        ],
        opset_version=ct.target.iOS18,
    )
    def prog(x, ids):
        y = mb.linear(x=x, weight=W.astype(np.float16), name="y")
        return y, mb.gather(x=x, indices=ids, axis=0, name="rows")

    return save_program(prog, tmp_path_factory.mktemp("api") / "m.mlpackage", precision="fp16")


def _feed(**kw):
    feed = {"x": RNG.standard_normal((2, 4)).astype(np.float32), "ids": np.array([1, 0], np.int32)}
    feed.update(kw)
    return feed


def test_specs_and_dtypes(model):
    prog = load(model)
    assert list(prog.inputs) == ["x", "ids"]
    assert prog.inputs["x"].shape == (2, 4) and prog.inputs["x"].dtype == "float16"
    assert prog.inputs["ids"].dtype == "int32"
    assert prog.outputs["y"].shape == (2, 3) and prog.outputs["y"].dtype == "float16"
    assert prog.states == {}


def test_float_inputs_of_any_float_dtype_are_rounded_to_the_declared_fp16(model):
    prog = load(model)
    x = np.array([[0.1, 0.2, 0.3, 1 / 3], [1, 2, 3, 4]], np.float64)
    out = prog.predict(_feed(x=x))
    x16 = x.astype(np.float16).astype(np.float64)
    np.testing.assert_allclose(out["y"], x16 @ W.astype(np.float16).astype(np.float64).T, rtol=1e-6)
    np.testing.assert_array_equal(out["rows"], x16[[1, 0]])
    # int64 indices are accepted when they fit int32
    prog.predict(_feed(ids=np.array([0, 1], np.int64)))


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"x": None}, "missing input"),
        ({"extra": np.zeros(1)}, "unknown input"),
        ({"x": np.zeros((2, 5), np.float32)}, r"shape \(2, 5\)"),
        ({"x": np.zeros((2, 4), np.int32)}, "dtype int32"),
        ({"ids": np.array([0.0, 1.0])}, "dtype float64"),
        ({"ids": np.array([2**40, 0])}, "outside the range"),
    ],
)
def test_bad_inputs_are_input_errors(model, change, message):
    feed = _feed()
    for k, v in change.items():
        if v is None:
            del feed[k]
        else:
            feed[k] = v
    with pytest.raises(InputError, match=message):
        load(model).predict(feed)


def test_unsupported_op_names_type_name_and_position(tmp_path):
    """An op type no kernel knows (renamed in the saved proto) fails at load, named."""
    from coremltools.proto import Model_pb2

    @mb.program(input_specs=[mb.TensorSpec((4, 3))], opset_version=ct.target.iOS18)
    def prog(x):
        y = mb.relu(x=x)
        return mb.sigmoid(x=y, name="my_op")

    path = save_program(prog, tmp_path / "sc.mlpackage")
    model_file = path / "Data" / "com.apple.CoreML" / "model.mlmodel"
    spec = Model_pb2.Model()
    spec.ParseFromString(model_file.read_bytes())
    block = spec.mlProgram.functions["main"].block_specializations["CoreML8"]
    index = [op.type for op in block.operations].index("sigmoid")
    block.operations[index].type = "made_up_op"
    model_file.write_bytes(spec.SerializeToString())
    with pytest.raises(
        InputError,
        match=rf"unsupported op type 'made_up_op' \(op 'my_op', index {index} in function 'main'\)",
    ):
        load(path)


def test_not_a_model(tmp_path):
    with pytest.raises(InputError, match="no such model"):
        load(tmp_path / "missing.mlpackage")
    (tmp_path / "m.mlmodelc").mkdir()
    with pytest.raises(InputError, match="not a compiled Core ML model"):
        load(tmp_path / "m.mlmodelc")
    (tmp_path / "empty.mlpackage").mkdir()
    with pytest.raises(InputError, match="not an .mlpackage"):
        load(tmp_path / "empty.mlpackage")


def test_multifunction_model(tmp_path):
    def scaled(scale: float):
        @mb.program(input_specs=[mb.TensorSpec((2,))], opset_version=ct.target.iOS18)
        def prog(x):
            return mb.mul(x=x, y=scale, name="y")

        return prog

    paths = [save_program(scaled(s), tmp_path / f"f{s}.mlpackage") for s in (2.0, 3.0)]
    desc = ct.utils.MultiFunctionDescriptor()
    desc.add_function(str(paths[0]), src_function_name="main", target_function_name="double")
    desc.add_function(str(paths[1]), src_function_name="main", target_function_name="triple")
    desc.default_function_name = "double"
    ct.utils.save_multifunction(desc, str(tmp_path / "multi.mlpackage"))
    x = np.array([1.0, -2.0], np.float32)
    multi = tmp_path / "multi.mlpackage"
    np.testing.assert_array_equal(load(multi).predict({"x": x})["y"], 2 * x)
    np.testing.assert_array_equal(load(multi, function="triple").predict({"x": x})["y"], 3 * x)
    with pytest.raises(InputError, match="no function 'quad'"):
        load(multi, function="quad")


# -- the CLI --------------------------------------------------------------------------------


def test_cli_predict_json_and_npz(model, tmp_path, capsys):
    out_npz = tmp_path / "out.npz"
    assert cli_main(["predict", str(model), "--seed", "3", "--json", "--out", str(out_npz)]) == 0
    report = json.loads(capsys.readouterr().out)
    assert set(report["outputs"]) == {"y", "rows"}
    saved = np.load(out_npz)
    y = saved["y"].astype(np.float64)
    stats = report["outputs"]["y"]
    assert stats["shape"] == [2, 3] and stats["dtype"] == "float32"
    assert stats["min"] == pytest.approx(y.min()) and stats["max"] == pytest.approx(y.max())
    assert stats["mean"] == pytest.approx(y.mean()) and stats["std"] == pytest.approx(y.std())
    assert stats["nan"] == 0 and stats["inf"] == 0
    # the same seed gives the same inputs, hence the same outputs
    cli_main(["predict", str(model), "--seed", "3", "--json"])
    again = json.loads(capsys.readouterr().out)
    assert again["outputs"] == report["outputs"]


def test_cli_predict_with_input_file_and_fp16(model, tmp_path, capsys):
    # row 0 lines up with the signs of W's second row: that logit overflows fp16
    x = np.array([60000 * np.sign(W[1]), [1, 2, 3, 4]], np.float32)
    inputs = tmp_path / "in.npz"
    np.savez(inputs, x=x, ids=np.array([0, 1], np.int32))
    out = tmp_path / "o.npz"
    assert (
        cli_main(["predict", str(model), "--inputs", str(inputs), "--out", str(out), "--fp16"]) == 0
    )
    assert "rows" in capsys.readouterr().out
    y = np.load(out)["y"]
    assert y.dtype == np.float16
    with np.errstate(over="ignore"):
        expected = (
            x.astype(np.float16).astype(np.float32) @ W.astype(np.float16).astype(np.float32).T
        ).astype(np.float16)
    assert np.isinf(expected).any()  # fp16 overflow is visible, not hidden
    np.testing.assert_array_equal(y, expected)


def test_cli_predict_says_its_outputs_are_fp32_where_the_model_declares_fp16(model, capsys):
    """Stop 27: predict's dtype column said float32 where inspect says float16, unexplained.
    The declared dtype is read back from the model file (model_io.describe)."""
    from anemll_spec.model_io import describe

    declared = {t.name: t.dtype for t in describe(model).outputs}
    assert declared == {"y": "float16", "rows": "float16"}
    assert cli_main(["predict", str(model)]) == 0
    got = capsys.readouterr()
    y_row = next(ln.split() for ln in got.out.splitlines() if ln.startswith("y "))
    assert y_row[2] == "float32"  # computed in fp32, not the declared fp16
    note = got.err.strip().splitlines()[-1]
    assert note.endswith(
        "; float outputs computed in fp32 by the reference executor (the model declares "
        "float16); --fp16 rounds every op's output to fp16"
    ), note
    assert cli_main(["predict", str(model), "--fp16"]) == 0
    got = capsys.readouterr()
    y_row = next(ln.split() for ln in got.out.splitlines() if ln.startswith("y "))
    assert y_row[2] == "float16"
    assert got.err.strip().endswith("with every op rounded to fp16"), got.err


def test_cli_predict_bad_input_file_exits_2(model, tmp_path, capsys):
    inputs = tmp_path / "in.npz"
    np.savez(inputs, x=np.zeros((2, 4), np.float32))  # ids missing
    assert cli_main(["predict", str(model), "--inputs", str(inputs)]) == 2
    assert "missing input(s): ids" in capsys.readouterr().err


def test_verbose_load_reports_time_and_memory(model, capsys):
    load(model, verbose=True)
    err = capsys.readouterr().err
    assert "load" in err and " s," in err and "RSS" in err and "MiB" in err


def test_lowering_passes_rewrite_the_function_before_preparation(model):
    """The hook a torch backend uses (fusing, re-layout): what a pass returns is what runs."""
    seen = []

    def relabel_gather_rows(fn):
        seen.append([op.type for op in fn.ops])
        for op in fn.ops:
            if op.type == "gather":
                op.inputs["indices"] = [Arg(value=np.array([0, 0], np.int32), dtype="int32")]
        return fn

    feed = _feed(ids=np.array([1, 0], np.int32))
    out = load(model, passes=[relabel_gather_rows]).predict(feed)
    assert "gather" in seen[0]
    x16 = feed["x"].astype(np.float16).astype(np.float32)
    np.testing.assert_array_equal(out["rows"], x16[[0, 0]])


def test_cli_predict_on_a_spec_or_a_non_model_says_so_in_one_line(tmp_path, capsys):
    spec = tmp_path / "smoke.yaml"
    spec.write_text("name: smoke\nmodel: {family: matmul}\n")
    fake = tmp_path / "fake.mlmodel"
    fake.write_bytes(spec.read_bytes())  # a YAML file under a model's name
    for path, match in [(spec, "a spec, not a model"), (fake, "the model proto is corrupt")]:
        assert cli_main(["predict", str(path)]) == 2
        err = capsys.readouterr().err
        assert match in err and err.count("\n") == 1 and "Traceback" not in err
