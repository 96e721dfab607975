"""Compiled models (.mlmodelc) run like the package they came from (issue 16 item 3).

Each package is built here and turned into a crafted .mlmodelc by
fixtures/build/make_compiled.py (model.mil rendered from the protobuf with coremltools'
own classes, weights copied, metadata.json written); the executor must then give
identical outputs for both, on numpy and on torch, and describe/inspect must agree."""

from __future__ import annotations

import json

import coremltools as ct
import numpy as np
import pytest
from build_util import attention, ffn, lm_head
from coremltools.converters.mil.mil import types
from fixtures.build.make_compiled import compile_like
from fixtures.executor.mil_models import mb, save_program

from anemll_spec.build import build_package
from anemll_spec.cli import main as cli_main
from anemll_spec.executor import load
from anemll_spec.mlmodel.inspect import inspect_model
from anemll_spec.model_io import describe, synth_inputs

RNG = np.random.default_rng(31)
MODELS = {
    "lm_head_conv": lambda: lm_head(hidden_size=64, vocab_size=96, chunks=3),
    "attention_state": lambda: attention(
        hidden_size=64, heads=2, kv_heads=1, head_dim=32, context_length=16
    ),
    "lut4_grouped": lambda: lm_head(
        hidden_size=64,
        vocab_size=64,
        compression={
            "palettize": {
                "nbits": 4,
                "granularity": "per_grouped_channel",
                "group_size": 8,
                "mode": "uniform",
            }
        },
    ),
    "int8_ios16_attributes": lambda: lm_head(
        hidden_size=64,
        vocab_size=64,
        deployment_target="iOS16",
        compression={"quantize": {"dtype": "int8", "granularity": "per_channel"}},
    ),
    "ffn_linear_fp32": lambda: ffn(
        hidden_size=32,
        intermediate_size=64,
        seq_len=2,
        layout="linear",
        dtype="float32",
        compute_precision="float32",
    ),
}


def _sparse_program(path):
    """Immediate sub-byte values and a two-output constexpr: both as text literals."""
    mask = RNG.random((4, 8)) < 0.5
    idx = RNG.integers(0, 4, int(mask.sum())).astype(types.np_uint2_dtype)
    lut = RNG.standard_normal((1, 1, 4, 1)).astype(np.float16)

    @mb.program(
        input_specs=[mb.TensorSpec((4, 8), dtype=types.fp16)], opset_version=ct.target.iOS18
    )
    def prog(y):
        m, v = mb.constexpr_lut_to_sparse(
            indices_mask=mask.astype(types.np_uint1_dtype), indices_nonzero_data=idx, lut=lut
        )
        w = mb.constexpr_sparse_to_dense(nonzero_data=v, mask=m)
        return mb.mul(x=mb.add(x=y, y=w), y=np.float16(-0.375), name="out")

    return save_program(prog, path, precision="fp16")


@pytest.fixture(scope="module", params=[*MODELS, "sparse_immediates"])
def pair(request, tmp_path_factory):
    d = tmp_path_factory.mktemp("mlmodelc")
    pkg = d / "m.mlpackage"
    if request.param == "sparse_immediates":
        _sparse_program(pkg)
    else:
        build_package(MODELS[request.param](), pkg)
    return pkg, compile_like(pkg, d / "m.mlmodelc", request.param)


def _feed(io, seed=0):
    return synth_inputs(io, seed=seed)


def test_describe_and_inspect_agree(pair):
    pkg, mlc = pair
    a, b = describe(pkg), describe(mlc)
    assert (a.inputs, a.outputs, a.states) == (b.inputs, b.outputs, b.states)
    ia, ib = inspect_model(pkg), inspect_model(mlc)
    for k in (
        "ops",
        "flops",
        "compression",
        "weight_bytes",
        "weights_sha256",
        "blobs",
        "deployment_target",
        "spec_version",
        "inputs",
        "outputs",
        "states",
    ):
        assert ia[k] == ib[k], k
    assert ib["kind"] == "mlmodelc"
    assert ib["opset"] == {"CoreML6": "ios16", "CoreML8": "ios18"}[ia["opset"]]


@pytest.mark.parametrize("fp16", [False, True])
def test_same_outputs_on_numpy(pair, fp16):
    pkg, mlc = pair
    a, b = load(pkg, fp16=fp16), load(mlc, fp16=fp16)
    assert list(a.inputs) == list(b.inputs) and a.op_counts == b.op_counts
    feed = _feed(describe(pkg))
    sa, sb = (a.make_state(), b.make_state()) if a.states else (None, None)
    for _step in range(2 if a.states else 1):  # a stateful model: two steps, states carried
        oa, ob = a.predict(feed, state=sa), b.predict(feed, state=sb)
        assert oa.keys() == ob.keys()
        for k in oa:
            np.testing.assert_array_equal(oa[k], ob[k], err_msg=k)
    if a.states:
        for name in a.states:
            np.testing.assert_array_equal(sa.read(name), sb.read(name))
            assert sa.read(name).any()  # the step really wrote the cache


@pytest.mark.torch
def test_same_outputs_on_torch(pair):
    from anemll_spec.executor.torch_runner import load_torch

    pkg, mlc = pair
    feed = _feed(describe(pkg), seed=3)
    a = load_torch(pkg, device="cpu", dtype="float32")
    b = load_torch(mlc, device="cpu", dtype="float32")
    oa, ob = a.predict(feed, a.make_state()), b.predict(feed, b.make_state())
    for k in oa:
        np.testing.assert_array_equal(oa[k], ob[k], err_msg=k)


def test_predict_cli_on_a_compiled_model(pair, capsys):
    pkg, mlc = pair
    assert cli_main(["predict", str(pkg), "--json", "--seed", "5"]) == 0
    a = json.loads(capsys.readouterr().out)
    assert cli_main(["predict", str(mlc), "--json", "--seed", "5"]) == 0
    b = json.loads(capsys.readouterr().out)
    assert a["outputs"] == b["outputs"] and a["inputs"] == b["inputs"]


def test_external_compiled_model_benches_on_numpy(tmp_path, capsys):
    """`family: external` with a .mlmodelc runs on the reference executor end to end
    (build -> numpy timing -> verify -> store)."""
    import shutil

    from fixtures.build.make_compiled import HERE

    shutil.copytree(HERE / "attention_tiny.mlmodelc", tmp_path / "att.mlmodelc")
    spec = tmp_path / "ext.yaml"
    spec.write_text(
        "name: ext\n"
        "model:\n  family: external\n  path: att.mlmodelc\n"
        "  input_ranges: {position: [0, 15]}\n"
        "run:\n  backends: [numpy]\n  warmup: 0\n  iterations: 3\n  min_iterations: 3\n"
        "  max_time_s: 5\n  dispatch_floor: false\n"
    )
    store = tmp_path / "s.duckdb"
    assert cli_main(["bench", str(spec), "--store", str(store), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["status"] == "finished"
    (case,) = report["results"]
    assert case["backend"] == "numpy" and case["status"] == "ok" and case["stats"]["n"] == 3
    weights = tmp_path / "att.mlmodelc" / "weights" / "weight.bin"
    assert case["weight_bytes"] == weights.stat().st_size


@pytest.mark.parametrize(
    "edit, match",
    [
        (lambda m: m["inputSchema"][0].update(shape="[1, 1, 65]"), "'hidden_states' is float16"),
        (lambda m: m["outputSchema"][0].update(name="renamed"), "lists outputs"),
        (lambda m: m["inputSchema"][0].update(dataType="Float32"), "float32 \\[1, 1, 64\\]"),
    ],
)
def test_metadata_that_disagrees_with_model_mil_is_refused(tmp_path, edit, match):
    import shutil

    from fixtures.build.make_compiled import HERE

    from anemll_spec.errors import InputError

    mlc = shutil.copytree(HERE / "lm_head_tiny.mlmodelc", tmp_path / "m.mlmodelc")
    doc = json.loads((mlc / "metadata.json").read_text())
    edit(doc[0])
    (mlc / "metadata.json").write_text(json.dumps(doc))
    with pytest.raises(InputError, match=match):
        load(mlc)
