"""Latency distribution per case: Tukey box (quartiles, 1.5 IQR whiskers) plus points.

Quartiles and whiskers are computed in DuckDB over every sample; the points are a
deterministic subsample (by a hash of the sample index), so a run of millions of
samples still hands Vega a few thousand rows.
"""

from __future__ import annotations

from typing import Any

from anemll_spec.chart import style
from anemll_spec.chart.source import NoData, Options, fetch, pick_run, selected_cases_sql

KIND = "latency"
TITLE = "Latency distribution"
NEEDS = "n_samples > 0"


def query(con, opts: Options, run_id: str) -> tuple[list[dict], list[dict]]:
    """(one summary row per case, subsampled sample points)."""
    cases_sql, params = selected_cases_sql(opts, run_id, needs=NEEDS)
    boxes = fetch(
        con,
        f"""
        WITH sel AS ({cases_sql}),
        s AS (SELECT sel.case_id, sel.label, x.wall_ns / 1e6 AS ms
              FROM samples x JOIN sel ON x.case_id = sel.case_id),
        q AS (SELECT case_id, any_value(label) AS label, count(*) AS n,
                     quantile_cont(ms, 0.25) AS q1, quantile_cont(ms, 0.5) AS median,
                     quantile_cont(ms, 0.75) AS q3, min(ms) AS min_ms, max(ms) AS max_ms,
                     avg(ms) AS mean_ms
              FROM s GROUP BY case_id),
        w AS (SELECT s.case_id,
                     min(s.ms) FILTER (WHERE s.ms >= q.q1 - 1.5 * (q.q3 - q.q1)) AS whisker_lo,
                     max(s.ms) FILTER (WHERE s.ms <= q.q3 + 1.5 * (q.q3 - q.q1)) AS whisker_hi
              FROM s JOIN q ON q.case_id = s.case_id GROUP BY s.case_id)
        SELECT q.*, w.whisker_lo, w.whisker_hi, sel.backend, sel.compute_units,
               sel.model_name, sel.spec_name, sel.ci_low_ms, sel.ci_high_ms
        FROM q JOIN sel ON sel.case_id = q.case_id JOIN w ON w.case_id = q.case_id
        ORDER BY q.median
        """,
        params,
    )
    if not boxes:
        return [], []
    per_case = max(20, opts.max_points // len(boxes))
    points = fetch(
        con,
        f"""
        WITH sel AS ({cases_sql})
        SELECT sel.label, x.idx, x.wall_ns / 1e6 AS ms,
               (hash(x.idx * 7919 + 13) % 1000) / 1000.0 - 0.5 AS jitter
        FROM samples x JOIN sel ON x.case_id = sel.case_id
        QUALIFY row_number() OVER (PARTITION BY x.case_id ORDER BY hash(x.idx)) <= ?
        """,
        [*params, per_case],
    )
    return boxes, points


def build(con, opts: Options) -> dict[str, Any]:
    run_id = pick_run(con, opts, needs=NEEDS)
    boxes, points = query(con, opts, run_id)
    if not boxes:
        raise NoData(f"no latency samples to draw in run {run_id} ({opts.describe()})")
    return chart(boxes, points, run_id, opts)


def chart(boxes: list[dict], points: list[dict], run_id: str, opts: Options) -> dict[str, Any]:
    import altair as alt

    order = [b["label"] for b in boxes]  # by median, fastest first
    y = alt.Y("label:N", title=None, sort=order, axis=alt.Axis(labelLimit=style.LABEL_LIMIT))
    x_title = "latency (ms, wall clock per predict call)"
    tip = [
        alt.Tooltip("label:N", title="case"),
        alt.Tooltip("n:Q", title="samples"),
        alt.Tooltip("median:Q", title="median (ms)", format=".4f"),
        alt.Tooltip("ci_low_ms:Q", title="95% CI low (ms)", format=".4f"),
        alt.Tooltip("ci_high_ms:Q", title="95% CI high (ms)", format=".4f"),
        alt.Tooltip("q1:Q", title="Q1 (ms)", format=".4f"),
        alt.Tooltip("q3:Q", title="Q3 (ms)", format=".4f"),
        alt.Tooltip("whisker_lo:Q", title="low whisker (ms)", format=".4f"),
        alt.Tooltip("whisker_hi:Q", title="high whisker (ms)", format=".4f"),
        alt.Tooltip("min_ms:Q", title="min (ms)", format=".4f"),
        alt.Tooltip("max_ms:Q", title="max (ms)", format=".4f"),
        alt.Tooltip("case_id:N", title="case (store)"),
    ]
    base = alt.Chart(style.named("boxes"), height=alt.Step(34), width=560)
    whiskers = base.mark_rule(color=style.NEUTRAL).encode(
        x=alt.X("whisker_lo:Q", title=x_title, scale=alt.Scale(zero=False)),
        x2="whisker_hi:Q",
        y=y,
        tooltip=tip,
    )
    box = (
        base.mark_bar(
            size=20, color=style.OKABE_ITO[4], opacity=0.6, stroke="#000000", strokeWidth=1
        )
        .encode(x="q1:Q", x2="q3:Q", y=y, tooltip=tip)
        .properties(name="boxes")
    )
    median = (
        base.mark_tick(size=20, thickness=2.5, color="#000000")
        .encode(x="median:Q", y=y, tooltip=tip)
        .properties(name="medians")
    )
    dots = (
        alt.Chart(style.named("points"))
        .mark_circle(size=9, opacity=0.35, color=style.OKABE_ITO[5])
        .encode(
            x="ms:Q",
            y=y,
            # yOffset counts from the top of the band (34 px): centre the jitter on the box
            yOffset=alt.YOffset("jitter:Q", scale=alt.Scale(domain=[-0.5, 0.5], range=[5, 29])),
            tooltip=[
                alt.Tooltip("label:N", title="case"),
                alt.Tooltip("idx:Q", title="sample index"),
                alt.Tooltip("ms:Q", title="latency (ms)", format=".4f"),
            ],
        )
        .properties(name="points")
    )
    n_total = sum(b["n"] for b in boxes)
    shown = len(points)
    sub = (
        f"Points: {shown:,} of {n_total:,} samples (a fixed subsample)."
        if shown < n_total
        else f"Points: all {n_total:,} samples."
    )
    # points first, so the box, whiskers and median are drawn over them
    layered = alt.layer(dots, whiskers, box, median).properties(
        title=style.title(
            f"{TITLE} per case — run {run_id}",
            "Box: quartiles; black tick: median; whiskers: 1.5 IQR (Tukey). " + sub,
            f"Filters: {opts.describe()}. Source: samples table (wall_ns).",
        )
    )
    return style.finish(
        layered,
        datasets={"boxes": boxes, "points": points},
        description=f"latency distribution of run {run_id}",
    )
