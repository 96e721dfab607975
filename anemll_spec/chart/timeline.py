"""Latency against iteration index, one panel per case: warm-up and throttling show up
as a slope or a step. Points are thinned evenly by index; the line is the median of
each of ~60 consecutive bins, computed in DuckDB over every sample."""

from __future__ import annotations

from typing import Any

from anemll_spec.chart import style
from anemll_spec.chart.source import NoData, Options, fetch, pick_run, selected_cases_sql

KIND = "timeline"
TITLE = "Latency over the run"
NEEDS = "n_samples > 0"
MAX_PANELS = 12
BINS = 60  # at most this many bins per case...
MIN_BIN = 5  # ...of at least this many samples (a line through every point hides them)


def query(con, opts: Options, run_id: str) -> tuple[list[dict], list[dict], int]:
    """(thinned points, binned medians, number of matching cases)."""
    cases_sql, params = selected_cases_sql(opts, run_id, needs=NEEDS)
    picked = f"""(SELECT * FROM ({cases_sql}) ORDER BY case_index, label LIMIT {MAX_PANELS})"""
    n_cases = fetch(con, f"SELECT count(*) AS n FROM ({cases_sql})", params)[0]["n"]
    if not n_cases:
        return [], [], 0
    per_case = max(50, opts.max_points // min(n_cases, MAX_PANELS))
    points = fetch(
        con,
        f"""
        WITH sel AS {picked},
        s AS (SELECT sel.label, sel.n_samples, x.idx, x.wall_ns / 1e6 AS ms
              FROM samples x JOIN sel ON x.case_id = sel.case_id)
        SELECT label, idx, ms FROM s
        WHERE idx % greatest(1, CAST(ceil(n_samples / ?) AS INTEGER)) = 0
        ORDER BY label, idx
        """,
        [*params, float(per_case)],
    )
    bins = fetch(
        con,
        f"""
        WITH sel AS {picked},
        s AS (SELECT sel.label, x.idx, x.wall_ns / 1e6 AS ms,
                     greatest({MIN_BIN}, CAST(ceil(sel.n_samples / {BINS}.0) AS INTEGER))
                         AS width
              FROM samples x JOIN sel ON x.case_id = sel.case_id)
        SELECT label, min(idx) AS idx_from, max(idx) AS idx_to,
               (min(idx) + max(idx)) / 2.0 AS idx_mid, median(ms) AS median_ms, count(*) AS n
        FROM s GROUP BY label, idx // width ORDER BY label, idx_mid
        """,
        params,
    )
    return points, bins, n_cases


def build(con, opts: Options) -> dict[str, Any]:
    run_id = pick_run(con, opts, needs=NEEDS)
    points, bins, n_cases = query(con, opts, run_id)
    if not points:
        raise NoData(f"no latency samples to draw in run {run_id} ({opts.describe()})")
    return chart(points, bins, n_cases, run_id, opts)


def chart(points, bins, n_cases: int, run_id: str, opts: Options) -> dict[str, Any]:
    import altair as alt

    x = alt.X("idx:Q", title="iteration (timed call index)")
    dots = (
        alt.Chart(style.named("samples"))
        .mark_circle(size=10, opacity=0.4, color=style.OKABE_ITO[0])
        .encode(
            x=x,
            y=alt.Y("ms:Q", title="latency (ms)", scale=alt.Scale(zero=False)),
            tooltip=[
                alt.Tooltip("label:N", title="case"),
                alt.Tooltip("idx:Q", title="iteration"),
                alt.Tooltip("ms:Q", title="latency (ms)", format=".4f"),
            ],
        )
        .properties(name="samples")
    )
    line = (
        alt.Chart(style.named("bins"))
        .mark_line(color=style.OKABE_ITO[5], strokeWidth=2)
        .encode(
            x=alt.X("idx_mid:Q"),
            y=alt.Y("median_ms:Q"),
            tooltip=[
                alt.Tooltip("label:N", title="case"),
                alt.Tooltip("idx_from:Q", title="from iteration"),
                alt.Tooltip("idx_to:Q", title="to iteration"),
                alt.Tooltip("median_ms:Q", title="bin median (ms)", format=".4f"),
                alt.Tooltip("n:Q", title="samples in bin"),
            ],
        )
        .properties(name="binned_median")
    )
    shown = min(n_cases, MAX_PANELS)
    more = (
        f" Showing {shown} of {n_cases} cases; narrow with --where or --model."
        if n_cases > shown
        else ""
    )
    panels = []
    for label in sorted({p["label"] for p in points}):
        keep = alt.FieldEqualPredicate(field="label", equal=label)
        panels.append(
            style.part(
                alt.layer(dots.transform_filter(keep), line.transform_filter(keep)).properties(
                    title=alt.TitleParams(label, fontSize=12, limit=560),
                    width=560,
                    height=150,
                )
            )
        )
    return style.concat(
        "vconcat",
        panels,
        spacing=24,
        title=style.title(
            f"{TITLE}: latency against iteration — run {run_id}",
            "Dots: samples (thinned evenly by index for long runs); orange line: median of "
            f"consecutive bins (up to {BINS}). A rising line is throttling, a falling start "
            "warm-up.",
            f"Filters: {opts.describe()}.{more}",
        ),
        datasets={"samples": points, "bins": bins},
        description=f"latency timeline of run {run_id}",
    )
