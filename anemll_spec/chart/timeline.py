"""Latency against iteration index, one panel per case: warm-up and throttling show up
as a slope or a step. Points are thinned evenly by index; the line is the median of
each of ~60 consecutive bins, computed in DuckDB over every sample."""

from __future__ import annotations

from typing import Any

from anemll_spec.chart import robust, style
from anemll_spec.chart.robust import Clip, clip_range
from anemll_spec.chart.source import NoData, Options, fetch, pick_run, selected_cases_sql

KIND = "timeline"
TITLE = "Latency over the run"
NEEDS = "n_samples > 0"
MAX_PANELS = 12
BINS = 60  # at most this many bins per case...
MIN_BIN = 5  # ...of at least this many samples (a line through every point hides them)
MAX_CLIPPED = 500  # samples beyond a clipped axis marked per case, at most (the farthest)


def query(
    con, opts: Options, run_id: str
) -> tuple[list[dict], list[dict], int, dict[str, Clip | None]]:
    """(thinned points, binned medians, number of matching cases, clipped y range per
    case label: None where nothing is clipped).

    A point beyond its panel's clipped axis (robust.clip_range) has `clipped` +1/-1 and
    `y_ms` at the axis' edge; those are kept whatever the thinning (the farthest
    MAX_CLIPPED a case), and `n_clipped` counts them all."""
    cases_sql, params = selected_cases_sql(opts, run_id, needs=NEEDS)
    picked = f"""(SELECT * FROM ({cases_sql}) ORDER BY case_index, label LIMIT {MAX_PANELS})"""
    n_cases = fetch(con, f"SELECT count(*) AS n FROM ({cases_sql})", params)[0]["n"]
    if not n_cases:
        return [], [], 0, {}
    clips = ranges(con, picked, params)
    bounds = [(k, c.lo, c.hi) for k, c in clips.items() if c]
    per_case = max(50, opts.max_points // min(n_cases, MAX_PANELS))
    labels, los, his = (list(x) for x in zip(*bounds, strict=True)) if bounds else ([], [], [])
    points = fetch(
        con,
        f"""
        WITH sel AS {picked},
        b AS (SELECT unnest(?::VARCHAR[]) AS label, unnest(?::DOUBLE[]) AS lo,
                     unnest(?::DOUBLE[]) AS hi),
        s AS (SELECT sel.label, sel.n_samples, x.idx, x.wall_ns / 1e6 AS ms,
                     CASE WHEN x.wall_ns / 1e6 > b.hi THEN 1
                          WHEN x.wall_ns / 1e6 < b.lo THEN -1 ELSE 0 END AS clipped,
                     coalesce((b.lo + b.hi) / 2, 0) AS mid
              FROM samples x JOIN sel ON x.case_id = sel.case_id
              LEFT JOIN b ON b.label = sel.label),
        -- a sum, not count(*) FILTER: DuckDB 1.5 evaluates a filtered window aggregate
        -- row by row over the partition (112 s for a case of 300,000 samples)
        m AS (SELECT *, sum(CAST(clipped <> 0 AS INTEGER)) OVER (PARTITION BY label)
                            AS n_clipped,
                     row_number() OVER (PARTITION BY label, clipped <> 0
                                        ORDER BY abs(ms - mid) DESC, idx) AS far
              FROM s)
        SELECT label, idx, ms, clipped, n_clipped FROM m
        WHERE idx % greatest(1, CAST(ceil(n_samples / ?) AS INTEGER)) = 0
           OR (clipped <> 0 AND far <= {MAX_CLIPPED})
        ORDER BY label, idx
        """,
        [*params, labels, los, his, float(per_case)],
    )
    for p in points:
        c = clips.get(p["label"])
        p["y_ms"] = {1: c.hi_edge, -1: c.lo_edge}.get(p["clipped"]) if c else None
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
    return points, bins, n_cases, clips


def ranges(con, picked: str, params: list) -> dict[str, Clip | None]:
    """Per panel (case label): its clipped y range, or None when nothing is clipped."""
    rows = fetch(
        con,
        f"""WITH sel AS {picked}
            SELECT sel.label, quantile_cont(x.wall_ns / 1e6, 0.25) AS q1,
                   median(x.wall_ns / 1e6) AS median,
                   quantile_cont(x.wall_ns / 1e6, 0.75) AS q3,
                   min(x.wall_ns) / 1e6 AS min_ms, max(x.wall_ns) / 1e6 AS max_ms
            FROM samples x JOIN sel ON x.case_id = sel.case_id GROUP BY sel.label""",
        params,
    )
    return {r["label"]: clip_range([r]) for r in rows}


def build(con, opts: Options) -> dict[str, Any]:
    run_id = pick_run(con, opts, needs=NEEDS)
    points, bins, n_cases, clips = query(con, opts, run_id)
    if not points:
        raise NoData(f"no latency samples to draw in run {run_id} ({opts.describe(run=False)})")
    return style.drawn_runs(chart(points, bins, n_cases, run_id, opts, clips), run_id)


def chart(
    points, bins, n_cases: int, run_id: str, opts: Options, clips: dict | None = None
) -> dict[str, Any]:
    """`clips`: per case label, its clipped y range (robust.Clip) or None."""
    import altair as alt

    clips = clips or {}
    x = alt.X("idx:Q", title="iteration (timed call index)")
    tip = [
        alt.Tooltip("label:N", title="case"),
        alt.Tooltip("idx:Q", title="iteration"),
        alt.Tooltip("ms:Q", title="latency (ms)", format=".4f"),
    ]
    dots = (
        alt.Chart(style.named("samples"))
        .mark_circle(size=10, opacity=0.4, color=style.OKABE_ITO[0])
        .encode(x=x, y=alt.Y("ms:Q", title="latency (ms)"), tooltip=tip)
        .properties(name="samples")
    )
    beyond = (
        alt.Chart(style.named("samples"))
        .mark_point(shape="triangle-up", filled=True, size=40, color=style.CLIPPED_COLOR)
        .encode(
            x=x,
            y=alt.Y("y_ms:Q"),
            shape=alt.Shape(
                "clipped:N",
                scale=alt.Scale(domain=[1, -1], range=["triangle-up", "triangle-down"]),
                legend=None,
            ),
            tooltip=tip,
        )
        .properties(name="clipped")
    )
    line = (
        alt.Chart(style.named("bins"))
        .mark_line(color=style.OKABE_ITO[5], strokeWidth=2, clip=True)
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
    n_clipped = drawn = 0
    for label in sorted({p["label"] for p in points}):
        keep = alt.FieldEqualPredicate(field="label", equal=label)
        clip = clips.get(label)
        inside = alt.FieldEqualPredicate(field="clipped", equal=0)
        layers = [dots.transform_filter(keep).transform_filter(inside)]
        subtitle = ""
        if clip:
            n = next(p["n_clipped"] for p in points if p["label"] == label)
            m = sum(1 for p in points if p["label"] == label and p["clipped"])
            n_clipped, drawn = n_clipped + n, drawn + m
            subtitle = f"y clipped to {clip.lo:.4g}–{clip.hi:.4g} ms: {n:,} sample(s) beyond"
            subtitle += f", {m:,} of them drawn" if m < n else ""
            scale = alt.Scale(domain=clip.domain, nice=False, zero=False)
            layers = [
                layers[0].encode(y=alt.Y("ms:Q", title="latency (ms)", scale=scale)),
                beyond.transform_filter(keep).transform_filter(
                    alt.FieldOneOfPredicate(field="clipped", oneOf=[-1, 1])
                ),
            ]
        else:
            layers[0] = layers[0].encode(
                y=alt.Y("ms:Q", title="latency (ms)", scale=alt.Scale(zero=False))
            )
        layers.append(line.transform_filter(keep))
        panels.append(
            style.part(
                alt.layer(*layers).properties(
                    title=alt.TitleParams(
                        label, subtitle=subtitle or alt.Undefined, fontSize=12, limit=560
                    ),
                    width=560,
                    height=150,
                )
            )
        )
    clipped_words = (
        ""
        if not n_clipped
        else f" Clipped panels (quartiles ± {robust.FENCE:g} IQR) draw the {n_clipped:,} "
        "sample(s) beyond as triangles at the edge (tooltip: real value)."
        if drawn >= n_clipped
        else f" Clipped panels (quartiles ± {robust.FENCE:g} IQR): {n_clipped:,} sample(s) "
        f"beyond, {drawn:,} of them (the farthest, and those of the thinning) drawn as "
        "triangles at the edge (tooltip: real value)."
    )
    return style.concat(
        "vconcat",
        panels,
        spacing=24,
        title=style.title(
            f"{TITLE}: latency against iteration — run {run_id}",
            "Dots: samples (thinned evenly by index for long runs); orange line: median of "
            f"consecutive bins (up to {BINS}). A rising line is throttling, a falling start "
            "warm-up." + clipped_words,
            f"Filters: {opts.describe()}.{more}",
        ),
        datasets={"samples": points, "bins": bins},
        description=f"latency timeline of run {run_id}",
    )
