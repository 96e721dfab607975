"""Charts that stay readable and say what they show: log axes past 20x, legends that
match their marks, categorical sweeps as points, clipped sample axes with the clipped
samples marked, OS versions compared, and the chart, the report and the chip_factors
view agreeing on every factor.

Figures are checked against values computed independently (numpy over the samples,
SQL over the view) from real DuckDB stores of SYNTHETIC samples (tests/fixtures/chart),
not measurements.
"""

from __future__ import annotations

import html
import re
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).parent / "fixtures" / "chart"))
import chart_dom as dom  # noqa: E402
import chart_synthetic as syn  # noqa: E402
from db_util import dict_rows

from anemll_spec.chart import build_chart, latency, robust, timeline  # noqa: E402
from anemll_spec.chart.report import write_report  # noqa: E402
from anemll_spec.chart.source import NoData, Options, connect  # noqa: E402
from anemll_spec.chart.style import fmt_num  # noqa: E402

OLD_MAC = {**syn.MAC_HOST, "os_version": "14.7", "os_build": "23H124"}


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> dict:
    path = tmp_path_factory.mktemp("readable") / "results.duckdb"
    ids = {
        "old": syn.lm_head_run(path, seed=1, host=OLD_MAC, scale=0.9),
        "mac": syn.lm_head_run(path, seed=2),
        "linux": syn.linux_run(path),
        "layout": syn.layout_run(path),
    }
    return {"path": path, **ids}


view = dict_rows


def samples(path: Path, run_id: str) -> dict[str, np.ndarray]:
    """case label prefix (model · backend) -> its samples in ms, in index order."""
    rows = view(
        path,
        """SELECT c.model_name, c.backend, s.wall_ns FROM samples s JOIN cases c USING (case_id)
           WHERE c.run_id = ? ORDER BY s.idx""",
        [run_id],
    )
    out: dict[str, list] = {}
    for r in rows:
        out.setdefault(f"{r['model_name']} · {r['backend']}", []).append(r["wall_ns"] / 1e6)
    return {k: np.array(v) for k, v in out.items()}


def panels(spec: dict) -> list[dict]:
    return [p for row in spec["vconcat"] for p in row["hconcat"]]


def panel_key(p: dict) -> tuple[str, str]:
    pred = p["layer"][0]["transform"][0]["filter"]["and"]
    return next(c["equal"] for c in pred if c["field"] == "model"), next(
        c["equal"] for c in pred if c["field"] == "metric"
    )


def test_factors_log_axis_exactly_where_values_span_over_20x(store):
    spec = build_chart("factors", str(store["path"]), Options())
    rows = view(store["path"], "SELECT * FROM chip_factors")
    col = {"bandwidth": "bandwidth_gbps", "latency": "latency_ms"}
    kinds = set()
    for p in panels(spec):
        model, metric = panel_key(p)
        values = [r[col[metric]] for r in rows if r["model"] == model and r[col[metric]]]
        x = p["layer"][0]["encoding"]["x"]
        log = max(values) / min(values) > 20
        kinds.add(log)
        assert (x["scale"].get("type") == "log") == log, (model, metric)
        assert x["title"].endswith(", log scale") == log
        if log:  # whole decades around every value, and bars start at the axis' end
            lo, hi = x["scale"]["domain"]
            assert (
                lo <= min(values)
                and max(values) <= hi
                and hi / lo <= 100 * max(values) / min(values)
            )
            assert np.log10(lo) == int(np.log10(lo)) and np.log10(hi) == int(np.log10(hi))
            assert p["layer"][0]["encoding"]["x2"]["datum"] == lo
    assert kinds == {True, False}  # the Linux numpy row makes some panels span > 20x


def test_legend_lists_only_the_series_drawn(store):
    for where, want in (
        (None, {"published", "published, derived", "own run"}),
        ("NOT (source = 'own')", {"published", "published, derived"}),
    ):
        spec = build_chart("factors", str(store["path"]), Options(where=where))
        drawn = {r["series"] for r in spec["datasets"]["factors"]}
        enc = panels(spec)[0]["layer"][0]["encoding"]
        assert set(enc["fill"]["scale"]["domain"]) == drawn == want
        assert enc["stroke"]["scale"]["domain"] == enc["fill"]["scale"]["domain"]
        assert "opacity" not in enc  # a derived figure is a lighter colour, not a fade
    # the legend drawn by vl-convert: one entry per drawn series, its swatch the bars' look
    import vl_convert

    root = dom.parse(vl_convert.vegalite_to_svg(spec, vl_version="6.4"))
    legend = {}
    for g in root.find("g"):
        sym = [c for c in g.children if "role-legend-symbol" in c.classes]
        lab = [c for c in g.children if "role-legend-label" in c.classes]
        if sym and lab:
            legend[lab[0].all_text()] = sym[0].find("path")[0].attrs["fill"].upper()
    bars = {}
    for b in [m for name in ("bars_bandwidth_", "bars_latency_") for m in _marks(root, name)]:
        series = b.attrs["aria-label"].split("series: ", 1)[1].split(";")[0]
        bars.setdefault(series, set()).add(b.attrs["fill"].upper())
    assert set(legend) == set(bars) == {"published", "published, derived"}
    assert all(bars[s] == {legend[s]} for s in legend)


def _marks(root, prefix: str) -> list:
    out = []
    for g in root.find("g"):
        if "role-mark" in g.classes and any(c.startswith(prefix) for c in g.classes):
            out.extend(c for c in g.children if c.tag == "path")
    return out


def _td(text: str) -> str:
    return html.escape(text, quote=True)


def test_chart_and_report_say_what_the_view_says(store, tmp_path):
    """Issue 14.6: one factor rule. The Linux numpy run's factors, read from the view,
    are the chart's figures and labels and the report's cells, word for word."""
    mine = view(
        store["path"], "SELECT * FROM chip_factors_vs('M1 Max') WHERE run_id = ?", [store["linux"]]
    )
    assert len(mine) == 1 and mine[0]["backend"] == "numpy"
    row = mine[0]
    assert row["baseline_source"] and row["baseline_source"].startswith("published: ")
    assert row["inference_factor"] == pytest.approx(row["baseline_latency_ms"] / row["latency_ms"])
    # M1 Max's fp16-head time is its published GB/s turned into ms: a derived baseline,
    # which every label says (its GB/s is published as is)
    assert row["baseline_latency_derived"] and not row["baseline_bandwidth_derived"]
    assert row["inference_factor_label"].endswith("x (derived baseline)")
    assert "derived" not in row["bandwidth_factor_label"]
    spec = build_chart("factors", str(store["path"]), Options())
    drawn = [r for r in spec["datasets"]["factors"] if r["run_id"] == store["linux"]]
    assert {r["metric"] for r in drawn} == {"bandwidth", "latency"}
    for r in drawn:
        factor, label = (
            ("bandwidth_factor", "bandwidth_factor_label")
            if r["metric"] == "bandwidth"
            else ("inference_factor", "inference_factor_label")
        )
        assert r["factor"] == row[factor]
        assert r["factor_label"] == f"{row[label]} vs {row['baseline_label']}"
    # the report's table: the same labels and the same words
    page = write_report(store["path"], store["linux"], tmp_path / "r.html").read_text()
    cells = [
        row["chip"], row["model"], "numpy", fmt_num(row["bandwidth_gbps"], 4),
        fmt_num(row["latency_ms"], 4), row["bandwidth_factor_label"],
        row["inference_factor_label"], row["baseline_label"],
    ]  # fmt: skip
    assert re.search(
        r"<tr>\s*" + r"\s*".join(rf"<td[^>]*>{re.escape(_td(c))}</td>" for c in cells), page
    )
    assert "no baseline" not in page


def test_factors_by_os_compares_the_os_versions_of_a_chip(store, tmp_path):
    rows = view(
        store["path"],
        "SELECT * FROM chip_factors WHERE source = 'own' AND chip = 'M4 Max' ORDER BY os_version",
    )
    assert {(r["model"], r["os_version"]) for r in rows} == {
        (m, v) for m in ("llama_lm_head", "llama_lm_head_lut6") for v in ("14.7", "15.3.1")
    }
    spec = build_chart("factors", str(store["path"]), Options(by="os"))
    data = spec["datasets"]["factors"]
    assert all(r["own"] for r in data)  # the published tables record no OS version
    assert any("Published rows are left out" in s for s in spec["title"]["subtitle"])
    mac = [r for r in data if r["chip"] == "M4 Max"]
    for r in mac:
        want = next(
            v for v in rows if v["model"] == r["model"] and v["os_version"] == r["os_version"]
        )
        assert r["value"] == (
            want["bandwidth_gbps"] if r["metric"] == "bandwidth" else want["latency_ms"]
        )
        assert r["series"] == f"macOS {r['os_version']}"
        assert r["label"].startswith(f"M4 Max · macOS {r['os_version']}")
    # a chip's versions sit together, oldest first
    order = sorted({(r["order"], r["label"]) for r in mac if r["model"] == "llama_lm_head"})
    assert [lab.split(" · ")[1].split(" (")[0] for _, lab in order] == [
        "macOS 14.7",
        "macOS 15.3.1",
    ]
    fill = panels(spec)[0]["layer"][0]["encoding"]["fill"]["scale"]
    assert fill["domain"] == ["Linux 6.1.0", "macOS 14.7", "macOS 15.3.1"]
    # default (by chip): both versions drawn, each label naming its OS
    labels = {
        r["label"]
        for r in build_chart("factors", str(store["path"]), Options())["datasets"]["factors"]
    }
    assert any("macOS 14.7" in lab for lab in labels) and any(
        "macOS 15.3.1" in lab for lab in labels
    )
    # the report of the newer run lists the chip on both versions
    page = write_report(store["path"], store["mac"], tmp_path / "r.html").read_text()
    section = page.split("<h2>This chip across OS versions</h2>", 1)[1].split("<h2>", 1)[0]
    assert "macOS 14.7" in section and "macOS 15.3.1" in section and "this run" in section
    assert 'id="chart-factors-os"' in section


def test_unknown_model_lists_the_models_there_are(store):
    with pytest.raises(NoData) as err:
        build_chart("factors", str(store["path"]), Options(model="lm_head"))
    msg = str(err.value)
    assert "model = 'lm_head'" in msg
    for model in ("llama_lm_head", "llama_lm_head_lut6", "smoke[layout=conv]"):
        assert model in msg
    assert msg.index("llama_lm_head") < msg.index("smoke[")  # published ones first


def test_report_shows_the_summary_percentiles(store, tmp_path):
    page = write_report(store["path"], store["mac"], tmp_path / "r.html").read_text()
    heads = re.findall(r"<th>([^<]*)</th>", page.split("<h2>Cases", 1)[1].split("</tr>", 1)[0])
    assert {"median (ms)", "p90 (ms)", "p99 (ms)"} <= set(heads)
    for x in samples(store["path"], store["mac"]).values():
        for q in (50, 90, 99):
            assert f'<td class="num">{fmt_num(float(np.percentile(x, q)), 4)}</td>' in page


def test_categorical_sweep_is_points_with_ci_bars(store):
    import vl_convert

    spec = build_chart("sweep", str(store["path"]), Options(runs=(store["layout"],)))
    marks = [layer["mark"]["type"] for layer in spec["layer"]]
    assert marks == ["rule", "point"]  # no line, no band between categories
    assert spec["layer"][1]["encoding"]["x"]["type"] == "nominal"
    root = dom.parse(vl_convert.vegalite_to_svg(spec, vl_version="6.4"))
    assert len(dom.marks(root, "sweep_points")) == 4  # 2 layouts x 2 backends
    assert len(dom.marks(root, "ci_bars")) == 4 and not dom.marks(root, "lines")
    # the numeric sweep keeps its lines
    path = Path(str(store["path"]).replace("results", "numeric"))
    run_id = syn.sweep_run(path, n=30)
    spec = build_chart("sweep", str(path), Options(runs=(run_id,)))
    assert [layer["mark"]["type"] for layer in spec["layer"]] == ["area", "line"]
    # y: a log axis when the values (CIs included) span more than 20x, as in factors
    for metric in ("bandwidth_gbps", "median_ms"):
        spec = build_chart("sweep", str(path), Options(runs=(run_id,), metric=metric))
        rows = spec["datasets"]["sweep"]
        values = [v for r in rows for v in (r["ci_lo"], r["value"], r["ci_hi"])]
        y = spec["layer"][1]["encoding"]["y"]
        log = max(values) / min(values) > 20
        assert (y["scale"].get("type") == "log") == log and y["title"].endswith("log scale") == log
        assert log == (metric == "median_ms")  # 8x vocab x 5x speed; GB/s only 5x


def fenced(x: np.ndarray) -> tuple[float, float]:
    """Tukey's far-out fences of `x`, cut to its extent (as documented in robust.py)."""
    q1, med, q3 = np.percentile(x, [25, 50, 75])
    iqr = max(q3 - q1, 0.01 * med)
    return max(x.min(), q1 - 3 * iqr), min(x.max(), q3 + 3 * iqr)


def test_latency_axis_is_clipped_and_the_clipped_samples_marked(store):
    ms = samples(store["path"], store["layout"])
    spans = [fenced(x) for x in ms.values()]
    lo, hi = min(s[0] for s in spans), max(s[1] for s in spans)
    allx = np.concatenate(list(ms.values()))
    assert allx.max() - allx.min() > 3 * (hi - lo)  # the outliers would flatten the boxes
    beyond = int(((allx > hi) | (allx < lo)).sum())
    spec = build_chart("latency", str(store["path"]), Options(runs=(store["layout"],)))
    x = next(lay for lay in spec["layer"] if lay["mark"]["type"] == "rule")["encoding"]["x"]
    w = hi - lo
    assert x["scale"]["domain"] == pytest.approx([lo - robust.EDGE * w, hi + robust.EDGE * w])
    points = spec["datasets"]["points"]
    marked = [p for p in points if p["clipped"]]
    assert len(marked) == beyond >= 8  # every sample beyond the axis, each marked
    assert all((p["ms"] > hi) == (p["clipped"] == 1) for p in points)
    for p in marked:  # drawn at the edge beyond the axis' end, on their side
        edge = hi + robust.EDGE * w if p["clipped"] == 1 else lo - robust.EDGE * w
        assert p["x_ms"] == pytest.approx(edge)
    assert any(f"{beyond:,} sample(s) beyond" in s for s in spec["title"]["subtitle"])
    # a run without far outliers is drawn whole
    plain = build_chart("latency", str(store["path"]), Options(runs=(store["mac"],)))
    rule = next(lay for lay in plain["layer"] if lay["mark"]["type"] == "rule")
    assert "domain" not in rule["encoding"]["x"]["scale"]
    assert not any(p["clipped"] for p in plain["datasets"]["points"])


def test_timeline_panels_are_clipped_per_case_with_every_clipped_sample_marked(store):
    ms = samples(store["path"], store["layout"])
    con = connect(str(store["path"]))
    try:
        points, _bins, n_cases, clips = timeline.query(con, Options(), store["layout"])
        boxes, _ = latency.query(con, Options(), store["layout"])
    finally:
        con.close()
    assert n_cases == 4 and len(clips) == 4 and len(boxes) == 4
    for label, clip in clips.items():
        x = ms[" · ".join(label.split(" · ")[:2])]
        lo, hi = fenced(x)
        assert clip is not None and (clip.lo, clip.hi) == pytest.approx((lo, hi))
        mine = [p for p in points if p["label"] == label]
        beyond = {i for i, v in enumerate(x) if v > hi or v < lo}
        assert {p["idx"] for p in mine if p["clipped"]} == beyond
        assert all(p["n_clipped"] == len(beyond) for p in mine)
        assert all(p["y_ms"] == pytest.approx(clip.hi_edge) for p in mine if p["clipped"] == 1)


def test_clip_range_rules():
    body = {"q1": 9.0, "median": 10.0, "q3": 11.0, "min_ms": 8.0, "max_ms": 12.0}
    assert robust.clip_range([body]) is None  # nothing far out
    far = {**body, "max_ms": 500.0}
    clip = robust.clip_range([far])
    assert clip and (clip.lo, clip.hi) == (8.0, 17.0)  # min, q3 + 3 IQR
    # quantised timer: IQR 0 still gives a range (1% of the median)
    flat = {"q1": 5.0, "median": 5.0, "q3": 5.0, "min_ms": 5.0, "max_ms": 90.0}
    clip = robust.clip_range([flat])
    assert clip and clip.hi == pytest.approx(5.15)
    # two cases: one axis over both bodies
    clip = robust.clip_range([far, {**body, "q1": 99.0, "median": 100.0, "q3": 101.0,
                                    "min_ms": 98.0, "max_ms": 102.0}])  # fmt: skip
    assert clip and (clip.lo, clip.hi) == (8.0, 102.0)  # both bodies, not the outlier
    near = {**far, "max_ms": 60.0}  # beyond the fences, but not flattening: drawn whole
    assert robust.clip_range([near, {**body, "min_ms": 30.0, "max_ms": 31.0, "q1": 30.2,
                                     "median": 30.5, "q3": 30.8}]) is None  # fmt: skip
    log = robust.clip_range([far], log=True)
    assert log.lo_edge < 8.0 and log.hi_edge > 17.0 and log.lo_edge > 0


def test_default_rows_prefer_the_published_kind_in_chart_and_report(tmp_path):
    """One default for `chart factors` and the report: of a chip's measured rows, the
    Core ML ANE one where there is one (the other compute units are named as hidden);
    a chip without one (Linux numpy) keeps its rows; any --where shows every row."""
    from anemll_spec.store import append_case, begin_run, finish_run

    path = tmp_path / "results.duckdb"
    run_id = begin_run(path, {"spec_name": "compute_units", "command": "synthetic"}, syn.MAC_HOST)
    for i, (cu, ms) in enumerate((("CPU_AND_NE", 8.8), ("CPU_ONLY", 60.0))):
        wall = syn.samples_ns(ms, 60, i)
        row = syn.case_row("llama_lm_head", wall, weight_bytes=syn.LM_HEAD_BYTES,
                           compute_units=cu, index=i)  # fmt: skip
        append_case(path, run_id, row, wall)
    finish_run(path, run_id, "finished")
    linux = syn.linux_run(path)
    spec = build_chart("factors", str(path), Options())
    own = {(r["chip"], r["compute_units"]) for r in spec["datasets"]["factors"] if r["own"]}
    assert own == {("M4 Max", "CPU_AND_NE"), (syn.LINUX_HOST["cpu_model"], None)}
    note = "Not shown: 1 measured row(s) of other backends or compute units"
    assert any(s.startswith(note) for s in spec["title"]["subtitle"])
    spec = build_chart("factors", str(path), Options(where="TRUE"))
    own = {(r["chip"], r["compute_units"]) for r in spec["datasets"]["factors"] if r["own"]}
    assert ("M4 Max", "CPU_ONLY") in own and len(own) == 3
    page = write_report(path, run_id, tmp_path / "r.html").read_text()
    assert note in page  # the report's chart: the same default, said the same way
    assert page.count("<td>coreml CPU_ONLY</td>") == 1  # its table lists every row
    page = write_report(path, linux, tmp_path / "l.html").read_text()
    assert note not in page


def test_many_measured_rows_name_their_baseline_by_a_key():
    from anemll_spec.chart import factors_draw

    def rows(n, against=("M1 Max (published, Core ML ANE)", "M1 Max (own, numpy)")):
        out = []
        for i in range(n):
            a = against[i % len(against)]
            out.append({"model": "m", "label": f"own: chip{i}", "own": True, "factor": 0.5,
                        "against": a, "factor_label": f"0.5x vs {a}"})  # fmt: skip
        out.append({"model": "m", "label": "M1 Max", "own": False, "factor": 1.0,
                    "against": "x", "factor_label": "1.0x"})  # fmt: skip
        return out

    few = rows(factors_draw.FULL_LABELS)
    assert factors_draw.key_factor_labels(few) == []
    assert all(" vs " in r["factor_label"] for r in few if r["own"])
    many = rows(factors_draw.FULL_LABELS + 1)
    (note,) = factors_draw.key_factor_labels(many)
    assert note == (
        "Factors of measured rows: [1] vs M1 Max (published, Core ML ANE); "
        "[2] vs M1 Max (own, numpy)."
    )
    assert {r["factor_label"] for r in many} == {"0.5x [1]", "0.5x [2]", "1.0x"}
