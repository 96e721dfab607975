"""anemll_spec.mlmodel: reading saved models without coremltools' converters, and the
model.mil text reader on the syntax the compiler writes."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from anemll_spec.errors import InputError
from anemll_spec.executor import load
from anemll_spec.mlmodel import open_model
from anemll_spec.mlmodel.ir import BlobRef

FIX = Path(__file__).parent / "fixtures" / "build"


def test_reading_imports_neither_coremltools_nor_torch(tmp_path):
    """A fresh process reads, inspects and runs a package: coremltools/__init__.py never
    runs (nor torch); afterwards coremltools itself still imports and reads the same file
    with the same message classes."""
    from build_util import lm_head

    from anemll_spec.build import build_package

    pkg = tmp_path / "m.mlpackage"
    build_package(lm_head(hidden_size=64, vocab_size=64), pkg)
    code = f"""
        import sys, json
        from anemll_spec.mlmodel import open_model
        from anemll_spec.mlmodel.inspect import inspect_model
        from anemll_spec.executor import load
        import numpy as np
        m = open_model({str(pkg)!r})
        io = m.io()
        info = inspect_model({str(pkg)!r})
        out = load({str(pkg)!r}).predict({{"hidden_states": np.ones((1, 1, 64), np.float32)}})
        before = sorted(k for k in sys.modules if k.split(".")[0] in ("coremltools", "torch"))
        import coremltools as ct
        spec = ct.utils.load_spec({str(pkg)!r})
        same = type(spec) is type(m.spec) and spec == m.spec
        print(json.dumps({{"before": before, "same": same, "flops": info["flops"]}}))
    """
    r = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, check=True
    )
    got = json.loads(r.stdout.strip().splitlines()[-1])
    assert got["before"] == []
    assert got["same"] is True
    assert got["flops"] == 2 * 64 * 64


MIL = """program(1.3)
[buildInfo = dict<string, string>({{"coremlc-component-MIL", "3510.2.1"}})]
{
    func main<ios18>(tensor<fp16, [1, ?]> x, tensor<int32, [2]> ids) [FlexibleShapeInformation = tuple<tuple<string, dict<string, tensor<int32, [?]>>>>((("DefaultShapes", {{"x", [1, 4]}})))] {
            // a comment, as a person might leave one
            fp16 half = const()[name = string("half"), val = fp16(0x1p-1)];
            tensor<fp32, [4]> consts = const()[name = string("consts"), val = tensor<fp32, [4]>([-0x1.8p+1, inf, -inf, 0x0p+0])];
            tensor<int32, [2, 2]> splat = const()[name = string("splat"), val = tensor<int32, [2, 2]>(7)];
            string mode = const()[name = string("mode"), val = string("a \\"quoted\\" word")];
            tensor<bool, [2]> flags = const()[name = string("flags"), val = tensor<bool, [2]>([true, false])];
            tensor<fp16, [1, ?]> y = mul(x = x, y = half)[name = string("y")];
            tensor<fp16, [1, 2]> a, tensor<fp16, [1, 2]> b = split(num_splits = int32(2), axis = int32(-1), x = y)[name = string("s")];
            tensor<fp16, [1, 4]> c = concat(axis = int32(1), interleave = bool(false), values = (b, a))[name = string("c")];
    } -> (c, y);
    func other<ios17>(tensor<fp32, [3]> z) {
            tensor<fp32, [3]> w = relu(x = z)[name = string("w")];
    } -> (w);
}
"""


def _write(tmp_path: Path, text: str, name: str = "t.mlmodelc") -> Path:
    d = tmp_path / name
    d.mkdir()
    (d / "model.mil").write_text(text)
    return d


def test_mil_text_literals_and_functions(tmp_path):
    m = open_model(_write(tmp_path, MIL))
    prog = m.program()
    assert sorted(prog.functions) == ["main", "other"] and prog.default_function == "main"
    fn = prog.functions["main"]
    assert fn.opset == "ios18" and fn.inputs[0].shape == (1, None)
    consts = {op.name: op.attrs["val"][0] for op in fn.ops if op.type == "const"}
    assert consts["half"] == np.float16(0.5) and consts["half"].dtype == np.float16
    np.testing.assert_array_equal(
        consts["consts"], np.array([-3.0, np.inf, -np.inf, 0.0], np.float32)
    )
    np.testing.assert_array_equal(consts["splat"], np.full((2, 2), 7, np.int32))
    assert consts["mode"] == 'a "quoted" word'
    np.testing.assert_array_equal(consts["flags"], [True, False])
    split = [op for op in fn.ops if op.type == "split"][0]
    assert [o.name for o in split.outputs] == ["a", "b"]
    assert split.inputs["axis"][0].value == -1
    concat = [op for op in fn.ops if op.type == "concat"][0]
    assert [a.ref for a in concat.inputs["values"]] == ["b", "a"]
    assert prog.functions["other"].opset == "ios17"
    io = m.io()  # no metadata.json: the signature of main
    assert [(t.name, t.shape, t.dtype) for t in io.inputs] == [
        ("x", (1, None), "float16"),
        ("ids", (2,), "int32"),
    ]


def test_mil_text_runs(tmp_path):
    path = _write(tmp_path, MIL)
    x = np.array([[1, 2, 3, 4]], np.float32)
    out = load(path).predict({"x": x, "ids": np.array([0, 1], np.int32)})
    np.testing.assert_array_equal(out["c"], [[1.5, 2, 0.5, 1]])
    w = load(path, function="other").predict({"z": np.array([-1, 0, 2], np.float32)})["w"]
    np.testing.assert_array_equal(w, [0, 0, 2])


@pytest.mark.parametrize(
    "edit, match",
    [
        (lambda t: t.replace("half = const()", "half = const("), r"model.mil:6: "),
        (
            lambda t: t.replace("-> (c, y);", "-> (c, nowhere);"),
            r"\['nowhere'\] are never produced",
        ),
        (lambda t: t.replace("val = fp16(0x1p-1)", "val = fp16(zz)"), "model.mil:6:"),
        (
            lambda t: t.replace('[name = string("w")];', '[name = string("w")] { };'),
            "control flow",
        ),
        (
            lambda t: t.replace("tensor<int32, [2, 2]>(7)", "tensor<int32, [2, 2]>([1, 2, 3])"),
            "3 values for a shape of 4",
        ),
        (lambda t: t.replace("§", "") + "§", "unexpected character"),
    ],
)
def test_mil_text_errors_name_file_and_line(tmp_path, edit, match):
    path = _write(tmp_path, edit(MIL))
    with pytest.raises(InputError, match=match):
        load(path, function=None)


def test_weights_of_a_compiled_model_are_mapped_not_read():
    prog = open_model(FIX / "lm_head_tiny.mlmodelc").program()
    blobs = [op.attrs["val"][0] for op in prog.functions["main"].ops if op.type == "const"]
    refs = [b for b in blobs if isinstance(b, BlobRef)]
    assert [(r.offset, r.dtype, r.shape) for r in refs] == [
        (64, "fp16", (32, 64, 1, 1)),
        (4224, "fp16", (32, 64, 1, 1)),
    ]


def _flexible(path, shape):
    import coremltools as ct
    from coremltools.converters.mil import Builder as mb
    from coremltools.converters.mil.mil import get_new_symbol

    @mb.program(
        input_specs=[mb.TensorSpec(shape=(1, get_new_symbol(), 8))], opset_version=ct.target.iOS17
    )
    def prog(x):
        return mb.mul(x=x, y=2.0, name="y")

    ct.convert(
        prog,
        inputs=[ct.TensorType(name="x", shape=shape)],
        minimum_deployment_target=ct.target.iOS17,
        compute_precision=ct.precision.FLOAT32,
    ).save(str(path))
    return path


def test_a_flexible_input_takes_only_the_shapes_its_model_allows(tmp_path):
    """A range (2..16) or an enumerated set (3 or 5): Core ML refuses anything else, and so
    must the reference executor (it computed whatever came)."""
    import coremltools as ct

    ranged = load(_flexible(tmp_path / "r.mlpackage", (1, ct.RangeDim(2, 16, default=4), 8)))
    shapes = ct.EnumeratedShapes(shapes=[(1, 3, 8), (1, 5, 8)], default=(1, 5, 8))
    enumerated = load(_flexible(tmp_path / "e.mlpackage", shapes))
    for prog, n in ((ranged, 2), (ranged, 16), (enumerated, 3), (enumerated, 5)):
        x = np.arange(n * 8, dtype=np.float32).reshape(1, n, 8)
        np.testing.assert_array_equal(prog.predict({"x": x})["y"], 2 * x)
    for prog, n, says in (
        (ranged, 1, "the model allows 1x[2..16]x8"),
        (ranged, 17, "the model allows 1x[2..16]x8"),
        (enumerated, 4, "the model allows only"),
    ):
        with pytest.raises(InputError, match=re.escape(f"shape (1, {n}, 8), {says}")):
            prog.predict({"x": np.zeros((1, n, 8), np.float32)})


def test_inspect_shows_what_a_flexible_input_allows(tmp_path, capsys):
    """inspect showed only the default shape (1x4x8, 1x5x8), so the input read as fixed;
    its JSON had no ranges or shapes."""
    import json

    import coremltools as ct

    from anemll_spec.cli import main

    ranged = _flexible(tmp_path / "r.mlpackage", (1, ct.RangeDim(2, 16, default=4), 8))
    shapes = ct.EnumeratedShapes(shapes=[(1, 3, 8), (1, 5, 8)], default=(1, 5, 8))
    enumerated = _flexible(tmp_path / "e.mlpackage", shapes)
    # the enumerated shapes in the order the model stores them (coremltools' own reader)
    desc = ct.models.MLModel(str(enumerated), skip_model_load=True).get_spec().description
    stored = [list(s.shape) for s in desc.input[0].type.multiArrayType.enumeratedShapes.shapes]
    assert sorted(stored) == [[1, 3, 8], [1, 5, 8]]
    listed = ", ".join("x".join(map(str, s)) for s in stored)
    for path, text, field in (
        (ranged, "1x[2..16]x8 (default 1x4x8)", {"ranges": [[1, 1], [2, 16], [8, 8]]}),
        (enumerated, f"1x5x8 (one of {listed})", {"shapes": stored}),
    ):
        assert main(["inspect", str(path)]) == 0
        assert re.search(rf"\nx +{re.escape(text)} +float32\n", capsys.readouterr().out)
        assert main(["inspect", str(path), "--json"]) == 0
        (x,) = json.loads(capsys.readouterr().out)["inputs"]
        assert x == {"name": "x", "shape": x["shape"], "dtype": "float32", **field}
