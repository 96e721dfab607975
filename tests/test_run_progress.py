"""Progress display: live status line on a TTY, plain lines otherwise; metrics documented."""

from __future__ import annotations

import io

from conftest import ROOT

from anemll_spec.progress import Progress


def test_plain_lines_without_a_tty():
    out = io.StringIO()
    p = Progress(out)  # StringIO is not a TTY
    assert not p.live
    p.case(1, 3, "tiny")
    p.phase("build", "0.4 s")
    p.samples("numpy", 10, 1.5)  # no per-sample noise in logs
    p.note("  numpy: median 1.500 ms")
    p.close()
    assert out.getvalue().splitlines() == [
        "[1/3] tiny  start",
        "[1/3] tiny  build  0.4 s",
        "  numpy: median 1.500 ms",
    ]
    assert "\r" not in out.getvalue()


def test_live_status_line_is_rewritten_in_place():
    out = io.StringIO()
    p = Progress(out, live=True)
    p.case(2, 5, "head")
    p.samples("coreml/CPU_AND_NE", 120, 8.743)
    text = out.getvalue()
    assert "\r\x1b[K[2/5] head  coreml/CPU_AND_NE  timing  120 it  median 8.743 ms" in text
    assert "\n" not in text  # one status line, rewritten
    p.note("result")
    assert "result\n" in out.getvalue()
    assert out.getvalue().endswith("median 8.743 ms")  # status line restored under the note
    p.close()
    assert out.getvalue().endswith("\r\x1b[K")


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
