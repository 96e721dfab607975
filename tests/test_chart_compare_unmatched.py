"""What `chart compare` and the report's "Against the previous run" leave out: a variant
that failed in every case of run B, or ran in one run only. `compare` lists them under its
table; the chart and the report drew only the variants with a ratio, so a variant that
broke in B simply vanished from both. Read back in Chromium, as a user sees them.

SYNTHETIC samples (tests/fixtures/store/synth), stored through the write API.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
from db_util import dict_rows
from fixtures.store.synth import case, new_run, samples_ns

from anemll_spec.chart import build_chart, write_chart
from anemll_spec.chart.report import write_report
from anemll_spec.chart.source import NoData, Options
from anemll_spec.compare import compare_runs
from anemll_spec.store import append_case, finish_run

sys.path.insert(0, str(Path(__file__).parent / "fixtures" / "chart"))
import chart_dom as dom  # noqa: E402

NUMPY = {"backend": "numpy", "compute_units": None}


def two_runs(path: Path) -> tuple[str, str]:
    """A: Core ML and numpy ok. B: Core ML ok, numpy failed, and a model only B ran."""
    rng = np.random.default_rng(4)
    ids = []
    for fails in (False, True):
        run_id = new_run(path)
        wall = samples_ns(rng, 60, 9.0)
        append_case(path, run_id, case(wall=wall), wall)
        if fails:
            append_case(path, run_id, case(**NUMPY, status="failed", error="boom"), [])
            wall = samples_ns(rng, 60, 2.0)
            append_case(path, run_id, case("tiny", "tiny_head", wall=wall, case_index=1), wall)
        else:
            wall = samples_ns(rng, 60, 40.0)
            append_case(path, run_id, case(**NUMPY, wall=wall), wall)
        finish_run(path, run_id, "finished")
        ids.append(run_id)
    return ids[0], ids[1]


@pytest.mark.browser
def test_a_variant_that_failed_in_b_is_said_in_the_chart_and_the_report(chromium, tmp_path):
    path = tmp_path / "s.duckdb"
    a, b = two_runs(path)
    stored = dict_rows(path, "SELECT run_id, model_name, backend, status FROM cases", ())
    side = {a: "A", b: "B"}
    got = sorted((side[r["run_id"]], r["model_name"], r["backend"], r["status"]) for r in stored)
    assert got == [
        ("A", "llama_lm_head", "coreml", "ok"), ("A", "llama_lm_head", "numpy", "ok"),
        ("B", "llama_lm_head", "coreml", "ok"), ("B", "llama_lm_head", "numpy", "failed"),
        ("B", "tiny_head", "coreml", "ok"),
    ]  # fmt: skip
    result = compare_runs(str(path), a, b)
    (failed,) = result["failed_in_b"]
    (only_b,) = result["only_in_b"]
    assert failed.startswith("llama_lm_head (numpy") and only_b.startswith("tiny_head")
    assert [c["backend"] for c in result["comparisons"]] == ["coreml"]  # the one drawn
    want = [f"Not drawn: failed in B (every case): {failed}.", f"Not drawn: only in B: {only_b}."]

    files = write_chart("compare", str(path), Options(runs=(a, b)), tmp_path / "c")
    texts = dom.svg_texts(dom.dump_dom(chromium, files["html"], tmp_path))
    (subtitle,) = [t for t in texts if t.startswith("Ratio of median latencies")]  # its lines
    assert subtitle.endswith(" (anemll-spec compare)." + "".join(want)), subtitle
    # --model keeps its own model's lines only
    spec = build_chart("compare", str(path), Options(runs=(a, b), model="llama_lm_head"))
    assert spec["title"]["subtitle"][-1] == want[0] and want[1] not in spec["title"]["subtitle"]

    page = write_report(str(path), b, tmp_path / "r.html")
    root = dom.dump_dom(chromium, page, tmp_path)
    notes = [p.all_text() for p in root.find("p", class_="note")]
    (note,) = [n for n in notes if "Not drawn" in n]
    assert note == f"A is run {a}, B this run ({b}). " + " ".join(want)
    assert "chart-compare" in [d.attrs["id"] for d in root.find("div", class_="chart")]


def test_with_nothing_in_common_the_chart_says_what_failed(tmp_path):
    """Only variant in both runs failed in B: no chart, and the message says why."""
    path = tmp_path / "s.duckdb"
    rng = np.random.default_rng(6)
    ids = []
    for status in ("ok", "failed"):
        run_id = new_run(path)
        wall = samples_ns(rng, 30, 9.0) if status == "ok" else None
        append_case(path, run_id, case(status=status, wall=wall), [] if wall is None else wall)
        finish_run(path, run_id, "finished")
        ids.append(run_id)
    with pytest.raises(NoData) as e:
        build_chart("compare", str(path), Options(runs=tuple(ids)))
    assert "have no variant in common" in str(e.value)
    assert "Not drawn: failed in B (every case): llama_lm_head (coreml/CPU_AND_NE" in str(e.value)
    page = (write_report(str(path), ids[1], tmp_path / "r.html")).read_text()
    assert 'no measured variant in common.</p><p class="note">A is run' in page
    assert "Not drawn: failed in B (every case): llama_lm_head (coreml/CPU_AND_NE" in page


def test_the_no_data_message_says_each_reason_once_with_one_period(tmp_path, cli):
    """Two reasons, numpy failed in B and a model only in B, read
    '... (numpy/1).. Not drawn: only in B: ...': each line's period, then the join's."""
    path = tmp_path / "s.duckdb"
    rng = np.random.default_rng(7)
    ids = []
    for fails in (False, True):
        run_id = new_run(path)
        if fails:
            append_case(path, run_id, case(**NUMPY, status="failed", error="boom"), [])
            wall = samples_ns(rng, 30, 2.0)
            append_case(path, run_id, case("tiny", "tiny_head", wall=wall, case_index=1), wall)
        else:
            wall = samples_ns(rng, 30, 9.0)
            append_case(path, run_id, case(**NUMPY, wall=wall), wall)
        finish_run(path, run_id, "finished")
        ids.append(run_id)
    result = compare_runs(str(path), *ids)
    (failed,) = result["failed_in_b"]
    (only_b,) = result["only_in_b"]
    r = cli("chart", "compare", "--store", path, "--runs", *ids, "--out", tmp_path / "o")
    assert r.returncode == 2 and r.stdout == "" and len(r.stderr.splitlines()) == 1
    assert r.stderr.endswith(
        f"have no variant in common to compare (run {ids[0]} vs {ids[1]}). "
        f"Not drawn: failed in B (every case): {failed}. Not drawn: only in B: {only_b}.\n"
    ), r.stderr
    assert ".." not in r.stderr
