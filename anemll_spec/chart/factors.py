"""Chip comparison: bandwidth and latency per chip with factors against a baseline chip.

The role of anemll-bench's chip comparison chart, drawn from the store's `chip_factors`
(published rows and measured runs, the user's own and imported or pushed ones, together). One row of panels per model, so
models never mix in a panel: the published tables' GB/s belong to llama_lm_head (fp16)
and their ms to llama_lm_head_lut6; the other figure of each is derived, drawn in a
lighter shade and labelled so.

Every factor is the view's (`chip_factors_vs`): the chart and the report never compute
one; they only say what it is against (`against`). `--by os` compares the OS versions
of each chip (measured runs only: the published tables name no OS version).
"""

from __future__ import annotations

from typing import Any

from anemll_spec.chart import style
from anemll_spec.chart.factors_draw import LABEL_CHARS, TITLE, chart, how, label_rows
from anemll_spec.chart.source import NoData, Options, fetch, where_sql
from anemll_spec.chart.style import fmt_factor, os_label
from anemll_spec.errors import InputError
from anemll_spec.store.factors import check_baseline
from anemll_spec.store.sqlparts import DERIVED_BASELINE
from anemll_spec.text import printable

KIND = "factors"
BY = ("chip", "os")

__all__ = [
    "KIND",
    "LABEL_CHARS",
    "TITLE",
    "against",
    "build",
    "chart",
    "factor_text",
    "how",
    "label_rows",
    "query",
]

# metric, value column, derived column, factor column, factor label column
METRICS = (
    ("bandwidth", "bandwidth_gbps", "bandwidth_derived", "bandwidth_factor", "bandwidth_factor_label"),
    ("latency", "latency_ms", "latency_derived", "inference_factor", "inference_factor_label"),
)  # fmt: skip
# Columns later versions of the view added; a store too old to have them (opened
# read-only, so not upgraded) reads them as NULL, and the chart words them itself.
OPTIONAL: tuple[str, ...] = ("os_name", "os_version", "provenance", "baseline_label")
OPTIONAL += tuple(m[4] for m in METRICS)
MEASURED = "NOT starts_with(source, 'published: ')"  # own, imported or pushed runs
LIKE_PUBLISHED = ("coreml", "CPU_AND_NE")  # how the published figures were measured


def view_columns(con, baseline: str) -> set[str]:
    cur = con.execute("SELECT * FROM chip_factors_vs(?) LIMIT 0", [baseline])
    return {d[0] for d in cur.description}


def query(con, opts: Options, run_id: str | None = None) -> list[dict[str, Any]]:
    """One row per (source, chip, OS, model, backend, compute units, metric), long format.

    Measured rows (`own`: own, imported or pushed runs, as `source` says) of another run
    than `run_id` (when given) are left out; `--where` applies to the columns of
    chip_factors. Each row gets `factor_label` and `against` (words), from the view.
    """
    have = view_columns(con, opts.baseline)
    extra = "".join(f", NULL::VARCHAR AS {c}" for c in OPTIONAL if c not in have)
    parts = [
        f"""SELECT *, '{metric}' AS metric, {col} AS value,
                   coalesce({derived}, false) AS derived, {factor} AS factor,
                   {label} AS view_factor_label
            FROM f WHERE {col} IS NOT NULL"""
        for metric, col, derived, factor, label in METRICS
    ]
    sql = f"""
    WITH f AS (
        SELECT *{extra} FROM chip_factors_vs(?)
        WHERE (? IS NULL OR model = ?) AND (? IS NULL OR NOT ({MEASURED}) OR run_id = ?)
          AND {where_sql(opts)}
    ),
    long AS ({" UNION ALL ".join(parts)})
    SELECT
        source, provenance, chip, model, backend, device, compute_units, os_name,
        os_version, metric, value, derived, factor, view_factor_label, latency_stat,
        baseline_chip, baseline_source, baseline_label, run_id,
        CASE metric WHEN 'bandwidth' THEN baseline_bandwidth_gbps
                    ELSE baseline_latency_ms END AS baseline_value,
        {MEASURED} AS own,
        CASE
            WHEN {MEASURED} THEN source || ': ' || chip
            -- one label per row of the panel pair: a chip with several published
            -- sources names its source, in both metrics alike, and so does one user's
            -- submitted run (an issue), which the PNG and SVG would otherwise show
            -- like a row of the results tables
            WHEN count(DISTINCT source) OVER (PARTITION BY model, chip, {MEASURED}) > 1
                OR source LIKE '%user submission%'
            THEN chip || ' · '
                || regexp_replace(replace(source, 'published: ', ''), '\\s*\\(.*$', '')
            ELSE chip
        END AS label,
        CASE metric WHEN 'bandwidth' THEN 'GB/s' ELSE 'ms' END AS unit
    FROM long
    -- a total order: rows of equal value come out the same way each time, and so do
    -- the files drawn from them
    ORDER BY model, metric, value, label, source, os_version, backend, compute_units, run_id
    """
    rows = fetch(con, sql, [opts.baseline, opts.model, opts.model, run_id, run_id])
    for r in rows:
        r["os"] = os_label(r)
        r["against"] = against(r)
        r["factor_label"] = factor_text(r)
    return rows


def against(row: dict[str, Any]) -> str | None:
    """What a row's factor is against, in words: the view's `baseline_label` ('M1 Max
    (published, Core ML ANE)'); for a view too old to have it, the same words from
    `baseline_source` (by the store's rule, a baseline from the row's own source has the
    row's backend, device and compute units; any other is a published figure)."""
    if row.get("baseline_label"):
        return row["baseline_label"]
    src = row.get("baseline_source")
    if not src:
        return None
    what = "published, Core ML ANE" if src.startswith("published") else f"{src}, {how(row)}"
    return f"{row.get('baseline_chip')} ({what})"


def factor_text(row: dict[str, Any]) -> str:
    """The label drawn beside a bar: the view's factor label and, for a measured row,
    what it is against (a published row's factor is against the baseline chip's
    published figure: the subtitle says so once, and the tooltip names the table)."""
    flags = ["derived"] if row.get("derived") else []
    if row.get("factor") is None:
        text = "no baseline"
    else:
        text = row.get("view_factor_label") or fmt_factor(row["factor"])
        if flags and text.endswith(DERIVED_BASELINE):  # said once, beside the bar's flag
            text, flags = text.removesuffix(DERIVED_BASELINE), [*flags, "derived baseline"]
        if row.get("own"):
            text += f" vs {row['against']}"
    return text + (f" ({', '.join(flags)})" if flags else "")


def known_models(con) -> list[str]:
    """Models with chip results (published ones first), for 'no such model' messages."""
    rows = fetch(
        con,
        f"""SELECT model, bool_or(NOT ({MEASURED})) AS published FROM chip_factors
           GROUP BY model ORDER BY published DESC, model""",
    )
    return [r["model"] for r in rows]


def no_rows(con, opts: Options) -> NoData:
    """The error for an empty chart: for an unknown --model, the models there are."""
    msg = f"no chip results to compare ({opts.describe()})"
    models = known_models(con)
    if opts.model and opts.model not in models:
        shown = ", ".join(models[:20]) + (", ..." if len(models) > 20 else "")
        return NoData(
            f"{msg}: no model of that name has chip results; models: {printable(shown)}"
            if models
            else f"{msg}: the store has no chip results at all"
        )
    return NoData(f"{msg}: the store has no published or measured rows that pass the filters")


def like_published_first(rows: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], str | None]:
    """The default rows of the chart (and of the report's): of a chip's measured rows
    (per source, OS version and model), the one measured like the published figures
    (Core ML on the Neural Engine) where there is one; a chip without one keeps every
    row it has (a Linux numpy run is shown). Returns (rows, a note of what is hidden)."""

    def key(r):
        return (r["source"], r["chip"], r.get("os"), r["model"])

    def like(r):
        return (r["backend"], r["compute_units"]) == LIKE_PUBLISHED

    has_like = {key(r) for r in rows if r["own"] and like(r)}
    hidden = {(*key(r), how(r)) for r in rows if r["own"] and not like(r) and key(r) in has_like}
    if not hidden:
        return rows, None
    kept = [r for r in rows if not (r["own"] and not like(r) and key(r) in has_like)]
    return kept, (
        f"Not shown: {len(hidden)} measured row(s) of other backends or compute units of "
        "chips that have a Core ML ANE row (the published figures' kind); any --where "
        "replaces this default, e.g. --where \"compute_units <> 'CPU_AND_NE'\"."
    )


def build(con, opts: Options, run_id: str | None = None) -> dict[str, Any]:
    """The Vega-Lite spec (a grid: one row per model, bandwidth | latency)."""
    if opts.by not in BY:
        raise InputError(f"--by {opts.by!r}: choose one of {', '.join(BY)}")
    if run_id is None and opts.runs:  # a prefix, 'latest' or 'previous', as elsewhere
        from anemll_spec.store.lookup import resolve_run

        run_id = resolve_run(con, opts.runs[0])
    rows = query(con, opts, run_id)
    if not any(r["baseline_source"] for r in rows):
        check_baseline(con, opts.baseline)  # no factor at all: maybe a misspelt chip
    notes = []
    if run_id and not any(r["own"] and r["run_id"] == run_id for r in rows):
        notes.append(
            f"Not shown: run {run_id} has no row in chip_factors, which holds each chip's "
            "latest run of a model (a later run replaced it) with something to compare; "
            f"case_factors_vs('{opts.baseline}') has its factors (anemll-spec query)."
        )
    if opts.by == "os":
        # the published tables name no OS: only measured rows can be compared across versions
        n_pub = len({r["label"] for r in rows if not r["own"]})
        rows = [r for r in rows if r["own"]]
        if n_pub:
            notes.append("Published rows are left out: they record no OS version.")
        if not rows:
            raise NoData(
                f"no measured runs to compare across OS versions ({opts.describe()}): run "
                "`anemll-spec bench` on each OS version first"
            )
    if not opts.where:  # any --where replaces this default
        rows, note = like_published_first(rows)
        notes += [note] if note else []
    if opts.by != "os" and not opts.model:
        # By default, the models there is something to compare with (published ones).
        published = {r["model"] for r in rows if not r["own"]}
        hidden = sorted({r["model"] for r in rows} - published)
        if published and hidden:
            rows = [r for r in rows if r["model"] in published]
            notes.append(
                f"Not shown: {len(hidden)} model(s) without published results "
                f"(e.g. {hidden[0]}); pick one with --model."
            )
    if not rows:
        raise no_rows(con, opts)
    return style.drawn_runs(chart(rows, opts, notes), run_id)
