"""classify (iOS15) on real classifier models: ct.convert with a ClassifierConfig (str and
int64 labels), saved and read back from disk, run on numpy and torch CPU. The label and
the {label: probability} dict are checked against numpy's own softmax and argmax; a
probabilities count that differs from the number of classes is refused, at load when the
shape is known, at run when it is not; predict prints and saves them; verify compares them.
"""

from __future__ import annotations

import json
from pathlib import Path

import coremltools as ct
import numpy as np
import pytest
from coremltools.converters.mil.mil import get_new_symbol
from fixtures.executor.mil_models import mb

from anemll_spec.cli import main
from anemll_spec.errors import InputError
from anemll_spec.executor import load
from anemll_spec.executor.kernels.coverage import op_coverage
from anemll_spec.mlmodel.model import open_model
from anemll_spec.spec.run_section import Tolerance
from anemll_spec.verify import check_outputs

# name -> (input shape, class labels); "flexible": the class axis is not fixed
MODELS = {
    "str": ((1, 3), ["cat", "dog", "bird"]),
    "int": ((1, 4), [7, 0, -3, 12]),
    "flat": ((5,), ["a", "b", "c", "d", "e"]),
    "flexible": ((1, None), ["x", "y", "z"]),
}


def _classifier(shape, labels, path: Path) -> Path:
    dims = [get_new_symbol() if d is None else d for d in shape]

    @mb.program(input_specs=[mb.TensorSpec(dims)], opset_version=ct.target.iOS15)
    def prog(x):
        return mb.softmax(x=x, axis=-1)

    flexible = [ct.RangeDim(1, 8) if d is None else d for d in shape]
    model = ct.convert(
        prog,
        inputs=[ct.TensorType(name="x", shape=flexible)],
        convert_to="mlprogram",
        minimum_deployment_target=ct.target.iOS15,
        compute_precision=ct.precision.FLOAT32,
        classifier_config=ct.ClassifierConfig(labels),
        skip_model_load=True,
    )
    model.save(str(path))
    return path


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("classify")
    return {n: _classifier(s, c, root / f"{n}.mlpackage") for n, (s, c) in MODELS.items()}


def _softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x.astype(np.float64) - x.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def _loader(executor: str):
    if executor == "numpy":
        return load
    from anemll_spec.executor.torch_runner import load_torch

    return lambda path: load_torch(path, device="cpu", dtype="float32")


EXECUTORS = ["numpy", pytest.param("torch", marks=pytest.mark.torch)]


def test_the_reader_holds_the_labels_and_the_output_types(models):
    """The saved program's classify op gets its inline list of labels; the model's
    description and the program agree on a str / int64 label and a dict output."""
    for name, want_dtype in (("str", "str"), ("int", "int64")):
        m = open_model(models[name])
        fn = m.program().function(None, "test")
        op = next(o for o in fn.ops if o.type == "classify")
        labels = op.inputs["classes"][0].value
        assert [v if isinstance(v, str) else int(v) for v in labels] == MODELS[name][1]
        assert [(o.name, o.dtype) for o in op.outputs] == [
            ("classLabel", "string" if name == "str" else "int64"),
            ("classLabel_probs", "dict"),
        ]
        described = {t.name: (t.dtype, t.shape) for t in m.io().outputs}
        assert described == {"classLabel": (want_dtype, ()), "classLabel_probs": ("dict", ())}
        prog = load(models[name])
        assert {n: (t.dtype, t.shape) for n, t in prog.outputs.items()} == described


def test_classify_is_supported_on_both_executors():
    row = op_coverage("classify")
    assert row.numpy.status == row.torch.status == "supported"
    assert "host" in row.torch.note


@pytest.mark.parametrize("executor", EXECUTORS)
@pytest.mark.parametrize("name", ["str", "int", "flat", "flexible"])
def test_label_and_probabilities_match_numpy(models, executor, name):
    shape, labels = MODELS[name]
    fixed = tuple(len(labels) if d is None else d for d in shape)
    prog = _loader(executor)(models[name])
    rng = np.random.default_rng(len(labels))
    inputs = [rng.standard_normal(fixed).astype(np.float32) for _ in range(4)]
    # the highest score at each position in turn, so every label is predicted once
    for i in range(len(labels)):
        x = np.zeros(fixed, np.float32)
        x.reshape(-1)[i] = 3.0
        inputs.append(x)
    for x in inputs:
        out = prog.predict({"x": x})
        probs = _softmax(x).reshape(-1)
        label = out["classLabel"]
        assert label == labels[int(np.argmax(probs))]
        assert type(label) is type(labels[0])  # str, or a Python int for int64 labels
        d = out["classLabel_probs"]
        assert isinstance(d, dict) and list(d) == labels
        assert all(type(v) is float for v in d.values())
        np.testing.assert_allclose(list(d.values()), probs, rtol=1e-6, atol=1e-7)


def _drop_last_class(src: Path, dst: Path) -> Path:
    """The saved model with one class label fewer than probabilities (the converter
    refuses to build one)."""
    import shutil

    from coremltools.proto import Model_pb2

    shutil.copytree(src, dst)
    spec_file = dst / "Data" / "com.apple.CoreML" / "model.mlmodel"
    spec = Model_pb2.Model()
    spec.ParseFromString(spec_file.read_bytes())
    fn = spec.mlProgram.functions["main"]
    op = next(o for o in fn.block_specializations[fn.opset].operations if o.type == "classify")
    value = op.inputs["classes"].arguments[0].value
    del value.immediateValue.list.values[-1]
    value.type.listType.length.constant.size -= 1
    spec_file.write_bytes(spec.SerializeToString())
    return dst


def test_too_few_classes_is_refused_at_load(models, tmp_path, capsys):
    path = _drop_last_class(models["str"], tmp_path / "short.mlpackage")
    with pytest.raises(InputError, match=r"\(classify\).*3 probabilities \(shape \[1, 3\]\) for 2"):
        load(path)
    capsys.readouterr()
    assert main(["predict", str(path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "(classify)" in err[0] and "for 2 classes" in err[0]


def test_list_length_that_differs_from_its_elements_is_refused(models, tmp_path):
    path = _drop_last_class(models["str"], tmp_path / "short.mlpackage")
    spec_file = path / "Data" / "com.apple.CoreML" / "model.mlmodel"
    from coremltools.proto import Model_pb2

    spec = Model_pb2.Model()
    spec.ParseFromString(spec_file.read_bytes())
    fn = spec.mlProgram.functions["main"]
    op = next(o for o in fn.block_specializations[fn.opset].operations if o.type == "classify")
    op.inputs["classes"].arguments[0].value.type.listType.length.constant.size = 3
    spec_file.write_bytes(spec.SerializeToString())
    with pytest.raises(InputError, match=r"input classes: list declares 3 elements, holds 2"):
        load(path)


@pytest.mark.parametrize("executor", EXECUTORS)
def test_wrong_count_of_a_flexible_shape_is_refused_at_run(models, executor):
    prog = _loader(executor)(models["flexible"])
    with pytest.raises(InputError, match=r"\(classify\).*4 probabilities for 3 classes") as err:
        prog.predict({"x": np.zeros((1, 4), np.float32)})
    assert "\n" not in str(err.value)


def test_predict_prints_and_saves_label_and_probabilities(models, tmp_path, capsys):
    capsys.readouterr()
    npz = tmp_path / "out.npz"
    assert main(["predict", str(models["int"]), "--json", "--out", str(npz)]) == 0
    report = json.loads(capsys.readouterr().out)
    prog = load(models["int"])
    # predict synthesises its inputs as the runner does: recompute them to check
    from anemll_spec.cli.predict import synthesise

    x = synthesise(models["int"], 0)["x"]
    probs = _softmax(x).reshape(-1)
    labels = MODELS["int"][1]
    outs = report["outputs"]
    assert outs["classLabel"] == {"shape": [], "dtype": "int64", "value": labels[probs.argmax()]}
    d = outs["classLabel_probs"]
    assert d["dtype"] == "dict" and d["key_dtype"] == "int64" and d["size"] == 4
    assert list(d["value"]) == [str(c) for c in labels]
    np.testing.assert_allclose(list(d["value"].values()), probs, rtol=1e-6)
    with np.load(npz, allow_pickle=False) as saved:
        assert sorted(saved.files) == [
            "classLabel",
            "classLabel_probs.keys",
            "classLabel_probs.values",
        ]
        assert int(saved["classLabel"]) == labels[probs.argmax()]
        assert saved["classLabel_probs.keys"].tolist() == labels
        np.testing.assert_allclose(saved["classLabel_probs.values"], probs, rtol=1e-6)
    assert main(["predict", str(models["str"])]) == 0
    text = capsys.readouterr().out
    x = synthesise(models["str"], 0)["x"]
    best = MODELS["str"][1][int(_softmax(x).argmax())]
    assert f"classLabel: {best!r}" in text
    assert "classLabel_probs: 3 classes (str labels), all: " + best in text
    assert prog.outputs["classLabel_probs"].dtype == "dict"


def test_verify_compares_labels_exactly_and_probabilities_by_tolerance(models):
    prog = load(models["str"])
    x = np.array([[0.1, 2.0, -1.0]], np.float32)
    ref = prog.predict({"x": x})
    tol = Tolerance()
    same = check_outputs(prog.predict({"x": x}), ref, tol)
    assert same.status == "pass" and same.max_abs_error == 0.0
    assert same.note == "labels equal the reference (classLabel 'dog')"
    close = dict(ref, classLabel_probs={k: v + 1e-4 for k, v in ref["classLabel_probs"].items()})
    v = check_outputs(close, ref, tol)
    assert v.status == "pass" and v.max_abs_error == pytest.approx(1e-4, rel=1e-6)
    far = dict(ref, classLabel_probs={k: v + 0.2 for k, v in ref["classLabel_probs"].items()})
    v = check_outputs(far, ref, tol)
    assert v.status == "fail" and "max_abs_error" in (v.note or "")
    wrong = dict(ref, classLabel="cat")
    v = check_outputs(wrong, ref, tol)
    assert v.status == "fail" and "classLabel is 'cat', the reference 'dog'" in (v.note or "")
    keys = dict(ref, classLabel_probs={"cat": 0.1, "dog": 0.9})
    v = check_outputs(keys, ref, tol)
    assert v.status == "fail" and "classLabel_probs has labels ['cat', 'dog']" in (v.note or "")
    # the Core ML backend hands outputs over through np.asarray: 0-d arrays
    wrapped = {k: np.asarray(v) for k, v in ref.items()}
    assert wrapped["classLabel_probs"].dtype == object
    assert check_outputs(wrapped, ref, tol).status == "pass"
    wrapped_wrong = {k: np.asarray(v) for k, v in wrong.items()}
    assert check_outputs(wrapped_wrong, ref, tol).status == "fail"
    # an int64 label as a numpy integer
    iref = load(models["int"]).predict({"x": np.array([[0.0, 1.0, 0.0, 0.0]], np.float32)})
    assert check_outputs(dict(iref, classLabel=np.int64(0)), iref, tol).status == "pass"
    assert check_outputs(dict(iref, classLabel=np.int64(7)), iref, tol).status == "fail"


@pytest.mark.torch
def test_external_classifier_benches_and_verifies_on_numpy_and_torch(models, tmp_path, capsys):
    """`family: external` with a classifier: timed on both executors, each verified (label
    exactly, probabilities by tolerance) and stored."""
    import shutil

    shutil.copytree(models["str"], tmp_path / "cls.mlpackage")
    spec = tmp_path / "ext.yaml"
    spec.write_text(
        "name: ext\n"
        "model:\n  family: external\n  path: cls.mlpackage\n"
        "run:\n  backends: [numpy, torch]\n  warmup: 0\n  iterations: 3\n"
        "  min_iterations: 3\n  max_time_s: 5\n  dispatch_floor: false\n"
    )
    capsys.readouterr()
    assert main(["bench", str(spec), "--store", str(tmp_path / "s.duckdb"), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["status"] == "finished"
    by_backend = {c["backend"]: c for c in report["results"]}
    assert set(by_backend) == {"numpy", "torch"}
    for case in by_backend.values():
        assert case["status"] == "ok" and case["stats"]["n"] == 3
        assert case["verify"]["status"] == "pass"
        assert "labels equal the reference (classLabel " in case["verify"]["note"]
