"""Look and feel shared by every chart: palette, theme, titles, escaping.

Import-light (no altair here): the CLI imports it to describe the kinds.
"""

from __future__ import annotations

import html
from typing import Any

# Okabe-Ito: distinguishable with the common colour-vision deficiencies.
OKABE_ITO = (
    "#0072B2",  # blue
    "#E69F00",  # orange
    "#009E73",  # bluish green
    "#CC79A7",  # reddish purple
    "#56B4E9",  # sky blue
    "#D55E00",  # vermillion
    "#F0E442",  # yellow
    "#000000",  # black
)
PUBLISHED_COLOR = OKABE_ITO[0]
OWN_COLOR = OKABE_ITO[1]
NEUTRAL = "#555555"
CLIPPED_COLOR = OKABE_ITO[5]  # points drawn at the edge of a clipped axis
LOG_SPAN = 20.0  # values spanning more than this factor get a log axis

# Where an op runs: fixed colours, so every placement chart reads the same way.
DEVICE_COLORS = {
    "NeuralEngine": OKABE_ITO[2],
    "GPU": OKABE_ITO[3],
    "CPU": OKABE_ITO[4],
    "unknown": "#BBBBBB",
}

LABEL_LIMIT = 360  # px; longer chip/case names are ellipsised (the tooltip has them whole)
LABEL_CHARS = 60  # of 11 px text, about LABEL_LIMIT


def middle_cut_expr(chars: int = LABEL_CHARS) -> str:
    """A Vega labelExpr that cuts a longer label in the middle, so its end stays readable
    (a '(N cases pooled)' marker, the backend, a '#2'): Vega's labelLimit cuts the end. The
    data keep the whole label, so rows whose labels differ only in the middle stay apart."""
    head = chars // 4  # the end holds more: marker, backend, compute units
    tail = chars - head - 1
    return (
        f"length(datum.label) > {chars} ? substring(datum.label, 0, {head}) + '…' + "
        f"substring(datum.label, length(datum.label) - {tail}) : datum.label"
    )


BAR_STEP = 18  # px per bar: 15+ chips stay readable without overlapping labels


def config() -> dict[str, Any]:
    """The Vega-Lite `config` of every chart (one theme, set once)."""
    return {
        "font": "Helvetica, Arial, sans-serif",
        "background": "white",
        "padding": 12,
        "view": {"stroke": None, "continuousWidth": 360, "continuousHeight": 240},
        "range": {"category": list(OKABE_ITO)},
        "title": {"fontSize": 15, "anchor": "start", "subtitleFontSize": 11, "offset": 10},
        "axis": {
            "labelFontSize": 11,
            "titleFontSize": 12,
            "labelLimit": LABEL_LIMIT,
            "gridColor": "#e6e6e6",
        },
        "axisY": {"labelOverlap": False},
        "axisX": {"labelOverlap": "greedy", "labelFlush": True},
        "header": {"labelFontSize": 12, "titleFontSize": 12, "labelLimit": LABEL_LIMIT * 2},
        "legend": {"labelLimit": LABEL_LIMIT, "orient": "bottom", "direction": "horizontal"},
        "concat": {"spacing": 40},
    }


def finish(
    chart: Any, *, datasets: dict[str, list] | None = None, description: str = ""
) -> dict[str, Any]:
    """An Altair chart -> its Vega-Lite dict with the shared theme applied.

    The rows go in as top-level `datasets` (the chart refers to them by name), so
    Altair never walks them. Not validated here (jsonschema over a concat spec costs
    ~1 s); the tests validate every kind against the Vega-Lite schema.
    """
    spec = chart.to_dict(validate=False)
    spec["config"] = {**config(), **spec.get("config", {})}
    if datasets:
        spec["datasets"] = {**spec.get("datasets", {}), **datasets}
    if description:
        spec["description"] = description
    return spec


def part(chart: Any) -> dict[str, Any]:
    """An Altair (layered) chart as a dict to place in a concat built by hand: Altair's
    own hconcat/vconcat deep-copy every subchart several times (~0.5 s for a grid)."""
    spec = chart.to_dict(validate=False)
    for key in ("$schema", "config", "datasets"):
        spec.pop(key, None)
    return spec


def concat(
    direction: str,
    parts: list[dict[str, Any]],
    *,
    datasets: dict[str, list],
    description: str = "",
    **props: Any,
) -> dict[str, Any]:
    """A top-level hconcat/vconcat of `part()` dicts, with the theme and the datasets."""
    import altair as alt

    _unique_view_names(parts, {})
    return {
        "$schema": alt.SCHEMA_URL,
        **props,
        direction: parts,
        "config": config(),
        "datasets": datasets,
        **({"description": description} if description else {}),
    }


def _unique_view_names(node: Any, seen: dict[str, int]) -> None:
    """Suffix repeated view names (panels built from one template share them).

    Vega builds one dataflow per view name: two panels with the same name draw the
    same data, whatever their filters say. Data references ({"name": ...} without a
    mark) are left alone."""
    if isinstance(node, list):
        for item in node:
            _unique_view_names(item, seen)
        return
    if not isinstance(node, dict):
        return
    if "name" in node and ("mark" in node or "layer" in node):
        n = seen.get(node["name"], 0)
        seen[node["name"]] = n + 1
        if n:
            node["name"] = f"{node['name']}_{n}"
    for key, value in node.items():
        if key != "data":
            _unique_view_names(value, seen)


def named(name: str) -> Any:
    """A reference to the dataset `name` given to `finish(datasets=...)`."""
    import altair as alt

    return alt.Data(name=name)


def title(text: str, *subtitle: str) -> dict[str, Any]:
    """A chart title with subtitle lines (Vega draws them as SVG text, not markup)."""
    out: dict[str, Any] = {"text": text}
    lines = [s for s in subtitle if s]
    if lines:
        out["subtitle"] = lines
    return out


def esc(value: Any) -> str:
    """HTML text of any value from the store: store labels are data, never markup, and
    their control characters (ESC, CR) are shown escaped, as in every other output."""
    if value is None:
        return "–"
    from anemll_spec.text import printable

    return html.escape(printable(value), quote=True)


def tint(color: str, amount: float = 0.55) -> str:
    """`color` mixed with white: the fill of a derived (not measured) figure. A solid
    colour, not opacity, so its legend swatch looks exactly like its bars."""
    rgb = [int(color[i : i + 2], 16) for i in (1, 3, 5)]
    return "#" + "".join(f"{round(c + (255 - c) * amount):02x}" for c in rgb)


def needs_log(values) -> bool:
    """A log axis when positive values span more than LOG_SPAN (else the small ones
    become slivers next to the large ones)."""
    pos = [v for v in values if v is not None and v > 0]
    return bool(pos) and max(pos) / min(pos) > LOG_SPAN


def fmt_factor(value: float | None) -> str:
    """A factor as a label: one decimal from 1x up (the published tables' '2.3x'), two
    significant digits below (0.02x, not 0.0x), more where two would round up to 1 (0.996x:
    a slower figure never reads as no difference), as the views' factor_label."""
    if value is None or value != value:
        return "no baseline"
    if value >= 1:
        return f"{value:.1f}x"
    for digits in range(2, 7):
        if (text := f"{value:.{digits}g}") != "1":
            return f"{text}x"
    return "0.999999x"


def fmt_num(value: Any, digits: int = 3) -> str:
    """A number as report text: '-' for NULL, else `digits` significant digits."""
    if value is None:
        return "–"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        if value != value:  # NaN
            return "–"
        from anemll_spec.text import figure

        return figure(value, digits)
    return str(value)


def os_label(row: dict[str, Any]) -> str | None:
    """'macOS 15.3.1' (own rows; the published tables name no OS version)."""
    parts = [p for p in (row.get("os_name"), row.get("os_version")) if p]
    return " ".join(parts) or None


def drawn_runs(spec: dict[str, Any], *runs: str | None) -> dict[str, Any]:
    """The spec, noting which runs it draws (usermeta, which renderers ignore): `chart
    --json` says them, as every command that reads runs says which it read. None: a
    chart of every chip's latest rows, not of one run."""
    spec["usermeta"] = {**spec.get("usermeta", {}), "runs": [r for r in runs if r]}
    return spec
