"""Latency distribution per case: Tukey box (quartiles, 1.5 IQR whiskers) plus points.

Quartiles and whiskers are computed in DuckDB over every sample; the points are a
deterministic subsample (by a hash of the sample index), so a run of millions of
samples still hands Vega a few thousand rows.
"""

from __future__ import annotations

from typing import Any

from anemll_spec.chart import style
from anemll_spec.chart.robust import clip_range
from anemll_spec.chart.source import NoData, Options, fetch, pick_run, selected_cases_sql

KIND = "latency"
TITLE = "Latency distribution"
NEEDS = "n_samples > 0"
MAX_CLIPPED = 500  # samples beyond a clipped axis marked per case, at most (the farthest)


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
                     quantile_cont(ms, 0.75) AS q3, min(ms) AS min_ms, max(ms) AS max_ms
              FROM s GROUP BY case_id),
        w AS (SELECT s.case_id,
                     min(s.ms) FILTER (WHERE s.ms >= q.q1 - 1.5 * (q.q3 - q.q1)) AS whisker_lo,
                     max(s.ms) FILTER (WHERE s.ms <= q.q3 + 1.5 * (q.q3 - q.q1)) AS whisker_hi
              FROM s JOIN q ON q.case_id = s.case_id GROUP BY s.case_id)
        SELECT q.*, w.whisker_lo, w.whisker_hi, sel.backend, sel.compute_units,
               sel.model_name, sel.spec_name, sel.ci_low_ms, sel.ci_high_ms
        FROM q JOIN sel ON sel.case_id = q.case_id JOIN w ON w.case_id = q.case_id
        ORDER BY q.median, q.label, q.case_id
        """,
        params,
    )
    if not boxes:
        return [], []
    per_case = max(20, opts.max_points // len(boxes))
    clip = clip_range(boxes, log_axis(boxes))
    lo, hi = (clip.lo, clip.hi) if clip else (float("-inf"), float("inf"))
    # a fixed subsample, plus every sample beyond a clipped axis (up to MAX_CLIPPED a
    # case), so each clipped sample is marked, not silently left out
    points = fetch(
        con,
        f"""
        WITH sel AS ({cases_sql}),
        s AS (SELECT sel.label, x.case_id, x.idx, x.wall_ns / 1e6 AS ms,
                     (hash(x.idx::BIGINT * 7919 + 13) % 1000) / 1000.0 - 0.5 AS jitter,
                     row_number() OVER (PARTITION BY x.case_id ORDER BY hash(x.idx)) AS pick
              FROM samples x JOIN sel ON x.case_id = sel.case_id)
        SELECT label, idx, ms, jitter,
               CASE WHEN ms > ? THEN 1 WHEN ms < ? THEN -1 ELSE 0 END AS clipped
        FROM s
        WHERE pick <= ? OR ms > ? OR ms < ?
        QUALIFY pick <= ? OR row_number() OVER (PARTITION BY case_id, ms BETWEEN ? AND ?
                                                ORDER BY abs(ms - ?) DESC, idx) <= {MAX_CLIPPED}
        ORDER BY label, idx
        """,
        [*params, hi, lo, per_case, hi, lo, per_case, lo, hi, (lo + hi) / 2 if clip else 0.0],
    )
    for p in points:
        p["x_ms"] = {1: clip.hi_edge, -1: clip.lo_edge}.get(p["clipped"]) if clip else None
    return boxes, points


def log_axis(boxes: list[dict]) -> bool:
    """Cases whose bodies (whisker to whisker) span more than style.LOG_SPAN together."""
    return style.needs_log([b["whisker_lo"] for b in boxes] + [b["whisker_hi"] for b in boxes])


def n_clipped(con, opts: Options, run_id: str, clip) -> int:
    """Samples of the drawn cases beyond the clipped axis (all, not only those marked)."""
    cases_sql, params = selected_cases_sql(opts, run_id, needs=NEEDS)
    return fetch(
        con,
        f"""WITH sel AS ({cases_sql})
            SELECT count(*) AS n FROM samples x JOIN sel ON x.case_id = sel.case_id
            WHERE x.wall_ns / 1e6 > ? OR x.wall_ns / 1e6 < ?""",
        [*params, clip.hi, clip.lo],
    )[0]["n"]


def build(con, opts: Options) -> dict[str, Any]:
    run_id = pick_run(con, opts, needs=NEEDS)
    boxes, points = query(con, opts, run_id)
    if not boxes:
        raise NoData(f"no latency samples to draw in run {run_id} ({opts.describe(run=False)})")
    clip = clip_range(boxes, log_axis(boxes))
    spec = chart(boxes, points, run_id, opts, n_clipped(con, opts, run_id, clip) if clip else 0)
    return style.drawn_runs(spec, run_id)


def chart(
    boxes: list[dict], points: list[dict], run_id: str, opts: Options, clipped: int = 0
) -> dict[str, Any]:
    """`clipped`: how many samples lie beyond the clipped axis (when it is clipped)."""
    import altair as alt

    log = log_axis(boxes)
    clip = clip_range(boxes, log)

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
    scale = alt.Scale(zero=False, type="log" if log else "linear")
    if clip:
        scale = alt.Scale(
            domain=clip.domain, nice=False, zero=False, type="log" if log else "linear"
        )
    x_title += ", log scale" if log else ""
    whiskers = base.mark_rule(color=style.NEUTRAL).encode(
        x=alt.X("whisker_lo:Q", title=x_title, scale=scale),
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
    point_tip = [
        alt.Tooltip("label:N", title="case"),
        alt.Tooltip("idx:Q", title="sample index"),
        alt.Tooltip("ms:Q", title="latency (ms)", format=".4f"),
    ]
    # yOffset counts from the top of the band (34 px): centre the jitter on the box
    jitter = alt.YOffset("jitter:Q", scale=alt.Scale(domain=[-0.5, 0.5], range=[5, 29]))
    inside = alt.FieldEqualPredicate(field="clipped", equal=0)
    dots = (
        alt.Chart(style.named("points"))
        .transform_filter(inside)
        .mark_circle(size=9, opacity=0.35, color=style.OKABE_ITO[5])
        .encode(x="ms:Q", y=y, yOffset=jitter, tooltip=point_tip)
        .properties(name="points")
    )
    layers = [dots]
    if clip:
        beyond = (
            alt.Chart(style.named("points"))
            .transform_filter(alt.FieldOneOfPredicate(field="clipped", oneOf=[-1, 1]))
            .mark_point(shape="triangle-right", filled=True, size=45, color=style.CLIPPED_COLOR)
            .encode(x="x_ms:Q", y=y, yOffset=jitter, tooltip=point_tip)
            .properties(name="clipped")
        )
        layers.append(beyond)
    n_total = sum(b["n"] for b in boxes)
    shown = len(points)
    marked = sum(1 for p in points if p["clipped"])
    sub = (
        f"Points: {shown:,} of {n_total:,} samples (a fixed subsample"
        + (f", and {marked:,} beyond the clipped axis)." if clip and marked else ").")
        if shown < n_total
        else f"Points: all {n_total:,} samples."
    )
    # points first, so the box, whiskers and median are drawn over them
    layered = alt.layer(*layers, whiskers, box, median).properties(
        title=style.title(
            f"{TITLE} per case — run {run_id}",
            "Box: quartiles; black tick: median; whiskers: 1.5 IQR (Tukey). " + sub,
            clip.words(clipped, drawn=marked) if clip else "",
            f"Filters: {opts.describe()}. Source: samples table (wall_ns).",
        )
    )
    return style.finish(
        layered,
        datasets={"boxes": boxes, "points": points},
        description=f"latency distribution of run {run_id}",
    )
