"""Drawing the chip comparison: rows from `factors.query` -> a grid of bar panels.

One row of panels per model (bandwidth | latency); one colour per series, where a
series is what the legend names: published / own run (by chip), or the OS version (by
os), each in a lighter shade when the figure is derived. Solid shades, not opacity, so
every legend swatch is exactly the colour of its bars, and the legend lists only the
series that are drawn. A panel whose values span more than style.LOG_SPAN gets a log
axis, so a slow own run does not flatten the published bars.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from typing import Any

from anemll_spec.chart import style

TITLE = "Chip comparison"
FULL_LABELS = 24  # measured rows whose bar labels spell out their baseline; past it, a key
LABEL_CHARS = 48  # longer y labels are cut (the tooltip has them whole)
# Published models first, in the order of anemll-bench's tables.
MODEL_ORDER = ("llama_lm_head", "llama_lm_head_lut6")
AXIS_TITLES = {
    "bandwidth": "bandwidth (GB/s, higher is better)",
    "latency": "latency (ms, lower is better)",
}
OWN_STROKE = "#000000"  # measured rows are outlined
MEASURED_COLORS = {
    "own run": style.OWN_COLOR,
    "imported run": style.OKABE_ITO[3],
    "pushed run": style.OKABE_ITO[2],
}


def label_rows(rows: list[dict[str, Any]], by: str = "chip") -> list[str]:
    """Finish each row's y label, `order` and `series`, in place; returns subtitle notes.

    Own labels name their backend and compute units when the chart shows more than one
    kind (else the subtitle says it once), and their OS version where their chip is
    drawn on more than one (the tooltip always has it); by os, always. Labels longer
    than LABEL_CHARS are cut here, so Vega need not measure them (its truncation measures
    text repeatedly, the most of a large chart's drawing time). By chip, rows go by
    bandwidth (highest first), then latency (lowest first), the same in both panels; by
    os, a chip's OS versions sit together, oldest first.
    """
    notes = []
    own = [r for r in rows if r["own"]]
    kinds = {how(r) for r in own}
    systems = {r.get("os") for r in own}
    per_chip: dict[tuple, set] = {}
    for r in own:
        per_chip.setdefault((r["model"], r["label"]), set()).add(r.get("os"))
    tails: dict[str, tuple[str, str]] = {}  # label -> its OS and its backend (kept by a cut)
    for r in own:
        several = len(per_chip[(r["model"], r["label"])]) > 1
        if by == "os" and r.get("source", "own") == "own":
            r["label"] = r["label"].removeprefix("own: ")  # own rows are the rule here
        system = f" · {r.get('os') or 'OS not recorded'}" if several or by == "os" else ""
        kind = f" ({how(r)})" if len(kinds) > 1 else ""
        r["label"] += system + kind
        tails[r["label"]] = (system, kind)
    if own and len(kinds) == 1:
        on = f" on {next(iter(systems))}" if len(systems) == 1 and None not in systems else ""
        who = "Own" if all(r.get("source", "own") == "own" for r in own) else "Measured"
        notes.append(f"{who} runs: {next(iter(kinds))}{on}.")
    for r in rows:
        if by == "os":
            r["series"] = r.get("os") or "OS not recorded"
        else:
            r["series"] = f"{r.get('source', 'own')} run" if r["own"] else "published"
        if r.get("derived"):
            r["series"] += ", derived"
    short: dict[tuple[str, str], str] = {}
    for r in rows:
        key = (r["model"], r["label"])
        if key not in short:
            taken = {v for (m, _), v in short.items() if m == r["model"]}
            short[key] = _shorten(r["label"], taken, *tails.get(r["label"], ("", "")))
    order = {k: i for i, k in enumerate(_ranked(rows, by))}
    for r in rows:
        key = (r["model"], r["label"])
        r["order"] = order[key]
        r["label"] = short[key]
    return notes


def _ranked(rows: list[dict[str, Any]], by: str) -> list[tuple[str, str]]:
    if by == "os":
        return sorted({(r["model"], r["label"]) for r in rows}, key=lambda k: (k[0], natural(k[1])))
    best: dict[tuple[str, str], tuple] = {}
    for r in rows:
        key = (r["model"], r["label"])
        bw, ms = best.get(key, (None, None))
        if r["metric"] == "bandwidth":
            bw = r["value"]
        else:
            ms = r["value"]
        best[key] = (bw, ms)
    return sorted(
        best,
        key=lambda k: (k[0], best[k][0] is None, -(best[k][0] or 0.0), best[k][1] or 0.0, k[1]),
    )


def natural(text: str) -> list[tuple[int, float, str]]:
    """Sort key that orders the numbers in a label by value ('15.10' after '15.9')."""
    return [
        (0, float(t), "") if t[0].isdigit() else (1, 0.0, t) for t in re.split(r"(\d+)", text) if t
    ]


def how(row: dict[str, Any]) -> str:
    """'coreml CPU_AND_NE', 'numpy', 'torch cuda': what measured an own row."""
    device = row.get("device") if row.get("backend") == "torch" else None
    return " ".join(x for x in (row.get("backend"), row.get("compute_units"), device) if x)


def _shorten(label: str, taken: set[str], tail: str = "", keep: str = "") -> str:
    """`label` cut to LABEL_CHARS with an ellipsis, kept distinct from `taken`. `label`
    ends with `tail` (its OS) then `keep` (its backend), which the cut spares: the OS
    text gives way first (down to what half a label of chip name leaves), never the
    backend, which is what tells a chip's rows apart."""
    if len(label) <= LABEL_CHARS and label not in taken:
        return label
    head = label[: len(label) - len(tail) - len(keep)]
    keep = _cut(keep, LABEL_CHARS // 2)  # whole, unless absurdly long
    tail = _cut(tail, LABEL_CHARS - len(keep) - min(len(head), LABEL_CHARS // 2))
    end = tail + keep
    if len(head) + len(end) <= LABEL_CHARS and head + end not in taken:
        return head + end
    n = 1
    while True:
        mark = "…" if n == 1 else f"… #{n}"
        cut = head[: LABEL_CHARS - len(mark) - len(end)] + mark + end
        if cut not in taken:
            return cut
        n += 1


def _cut(text: str, room: int) -> str:
    """`text` in at most `room` characters, ending in an ellipsis where it was cut."""
    if len(text) <= room:
        return text
    return text[: room - 1].rstrip() + "…" if room > 1 else ""


def key_factor_labels(rows: list[dict[str, Any]]) -> list[str]:
    """Past FULL_LABELS measured rows, their bar labels name what the factor is against
    by a key ('0.11x [1]') that the subtitle spells out once ('[1] vs M1 Max (published,
    Core ML ANE)'): a long label on every bar of a big store costs most of the drawing
    time (each is measured) and says the same thing a hundred times. Returns the key."""
    measured = [r for r in rows if r["own"] and r.get("against") and r.get("factor") is not None]
    if len({(r["model"], r["label"]) for r in measured}) <= FULL_LABELS:
        return []
    keys: dict[str, int] = {}
    for r in measured:
        k = keys.setdefault(r["against"], len(keys) + 1)
        r["factor_label"] = r["factor_label"].replace(f" vs {r['against']}", f" [{k}]", 1)
    return [
        "Factors of measured rows: " + "; ".join(f"[{k}] vs {a}" for a, k in keys.items()) + "."
    ]


def series_scales(rows: list[dict[str, Any]], by: str) -> tuple[list[str], list[str], list]:
    """(series in legend order, their fill colours, their outline colours)."""
    present = {r["series"] for r in rows}
    if by == "os":
        bases = sorted({s.removesuffix(", derived") for s in present}, key=natural)
        base_color = {b: style.OKABE_ITO[i % len(style.OKABE_ITO)] for i, b in enumerate(bases)}
        stroke: dict[str, str | None] = {b: None for b in bases}
    else:
        # own runs orange; imported and pushed ones (someone else's numbers) apart
        bases = ["published", *MEASURED_COLORS]
        bases += sorted({s.removesuffix(", derived") for s in present} - set(bases))
        base_color = {
            "published": style.PUBLISHED_COLOR,
            **MEASURED_COLORS,
            **{b: style.NEUTRAL for b in bases[1 + len(MEASURED_COLORS) :]},
        }
        stroke = {b: OWN_STROKE for b in bases}
        stroke["published"] = None
    domain, fills, strokes = [], [], []
    for b in bases:
        for derived in (False, True):
            name = b + (", derived" if derived else "")
            if name in present:
                domain.append(name)
                fills.append(style.tint(base_color[b]) if derived else base_color[b])
                strokes.append(stroke[b] or "transparent")
    return domain, fills, strokes


def chart(rows: list[dict[str, Any]], opts, notes: Sequence[str] = ()) -> dict[str, Any]:
    """The grid of panels over `rows` (from `query`, filtered); `notes` go in the subtitle."""
    import altair as alt

    by = getattr(opts, "by", "chip")
    notes = [*notes, *label_rows(rows, by), *key_factor_labels(rows)]
    present = {r["model"] for r in rows}
    models = [m for m in MODEL_ORDER if m in present] + sorted(present - set(MODEL_ORDER))
    domain, fills, strokes = series_scales(rows, by)
    legend_title = "OS version" if by == "os" else "source"
    fill = alt.Fill(
        "series:N", title=legend_title, scale=alt.Scale(domain=domain, range=fills), sort=domain
    )
    stroke = alt.Stroke(
        "series:N", title=legend_title, scale=alt.Scale(domain=domain, range=strokes)
    )
    tooltip = _tooltip(opts.baseline)
    grid = []
    for model in models:
        panels: list[Any] = []
        for metric, axis_title in AXIS_TITLES.items():
            mine = [r for r in rows if r["model"] == model and r["metric"] == metric]
            if mine:
                panels.append(
                    _panel(model, metric, axis_title, mine, fill, stroke, tooltip, not panels)
                )
        if panels:
            grid.append({"hconcat": panels, "spacing": 70, "resolve": {"scale": {"y": "shared"}}})
    if by == "os":
        what = ["Measured runs by OS version (one colour per version); labels say what each "
                "factor is against."]  # fmt: skip
    else:
        what = [
            "Published anemll-bench results and measured runs (outlined: 'own: …' yours, "
            "'imported: …' from a bundle, 'pushed: …' from a shared store). "
            "Lighter bars are derived from the other published figure, not measured.",
            f"Factors of published rows are against {opts.baseline}'s published figure (of "
            "the same table where it has one); measured rows' labels say what theirs are against.",
        ]
    return style.concat(
        "vconcat",
        grid,
        spacing=36,
        title=style.title(
            f"{TITLE}: bandwidth and latency per chip, factors vs {opts.baseline}",
            *what,
            "Published tables: GB/s belong to llama_lm_head (fp16), ms to llama_lm_head_lut6;"
            " each panel shows one model. Published latency is a mean, measured latency a median.",
            f"Filters: {opts.describe()}.",
            *notes,
        ),
        resolve={"scale": {"fill": "shared", "stroke": "shared"}},
        datasets={"factors": rows},
        description=f"chip comparison vs {opts.baseline}",
    )


def _panel(model, metric, axis_title, mine, fill, stroke, tooltip, first) -> dict[str, Any]:
    import altair as alt

    log = style.needs_log(r["value"] for r in mine)
    base = alt.Chart(
        style.named("factors"),
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
    # One y scale per model row: a chip's bars line up across the two panels, so its
    # labels are drawn once, on the left. Labels arrive cut to length (label_rows), so
    # Vega need not truncate (measure) them: labelLimit 0.
    y = alt.Y(
        "label:N",
        title=None,
        sort=alt.EncodingSortField("order", op="min"),
        axis=alt.Axis(labelLimit=0) if first else None,
    )
    if log:
        # bars start at the axis' left end (a log axis has no zero): whole decades
        lo, hi = log_domain(r["value"] for r in mine)
        scale = alt.Scale(type="log", domain=[lo, hi], nice=False)
        start = {"x2": alt.X2(datum=lo)}
    else:
        scale, start = alt.Scale(zero=True, nice=True), {}
    x = alt.X("value:Q", title=axis_title + (", log scale" if log else ""), scale=scale)
    name = f"{metric}_{_slug(model)}"
    bars = (
        base.mark_bar(strokeWidth=1.5)
        .encode(x=x, y=y, fill=fill, stroke=stroke, tooltip=tooltip, **start)
        .properties(name=f"bars_{name}")
    )
    labels = (
        base.mark_text(align="left", dx=4, fontSize=10, color=style.NEUTRAL)
        .encode(x=x, y=y, text="factor_label:N")  # the bar beside it has the tooltip
        .properties(name=f"factors_{name}")
    )
    return style.part(alt.layer(bars, labels))


def log_domain(values) -> tuple[float, float]:
    """The whole decades around the positive `values` (the log axis' domain)."""
    pos = [v for v in values if v is not None and v > 0]
    return 10.0 ** math.floor(math.log10(min(pos))), 10.0 ** math.ceil(math.log10(max(pos)))


def _tooltip(baseline: str) -> list:
    import altair as alt

    return [
        alt.Tooltip("chip:N", title="chip"),
        alt.Tooltip("os:N", title="OS"),
        alt.Tooltip("model:N", title="model"),
        alt.Tooltip("value:Q", title="value", format=",.4g"),
        alt.Tooltip("unit:N", title="unit"),
        alt.Tooltip("series:N", title="series"),
        alt.Tooltip("latency_stat:N", title="latency statistic"),
        alt.Tooltip("factor:Q", title=f"factor vs {baseline}", format=".3g"),
        alt.Tooltip("against:N", title="factor against"),
        alt.Tooltip("baseline_value:Q", title="baseline value", format=",.4g"),
        alt.Tooltip("baseline_source:N", title="baseline from"),
        alt.Tooltip("source:N", title="source"),
        alt.Tooltip("provenance:N", title="provenance"),
        alt.Tooltip("backend:N", title="backend"),
        alt.Tooltip("compute_units:N", title="compute units"),
        alt.Tooltip("run_id:N", title="run"),
    ]


def _slug(text: str) -> str:
    return "".join(c if c.isalnum() else "_" for c in text)[:40]
