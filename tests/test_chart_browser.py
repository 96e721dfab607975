"""Charts and the report opened in headless Chromium, from disk, offline: what Vega drew,
read back from the DOM (marks, axis titles, labels), and that markup in store labels
stays text.

SYNTHETIC samples for chart rendering (tests/fixtures/chart), not measurements; the
published rows are the store's real reference table.
"""

from __future__ import annotations

import csv
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent / "fixtures" / "chart"))
import chart_dom as dom  # noqa: E402
import chart_synthetic as syn  # noqa: E402

from anemll_spec.chart import write_chart  # noqa: E402
from anemll_spec.chart.report import write_report  # noqa: E402
from anemll_spec.chart.source import Options  # noqa: E402

PUBLISHED_CSV = next((Path(__file__).parents[1] / "store").glob("*/anemll_bench_published.csv"))

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> dict:
    path = tmp_path_factory.mktemp("chartbrowser") / "results.duckdb"
    ids = {
        "lm_a": syn.lm_head_run(path, seed=7),
        "lm_b": syn.lm_head_run(path, seed=8, scale=1.02),
        "linux": syn.linux_run(path),
        "sweep": syn.sweep_run(path),
        "xss": syn.xss_run(path),
    }
    return {"path": str(path), **ids}


def published_chips(model: str) -> set[tuple[str, str]]:
    """(source, chip) pairs of the published CSV with a row for `model`."""
    with open(PUBLISHED_CSV, newline="", encoding="utf-8") as f:
        return {(r["source"], r["chip"]) for r in csv.DictReader(f) if r["model"] == model}


def xy(node: dom.Node) -> tuple[float, float]:
    """Position of an SVG element drawn by Vega (transform="translate(x,y)")."""
    x, y = node.attrs["transform"].removeprefix("translate(").rstrip(")").split(",")
    return float(x), float(y)


def bar_rows(root: dom.Node, name: str) -> dict[str, tuple[float, float]]:
    """label -> (y of the bar's top edge, its value) for the bars of mark `name`."""
    out = {}
    for bar in dom.marks(root, name):
        aria = dict(
            part.split(": ", 1) for part in bar.attrs["aria-label"].split("; ") if ": " in part
        )
        y = float(bar.attrs["d"].removeprefix("M").split("h")[0].split(",")[1])
        value = float(next(v for k, v in aria.items() if k.startswith(("bandwidth", "latency"))))
        out[aria["label"]] = (y, value)
    return out


def rendered(root: dom.Node, n: int) -> None:
    states = [d.attrs.get("data-rendered") for d in root.find("div", class_="chart")]
    assert states == ["true"] * n, states


def aria(node: dom.Node) -> dict[str, str]:
    return dict(p.split(": ", 1) for p in node.attrs["aria-label"].split("; ") if ": " in p)


def test_factors_one_bar_per_chip_with_units_and_readable_labels(chromium, store, tmp_path):
    files = write_chart("factors", store["path"], Options(), tmp_path / "out")
    root = dom.dump_dom(chromium, files["html"], tmp_path)
    rendered(root, 1)
    texts = dom.svg_texts(root)
    own_models = {"llama_lm_head": 2, "llama_lm_head_lut6": 1}  # the Mac's; Linux: fp16 only
    for model in ("llama_lm_head", "llama_lm_head_lut6"):
        # own rows of every backend are drawn by default (as in the report)
        expected = len(published_chips(model)) + own_models[model]
        for metric in ("bandwidth", "latency"):
            bars = dom.marks(root, f"bars_{metric}_{model}")
            assert len(bars) == expected, (model, metric)
            assert all(b.attrs.get("aria-roledescription") == "bar" for b in bars)
            labels = dom.marks(root, f"factors_{metric}_{model}")
            assert len(labels) == expected
            assert f"{model} — {metric}" in texts
            # a panel whose values span more than 20x has a log axis, and says so
            values = [float(next(v for k, v in aria(b).items() if k.startswith(metric)))
                      for b in bars]  # fmt: skip
            log = max(values) / min(values) > 20
            unit = "GB/s, higher" if metric == "bandwidth" else "ms, lower"
            title = f"{metric} ({unit} is better)" + (", log scale" if log else "")
            assert title in texts, (model, metric, max(values) / min(values))
    for _source, chip in published_chips("llama_lm_head"):
        assert any(t == chip or t.startswith(chip + " · ") for t in texts), chip
    # two own kinds shown: each own label names its backend, and the cut of a long chip
    # name keeps it (each chip is on one OS: the tooltip names it)
    assert "own: M4 Max (coreml CPU_AND_NE)" in texts
    assert any(t.startswith("own: Intel(R) Xeon(R)") and t.endswith("… (numpy)") for t in texts)
    assert any(t.endswith("(derived, derived baseline)") for t in texts)
    assert not any("Not shown" in t and "own result" in t for t in texts)
    # the legend lists exactly the series drawn, each swatch the colour of its bars
    legend = {}
    for g in root.find("g"):
        sym = [c for c in g.children if "role-legend-symbol" in c.classes]
        lab = [c for c in g.children if "role-legend-label" in c.classes]
        if sym and lab:
            path = sym[0].find("path")[0].attrs
            legend[lab[0].all_text()] = (path["fill"].upper(), path.get("stroke", "").upper())
    drawn = {}
    for model in ("llama_lm_head", "llama_lm_head_lut6"):
        for metric in ("bandwidth", "latency"):
            for b in dom.marks(root, f"bars_{metric}_{model}"):
                look = (b.attrs["fill"].upper(), b.attrs.get("stroke", "").upper())
                assert drawn.setdefault(aria(b)["series"], look) == look
    assert set(legend) == set(drawn) == {"published", "published, derived", "own run"}
    assert legend == drawn
    # a chip's two bars share its row: same label, same y, in both panels of a model;
    # rows go from the highest bandwidth down
    for model in ("llama_lm_head", "llama_lm_head_lut6"):
        rows = {m: bar_rows(root, f"bars_{m}_{model}") for m in ("bandwidth", "latency")}
        assert rows["bandwidth"] and rows["bandwidth"].keys() == rows["latency"].keys()
        assert {k: y for k, (y, _) in rows["bandwidth"].items()} == {
            k: y for k, (y, _) in rows["latency"].items()
        }
        by_y = sorted(rows["bandwidth"].values())
        assert [v for _, v in by_y] == sorted((v for _, v in by_y), reverse=True)
    # 15+ chips on a band axis: every label drawn, each on its own row, none overlapping;
    # one y axis per model (the latency panel reads its rows from the bandwidth one's)
    y_axes = [
        [t for t in g.children if t.tag == "text" and xy(t)[0] < 0]  # left of the view
        for g in root.find("g", cls_prefix="role-axis-label")
    ]
    y_axes = [labels for labels in y_axes if labels]
    assert len(y_axes) == 2
    for labels in y_axes:
        assert len(labels) >= 15
        assert all(t.attrs.get("opacity", "1") == "1" for t in labels)
        ys = sorted(xy(t)[1] for t in labels)
        assert min(b - a for a, b in zip(ys, ys[1:], strict=False)) >= 12  # 11 px font


@pytest.mark.slow  # every chart kind drawn and opened in Chromium: ~13 s (make test-slow; CI runs both)
def test_every_kind_renders_in_the_browser(chromium, store, tmp_path):
    cases = {
        "latency": (Options(runs=(store["lm_a"],)), "latency (ms, wall clock per predict call)"),
        "timeline": (Options(runs=(store["lm_a"],)), "iteration (timed call index)"),
        "sweep": (Options(runs=(store["sweep"],)), "bandwidth (GB/s)"),
        "placement": (Options(runs=(store["sweep"],)), "share of ops (%)"),
        "compare": (Options(runs=(store["lm_a"], store["lm_b"])), None),
    }
    for kind, (opts, axis) in cases.items():
        files = write_chart(kind, store["path"], opts, tmp_path / kind)
        root = dom.dump_dom(chromium, files["html"], tmp_path)
        rendered(root, 1)
        texts = dom.svg_texts(root)
        assert any(
            t.startswith(("Latency", "Sweep", "Op placement", "Run comparison")) for t in texts
        ), kind
        if axis:
            assert axis in texts, (kind, texts[:40])
    # latency: one box per case of the run (2 models)
    root = dom.dump_dom(chromium, tmp_path / "latency" / "latency.html", tmp_path)
    assert len(dom.marks(root, "boxes")) == 2
    assert len(dom.marks(root, "medians")) == 2
    # sweep: 2 series x 4 vocab sizes as points on the lines
    root = dom.dump_dom(chromium, tmp_path / "sweep" / "sweep.html", tmp_path)
    assert len(dom.marks(root, "lines")) == 2  # one path per series


def test_markup_in_labels_renders_as_text_and_never_runs(chromium, store, tmp_path):
    files = write_chart("latency", store["path"], Options(runs=(store["xss"],)), tmp_path / "x")
    report = write_report(store["path"], store["xss"], tmp_path / "r.html")
    titles = {
        files["html"]: "anemll-spec latency",
        report: f"anemll-spec report: {syn.XSS} run {store['xss']}",  # as text
    }
    for page, want in titles.items():
        root = dom.dump_dom(chromium, page, tmp_path)
        # the payload, if it ran, would set document.title to 'pwned'
        assert root.find("title")[0].all_text() == want
        assert not root.find("img", src="x")  # no element was created from a label
        texts = dom.svg_texts(root)
        # the label holds the markup as text (cut in its middle past 40 characters)
        assert any(t.startswith("<script>document.ti…") for t in texts), texts
    # in the report's HTML tables too: shown literally as text
    assert syn.XSS in root.all_text()
    rendered(root, 3)  # latency, timeline, placement (no published model, no sweep)


def test_report_renders_every_chart_and_reads_well(chromium, store, tmp_path):
    page = write_report(store["path"], store["lm_b"], tmp_path / "report.html")
    root = dom.dump_dom(chromium, page, tmp_path)
    ids = [d.attrs["id"] for d in root.find("div", class_="chart")]
    assert ids == [
        "chart-factors",
        "chart-latency",
        "chart-timeline",
        "chart-placement",
        "chart-compare",
    ]
    rendered(root, 5)
    headings = [h.all_text() for h in root.find("h2")]
    assert "Host and versions" in headings and "Cases (2)" in headings
    note = [p.all_text() for p in root.find("p", class_="note")]
    assert any("swept no parameter" in n for n in note)
    png = dom.screenshot(chromium, page, tmp_path / "report.png", tmp_path)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.slow  # a report opened in Chromium: ~7 s (make test-slow; CI runs both)
def test_report_compares_os_versions_and_marks_clipped_samples(chromium, tmp_path):
    """Two macOS versions of one chip, and a smoke-like layout sweep with far outliers:
    the report draws the OS comparison, the categorical sweep as points, and the
    clipped samples as their own marks, in Chromium."""
    path = tmp_path / "results.duckdb"
    syn.lm_head_run(path, seed=1, host={**syn.MAC_HOST, "os_version": "14.7"})
    mac = syn.lm_head_run(path, seed=2)
    layout = syn.layout_run(path)
    root = dom.dump_dom(chromium, write_report(path, mac, tmp_path / "mac.html"), tmp_path)
    ids = [d.attrs["id"] for d in root.find("div", class_="chart")]
    assert "chart-factors-os" in ids
    rendered(root, len(ids))
    texts = dom.svg_texts(root)
    assert {"macOS 14.7", "macOS 15.3.1"} <= set(texts)  # the OS legend
    assert any(t.startswith("M4 Max · macOS 14.7") for t in texts)
    root = dom.dump_dom(chromium, write_report(path, layout, tmp_path / "l.html"), tmp_path)
    ids = [d.attrs["id"] for d in root.find("div", class_="chart")]
    rendered(root, len(ids))
    assert len(dom.marks(root, "sweep_points")) == 4 and not dom.marks(root, "lines")
    clipped = dom.marks(root, "clipped")  # latency and timeline: triangles at the edges
    assert clipped and all("latency (ms): " in c.attrs.get("aria-label", "") for c in clipped)
    texts = dom.svg_texts(root)
    assert any("drawn as triangles at the edge" in t for t in texts)
