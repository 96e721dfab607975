"""The Core ML backend on real Core ML (macOS only; skipped elsewhere by the macos marker)."""

from __future__ import annotations

import numpy as np
import pytest
from build_util import lm_head

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
    from anemll_spec.verify import compare

    if cu == "CPU_AND_NE" and coreml.translated():
        pytest.skip("CPU_AND_NE is refused under Rosetta")
    inputs = synth_inputs(describe(built.path), seed=0)
    sess = coreml.backend().load(prepared, cu)
    out = sess.predict(sess.feed(inputs))
    ref = load(built.path).predict(inputs)
    v = compare(
        out,
        ref,
        {
            "max_abs_error": 0.05,
            "rel_l2_error": 0.01,
            "min_cosine": 0.999,
            "min_top1_agreement": 1.0,
        },
        vocab_chunk=256,
    )
    assert v.status == "pass", v.note


def test_runtime_probe_reports_core_mls_own_duration(built, prepared):
    from anemll_spec.backends import coreml
    from anemll_spec.model_io import describe, synth_inputs

    sess = coreml.backend().load(prepared, "CPU_ONLY")
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
    sess = coreml.backend().load(prepared, "CPU_ONLY")
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
