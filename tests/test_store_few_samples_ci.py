"""A CI of the median under MIN_SAMPLES samples is shown nowhere: since 2026-12-07 bench
stores none there, and runs stored before then (which did) read as having none through
the `results` view, in `share` and in the report. `cases` keeps what was stored."""

from __future__ import annotations

import io
from pathlib import Path

import duckdb
import pytest
from db_util import dict_rows
from test_share_report_rows import md_table, share

from anemll_spec.chart.report import write_report
from anemll_spec.text import distinct
from anemll_spec.vocab import MIN_SAMPLES


@pytest.fixture(scope="module")
def old_store(tmp_path_factory) -> tuple[Path, str]:
    """A real bench of two cases, 4 and 8 samples; then the 4-sample case given a CI, as
    versions before 2026-12-07 stored one (median -+ 10 %)."""
    from anemll_spec.progress import Progress
    from anemll_spec.runner import Runner

    tmp = tmp_path_factory.mktemp("few")
    spec = tmp / "few.yaml"
    spec.write_text(
        "name: few\nmodel: {family: matmul, m: 8, k: 16, n: 32, dtype: float32}\n"
        "run: {backends: [numpy], warmup: 0, min_iterations: 4, dispatch_floor: false, "
        "energy_s: 0}\nsweep:\n  run.iterations: [4, 8]\n"
    )
    store = tmp / "s.duckdb"
    res = Runner(spec, store=str(store), cache_dir=tmp / "cache",
                 progress=Progress(io.StringIO())).run()  # fmt: skip
    con = duckdb.connect(str(store))
    con.execute(
        "UPDATE cases SET ci_low_ms = 0.9 * median_ms, ci_high_ms = 1.1 * median_ms "
        "WHERE n_samples = 4"
    )
    con.close()
    return store, res.run_id


def _cases(store: Path) -> dict[int, dict]:
    rows = dict_rows(
        store,
        "SELECT c.n_samples, c.median_ms, c.ci_low_ms, c.ci_high_ms, "
        "r.ci_low_ms AS shown_low, r.ci_high_ms AS shown_high "
        "FROM cases c JOIN results r USING (case_id)",
    )
    return {r["n_samples"]: r for r in rows}


def test_the_results_view_shows_no_ci_under_min_samples(old_store):
    store, _ = old_store
    cases = _cases(store)
    assert sorted(cases) == [4, 8] and MIN_SAMPLES == 6
    few, enough = cases[4], cases[8]
    assert few["ci_low_ms"] == pytest.approx(0.9 * few["median_ms"])  # kept in `cases`
    assert few["shown_low"] is None and few["shown_high"] is None
    assert enough["ci_low_ms"] is not None  # bench's own CI, shown as stored
    assert (enough["shown_low"], enough["shown_high"]) == (
        enough["ci_low_ms"],
        enough["ci_high_ms"],
    )


def test_share_and_the_report_show_no_ci_under_min_samples(old_store, tmp_path):
    store, run_id = old_store
    rows = {r["n"]: r for r in md_table(share(store, run_id), "")}
    assert rows["4"]["95% CI ms"] == "-"
    assert " to " in rows["8"]["95% CI ms"]
    html = write_report(store, run_id, tmp_path / "r.html").read_text()
    cases = _cases(store)

    def ci_cell(c: dict) -> str:
        """A CI as the report writes it: as many digits as keep it off its median."""
        _, low, high = distinct((c["median_ms"], c["ci_low_ms"], c["ci_high_ms"]), 4, 7)
        return f"{low} – {high}"

    assert ci_cell(cases[8]) in html  # the shown CI is found by this very form
    assert ci_cell(cases[4]) not in html
