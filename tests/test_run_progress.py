"""Progress display: live status line on a TTY, plain lines otherwise; metrics documented."""

from __future__ import annotations

import io

from conftest import ROOT

from anemll_spec import progress
from anemll_spec.progress import Progress
from anemll_spec.spec.run_section import Run

RUN = Run(iterations=300, max_time_s=60)


def test_plain_lines_without_a_tty(monkeypatch):
    """Logs get phase lines, and the status line at most every PLAIN_EVERY_S seconds: a
    long case is never silent, and there is no per-sample noise."""
    clock = [1000.0]
    monkeypatch.setattr(progress.time, "monotonic", lambda: clock[0])
    out = io.StringIO()
    p = Progress(out)  # StringIO is not a TTY
    assert not p.live
    p.case(1, 3, "tiny")
    p.phase("build", "0.4 s")
    p.samples("numpy", 10, 1.5, 0.02, RUN)  # right after a phase line: not yet due
    clock[0] += progress.PLAIN_EVERY_S
    p.samples("numpy", 47, 1.5, 5.1, RUN)
    clock[0] += 1.0
    p.samples("numpy", 50, 1.5, 6.1, RUN)  # within the period: dropped
    p.note("  numpy: median 1.500 ms")
    p.close()
    lines = out.getvalue().splitlines()
    assert lines[:2] == ["[1/3] tiny  start", "[1/3] tiny  build  0.4 s"]
    assert lines[2].startswith("[1/3] tiny  numpy  timing 47/300 it  median 1.500 ms  5.1/60 s")
    assert lines[3:] == ["  numpy: median 1.500 ms"]
    assert "\r" not in out.getvalue()


def test_live_status_line_shows_totals_elapsed_and_etas(monkeypatch):
    clock = [1000.0]
    monkeypatch.setattr(progress.time, "monotonic", lambda: clock[0])
    out = io.StringIO()
    p = Progress(out, live=True)
    p.begin([100.0, 100.0, 100.0, 100.0, 100.0])
    p.case(1, 5, "head")
    clock[0] += 30
    p.case(2, 5, "head")  # the first case took 30 s: later ones are estimated so
    clock[0] += 1
    p.samples("coreml/CPU_AND_NE", 120, 8.743, 1.05, RUN)
    text = out.getvalue()
    # 180 calls left at 8.743 ms = 1.6 s (under the 59 s left of max_time_s); 3 cases of 30 s
    assert "[2/5] head  coreml/CPU_AND_NE  timing 120/300 it  median 8.743 ms  1.1/60 s" in text
    assert text.endswith("ETA case 2 s, run 92 s") or text.endswith("ETA case 2 s, run 2 min")
    assert "\n" not in text  # one status line, rewritten
    p.note("result")
    assert "result\n" in out.getvalue()
    assert out.getvalue().endswith("run 2 min")  # status line restored under the note
    p.close()
    assert out.getvalue().endswith("\r\x1b[K")


def test_seconds_read_as_people_say_them():
    assert [progress.seconds(s) for s in (0.4, 42, 95, 3600, 9000)] == [
        "0 s",
        "42 s",
        "2 min",
        "60 min",
        "2.5 h",
    ]
    # a bound rounds up: 131 s read "at most 2 min" (stop 27)
    assert [progress.seconds(s, up=True) for s in (0.4, 42, 131, 3600, 9000, 9001)] == [
        "1 s",
        "42 s",
        "3 min",
        "60 min",
        "2.5 h",
        "2.6 h",
    ]


def test_every_stored_metric_is_documented():
    from anemll_spec.store import schema

    doc = (ROOT / "docs" / "metrics.md").read_text()
    units = {"ms", "ms/s", "ratio", "1/s", "GB/s (1e9)", "TFLOP/s"}
    metric_cols = [
        c.name
        for c in schema.CASES.columns
        if c.unit in units or c.name.startswith("verify_") or c.name in ("throttled", "noisy")
    ]
    assert len(metric_cols) > 25
    missing = [c for c in metric_cols if c not in doc]
    assert not missing, missing
