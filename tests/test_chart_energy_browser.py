"""The energy and sustained charts, and the report sections, opened in headless Chromium
from disk, offline: what Vega drew, read back from the DOM (marks, their positions on
the page, axis titles, labels, legends).

SYNTHETIC readings and samples (tests/fixtures/chart/chart_energy.py, chart_sustained.py),
not measurements.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent / "fixtures" / "chart"))
import chart_dom as dom  # noqa: E402
import chart_energy as ce  # noqa: E402
import chart_sustained as cs  # noqa: E402
import chart_synthetic as syn  # noqa: E402

from anemll_spec.chart import build_chart, write_chart  # noqa: E402
from anemll_spec.chart.report import write_report  # noqa: E402
from anemll_spec.chart.source import Options  # noqa: E402

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> dict:
    path = tmp_path_factory.mktemp("energybrowser") / "results.duckdb"
    out = {"path": str(path)}
    out["m1"], _ = ce.energy_run(path, ce.M1_MAX_HOST)
    out["m4"], _ = ce.energy_run(path, syn.MAC_HOST, scale=0.8, cpu_only=True, seed=110)
    out["gpu"], _ = ce.gpu_run(path)
    out["unsplit"], _ = ce.unsplit_run(path)
    out["sustained"], _ = cs.sustained_run(path)
    return out


def placed(root: dom.Node) -> list[tuple[dom.Node, float, float]]:
    """Every element with its page offset: the sum of its ancestors' translate()."""
    out = []

    def walk(node, x, y):
        m = re.match(r"translate\(([-\d.e]+),([-\d.e]+)\)", node.attrs.get("transform", ""))
        if m:
            x, y = x + float(m.group(1)), y + float(m.group(2))
        out.append((node, x, y))
        for c in node.children:
            walk(c, x, y)

    walk(root, 0.0, 0.0)
    return out


def mark_items(root: dom.Node, name: str) -> list[tuple[dom.Node, float, float]]:
    """The items of the Vega mark(s) named `name` (as dom.marks), with the page offset
    of their group."""
    pattern = re.compile(rf"{re.escape(name)}(_\d+)?_marks")
    return [
        (c, x, y)
        for g, x, y in placed(root)
        if g.tag == "g"
        and "role-mark" in g.classes
        and any(pattern.fullmatch(k) for k in g.classes)
        for c in g.children
        if c.tag in ("path", "text", "line", "rect")
    ]


def rect_box(item: tuple[dom.Node, float, float]) -> tuple[float, float, float, float]:
    """(left, top, width, height) on the page of a Vega rect path 'Mx,yhWvHh-WZ'."""
    node, ox, oy = item
    m = re.match(r"M([-\d.e]+),([-\d.e]+)h([-\d.e]+)v([-\d.e]+)", node.attrs["d"])
    assert m, node.attrs["d"]
    x, y, w, h = map(float, m.groups())
    return ox + x, oy + y, w, h


def aria(node: dom.Node) -> dict[str, str]:
    return dict(p.split(": ", 1) for p in node.attrs["aria-label"].split("; ") if ": " in p)


def rendered(root: dom.Node) -> list[str]:
    divs = root.find("div", class_="chart")
    states = [d.attrs.get("data-rendered") for d in divs]
    assert states == ["true"] * len(divs), states
    return [d.attrs["id"] for d in divs]


def legend(root: dom.Node) -> list[str]:
    return [
        t.all_text() for g in root.find("g") for t in g.children if "role-legend-label" in t.classes
    ]


def test_energy_bars_stacks_and_labels_in_the_browser(chromium, store, tmp_path):
    spec = build_chart("energy", store["path"], Options())
    rows, segs = spec["datasets"]["energy"], spec["datasets"]["rails"]
    files = write_chart("energy", store["path"], Options(), tmp_path / "e")
    root = dom.dump_dom(chromium, files["html"], tmp_path)
    rendered(root)
    bars = mark_items(root, "ipj_llama_lm_head")
    stacks = mark_items(root, "rails_llama_lm_head")
    assert len(bars) == len(rows) == 5 and len(stacks) == len(segs)
    # a row's stack sits on the same line as its bar (one y axis for the model's panels)
    # and its segments add up to the row's total, left to right from the axis
    bar_top = {aria(n)["label"]: rect_box((n, x, y))[1] for n, x, y in bars}
    by_label: dict[str, list] = {}
    for item in stacks:
        by_label.setdefault(aria(item[0])["row"], []).append(rect_box(item))
    assert by_label.keys() == bar_top.keys()
    for label, boxes in by_label.items():
        assert {round(b[1], 1) for b in boxes} == {round(bar_top[label], 1)}, label
        boxes.sort()
        for a, b in zip(boxes, boxes[1:], strict=False):
            assert b[0] == pytest.approx(a[0] + a[2], abs=0.6)  # stacked, no gap
    texts = dom.svg_texts(root)
    # the factor labels and totals are drawn as text beside the bars
    for r in rows:
        assert r["factor_label"] in texts and r["total_text"] in texts
    assert "inferences per joule (higher is better)" in texts or any(
        t.startswith("inferences per joule (higher is better)") for t in texts
    )
    caption = " ".join(texts)  # subtitle lines are tspans of one text element
    assert "not wall power" in caption
    assert "No published energy figures exist (anemll-bench published none)" in caption
    # every row label drawn once, left of its bar, none overlapping another
    y_labels = [(t, y) for t, x, y in placed(root) if t.tag == "text" and t.all_text() in bar_top]
    assert sorted(t.all_text() for t, _ in y_labels) == sorted(bar_top)
    ys = sorted(y + float(t.attrs["transform"].split(",")[1].rstrip(")")) for t, y in y_labels)
    assert min(b - a for a, b in zip(ys, ys[1:], strict=False)) >= 12
    assert {"own run", "ane", "cpu", "dram", "gpu", "not split by rail"} <= set(legend(root))


def test_sustained_panels_line_up_on_one_time_axis(chromium, store, tmp_path):
    spec = build_chart("sustained", store["path"], Options())
    files = write_chart("sustained", store["path"], Options(), tmp_path / "s")
    root = dom.dump_dom(chromium, files["html"], tmp_path)
    rendered(root)
    ds = spec["datasets"]
    assert len(mark_items(root, "sustained_samples")) == len(ds["samples"])
    assert len(mark_items(root, "window_medians")) == len(ds["windows"])
    assert len(mark_items(root, "window_tags")) == len(ds["windows"])
    rails = {p["rail"] for p in ds["power"]}
    per_window = {(p["rail"], p["window_index"]) for p in ds["power"]}
    assert len(rails) == 4 and len(per_window) == 4 * 6  # a line per rail and per window
    assert len(mark_items(root, "power_lines")) == len(per_window)
    # the shaded windows of the latency panel and of the power panel: same x on the page
    shaded = [w for w in ds["windows"] if w["shade"]]
    top = [rect_box(i) for i in mark_items(root, "shade_latency")]
    bottom = [rect_box(i) for i in mark_items(root, "shade_power")]
    first = [w for w in shaded if w["label"] == spec["vconcat"][0]["title"]["text"]]
    assert len(bottom) == len(first) == 4  # window 1 (every other), 3-5 (throttled)
    first_top = min(b[1] for b in top)  # the first case's latency panel is the highest
    top = [b for b in top if b[1] == pytest.approx(first_top)]
    for a, b in zip(sorted(top), sorted(bottom), strict=True):
        assert (a[0], a[2]) == pytest.approx((b[0], b[2]), abs=0.01)
        assert b[1] > a[1]  # below it
    texts = dom.svg_texts(root)
    assert texts.count("time since the first timed call (s)") == 2  # once per case
    caption = " ".join(texts)  # subtitle lines are tspans of one text element
    assert "degraded: last-window median throughput" in caption
    assert "3–5 throttled: CPU_Speed_Limit 80" in caption
    assert {"alternate window", "throttled window", "ane", "cpu", "dram", "gpu"} <= set(
        legend(root)
    )


def test_report_draws_the_energy_and_sustained_charts(chromium, store, tmp_path):
    page = write_report(store["path"], store["sustained"], tmp_path / "r.html")
    root = dom.dump_dom(chromium, page, tmp_path)
    ids = rendered(root)
    assert ids.index("chart-energy") < ids.index("chart-sustained") < ids.index("chart-latency")
    headings = [h.all_text() for h in root.find("h2")]
    assert "Energy per inference" in headings and "Sustained run" in headings
    # the report's energy chart: this run's rows beside the other chips' latest
    chips = {aria(n)["chip"] for n, _, _ in mark_items(root, "ipj_llama_lm_head")}
    assert "M1 Max" in chips and "M4 Max" in chips


def test_a_sustained_chart_without_power_says_no_power_panel_and_cuts_no_line(chromium, tmp_path):
    """Without power samples the chart has no power panel, but its subtitle described the
    'Bottom: each rail's power' panel; and a panel's clipped-axis line (160 characters)
    was cut at the title's 700 px limit, '... sit at its edge (…'."""
    path = tmp_path / "s.duckdb"
    plan = cs.Plan(medians_ms=(2.0, 1.97, 1.96), thermal=(None, None, None), rails_w=None,
                   window_s=1.0, backend="numpy", compute_units=None, model="smoke",
                   spikes=12)  # fmt: skip
    cs.sustained_run(path, (plan,))
    spec = build_chart("sustained", str(path), Options())
    assert spec["datasets"]["power"] == []
    files = write_chart("sustained", str(path), Options(), tmp_path / "s")
    root = dom.dump_dom(chromium, files["html"], tmp_path)
    rendered(root)
    texts = dom.svg_texts(root)
    caption = " ".join(texts)
    assert "Bottom:" not in caption and "rail" not in caption
    assert "Each call's latency at the time it started" in caption
    assert "Latency axis clipped to" in caption  # the panel's clipped line, whole:
    assert "sit at its edge (tooltip: real value)." in caption
    assert not [t for t in texts if "…" in t]
    assert not mark_items(root, "power_lines")
