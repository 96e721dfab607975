"""Charts drawn from the store (Altair / Vega-Lite), one module per kind, and the report.

Import-light on purpose: altair, duckdb and vl-convert are imported inside the
functions that draw, so `anemll-spec --help` stays fast.

Every kind module exposes KIND, TITLE, HELP and `build(con, opts) -> Vega-Lite dict`
(compare: `build_from(target, con_factory, opts)`, since it reads both runs' samples
through anemll_spec.compare), raising `source.NoData` when nothing is left to draw.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

# kind -> one-line description (kept here so the CLI can list kinds without imports)
KINDS: dict[str, str] = {
    "factors": "bandwidth (GB/s) and latency (ms) per chip (--by os: per OS version), factors vs a baseline chip",
    "latency": "distribution of the latency samples of each case (box plus points)",
    "timeline": "latency against iteration index per case (warm-up, throttling)",
    "sweep": "a metric against a swept parameter, one line (or points, if categorical) per series",
    "placement": "share of ops and of estimated cost per device, per compute unit",
    "compare": "per-case ratio of medians (run B / run A) with its 95% CI",
    "energy": "inferences per joule and mJ per inference (by rail) per chip, factors vs a baseline",
    "sustained": "a sustained run's latency and power on one time axis, windows and verdict",
}


# The sweep chart's metrics (each one's SQL is in chart.sweep.METRICS) and its default,
# here so that the CLI can offer them without importing the chart.
SWEEP_METRICS = ("bandwidth_gbps", "median_ms", "tflops", "throughput_ips")
DEFAULT_SWEEP_METRIC = "bandwidth_gbps"


def module(kind: str):
    if kind not in KINDS:
        from anemll_spec.errors import InputError

        raise InputError(f"unknown chart kind {kind!r}; choose one of {', '.join(KINDS)}")
    return importlib.import_module(f"anemll_spec.chart.{kind}")


def build_chart(kind: str, target: str | None, opts) -> dict[str, Any]:
    """The Vega-Lite spec of one chart kind over the store at `target`."""
    from anemll_spec.chart.source import check_filter, connect

    check_filter(opts.where)  # refuse a bad filter before touching the store
    mod = module(kind)
    if kind == "compare":
        return mod.build_from(target, lambda: connect(target), opts)
    con = connect(target)
    try:
        return mod.build(con, opts)
    finally:
        con.close()


def write_chart(kind: str, target: str | None, opts, out_dir: Path) -> dict[str, Path]:
    """Draw one chart and write it as HTML, PNG, SVG and Vega-Lite JSON into `out_dir`."""
    from anemll_spec.chart import render

    spec = build_chart(kind, target, opts)
    return render.write_chart(spec, Path(out_dir), kind, f"anemll-spec {kind}")
