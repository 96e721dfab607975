"""Drawing performance per watt: rows from `energy.query` -> one row of panels per model.

Left: inferences per joule (higher is better) with the view's factor against the
baseline; right: mJ per inference stacked by rail (ANE, GPU, CPU, DRAM, ...), the part of
the total no rail accounts for in grey. The two panels of a model share their y axis, so
a chip's bars line up and its label is drawn once.
"""

from __future__ import annotations

from typing import Any

from anemll_spec.chart import style
from anemll_spec.chart.factors_draw import (
    MEASURED_COLORS,
    MODEL_ORDER,
    _shorten,
    how,
    key_factor_labels,
    log_domain,
)

TITLE = "Energy per inference"
UNSPLIT = "not split by rail"
RAIL_ORDER = ("ane", "gpu", "cpu", "dram", "package")
RAIL_COLORS = {
    "ane": style.DEVICE_COLORS["NeuralEngine"],
    "gpu": style.DEVICE_COLORS["GPU"],
    "cpu": style.DEVICE_COLORS["CPU"],
    "dram": style.OKABE_ITO[5],
    "package": style.OKABE_ITO[0],
}
OTHER_RAIL = style.NEUTRAL
UNSPLIT_COLOR = style.DEVICE_COLORS["unknown"]
REST_SHARE = 1e-3  # a total this much above its rails' sum gets an 'unsplit' segment
CAVEAT = (
    "An estimate from the SoC's, GPU board's or CPU package's own energy counters (IOReport "
    "or powermetrics on a Mac, NVML on NVIDIA, RAPL on Linux), not wall power. powermetrics' manual warns "
    "against comparing its estimates across devices: compare chips as a rough guide only."
)


def variant(row: dict[str, Any]) -> str:
    """'coreml CPU_AND_NE', 'torch cuda', with '×2 distinct' for concurrent instances."""
    text = how(row)
    if (row.get("concurrency") or 1) > 1:
        text += f" ×{row['concurrency']}" + (f" {row['instances']}" if row.get("instances") else "")
    return text


def label_rows(rows: list[dict[str, Any]]) -> list[str]:
    """Set each row's label, series, order and factor text in place; returns notes.

    A measured label names its source ('own: M4 Max'), its OS where its chip is drawn on
    several, and its variant where the chart shows several (else the subtitle says it)."""
    measured = [r for r in rows if not r["published"]]
    kinds = {variant(r) for r in measured}
    systems: dict[tuple, set] = {}
    for r in measured:
        r["os"] = style.os_label(r)
        systems.setdefault((r["model"], r["source"], r["chip"]), set()).add(r["os"])
    notes = [f"Measured rows: {next(iter(kinds))}."] if len(kinds) == 1 else []
    taken: dict[str, set[str]] = {}
    for i, r in enumerate(rows):
        system = kind = ""
        if r["published"]:
            label = r["chip"]
            r["series"] = "published"
        else:
            # the view's chip: a CUDA case's GPU ('H100 80GB HBM3'), as --where and
            # --baseline name it
            label = f"{r['source']}: {r['chip']}"
            if len(systems[(r["model"], r["source"], r["chip"])]) > 1:
                system = f" · {r['os'] or 'OS not recorded'}"
            if len(kinds) > 1:
                kind = f" ({variant(r)})"
            r["series"] = f"{r['source']} run"
        mine = taken.setdefault(r["model"], set())
        r["label"] = _shorten(label + system + kind, mine, system, kind)
        mine.add(r["label"])
        r["order"] = i  # rows arrive by model, then inferences per joule (highest first)
        r["variant"] = variant(r)
        r["factor_label"] = factor_text(r)
    return notes


def factor_text(row: dict[str, Any]) -> str:
    """The text beside a bar: '1.2x vs M1 Max (own, Core ML ANE)', or 'no baseline'."""
    if row.get("energy_factor") is None:
        return "no baseline"
    text = row.get("energy_factor_label") or style.fmt_factor(row["energy_factor"])
    return text if row["published"] else f"{text} vs {row.get('baseline_label')}"


def split(rows: list[dict[str, Any]], rails: list[dict[str, Any]]) -> tuple[list[dict], list]:
    """(stack segments: label, model, rail, mJ per inference; names of rails outside the
    total). A row's rails that count in its total are stacked; whatever of the total they
    do not account for is one grey segment (all of it, for a row without rails)."""
    by_case: dict[str, list[dict]] = {}
    for x in rails:
        by_case.setdefault(x["case_id"], []).append(x)
    segments, outside = [], set()
    for r in rows:
        total = r["energy_mj_per_inference"]
        if total is None:
            continue
        mine = by_case.get(r.get("case_id") or "", [])
        outside |= {x["rail"] for x in mine if not x["in_total"]}
        r["outside_total"] = (
            ", ".join(
                f"{x['rail']} {style.fmt_num(x['mj_per_inference'], 4)} mJ"
                for x in mine
                if not x["in_total"]
            )
            or None
        )
        stacked = [x for x in mine if x["in_total"] and x["mj_per_inference"] is not None]
        for x in stacked:
            segments.append(_segment(r, x["rail"], x["mj_per_inference"], total, x))
        rest = total - sum(x["mj_per_inference"] for x in stacked)
        if rest > REST_SHARE * total:
            segments.append(_segment(r, UNSPLIT, rest, total, None))
    return segments, sorted(outside)


def _segment(row, rail: str, mj: float, total: float, part: dict | None) -> dict[str, Any]:
    rank = RAIL_ORDER.index(rail) if rail in RAIL_ORDER else len(RAIL_ORDER)
    return {
        "label": row["label"],
        "model": row["model"],
        "rail": rail,
        "rail_rank": rank if rail != UNSPLIT else len(RAIL_ORDER) + 1,
        "mj_per_inference": mj,
        "share": mj / total if total else None,
        "mean_power_w": part["mean_power_w"] if part else None,
        "parts": part["part_names"] if part else None,
    }


def chart(
    rows: list[dict[str, Any]], rails: list[dict[str, Any]], opts, notes: list[str] | None = None
) -> dict[str, Any]:
    """The Vega-Lite spec: one row of panels per model."""
    rows = [r for r in rows if r["inferences_per_joule"] is not None]
    notes = [*(notes or []), *label_rows(rows)]
    for r in rows:  # what factors_draw.key_factor_labels reads
        r["own"], r["factor"], r["against"] = (
            not r["published"], r.get("energy_factor"), r.get("baseline_label"))  # fmt: skip
    notes += key_factor_labels(rows)
    segments, outside = split(rows, rails)
    for r in rows:
        r["total_text"] = (
            f"{style.fmt_num(r['energy_mj_per_inference'], 3)} mJ"
            + (f" · {style.fmt_num(r['power_w_mean'], 3)} W" if r.get("power_w_mean") else "")
            + (
                f" (limit {style.fmt_num(r['gpu_power_limit_w'], 3)} W)"
                if r.get("gpu_power_limit_w")
                else ""
            )  # fmt: skip
            + (" (not timed-only)" if r.get("energy_timed_only") is False else "")
        )
    present = {r["model"] for r in rows}
    models = [m for m in MODEL_ORDER if m in present] + sorted(present - set(MODEL_ORDER))
    grid = [_model_row(m, rows, segments) for m in models]
    published = any(r["published"] for r in rows)
    return style.concat(
        "vconcat",
        grid,
        spacing=36,
        title=style.title(
            f"{TITLE}: inferences per joule per chip, factors vs {opts.baseline}",
            "Inferences per joule = 1000 / mJ per inference; mJ per inference = the energy "
            "the counters read over the measured interval / the calls in it (idle gaps and "
            "other processes on the chip included).",
            CAVEAT,
            "Published energy rows are drawn beside measured ones."
            if published
            else "No published energy figures exist (anemll-bench published none): every "
            "bar is a measured run.",
            f"Factor = inferences per joule / {opts.baseline}'s of the same source, variant "
            "and power reader (the store's energy_factors); 'no baseline' where the store "
            "has none.",
            f"Right: mJ per inference stacked by rail (each rail's parts summed); grey: {UNSPLIT}."
            + (f" Not stacked (they overlap the rails): {', '.join(outside)}." if outside else ""),
            f"Filters: {opts.describe()}.",
            *notes,
        ),
        resolve={"scale": {"fill": "shared", "color": "shared"}},
        datasets={"energy": rows, "rails": segments},
        description=f"energy per inference vs {opts.baseline}",
    )


def _model_row(model: str, rows, segments) -> dict[str, Any]:
    import altair as alt

    keep = alt.FieldEqualPredicate(field="model", equal=model)  # data, never code
    y = alt.Y("label:N", title=None, sort=alt.EncodingSortField("order", op="min"),
              axis=alt.Axis(labelLimit=0))  # fmt: skip
    mine = [r for r in rows if r["model"] == model]
    slug = "".join(c if c.isalnum() else "_" for c in model)[:40]
    series = sorted({r["series"] for r in rows}, key=_series_rank)
    fill = alt.Fill("series:N", title="source", scale=alt.Scale(
        domain=series, range=[_series_color(s) for s in series]))  # fmt: skip
    ipj = [r["inferences_per_joule"] for r in mine]
    start: dict[str, Any] = {}
    if style.needs_log(ipj):  # bars start at the axis' left end (a log axis has no zero)
        lo, hi = log_domain(ipj)
        scale = alt.Scale(type="log", domain=[lo, hi], nice=False)
        start = {"x2": alt.X2(datum=lo)}
    else:
        scale = alt.Scale(zero=True, nice=True)
    x = alt.X("inferences_per_joule:Q", scale=scale, title="inferences per joule (higher is "
              "better)" + (", log scale" if start else ""))  # fmt: skip
    base = alt.Chart(style.named("energy"), height=alt.Step(style.BAR_STEP), width=300,
                     title=alt.TitleParams(f"{model} — inferences per joule", fontSize=13))  # fmt: skip
    base = base.transform_filter(keep)
    bars = (
        base.mark_bar(stroke="#000000", strokeWidth=1)
        .encode(x=x, y=y, fill=fill, tooltip=_row_tooltip(), **start)
        .properties(name=f"ipj_{slug}")
    )
    text = (
        base.mark_text(align="left", dx=4, fontSize=10, color=style.NEUTRAL)
        .encode(x=x, y=y, text="factor_label:N")
        .properties(name=f"ipj_factor_{slug}")
    )
    return {
        "hconcat": [style.part(alt.layer(bars, text)), _rails_panel(model, slug, mine, segments)],
        "spacing": 40,  # the factor labels right of the bars count in the left panel's size
        "resolve": {"scale": {"y": "shared"}},
    }


def _rails_panel(model: str, slug: str, mine, segments) -> dict[str, Any]:
    """mJ per inference stacked by rail; as shares of each total when the totals span
    more than style.LOG_SPAN (a log axis cannot stack), the totals then as text."""
    import altair as alt

    keep = alt.FieldEqualPredicate(field="model", equal=model)
    y = alt.Y("label:N", title=None, sort=alt.EncodingSortField("order", op="min"), axis=None)
    shares = style.needs_log(r["energy_mj_per_inference"] for r in mine)
    rails = sorted({s["rail"] for s in segments}, key=rail_rank)
    color = alt.Color("rail:N", title="rail", sort=rails, scale=alt.Scale(
        domain=rails, range=[rail_color(r) for r in rails]))  # fmt: skip
    field = "share" if shares else "mj_per_inference"
    title = ("share of each row's mJ per inference (%; totals span > "
             f"{style.LOG_SPAN:g}x: see the text)" if shares
             else "energy per inference (mJ, lower is better)")  # fmt: skip
    x = alt.X(f"{field}:Q", title=title, stack="zero",
              axis=alt.Axis(format="%", tickCount=5) if shares else alt.Undefined)  # fmt: skip
    stack = (
        alt.Chart(
            style.named("rails"),
            height=alt.Step(style.BAR_STEP),
            width=300,
            title=alt.TitleParams(f"{model} — mJ per inference by rail", fontSize=13),
        )  # fmt: skip
        .transform_filter(keep)
        .mark_bar()
        .encode(
            x=x,
            y=y,
            color=color,
            order=alt.Order("rail_rank:Q"),
            tooltip=[
                alt.Tooltip("label:N", title="row"),
                alt.Tooltip("rail:N", title="rail"),
                alt.Tooltip("mj_per_inference:Q", title="mJ per inference", format=",.4g"),
                alt.Tooltip("share:Q", title="share of the total", format=".1%"),
                alt.Tooltip("mean_power_w:Q", title="mean power (W)", format=",.3g"),
                alt.Tooltip("parts:N", title="parts summed"),
            ],
        )
        .properties(name=f"rails_{slug}")
    )
    at = alt.X(datum=1.0) if shares else alt.X("energy_mj_per_inference:Q")
    totals = (
        alt.Chart(style.named("energy"))
        .transform_filter(keep)
        .mark_text(align="left", dx=4, fontSize=10, color=style.NEUTRAL)
        .encode(x=at, y=y, text="total_text:N")
        .properties(name=f"mj_total_{slug}")
    )
    return style.part(alt.layer(stack, totals))


def _series_rank(s: str) -> tuple[int, str]:
    order = ["published", *MEASURED_COLORS]
    return (order.index(s) if s in order else len(order), s)


def _series_color(s: str) -> str:
    return style.PUBLISHED_COLOR if s == "published" else MEASURED_COLORS.get(s, style.NEUTRAL)


def rail_rank(rail: str) -> tuple[int, str]:
    if rail == UNSPLIT:
        return (len(RAIL_ORDER) + 1, rail)
    return (RAIL_ORDER.index(rail) if rail in RAIL_ORDER else len(RAIL_ORDER), rail)


def rail_color(rail: str) -> str:
    return UNSPLIT_COLOR if rail == UNSPLIT else RAIL_COLORS.get(rail, OTHER_RAIL)


def _row_tooltip() -> list:
    import altair as alt

    return [
        alt.Tooltip("chip:N", title="chip"),
        alt.Tooltip("os:N", title="OS"),
        alt.Tooltip("model:N", title="model"),
        alt.Tooltip("variant:N", title="variant"),
        alt.Tooltip("inferences_per_joule:Q", title="inferences per joule", format=",.4g"),
        alt.Tooltip("energy_mj_per_inference:Q", title="mJ per inference", format=",.4g"),
        alt.Tooltip("power_w_mean:Q", title="mean power (W)", format=",.4g"),
        alt.Tooltip("energy_method:N", title="method"),
        alt.Tooltip("energy_timed_only:N", title="timed calls only"),
        alt.Tooltip("energy_factor:Q", title="factor", format=".3g"),
        alt.Tooltip("baseline_label:N", title="factor against"),
        alt.Tooltip("outside_total:N", title="rails outside the total"),
        alt.Tooltip("energy_note:N", title="note"),
        alt.Tooltip("provenance:N", title="provenance"),
        alt.Tooltip("run_id:N", title="run"),
    ]
