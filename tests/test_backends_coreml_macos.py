"""The Core ML backend on real Core ML (macOS only; skipped elsewhere by the macos marker)."""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest
from build_util import lm_head

from anemll_spec.backends.coreml import CoremlOptions
from anemll_spec.spec.run_section import Tolerance

pytestmark = pytest.mark.macos

TINY = lm_head(hidden_size=128)


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    from anemll_spec.build import build

    return build(TINY, cache_dir=tmp_path_factory.mktemp("cache"))


@pytest.fixture(scope="module")
def prepared(built, tmp_path_factory):
    from anemll_spec.backends import coreml
    from anemll_spec.model_io import describe

    p = coreml.backend().prepare(built.path, tmp_path_factory.mktemp("work"))
    io = describe(built.path)
    p.input_dtypes = {t.name: t.dtype for t in io.inputs}
    return p


def test_compile_once_to_mlmodelc(prepared):
    assert prepared.path.suffix == ".mlmodelc" and prepared.path.is_dir()
    assert prepared.compile_s is not None and prepared.compile_s > 0


@pytest.mark.parametrize("cu", ["CPU_ONLY", "CPU_AND_GPU", "CPU_AND_NE", "ALL"])
def test_predict_matches_the_reference_executor(built, prepared, cu):
    from anemll_spec.backends import coreml
    from anemll_spec.executor import load
    from anemll_spec.model_io import describe, synth_inputs
    from anemll_spec.verify import check_outputs

    inputs = synth_inputs(describe(built.path), seed=0)
    sess = coreml.backend().load(prepared, CoremlOptions(cu))
    out = sess.predict(sess.feed(inputs))
    ref = load(built.path).predict(inputs)
    v = check_outputs(
        out,
        ref,
        Tolerance(),
        vocab_chunk=256,
    )
    assert v.status == "pass", v.note


def test_runtime_probe_reports_core_mls_own_duration(built, prepared):
    from anemll_spec.backends import coreml
    from anemll_spec.model_io import describe, synth_inputs

    sess = coreml.backend().load(prepared, CoremlOptions("CPU_ONLY"))
    if sess.runtime_probe is None:
        pytest.skip("this coremltools build exposes no predict duration")
    call = sess.bind(sess.feed(synth_inputs(describe(built.path), seed=0)))
    call()
    d = sess.runtime_probe()
    assert isinstance(d, int) and d > 0


def test_compute_plan_placements(prepared):
    from anemll_spec.backends import coreml

    if coreml.macos_version() < coreml.COMPUTE_PLAN_MACOS:
        pytest.skip("MLComputePlan needs macOS 14.4")
    sess = coreml.backend().load(prepared, CoremlOptions("CPU_ONLY"))
    rows = sess.placements()
    convs = [r for r in rows if r["op_type"] == "conv"]
    assert len(convs) == 2
    assert all(r["preferred_device"] == "CPU" for r in rows if r["preferred_device"])
    assert coreml.placement_shares(rows)["CPU"] == pytest.approx(1.0)


def test_bench_on_coreml_through_the_cli(cli, tmp_path):
    import duckdb

    spec = tmp_path / "tiny.yaml"
    spec.write_text(
        "name: tiny_coreml\nmodel: {family: lm_head, hidden_size: 128, vocab_size: 512, "
        "chunks: 2}\nrun: {backends: [coreml], compute_units: [CPU_ONLY, ALL], warmup: 3, "
        "iterations: 40, max_time_s: 5}\n"
    )
    store = tmp_path / "s.duckdb"
    res = cli("bench", spec, "--store", store)
    assert res.returncode == 0, res.stderr
    con = duckdb.connect(str(store), read_only=True)
    rows = con.execute(
        "SELECT compute_units, status, n_samples, verify_status, compile_ms FROM cases "
        "ORDER BY compute_units"
    ).fetchall()
    con.close()
    assert [r[0] for r in rows] == ["ALL", "CPU_ONLY"]
    assert all(r[1] == "ok" and r[2] == 40 and r[3] == "pass" and r[4] > 0 for r in rows)
    assert np.isfinite([r[4] for r in rows]).all()


def test_verify_mismatch_fails_the_case(cli, tmp_path):
    """fp16 on the Neural Engine differs from the fp32 reference by more than zero."""
    import duckdb

    spec = tmp_path / "strict.yaml"
    spec.write_text(
        "name: strict\nmodel: {family: lm_head, hidden_size: 128, vocab_size: 512, "
        "chunks: 2}\nrun: {backends: [coreml], compute_units: [CPU_AND_NE], warmup: 1, "
        "iterations: 5, tolerance: {max_abs_error: 0.0, rel_l2_error: 0.0, min_cosine: 1.0, "
        "min_top1_agreement: 1.0}}\n"
    )
    store = tmp_path / "s.duckdb"
    res = cli("bench", spec, "--store", store)
    assert res.returncode == 1, res.stderr
    con = duckdb.connect(str(store), read_only=True)
    row = con.execute("SELECT status, verify_status, error FROM cases").fetchone()
    con.close()
    assert row[0] == "failed" and row[1] == "fail" and "verify failed" in row[2]


# -- issue 19: each defect's real call (the logic is tested on Linux) ---------------------
def test_probe_is_inside_the_wall_time(built, prepared):
    """19.2: Core ML's own duration (around predictionFromFeatures) never exceeds the wall
    time of the same call; the difference is the binding's overhead."""
    from anemll_spec.backends import coreml
    from anemll_spec.harness import Budget, time_one
    from anemll_spec.model_io import describe, synth_inputs

    sess = coreml.backend().load(prepared, CoremlOptions("CPU_ONLY"))
    if sess.runtime_probe is None:
        pytest.skip("this coremltools build exposes no predict duration")
    call = sess.bind(sess.feed(synth_inputs(describe(built.path), seed=0)))
    t = time_one(
        call,
        Budget(warmup=3, warmup_s=0, iterations=50, min_iterations=5, max_time_s=30),
        after=sess.runtime_probe,
    )
    assert (t.runtime_ns > 0).all() and (t.runtime_ns <= t.samples_ns).all()
    sess.close()


def test_close_releases_the_native_model(prepared):
    """19.4: after close() nothing of the session holds the CompiledMLModel or its proxy."""
    import gc
    import weakref

    from anemll_spec.backends import coreml

    sess = coreml.backend().load(prepared, CoremlOptions("CPU_ONLY"))
    model_ref = weakref.ref(sess.model)
    proxy = sess.model._proxy
    sess.close()
    gc.collect()
    assert model_ref() is None
    assert sys.getrefcount(proxy) == 2  # `proxy` here and getrefcount's argument


def test_deployment_target_check_matches_this_mac():
    """19.3: iOS18 (and state) need macOS 15; iOS16 runs on any supported Mac."""
    from build_util import attention, lm_head

    from anemll_spec.backends import coreml_target

    v = coreml_target.macos_version()
    assert v and v[0] >= 13
    assert (coreml_target.why_not(lm_head(deployment_target="iOS18")) is None) == (v >= (15,))
    assert (coreml_target.why_not(attention()) is None) == (v >= (15,))
    assert coreml_target.why_not(lm_head(deployment_target="iOS16")) is None


def test_compiled_model_is_reused_from_the_build_cache(built, tmp_path):
    """The compile cache: a second prepare of the same package compiles nothing and
    loads the same .mlmodelc (so Core ML can reuse its device-specialised copy)."""
    from anemll_spec.backends import coreml

    b = coreml.backend()
    first = b.prepare(built.path, tmp_path / "a")
    second = coreml.backend().prepare(built.path, tmp_path / "b")
    assert first.path == second.path and built.path.parent in first.path.parents
    assert second.compile_s == 0.0
    sess = b.load(first, CoremlOptions("CPU_ONLY"))
    assert any("build cache" in n for n in sess.notes)


def test_processes_report_core_mls_own_duration_per_instance(built, prepared):
    """19.1: two instances in two processes, each with its own model and probe."""
    from anemll_spec import concurrency
    from anemll_spec.harness import Budget
    from anemll_spec.model_io import describe, synth_inputs

    res = concurrency.time_instances(
        "coreml",
        prepared,
        CoremlOptions("CPU_ONLY"),
        synth_inputs(describe(built.path), seed=0),
        Budget(warmup=3, warmup_s=0, iterations=40, min_iterations=5, max_time_s=30),
        n_instances=2,
    )
    assert res.mode == "processes" and [t.n for t in res.per_instance] == [40, 40]
    for t in res.per_instance:
        assert t.runtime_ns is not None and (t.runtime_ns > 0).all()
        assert (t.runtime_ns <= t.samples_ns).all()


def test_int32_input_fed_from_a_float_array(tmp_path_factory):
    """19.8: the attention model's int32 `position`, given as a float array, predicts the
    same as given as int32 (it used to be passed as float32)."""
    from build_util import attention

    from anemll_spec.backends import coreml
    from anemll_spec.build import build
    from anemll_spec.model_io import describe, synth_inputs

    if coreml.macos_version() < (15,):
        pytest.skip("state needs macOS 15")
    b = build(attention(), cache_dir=tmp_path_factory.mktemp("att"))
    io = describe(b.path)
    backend = coreml.backend()
    p = backend.prepare(b.path, tmp_path_factory.mktemp("w"))
    p.input_dtypes = {t.name: t.dtype for t in io.inputs}
    p.states = tuple(t.name for t in io.states)
    sess = backend.load(p, CoremlOptions("CPU_ONLY"))
    inputs = synth_inputs(io, seed=0)
    as_float = {**inputs, "position": inputs["position"].astype(np.float32)}
    a = sess.predict(sess.feed(inputs), sess.new_state())
    f = sess.predict(sess.feed(as_float), sess.new_state())
    for k in a:
        assert np.array_equal(a[k], f[k])


def test_placements_of_the_default_function(tmp_path_factory):
    """19.9: the compute plan of a two-function package is the default function's."""
    from coremltools.models.utils import MultiFunctionDescriptor, save_multifunction

    from anemll_spec.backends import coreml
    from anemll_spec.build import build
    from anemll_spec.model_io import describe

    if coreml.macos_version() < (15,):
        pytest.skip("multi-function models need macOS 15")
    cache = tmp_path_factory.mktemp("mf")
    a = build(lm_head(hidden_size=64, vocab_size=128, chunks=1, layout="linear"), cache_dir=cache)
    b = build(lm_head(hidden_size=64, vocab_size=256, chunks=2, layout="conv"), cache_dir=cache)
    desc = MultiFunctionDescriptor()
    desc.add_function(str(a.path), "main", "first")
    desc.add_function(str(b.path), "main", "second")
    desc.default_function_name = "second"
    pkg = cache / "two.mlpackage"
    save_multifunction(desc, str(pkg))
    backend = coreml.backend()
    p = backend.prepare(pkg, cache / "work")
    p.input_dtypes = {t.name: t.dtype for t in describe(pkg).inputs}
    rows = backend.load(p, CoremlOptions("CPU_ONLY")).placements()
    types = [r["op_type"] for r in rows]
    assert types.count("conv") == 2  # 'second' has two conv heads; 'first' one linear
    assert "linear" not in types


def test_int8_io_refused_on_a_mac(tmp_path):
    """19.6: refused with a BackendError before compiling, on the real backend."""
    import coremltools as ct
    from coremltools.converters.mil import Builder as mb
    from coremltools.converters.mil.mil import types

    from anemll_spec.backends import coreml
    from anemll_spec.backends.base import BackendError

    @mb.program(
        input_specs=[mb.TensorSpec(shape=(1, 4), dtype=types.int8)], opset_version=ct.target.iOS26
    )
    def prog(x):
        return mb.identity(x=x)

    pkg = tmp_path / "int8.mlpackage"
    ct.convert(prog, minimum_deployment_target=ct.target.iOS26, skip_model_load=True).save(str(pkg))
    with pytest.raises(BackendError, match="int8"):
        coreml.backend().prepare(pkg, tmp_path / "work")


def test_binding_chatter_stays_off_json_stdout(built, tmp_path):
    """19.7: the binding's py::print on an unconvertible input (and the compiler) write to
    stdout; inside stdout_to_stderr they reach stderr and stdout holds the JSON only."""
    import subprocess

    code = f"""
import json
from coremltools.models import CompiledMLModel
from coremltools.models.utils import compile_model
from anemll_spec.backends.coreml_stdout import stdout_to_stderr
with stdout_to_stderr():
    path = compile_model({str(built.path)!r}, {str(tmp_path / "m.mlmodelc")!r})
    m = CompiledMLModel(path)
    try:
        m.predict({{"hidden_states": {{1, 2}}}})
    except Exception as exc:
        err = type(exc).__name__
print(json.dumps({{"err": err}}))
"""
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout) == {"err": "RuntimeError"}
    assert "value type not convertible" in res.stderr
