"""Chip comparison: bandwidth and latency per chip with factors against a baseline chip.

The role of anemll-bench's chip comparison chart, drawn from the store's `chip_factors`
(published rows and the user's own runs together). One row of panels per model, so
models never mix in a panel: the published tables' GB/s belong to llama_lm_head (fp16)
and their ms to llama_lm_head_lut6; the other figure of each is derived, drawn faded
and labelled so.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from anemll_spec.chart import style
from anemll_spec.chart.source import NoData, Options, fetch, where_sql
from anemll_spec.errors import InputError

KIND = "factors"
TITLE = "Chip comparison"

LABEL_CHARS = 40  # longer y labels are cut (the tooltip has them whole)

# Published models first, in the order of anemll-bench's tables.
MODEL_ORDER = ("llama_lm_head", "llama_lm_head_lut6")

METRICS = (
    # metric, value column, derived column, factor column, axis title
    (
        "bandwidth",
        "bandwidth_gbps",
        "bandwidth_derived",
        "bandwidth_factor",
        "bandwidth (GB/s, higher is better)",
    ),
    (
        "latency",
        "latency_ms",
        "latency_derived",
        "inference_factor",
        "latency (ms, lower is better)",
    ),
)


def query(con, opts: Options, run_id: str | None = None) -> list[dict[str, Any]]:
    """One row per (source, chip, model, backend, compute units, metric), long format.

    Own rows of another run than `run_id` (when given) are left out; `--where` applies to
    the columns of chip_factors.
    """
    parts = []
    for metric, col, derived, factor, _title in METRICS:
        parts.append(
            f"""SELECT *, '{metric}' AS metric, {col} AS value, coalesce({derived}, false)
                   AS derived, {factor} AS factor
                FROM f WHERE {col} IS NOT NULL"""
        )
    sql = f"""
    WITH f AS (
        SELECT * FROM chip_factors_vs(?)
        WHERE (? IS NULL OR model = ?) AND (? IS NULL OR source <> 'own' OR run_id = ?)
          AND {where_sql(opts)}
    ),
    long AS ({" UNION ALL ".join(parts)})
    SELECT
        source, chip, model, backend, compute_units, metric, value, derived, factor,
        latency_stat, baseline_chip, baseline_source, run_id,
        CASE metric WHEN 'bandwidth' THEN baseline_bandwidth_gbps
                    ELSE baseline_latency_ms END AS baseline_value,
        source = 'own' AS own,
        CASE WHEN source = 'own' THEN 'own run' ELSE 'published' END AS origin,
        CASE WHEN derived THEN 'derived' ELSE 'measured' END AS kind,
        CASE
            WHEN source = 'own' THEN 'own: ' || chip
            -- one label per row of the panel pair: a chip with several published
            -- sources names its source, in both metrics alike
            WHEN count(DISTINCT source) OVER (PARTITION BY model, chip, source = 'own') > 1
            THEN chip || ' · '
                || regexp_replace(replace(source, 'published: ', ''), '\\s*\\(.*$', '')
            ELSE chip
        END AS label,
        CASE WHEN factor IS NULL THEN 'no baseline'
             ELSE printf('%.1fx', factor) END
            || CASE WHEN derived THEN ' (derived)' ELSE '' END AS factor_label,
        CASE metric WHEN 'bandwidth' THEN 'GB/s' ELSE 'ms' END AS unit
    FROM long
    ORDER BY model, metric, value
    """
    return fetch(con, sql, [opts.baseline, opts.model, opts.model, run_id, run_id])


def check_baseline(con, baseline: str) -> None:
    """A baseline chip no row has would silently give 'no baseline' everywhere."""
    chips = [r["chip"] for r in fetch(con, "SELECT DISTINCT chip FROM chip_factors ORDER BY 1")]
    if chips and baseline not in chips:
        raise InputError(
            f"--baseline {baseline!r}: no chip of that name in the store; chips: "
            + ", ".join(map(repr, chips))
        )


def build(con, opts: Options, run_id: str | None = None) -> dict[str, Any]:
    """The Vega-Lite spec (a grid: one row per model, bandwidth | latency)."""
    rows = query(con, opts, run_id or (opts.runs[0] if opts.runs else None))
    if not any(r["baseline_source"] for r in rows):
        check_baseline(con, opts.baseline)  # no factor at all: maybe a misspelt chip
    notes = []
    if not opts.model:
        # By default, the models there is something to compare with (published ones).
        published = {r["model"] for r in rows if not r["own"]}
        hidden = sorted({r["model"] for r in rows} - published)
        if published and hidden:
            rows = [r for r in rows if r["model"] in published]
            notes.append(
                f"Not shown: {len(hidden)} model(s) without published results "
                f"(e.g. {hidden[0]}); pick one with --model."
            )
    if not opts.where and not opts.runs and run_id is None:
        # By default, own rows measured the way the published ones were (Core ML on the
        # Neural Engine); --where replaces this default.
        other = [r for r in rows if r["own"] and not _like_published(r)]
        if other:
            rows = [r for r in rows if not r["own"] or _like_published(r)]
            notes.append(
                f"Not shown: {len({_own_key(r) for r in other})} own result(s) of other "
                "backends/compute units (choose rows with --where, e.g. \"source = 'own'\")."
            )
    if not rows:
        raise NoData(
            f"no chip results to compare ({opts.describe()}): the store has no published "
            "or own rows of that model"
        )
    return chart(rows, opts, notes)


def label_rows(rows: list[dict[str, Any]]) -> list[str]:
    """Finish each row's y label and its `order`, in place; returns subtitle notes.

    Own labels name their backend and compute units only when the chart shows more than
    one kind (else the subtitle says it once). Labels longer than LABEL_CHARS are cut
    here, so Vega need not measure them (its label truncation measures text repeatedly,
    which costs most of a large chart's drawing time). Within a model, rows go by
    bandwidth (highest first), then latency (lowest first), the same in both panels.
    """
    notes = []
    kinds = {_how(r) for r in rows if r["own"]}
    for r in rows:
        if r["own"] and len(kinds) > 1:
            r["label"] += f" ({_how(r)})"
    if len(kinds) == 1:
        notes.append(f"Own runs: {next(iter(kinds))}.")
    short: dict[tuple[str, str], str] = {}
    for r in rows:
        key = (r["model"], r["label"])
        if key not in short:
            taken = {v for (m, _), v in short.items() if m == r["model"]}
            short[key] = _shorten(r["label"], taken)
    best: dict[tuple[str, str], tuple] = {}
    for r in rows:
        key = (r["model"], r["label"])
        bw, ms = best.get(key, (None, None))
        if r["metric"] == "bandwidth":
            bw = r["value"]
        else:
            ms = r["value"]
        best[key] = (bw, ms)
    ranked = sorted(
        best,
        key=lambda k: (k[0], best[k][0] is None, -(best[k][0] or 0.0), best[k][1] or 0.0, k[1]),
    )
    order = {k: i for i, k in enumerate(ranked)}
    for r in rows:
        key = (r["model"], r["label"])
        r["order"] = order[key]
        r["label"] = short[key]
    return notes


def _how(row: dict[str, Any]) -> str:
    return " ".join(x for x in (row["backend"], row["compute_units"]) if x)


def _shorten(label: str, taken: set[str]) -> str:
    """`label` cut to LABEL_CHARS with an ellipsis, kept distinct from `taken`."""
    if len(label) <= LABEL_CHARS and label not in taken:
        return label
    cut = label[: LABEL_CHARS - 1] + "…"
    n = 2
    while cut in taken:
        suffix = f"… #{n}"
        cut = label[: LABEL_CHARS - len(suffix)] + suffix
        n += 1
    return cut


def chart(rows: list[dict[str, Any]], opts: Options, notes: Sequence[str] = ()) -> dict[str, Any]:
    """The grid of panels over `rows` (from `query`, filtered); `notes` go in the subtitle."""
    import altair as alt

    notes = [*notes, *label_rows(rows)]

    present = {r["model"] for r in rows}
    models = [m for m in MODEL_ORDER if m in present] + sorted(present - set(MODEL_ORDER))
    data = style.named("factors")
    tooltip = [
        alt.Tooltip("chip:N", title="chip"),
        alt.Tooltip("model:N", title="model"),
        alt.Tooltip("value:Q", title="value", format=",.2f"),
        alt.Tooltip("unit:N", title="unit"),
        alt.Tooltip("kind:N", title="measured/derived"),
        alt.Tooltip("latency_stat:N", title="latency statistic"),
        alt.Tooltip("factor:Q", title=f"factor vs {opts.baseline}", format=".3f"),
        alt.Tooltip("baseline_value:Q", title=f"{opts.baseline} value", format=",.2f"),
        alt.Tooltip("baseline_source:N", title="baseline from"),
        alt.Tooltip("source:N", title="source"),
        alt.Tooltip("backend:N", title="backend"),
        alt.Tooltip("compute_units:N", title="compute units"),
        alt.Tooltip("run_id:N", title="run"),
    ]
    color = alt.Color(
        "origin:N",
        title="source",
        scale=alt.Scale(
            domain=["published", "own run"], range=[style.PUBLISHED_COLOR, style.OWN_COLOR]
        ),
    )
    opacity = alt.Opacity(
        "kind:N",
        title="value",
        scale=alt.Scale(domain=["measured", "derived"], range=[1.0, 0.4]),
    )
    grid = []
    for model in models:
        panels = []
        for metric, _col, _d, _f, axis_title in METRICS:
            if not any(r["model"] == model and r["metric"] == metric for r in rows):
                continue
            base = alt.Chart(
                data,
                title=alt.TitleParams(f"{model} — {metric}", fontSize=13),
                height=alt.Step(style.BAR_STEP),
                width=300,
            ).transform_filter(
                # field predicates, not expressions: a model name is data, never code
                alt.LogicalAndPredicate(
                    **{
                        "and": [
                            alt.FieldEqualPredicate(field="model", equal=model),
                            alt.FieldEqualPredicate(field="metric", equal=metric),
                        ]
                    }
                )
            )
            # One y scale per model row: a chip's bars line up across the two panels,
            # so its labels are drawn once, on the left. Labels arrive cut to length
            # (label_rows), so Vega need not truncate (measure) them: labelLimit 0.
            y = alt.Y(
                "label:N",
                title=None,
                sort=alt.EncodingSortField("order", op="min"),
                axis=alt.Axis(labelLimit=0) if not panels else None,
            )
            x = alt.X("value:Q", title=axis_title, scale=alt.Scale(zero=True, nice=True))
            bars = (
                base.mark_bar(strokeWidth=1.5)
                .encode(
                    x=x,
                    y=y,
                    color=color,
                    opacity=opacity,
                    stroke=alt.condition(alt.datum.own, alt.value("#000000"), alt.value(None)),
                    tooltip=tooltip,
                )
                .properties(name=f"bars_{metric}_{_slug(model)}")
            )
            labels = (
                base.mark_text(align="left", dx=4, fontSize=10, color=style.NEUTRAL)
                .encode(x=x, y=y, text="factor_label:N", tooltip=tooltip)
                .properties(name=f"factors_{metric}_{_slug(model)}")
            )
            panels.append(style.part(alt.layer(bars, labels)))
        if panels:
            grid.append({"hconcat": panels, "spacing": 70, "resolve": {"scale": {"y": "shared"}}})
    return style.concat(
        "vconcat",
        grid,
        spacing=36,
        title=style.title(
            f"{TITLE}: bandwidth and latency per chip, factors vs {opts.baseline}",
            "Published anemll-bench results and your own runs (orange, outlined, 'own: …'). "
            "Faded bars are derived from the other published figure, not measured.",
            "Published tables: GB/s belong to llama_lm_head (fp16), ms to llama_lm_head_lut6;"
            " each panel shows one model. Published latency is a mean, own latency a median.",
            f"Filters: {opts.describe()}.",
            *notes,
        ),
        resolve={"scale": {"color": "shared", "opacity": "shared"}},
        datasets={"factors": rows},
        description=f"chip comparison vs {opts.baseline}",
    )


def _like_published(row: dict[str, Any]) -> bool:
    return row["backend"] == "coreml" and row["compute_units"] == "CPU_AND_NE"


def _own_key(row: dict[str, Any]) -> tuple:
    return (row["chip"], row["model"], row["backend"], row["compute_units"])


def _slug(text: str) -> str:
    return "".join(c if c.isalnum() else "_" for c in text)[:40]
