"""model_io: describe() of packages and compiled models, synth_inputs()."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from build_util import attention, lm_head, proto

from anemll_spec.build import build_package
from anemll_spec.errors import InputError
from anemll_spec.model_io import ModelIO, TensorSpec, describe, synth_inputs

FIX = Path(__file__).parent / "fixtures" / "build"


@pytest.fixture(scope="module")
def att_pkg(tmp_path_factory) -> Path:
    pkg = tmp_path_factory.mktemp("io") / "att.mlpackage"
    build_package(attention(), pkg)
    return pkg


def test_describe_package_matches_proto(att_pkg):
    io = describe(att_pkg)
    d = proto(att_pkg).description
    assert [t.name for t in io.inputs] == [f.name for f in d.input]
    assert [t.shape for t in io.inputs] == [tuple(f.type.multiArrayType.shape) for f in d.input]
    assert io.input("position").dtype == "int32"
    assert io.input("causal_mask").shape == (1, 1, 1, 64)
    assert [(s.name, s.shape, s.dtype) for s in io.states] == [
        ("key_cache", (1, 2, 64, 64), "float16"),
        ("value_cache", (1, 2, 64, 64), "float16"),
    ]
    assert io.output("output").shape == (1, 1, 256)


def test_describe_compiled_reads_metadata_and_model_mil(tmp_path):
    src = FIX / "attention_tiny.mlmodelc"
    meta = json.loads((src / "metadata.json").read_text())[0]
    io = describe(src)
    assert [t.name for t in io.inputs] == [e["name"] for e in meta["inputSchema"]]
    assert [list(t.shape) for t in io.states] == [
        json.loads(e["shape"]) for e in meta["stateSchema"]
    ]
    # Without metadata.json the model.mil signature gives the same answer.
    bare = tmp_path / "bare.mlmodelc"
    shutil.copytree(src, bare)
    (bare / "metadata.json").unlink()
    io2 = describe(bare)
    assert io2.inputs == io.inputs and io2.states == io.states and io2.outputs == io.outputs


def test_describe_lm_head_compiled_outputs():
    io = describe(FIX / "lm_head_tiny.mlmodelc")
    assert [(t.name, t.shape) for t in io.outputs] == [
        ("logits1", (1, 1, 32)),
        ("logits2", (1, 1, 32)),
    ]


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda p: p / "nope.mlpackage", "not found"),
        (lambda p: (p / "x.mlpackage").mkdir() or p / "x.mlpackage", "Manifest.json missing"),
        (lambda p: (p / "a.txt").write_text("hi") and p / "a.txt", "not a Core ML model"),
        (lambda p: (p / "c.mlmodelc").mkdir() or p / "c.mlmodelc", "not a compiled Core ML model"),
    ],
)
def test_describe_bad_paths(tmp_path, make, message):
    path = make(tmp_path)
    with pytest.raises(InputError, match=message) as err:
        describe(path)
    assert str(path) in str(err.value)


def test_describe_corrupt_proto(tmp_path):
    pkg = tmp_path / "m.mlpackage"
    build_package(lm_head(hidden_size=64, vocab_size=64), pkg)
    model = pkg / "Data" / "com.apple.CoreML" / "model.mlmodel"
    model.write_bytes(b"\xff\xfe garbage" * 10)
    with pytest.raises(InputError, match="corrupt|empty"):
        describe(pkg)


def _io() -> ModelIO:
    return ModelIO(
        inputs=[
            TensorSpec("hidden_states", (1, 4, 8), "float16"),
            TensorSpec("position", (2000,), "int32"),
            TensorSpec("causal_mask", (1, 1, 4, 16), "float16"),
            TensorSpec("x32", (3, 3), "float32"),
        ],
        outputs=[],
    )


def test_synth_inputs_dtypes_and_determinism():
    a = synth_inputs(_io(), seed=7, int_ranges={"position": [3, 5]})
    b = synth_inputs(_io(), seed=7, int_ranges={"position": [3, 5]})
    c = synth_inputs(_io(), seed=8, int_ranges={"position": [3, 5]})
    assert {k: v.dtype.name for k, v in a.items()} == {
        "hidden_states": "float16",
        "position": "int32",
        "causal_mask": "float16",
        "x32": "float32",
    }
    for k in a:
        assert np.array_equal(a[k], b[k])
    assert not np.array_equal(a["hidden_states"], c["hidden_states"])
    # inclusive range, both ends drawn out of 2000 samples
    assert set(np.unique(a["position"])) == {3, 4, 5}
    assert not a["causal_mask"].any()
    assert 0.5 < float(a["hidden_states"].astype(np.float32).std()) < 1.6


def test_synth_inputs_default_int_range_and_order_independence():
    io = _io()
    rev = ModelIO(list(reversed(io.inputs)), [])
    a, b = synth_inputs(io, seed=1), synth_inputs(rev, seed=1)
    assert set(np.unique(a["position"])) == {0, 1}
    for k in a:
        assert np.array_equal(a[k], b[k])


def test_synth_inputs_rejects_unknown_range():
    with pytest.raises(InputError, match="nope"):
        synth_inputs(_io(), int_ranges={"nope": [0, 1]})
