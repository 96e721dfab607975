"""A Mac's Energy Mode (pmset `powermode`, v6's hosts.energy_mode) from capture to what
users read: the results view, `share`'s host line, the report's host table and `info`.
Before v6 a Mac with High Power Mode stored neither its mode nor Low Power Mode."""

from __future__ import annotations

import html
import re
from pathlib import Path

import duckdb
import numpy as np
from fixtures.store.synth import case, host, run, samples_ns

from anemll_spec import host as host_mod
from anemll_spec.chart.report import write_report
from anemll_spec.store import append_case, begin_run, finish_run
from anemll_spec.store.connection import open_store
from anemll_spec.store.share import share_markdown

FIXTURES = Path(__file__).parent / "fixtures" / "host"


def _store(tmp_path: Path, **over) -> tuple[Path, str]:
    store = tmp_path / "s.duckdb"
    run_id = begin_run(store, run(), host(**over))
    wall = samples_ns(np.random.default_rng(3), 20, 5.0)
    append_case(store, run_id, case(wall=wall), wall)
    finish_run(store, run_id, "finished")
    return store, run_id


def test_a_high_power_macs_capture_keeps_its_mode_and_low_power_mode():
    """The M4 Max fixture's `pmset -g` shows `powermode 2` alone, as such Macs do."""
    text = (FIXTURES / "m4max_pmset_g.txt").read_text()
    assert "lowpowermode" not in text and re.search(r"^ powermode\s+2$", text, re.M)
    h = host_mod.macos_fields({}, {}, {}, host_mod.parse_pmset_settings(text), {})
    assert (h["energy_mode"], h["low_power_mode"]) == ("high power", False)


def test_the_mode_reaches_the_results_view_share_and_the_report(tmp_path):
    store, run_id = _store(tmp_path, energy_mode="high power", low_power_mode=False)
    con = duckdb.connect(str(store), read_only=True)
    got = con.execute("SELECT DISTINCT energy_mode, low_power_mode FROM results").fetchall()
    con.close()
    assert got == [("high power", False)]
    con = open_store(store, read_only=True)
    try:
        md = share_markdown(con, run_id, baseline="M1 Max")
    finally:
        con.close()
    host_line = next(ln for ln in md.splitlines() if ln.startswith("**Host**: "))
    parts = host_line.removeprefix("**Host**: ").split("; ")
    assert "Energy Mode high power" in parts and "Low Power Mode off" in parts
    page = write_report(store, run_id, tmp_path / "r.html").read_text()
    pairs = dict(re.findall(r"<tr><th>([^<]*)</th><td>([^<]*)</td></tr>", page))
    assert html.unescape(pairs["energy mode"]) == "high power"
    assert pairs["low power mode"] == "no"


def test_a_mac_without_the_mode_shows_none(tmp_path):
    store, run_id = _store(tmp_path, low_power_mode=True)
    con = open_store(store, read_only=True)
    try:
        md = share_markdown(con, run_id, baseline="M1 Max")
    finally:
        con.close()
    assert "Energy Mode" not in md and "Low Power Mode on" in md
    page = write_report(store, run_id, tmp_path / "r.html").read_text()
    assert "<th>energy mode</th>" not in page


def test_info_shows_a_macs_mode(monkeypatch, capsys):
    """`info` on the M4 Max fixture's `pmset -g` (parsed by host.py's own parsers; the
    rest of the capture is this host's): the mode beside Low Power Mode."""
    from anemll_spec.cli import main

    text = (FIXTURES / "m4max_pmset_g.txt").read_text()
    mac = host_mod.macos_fields({}, {}, {}, host_mod.parse_pmset_settings(text), {})
    real = host_mod.capture
    monkeypatch.setattr(host_mod, "capture", lambda: {**real(), **mac})
    assert main(["info"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert "low power mode: no" in lines and "energy mode:    high power" in lines
