"""The bench summary's factor is the store's one rule (store.factors.for_run), the same the
chip_factors view gives: read back from a real store. SYNTHETIC runs (tests/fixtures/chart),
not measurements; the published rows are the real reference table."""

from __future__ import annotations

import sys
from pathlib import Path
from types import SimpleNamespace

from conftest import SPECS

sys.path.insert(0, str(Path(__file__).parent / "fixtures" / "chart"))
import chart_synthetic as syn  # noqa: E402

from anemll_spec.cli.bench import _factor  # noqa: E402
from anemll_spec.runner import record  # noqa: E402
from anemll_spec.runner.plan import resolve_variants  # noqa: E402
from anemll_spec.spec import expand, load_spec  # noqa: E402
from anemll_spec.store import open_store  # noqa: E402


def test_the_summary_factor_is_the_chip_factors_row(tmp_path):
    path = tmp_path / "s.duckdb"
    run_id = syn.lm_head_run(path, seed=1)
    con = open_store(path, read_only=True)
    try:
        cases = con.execute(
            "SELECT case_id, model_name, backend, compute_units FROM cases WHERE run_id = ?",
            [run_id],
        ).fetchall()
        view = {
            r[0]: r[1:]
            for r in con.execute(
                "SELECT model, bandwidth_factor, inference_factor, baseline_label "
                "FROM chip_factors WHERE source = 'own'"
            ).fetchall()
        }
        published_m1 = dict(
            con.execute(
                "SELECT model, value FROM reference WHERE chip = 'M1 Max' AND NOT derived "
                "AND ((model = 'llama_lm_head' AND metric = 'bandwidth_gbps') OR "
                "(model = 'llama_lm_head_lut6' AND metric = 'latency_ms'))"
            ).fetchall()
        )
        medians = dict(
            con.execute(
                "SELECT model_name, median_ms FROM cases WHERE run_id = ?", [run_id]
            ).fetchall()
        )
    finally:
        con.close()
    results = [SimpleNamespace(case_id=c[0], status="ok", factors=None) for c in cases]
    record.add_factors(str(path), results, run_id)
    for m, (_, model, _backend, _cu) in zip(results, cases, strict=True):
        f = m.factors
        assert (f["model"], f["bandwidth_factor"], f["inference_factor"], f["baseline_label"]) == (
            model,
            *view[model][:3],
        )
        assert "M1 Max" in f["baseline_label"] and "published" in f["baseline_label"]
        text = _factor(m)
        assert text.endswith(f"vs {f['baseline_label']}")
    # computed independently: the published M1 Max figure against the synthetic median
    head = next(m.factors for m in results if m.factors["model"] == "llama_lm_head")
    ours = syn.LM_HEAD_BYTES / (medians["llama_lm_head"] * 1e6)
    assert abs(head["bandwidth_factor"] - ours / published_m1["llama_lm_head"]) < 1e-9
    lut6 = next(m.factors for m in results if m.factors["model"] == "llama_lm_head_lut6")
    want = published_m1["llama_lm_head_lut6"] / medians["llama_lm_head_lut6"]
    assert abs(lut6["inference_factor"] - want) < 1e-9


def test_a_store_problem_costs_only_the_factor_column(tmp_path):
    results = [SimpleNamespace(case_id="x", status="ok", factors=None)]
    record.add_factors(str(tmp_path / "missing" / "s.duckdb"), results, "20250101-000000-00000000")
    assert results[0].factors is None


def test_variant_resolution():
    (case,) = expand(load_spec(SPECS / "compute_units.yaml"))
    on_mac, notes = resolve_variants(case, "coreml")
    assert on_mac == [("coreml", cu) for cu in ("CPU_ONLY", "CPU_AND_GPU", "CPU_AND_NE", "ALL")]
    assert notes == []
    on_linux, notes = resolve_variants(case, "numpy")
    assert on_linux == [("numpy", None)] and "4 compute-unit variants" in notes[0]
