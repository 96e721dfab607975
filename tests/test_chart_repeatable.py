"""The same store gives the same chart and report, byte for byte, however DuckDB splits
the work among its threads. SYNTHETIC samples (tests/fixtures/chart), not measurements."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent / "fixtures" / "chart"))
import chart_synthetic as syn  # noqa: E402

from anemll_spec.chart import build_chart  # noqa: E402
from anemll_spec.chart.source import Options  # noqa: E402


@pytest.fixture(scope="module")
def big(tmp_path_factory) -> tuple[Path, str]:
    """A run of two cases of 40,000 samples each: enough for DuckDB to aggregate a case
    on several threads (a store of 33,000 samples already did)."""
    from anemll_spec.store import append_case, begin_run, finish_run

    path = tmp_path_factory.mktemp("big") / "s.duckdb"
    run_id = begin_run(path, {"spec_name": "big", "command": "synthetic"}, syn.LINUX_HOST)
    for idx, ms in enumerate((0.09, 0.2)):
        wall = syn.samples_ns(ms, 40_000, idx)
        row = syn.case_row("big", wall, weight_bytes=1 << 20, backend="numpy",
                           compute_units=None, index=idx)  # fmt: skip
        append_case(path, run_id, row, wall)
    finish_run(path, run_id, "finished")
    return path, run_id


@pytest.fixture
def threads(monkeypatch):
    """Every store connection on 4 threads, as on a 4-core Mac, whatever cores run this."""
    import duckdb

    connect = duckdb.connect

    def four(*args, config=None, **kw):
        return connect(*args, config={**(config or {}), "threads": 4}, **kw)

    monkeypatch.setattr(duckdb, "connect", four)


def test_the_latency_chart_is_the_same_each_time(big, threads):
    """The latency chart's boxes carried avg(ms), a float sum in thread order: its last
    digits changed run to run in latency.vl.json (and .html), though it was never drawn."""
    path, _ = big
    drawn = {json.dumps(build_chart("latency", str(path), Options())) for _ in range(4)}
    assert len(drawn) == 1
    (boxes,) = [json.loads(d)["datasets"]["boxes"] for d in drawn]
    assert [b["n"] for b in boxes] == [40_000, 40_000]
    assert not any("mean_ms" in b for b in boxes)


def test_the_report_is_the_same_each_time(big, threads, tmp_path):
    """The report embeds the latency chart's data: 4 reports of one store gave 3 files."""
    from anemll_spec.chart.report import write_report

    path, run_id = big
    pages = [write_report(path, run_id, tmp_path / f"r{i}.html").read_bytes() for i in (1, 2)]
    assert pages[0] == pages[1]
    assert b"<h2>Cases (2)</h2>" in pages[0]
