"""What each chart draws, checked against figures computed independently (numpy, the
published CSV, anemll_spec.compare) from a store written through the real write API.

The stores hold SYNTHETIC samples for chart rendering (tests/fixtures/chart), not
measurements; the published rows are the real reference table.
"""

from __future__ import annotations

import csv
import json
import re
import sys
from pathlib import Path

import duckdb
import numpy as np
import pytest
import vl_convert

sys.path.insert(0, str(Path(__file__).parent / "fixtures" / "chart"))
import chart_synthetic as syn  # noqa: E402

from anemll_spec.chart import (  # noqa: E402
    build_chart,
    compare,
    factors,
    latency,
    placement,
    sweep,
    timeline,
)
from anemll_spec.chart.source import NoData, Options, connect  # noqa: E402

PUBLISHED_CSV = next((Path(__file__).parents[1] / "store").glob("*/anemll_bench_published.csv"))


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> dict:
    path = tmp_path_factory.mktemp("chart") / "results.duckdb"
    ids = {
        "lm_a": syn.lm_head_run(path, seed=1),
        "lm_b": syn.lm_head_run(path, seed=2, scale=1.05),
        "linux": syn.linux_run(path),
        "sweep": syn.sweep_run(path),
    }
    return {"path": path, **ids}


def samples_ms(path: Path, run_id: str) -> dict[str, np.ndarray]:
    con = duckdb.connect(str(path), read_only=True)
    try:
        rows = con.execute(
            "SELECT c.model_name, s.wall_ns FROM samples s JOIN cases c USING (case_id) "
            "WHERE c.run_id = ? ORDER BY s.idx",
            [run_id],
        ).fetchall()
    finally:
        con.close()
    out: dict[str, list] = {}
    for model, ns in rows:
        out.setdefault(model, []).append(ns / 1e6)
    return {k: np.array(v) for k, v in out.items()}


def published() -> list[dict]:
    with open(PUBLISHED_CSV, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def test_factors_rows_match_published_csv_and_own_medians(store):
    con = connect(str(store["path"]))
    try:
        rows = factors.query(con, Options())
    finally:
        con.close()
    pub = published()
    # every published bandwidth of llama_lm_head appears, with factor = value / M1 Max
    m1max = {
        r["source"]: float(r["value"])
        for r in pub
        if r["chip"] == "M1 Max"
        and r["model"] == "llama_lm_head"
        and r["metric"] == "bandwidth_gbps"
    }
    table6 = "ANEMLL-Bench results table (6 chips)"
    for r in pub:
        if r["model"] != "llama_lm_head" or r["metric"] != "bandwidth_gbps":
            continue
        got = [
            x
            for x in rows
            if x["source"] == "published: " + r["source"]
            and x["chip"] == r["chip"]
            and x["model"] == "llama_lm_head"
            and x["metric"] == "bandwidth"
        ]
        assert len(got) == 1, r
        assert got[0]["value"] == pytest.approx(float(r["value"]))
        assert got[0]["derived"] is False
        if r["source"] == table6:
            assert got[0]["factor"] == pytest.approx(float(r["value"]) / m1max[table6])
    # the published table's rounded factors (README): M4 Pro 2.3x, M4 Max 2.2x bandwidth
    by_chip = {
        x["chip"]: x
        for x in rows
        if x["source"] == "published: " + table6
        and x["model"] == "llama_lm_head"
        and x["metric"] == "bandwidth"
    }
    assert by_chip["M4 Pro"]["factor_label"] == "2.3x"
    assert by_chip["M4 Max"]["factor_label"] == "2.2x"
    # fp16 latency of the published tables is derived, and labelled so
    lat = [
        x
        for x in rows
        if x["source"] == "published: " + table6
        and x["model"] == "llama_lm_head"
        and x["metric"] == "latency"
    ]
    # ... against M1 Max's derived figure too: both said once, never '(derived ...) (derived)'
    assert lat and all(
        x["derived"] and x["factor_label"].endswith(" (derived, derived baseline)") for x in lat
    )
    assert not any("baseline) (derived" in x["factor_label"] for x in rows)
    # own rows: the LATEST run's median per chip x model x backend x compute units
    ms = samples_ms(store["path"], store["lm_b"])
    own = [x for x in rows if x["own"] and x["backend"] == "coreml"]
    lut6 = [x for x in own if x["model"] == "llama_lm_head_lut6" and x["metric"] == "latency"]
    assert len(lut6) == 1
    assert lut6[0]["value"] == pytest.approx(float(np.median(ms["llama_lm_head_lut6"])))
    assert lut6[0]["label"].startswith("own: M4 Max")
    # inference factor = baseline ms / our ms, baseline from the same model's M1 Max row
    m1_lut6 = next(
        float(r["value"])
        for r in pub
        if r["chip"] == "M1 Max" and r["model"] == "llama_lm_head_lut6" and r["source"] == table6
    )
    assert lut6[0]["factor"] == pytest.approx(m1_lut6 / lut6[0]["value"])
    # the Linux numpy row is drawn by default, with the view's factor and what it is
    # against (the store's rule: a published M1 Max figure), or 'no baseline'
    linux = [x for x in rows if x["own"] and x["backend"] == "numpy"]
    assert {x["metric"] for x in linux} == {"bandwidth", "latency"}
    for x in linux:
        if x["factor"] is None:
            assert x["factor_label"] == "no baseline"
        else:
            assert x["factor_label"].endswith(f"vs {x['against']}")
            assert x["against"] == f"M1 Max ({'published, Core ML ANE'})"


def test_factors_never_mix_models_in_a_panel(store):
    spec = build_chart("factors", str(store["path"]), Options())
    panels = [p for row in spec["vconcat"] for p in row["hconcat"]]
    assert len(panels) == 4  # 2 published models x (bandwidth, latency)
    titles = []
    for p in panels:
        pred = p["layer"][0]["transform"][0]["filter"]["and"]
        models = [c["equal"] for c in pred if c["field"] == "model"]
        assert len(models) == 1
        titles.append(p["layer"][0]["title"]["text"])
        assert models[0] in titles[-1]
    assert sorted(titles) == sorted(
        f"{m} — {k}"
        for m in ("llama_lm_head", "llama_lm_head_lut6")
        for k in ("bandwidth", "latency")
    )
    # the sweep's own-only models are left out by default, and the subtitle says so
    assert any("Not shown" in s for s in spec["title"]["subtitle"])


def _row(model, label, metric, value, *, own=False, backend="coreml", cu="CPU_AND_NE"):
    return {
        "model": model,
        "label": label,
        "metric": metric,
        "value": value,
        "own": own,
        "backend": backend,
        "compute_units": cu,
    }


def test_factor_labels_name_own_kinds_only_when_they_differ_and_share_one_order():
    long = "M4 Max · a published source with a really long and wordy name"
    rows = [
        _row("m", "own: M4 Max", "bandwidth", 100.0, own=True),
        _row("m", "own: M4 Max", "latency", 10.0, own=True),
        _row("m", long, "bandwidth", 300.0),
        _row("m", long + " 2", "bandwidth", 200.0),
        _row("m", "M1", "latency", 50.0),  # no bandwidth: after every chip that has one
        _row("m", "M2", "latency", 40.0),
    ]
    notes = factors.label_rows(rows)
    assert notes == ["Own runs: coreml CPU_AND_NE."]
    labels = {r["label"] for r in rows}
    assert "own: M4 Max" in labels
    cut = [lab for lab in labels if lab.startswith("M4 Max")]
    assert len(cut) == 2  # cut to length, yet still two rows
    assert all(len(lab) <= factors.LABEL_CHARS and "…" in lab for lab in cut)
    order = {r["label"]: r["order"] for r in rows}
    by_order = sorted(order, key=order.get)
    assert by_order[:3] == [
        next(c for c in cut if "#" not in c),
        next(c for c in cut if "#" in c),
        "own: M4 Max",
    ]
    assert by_order[3:] == ["M2", "M1"]  # lower latency first
    # the two metrics of one row keep one order
    assert len({r["order"] for r in rows if r["label"] == "own: M4 Max"}) == 1

    mixed = [
        _row("m", "own: M4 Max", "bandwidth", 100.0, own=True),
        _row("m", "own: M4 Max", "bandwidth", 90.0, own=True, backend="numpy", cu=""),
    ]
    assert factors.label_rows(mixed) == []
    assert [r["label"] for r in mixed] == ["own: M4 Max (coreml CPU_AND_NE)", "own: M4 Max (numpy)"]


def test_latency_boxes_are_tukey_over_all_samples(store):
    con = connect(str(store["path"]))
    try:
        boxes, points = latency.query(con, Options(max_points=100), store["lm_a"])
    finally:
        con.close()
    ms = samples_ms(store["path"], store["lm_a"])
    assert {b["model_name"] for b in boxes} == set(ms)
    for b in boxes:
        x = ms[b["model_name"]]
        q1, med, q3 = np.percentile(x, [25, 50, 75])
        assert (b["q1"], b["median"], b["q3"]) == pytest.approx((q1, med, q3))
        iqr = q3 - q1
        assert b["whisker_lo"] == pytest.approx(x[x >= q1 - 1.5 * iqr].min())
        assert b["whisker_hi"] == pytest.approx(x[x <= q3 + 1.5 * iqr].max())
        assert b["n"] == len(x)
    # points are subsampled: 100 // 2 cases = 50 per case, each a real sample
    assert len(points) == 100
    allv = np.concatenate(list(ms.values()))
    assert all(np.isclose(allv, p["ms"]).any() for p in points)


def test_timeline_bins_are_medians_of_consecutive_samples(store):
    con = connect(str(store["path"]))
    try:
        points, bins, n_cases, _clips = timeline.query(con, Options(), store["lm_a"])
    finally:
        con.close()
    ms = samples_ms(store["path"], store["lm_a"])
    assert n_cases == 2
    x = ms["llama_lm_head"]
    width = max(timeline.MIN_BIN, int(np.ceil(len(x) / timeline.BINS)))
    mine = [b for b in bins if b["label"].startswith("llama_lm_head ·")]
    assert len(mine) == int(np.ceil(len(x) / width))
    for b in mine:
        k = b["idx_from"] // width
        assert b["median_ms"] == pytest.approx(float(np.median(x[k * width : (k + 1) * width])))
    # the warm-up the synthetic data has shows: first bin slower than the last
    assert mine[0]["median_ms"] > mine[-1]["median_ms"]


def test_sweep_picks_the_swept_field_and_converts_the_ci(store):
    con = connect(str(store["path"]))
    try:
        rows, param, metric = sweep.query(con, Options(), store["sweep"])
        rows_ms, _, _ = sweep.query(con, Options(metric="median_ms"), store["sweep"])
    finally:
        con.close()
    assert (param, metric) == ("model.vocab_size", "bandwidth_gbps")
    assert {r["series"] for r in rows} == {"coreml · CPU_ONLY", "coreml · CPU_AND_NE"}
    assert sorted({r["x_num"] for r in rows}) == [16000, 32000, 64000, 128256]
    for r in rows:
        nbytes = 4096 * int(r["x_num"]) * 2
        assert r["value"] == pytest.approx(nbytes / (r["median_ms"] * 1e6))
        assert r["ci_lo"] == pytest.approx(nbytes / (r["ci_high_ms"] * 1e6))
        assert r["ci_hi"] == pytest.approx(nbytes / (r["ci_low_ms"] * 1e6))
        assert r["ci_lo"] <= r["value"] <= r["ci_hi"]
    for r in rows_ms:
        assert (r["ci_lo"], r["value"], r["ci_hi"]) == (
            r["ci_low_ms"],
            r["median_ms"],
            r["ci_high_ms"],
        )
    # a whole-number field has whole-number ticks (no 1.5 vocab); a fractional one keeps them
    spec = sweep.chart(rows, param, metric, "r", Options())
    layers = spec.get("layer") or [spec]
    axes = [layer["encoding"]["x"].get("axis", {}) for layer in layers]
    ticks = [16000, 32000, 64000, 128256]  # a few whole values: each one a tick
    assert all(a == {"format": "d", "values": ticks} for a in axes), axes
    # two values (concurrency 1, 2): Vega put a tick at 1.5, labelled "2" (1 2 2)
    pair = [r for r in rows if r["x_num"] in (16000, 32000)]
    pair = [{**r, "x_num": 1.0 if r["x_num"] == 16000 else 2.0} for r in pair]
    spec = sweep.chart(pair, "run.concurrency", metric, "r", Options())
    svg = vl_convert.vegalite_to_svg(spec)
    labels = re.findall(r"<text[^>]*>([^<]*)</text>", svg)
    assert labels.count("2") == 1 and labels.count("1") == 1, labels
    many = [{**r, "x_num": float(i + 1)} for i, r in enumerate(rows * 4)]  # 32 values
    spec = sweep.chart(many, param, metric, "r", Options())
    x = (spec.get("layer") or [spec])[0]["encoding"]["x"]["axis"]
    assert x == {"format": "d", "tickMinStep": 1}
    halves = [{**r, "x_num": r["x_num"] + 0.5} for r in rows]
    spec = sweep.chart(halves, param, metric, "r", Options())
    layers = spec.get("layer") or [spec]
    assert all("format" not in layer["encoding"]["x"].get("axis", {}) for layer in layers)


def test_placement_shares_count_ops_per_device(store):
    con = connect(str(store["path"]))
    try:
        rows = placement.query(con, Options(), store["sweep"])
    finally:
        con.close()
    for cu in ("CPU_ONLY", "CPU_AND_NE"):
        plan = syn.placements(cu)
        mine = [
            r for r in rows if "vocab_size=16000" in r["row_label"] and f"· {cu}" in r["row_label"]
        ]
        for measure, weight in (
            ("share of ops", lambda p: 1.0),
            ("share of estimated cost", lambda p: p["estimated_cost"]),
        ):
            got = {r["device"]: r["share"] for r in mine if r["measure"] == measure}
            total = sum(weight(p) for p in plan)
            want = {}
            for p in plan:
                want[p["preferred_device"]] = want.get(p["preferred_device"], 0) + weight(p)
            assert got == pytest.approx({k: v / total for k, v in want.items()})


def test_compare_chart_draws_what_compare_runs_computes(store):
    from anemll_spec.compare import compare_runs

    want = compare_runs(str(store["path"]), store["lm_a"], store["lm_b"])
    spec = build_chart("compare", str(store["path"]), Options(runs=(store["lm_a"], store["lm_b"])))
    drawn = spec["datasets"]["comparisons"]
    assert len(drawn) == len(want["comparisons"]) == 2
    for d, w in zip(drawn, want["comparisons"], strict=True):
        assert (d["ratio"], d["ci_low"], d["ci_high"]) == (w["ratio"], w["ci_low"], w["ci_high"])
    # B is 5% slower by construction of the synthetic data
    assert all(d["verdict"] == "slower" and d["ratio"] > 1.02 for d in drawn)
    # the x axis's labels are our round ticks inside its domain, which holds every CI
    # and 1 (Vega's own drew one past each end, against its neighbour: "0.500.55")
    axes = [layer["encoding"]["x"] for layer in spec["layer"] if "axis" in layer["encoding"]["x"]]
    assert axes
    for x in axes:
        low, high = x["scale"]["domain"]
        values = x["axis"]["values"]
        assert 2 <= len(values) <= 10 and all(low <= v <= high for v in values)
        assert low <= min(min(d["ci_low"] for d in drawn), 1.0)
        assert high >= max(max(d["ci_high"] for d in drawn), 1.0)


@pytest.mark.parametrize(
    "low, high, want",
    [
        (0.5887, 1.2504, [0.6, 0.7, 0.8, 0.9, 1.0, 1.1, 1.2]),
        (0.98, 1.031, [0.98, 0.99, 1.0, 1.01, 1.02, 1.03]),
        (0.2, 3.1, [0.5, 1.0, 1.5, 2.0, 2.5, 3.0]),
        (0.9991, 1.0012, None),  # a tight CI: steps of 0.0005 or finer
    ],
)
def test_compare_ticks_are_round_and_inside(low, high, want):
    got = compare.ticks(low, high)
    assert 2 <= len(got) <= 10 and all(low <= v <= high for v in got)
    steps = np.diff(got)
    assert np.allclose(steps, steps[0])  # evenly spaced
    mantissa = steps[0] / 10 ** np.floor(np.log10(steps[0]))
    assert any(np.isclose(mantissa, m) for m in (1, 2, 2.5, 5))
    if want is not None:
        assert got == pytest.approx(want)


@pytest.mark.parametrize("kind", ["factors", "latency", "timeline", "sweep", "placement"])
def test_every_kind_is_valid_vega_lite_with_a_title(store, kind):
    import altair as alt
    import jsonschema

    opts = Options(runs=(store["sweep"],)) if kind in ("sweep", "placement") else Options()
    spec = build_chart(kind, str(store["path"]), opts)
    jsonschema.validate(spec, alt.load_schema())
    assert spec["title"]["text"]
    # units in the axis titles
    text = json.dumps(spec)
    assert any(u in text for u in ("(ms", "(GB/s", "(%)"))


def test_nothing_to_draw_names_the_filter(store, tmp_path):
    with pytest.raises(NoData, match="no-such-model"):
        build_chart("latency", str(store["path"]), Options(model="no-such-model"))
    with pytest.raises(NoData, match="backend = 'tpu'"):
        build_chart("factors", str(store["path"]), Options(where="backend = 'tpu'"))
    with pytest.raises(NoData, match="swept no parameter"):
        build_chart("sweep", str(store["path"]), Options(runs=(store["lm_a"],)))
    with pytest.raises(NoData, match="no op placements"):
        build_chart("placement", str(store["path"]), Options(runs=(store["linux"],)))
    with pytest.raises(compare.InputError, match="two runs"):
        build_chart("compare", str(store["path"]), Options(runs=(store["lm_a"],)))


def test_sweep_legend_tells_apart_more_series_than_colours(tmp_path):
    import chart_dom as dom
    import vl_convert

    from anemll_spec.chart.style import OKABE_ITO

    path = tmp_path / "results.duckdb"
    chunks = range(1, len(OKABE_ITO) + 3)  # more series than the palette has colours
    run_id = syn.chunks_sweep_run(path, chunks, (16000, 64000))
    spec = build_chart("sweep", str(path), Options(runs=(run_id,), param="model.vocab_size"))
    root = dom.parse(vl_convert.vegalite_to_svg(spec, vl_version="6.4"))
    legend = {}
    for g in root.find("g"):
        sym = [c for c in g.children if "role-legend-symbol" in c.classes]
        lab = [c for c in g.children if "role-legend-label" in c.classes]
        if sym and lab:
            a = sym[0].find("path")[0].attrs
            legend[lab[0].all_text()] = (a["stroke"].upper(), a.get("stroke-dasharray", ""))
    lines = {}
    for path_el in dom.marks(root, "lines"):
        series = path_el.attrs["aria-label"].split("series: ", 1)[1].split("; ", 1)[0]
        a = path_el.attrs
        lines[series] = (a["stroke"].upper(), a.get("stroke-dasharray", ""))
    # one CI band per series, in its line's colour
    bands = [
        (b.attrs["aria-label"].split("series: ", 1)[1].split("; ", 1)[0], b.attrs["fill"].upper())
        for b in dom.marks(root, "ci_band")
    ]
    assert sorted(bands) == sorted((s, stroke) for s, (stroke, _d) in lines.items())
    want = {f"numpy · model.chunks={c}" for c in chunks}
    assert set(lines) == want and set(legend) == want
    assert legend == lines  # each entry looks like its line
    assert len(set(legend.values())) == len(want)  # no two series look alike
    assert {s for s, _d in legend.values()} <= {c.upper() for c in OKABE_ITO}
    # listed in the order of the numbers, not of the strings ("10" after "9")
    order = [
        t.all_text()
        for g in root.find("g")
        if "role-legend-label" in g.classes
        for t in g.find("text")
    ]
    assert order == [f"numpy · model.chunks={c}" for c in chunks]


def test_placement_of_cases_without_placements_says_why(store, tmp_path):
    path = tmp_path / "numpy_only.duckdb"
    syn.linux_run(path)
    for where_path, opts in (
        (path, Options()),
        (store["path"], Options(where="backend = 'numpy'")),
    ):
        with pytest.raises(NoData, match="no case has op placements") as err:
            build_chart("placement", str(where_path), opts)
        assert "coreml backend on macOS" in str(err.value)
        assert "no cases to draw" not in str(err.value)
    # no case at all passes the filter: that is what it says
    with pytest.raises(NoData, match="no cases to draw"):
        build_chart("placement", str(path), Options(model="no-such-model"))


def test_sweep_series_of_torch_tell_devices_apart(tmp_path):
    """Two torch devices in one sweep are two lines (two legend entries), not one."""
    from anemll_spec.store import append_case, begin_run, finish_run

    path = tmp_path / "s.duckdb"
    run_id = begin_run(path, {"spec_name": "sw", "command": "synthetic"}, syn.MAC_HOST)
    idx = 0
    for device, speed in (("cuda", 2000.0), ("cpu", 20.0)):
        for vocab in (16000, 32000):
            nbytes = 4096 * vocab * 2
            wall = syn.samples_ns(nbytes / (speed * 1e6), 60, idx)
            row = syn.case_row(
                f"sw[vocab_size={vocab}]", wall, weight_bytes=nbytes, backend="torch",
                compute_units=None, index=idx, params={"model.vocab_size": vocab},
            )  # fmt: skip
            append_case(path, run_id, {**row, "device": device}, wall)
            idx += 1
    finish_run(path, run_id, "finished")
    spec = build_chart("sweep", str(path), Options(runs=(run_id,)))
    rows = spec["datasets"][next(iter(spec["datasets"]))]
    assert sorted({r["series"] for r in rows}) == ["torch · cpu", "torch · cuda"]


def test_latency_and_timeline_of_a_case_with_300k_samples(tmp_path):
    """A long run (a 600 s sustained run of 1 ms calls; the spec allows a million
    iterations): sample indices past 271,000 once overflowed the jitter's INT32 product."""
    from anemll_spec.store import append_case, begin_run, finish_run

    path = tmp_path / "results.duckdb"
    run_id = begin_run(path, {"spec_name": "long", "command": "synthetic"}, syn.LINUX_HOST)
    wall = syn.samples_ns(1.0, 300_000, 3)
    row = syn.case_row("smoke", wall, weight_bytes=2048, backend="numpy", compute_units=None)
    append_case(path, run_id, row, wall)
    finish_run(path, run_id, "finished")
    for kind, name in (("latency", "points"), ("timeline", "samples")):
        spec = build_chart(kind, str(path), Options())
        points = spec["datasets"][name]
        assert 50 <= len(points) <= Options().max_points + 2 * 500
        assert max(p["idx"] for p in points) > 271_178  # 2**31 / 7919: past the old overflow


def _color_domains(spec, field: str) -> list[list]:
    """Every colour/fill scale domain on `field` in a Vega-Lite spec."""
    found = []

    def walk(node):
        if isinstance(node, dict):
            for key in ("color", "fill"):
                enc = node.get(key)
                if isinstance(enc, dict) and enc.get("field") == field and "scale" in enc:
                    found.append(enc["scale"].get("domain"))
            for v in node.values():
                walk(v)
        elif isinstance(node, list):
            for v in node:
                walk(v)

    walk(spec)
    return found


def test_legends_list_only_what_is_drawn(store):
    spec = build_chart("compare", str(store["path"]), Options(runs=(store["lm_a"], store["lm_b"])))
    domains = _color_domains(spec, "verdict")
    assert domains and all(d == ["slower"] for d in domains)  # both rows are slower
    spec = build_chart("placement", str(store["path"]), Options(runs=(store["sweep"],)))
    drawn = {r["device"] for r in spec["datasets"]["placements"]}
    domains = _color_domains(spec, "device")
    assert domains and all(set(d) == drawn and len(d) == len(drawn) for d in domains)


def test_sweep_throughput_is_the_stored_figure_without_a_median_ci(store):
    con = connect(str(store["path"]))
    try:
        rows, _, metric = sweep.query(con, Options(metric="throughput_ips"), store["sweep"])
        # calls per second from the samples themselves: 1000 / mean latency (ms)
        stored = dict(
            con.execute(
                "SELECT case_id, 1e3 / avg(wall_ns / 1e6) FROM samples WHERE case_id IN "
                "(SELECT case_id FROM cases WHERE run_id = ?) GROUP BY case_id",
                [store["sweep"]],
            ).fetchall()
        )
    finally:
        con.close()
    assert metric == "throughput_ips" and rows
    for r in rows:  # calls over time (1000 / mean): no CI of the median belongs to it
        assert r["value"] == pytest.approx(stored[r["case_id"]])
        assert r["ci_lo"] is None and r["ci_hi"] is None
    # the subtitle's formula holds for concurrent points too (all instances' calls)
    spec = build_chart(
        "sweep", str(store["path"]), Options(runs=(store["sweep"],), metric="throughput_ips")
    )
    said = " ".join(spec["title"]["subtitle"])
    assert "every instance's calls over the span of their calls (one instance: 1000 / mean" in said


def test_a_long_case_name_is_cut_in_its_middle_keeping_what_tells_rows_apart():
    import duckdb

    from anemll_spec.chart.source import CASE_LABEL

    name = "a_very_long_spec_name_of_a_sweep" + "[vocab_size=128256]"
    labels = [
        duckdb.sql(
            f"SELECT {CASE_LABEL} FROM (SELECT ? AS model_name, NULL AS spec_name, "
            "'coreml' AS backend, ? AS compute_units, NULL AS device)",
            params=[name, cu],
        ).fetchone()[0]
        for cu in ("CPU_AND_NE", "CPU_AND_GPU")
    ]
    for label, cu in zip(labels, ("CPU_AND_NE", "CPU_AND_GPU"), strict=True):
        head = label.split(" · ")[0]
        assert len(head) <= 40 and "…" in head  # fits the axis with its suffix
        assert head.startswith(name[:10]) and head.endswith("[vocab_size=128256]")
        assert label.endswith(f" · coreml · {cu}")


def test_report_gives_cv_in_percent_and_names_a_run_once(store, tmp_path):
    from anemll_spec.chart.report import write_report

    page = write_report(store["path"], store["lm_a"], tmp_path / "r.html").read_text()
    assert "<th>CV (%)</th>" in page
    con = connect(str(store["path"]))
    try:
        cvs = [
            r[0]
            for r in con.execute(
                "SELECT cv FROM results WHERE run_id = ?", [store["lm_a"]]
            ).fetchall()
        ]
    finally:
        con.close()
    assert cvs and all(v is not None and v < 1 for v in cvs)  # fractions in the store
    from anemll_spec.chart.report_published import num

    assert all(num(100 * v) in page for v in cvs)


def test_report_cases_tell_torch_devices_apart(tmp_path):
    """A torch case on the CPU and one on CUDA both read 'torch' in the report's case
    table; each now reads as bench prints it, backend/device, from its stored device."""
    import re

    from anemll_spec.chart.report import write_report
    from anemll_spec.store import append_case, begin_run, finish_run

    path = tmp_path / "s.duckdb"
    run_id = begin_run(path, {"spec_name": "dev", "command": "synthetic"}, syn.LINUX_HOST)
    for idx, (device, ms) in enumerate((("cpu", 40.0), ("cuda", 2.0), (None, 30.0))):
        backend = "torch" if device else "numpy"
        wall = syn.samples_ns(ms, 40, idx)
        row = syn.case_row("head", wall, weight_bytes=1 << 20, backend=backend,
                           compute_units=None, index=idx)  # fmt: skip
        append_case(path, run_id, {**row, "device": device}, wall)
    finish_run(path, run_id, "finished")
    page = write_report(path, run_id, tmp_path / "r.html").read_text()
    table = page.split("<h2>Cases (3)</h2>", 1)[1].split("</table>", 1)[0]
    shown = [re.findall(r"<td[^>]*>(.*?)</td>", tr)[2] for tr in table.split("<tr>")[2:]]
    con = connect(str(path))
    try:
        stored = con.execute(
            "SELECT backend, device FROM results WHERE run_id = ? ORDER BY case_index", [run_id]
        ).fetchall()
    finally:
        con.close()
    assert stored == [("torch", "cpu"), ("torch", "cuda"), ("numpy", None)]
    assert shown == ["torch/cpu", "torch/cuda", "numpy"]


def test_a_run_of_no_known_commit_says_so_in_report_and_share(tmp_path):
    """A run from a tarball or a wheel stores git_commit NULL: the report left the row
    out and share printed 'commit ?'. Both now say the commit is unknown, and a known
    one is still shown (the report in full, share its first 12 digits)."""
    import html

    from anemll_spec.chart.report import write_report
    from anemll_spec.store import begin_run, finish_run
    from anemll_spec.store.share import share_markdown

    path = tmp_path / "s.duckdb"
    sha = "0123456789abcdef0123456789abcdef01234567"
    runs = {}
    for commit in (None, sha):
        run = {"spec_name": "c", "command": "synthetic", "git_commit": commit}
        runs[commit] = begin_run(path, run, syn.LINUX_HOST)
        finish_run(path, runs[commit], "finished")
    con = duckdb.connect(str(path), read_only=True)
    try:
        stored = dict(con.execute("SELECT run_id, git_commit FROM runs").fetchall())
        md = {c: share_markdown(con, r, baseline="M1 Max") for c, r in runs.items()}
    finally:
        con.close()
    assert stored == {runs[None]: None, runs[sha]: sha}
    unknown = "unknown"
    assert f"commit {unknown}" in md[None] and "commit ?" not in md[None]
    assert f"commit {sha[:12]}" in md[sha]
    for commit, want in ((None, unknown), (sha, sha)):
        page = write_report(path, runs[commit], tmp_path / f"{commit}.html").read_text()
        assert f"<th>git commit</th><td>{html.escape(want)}</td>" in page


def test_a_message_that_names_the_run_does_not_name_it_again(store):
    from anemll_spec.chart.source import NoData

    with pytest.raises(NoData) as err:
        build_chart("sweep", str(store["path"]), Options(runs=(store["lm_a"],)))
    assert f"run {store['lm_a']} swept no parameter (no filter)" in str(err.value)


def test_factors_of_a_replaced_run_say_why_it_is_not_drawn(store):
    """chip_factors keeps a chip's latest run of a model: an older run asked for by a
    prefix is resolved, and the chart says why none of its rows is there."""
    older, newer = store["lm_a"], store["lm_b"]
    spec = build_chart("factors", str(store["path"]), Options(runs=(older[:20],)))
    subtitle = " ".join(spec["title"]["subtitle"])
    assert f"Not shown: run {older} has no row in chip_factors" in subtitle
    spec = build_chart("factors", str(store["path"]), Options(runs=(newer[:20],)))
    assert "has no row in chip_factors" not in " ".join(spec["title"]["subtitle"])
    assert any(r.get("run_id") == newer for rows in spec["datasets"].values() for r in rows)


def test_a_baseline_chip_on_two_os_versions_is_named_with_its_version(tmp_path):
    """Each OS version of a chip is its own row and, as the baseline, its own figure: a
    label '1.0x vs M4 Max' on both would read as if the two versions were equal."""
    path = tmp_path / "os.duckdb"
    syn.lm_head_run(path, seed=1)
    syn.lm_head_run(path, seed=2, scale=1.1, host={**syn.MAC_HOST, "os_version": "26.0"})
    con = connect(str(path))
    try:
        rows = con.execute(
            "SELECT os_version, baseline_label, bandwidth_factor FROM chip_factors_vs('M4 Max') "
            "WHERE source = 'own' AND model = 'llama_lm_head' ORDER BY 1"
        ).fetchall()
    finally:
        con.close()
    one = tmp_path / "one.duckdb"
    syn.lm_head_run(one, seed=1)
    con = connect(str(one))
    try:
        single = con.execute(
            "SELECT DISTINCT baseline_label FROM chip_factors_vs('M4 Max') WHERE source = 'own'"
        ).fetchall()
    finally:
        con.close()
    assert rows == [
        ("15.3.1", "M4 Max macOS 15.3.1 (own, Core ML ANE)", pytest.approx(1.0)),
        ("26.0", "M4 Max macOS 26.0 (own, Core ML ANE)", pytest.approx(1.0)),
    ]
    assert single == [("M4 Max (own, Core ML ANE)",)]  # one version: none named


def test_the_cli_offers_exactly_the_sweep_metrics_the_chart_draws():
    from anemll_spec.chart import DEFAULT_SWEEP_METRIC, SWEEP_METRICS

    assert tuple(sweep.METRICS) == SWEEP_METRICS and DEFAULT_SWEEP_METRIC in SWEEP_METRICS


def _concurrency_run(path: Path) -> str:
    """A run of concurrency 1 and 2 whose 2 instances stored no throughput (they did not
    all run at once); its id."""
    from fixtures.store.synth import samples_ns as ns

    from anemll_spec.store import append_case, begin_run, finish_run

    run_id = begin_run(path, {"spec_name": "conc", "command": "synthetic"}, syn.LINUX_HOST)
    for i, n in enumerate((1, 2)):
        wall = ns(np.random.default_rng(i), 40, 2.0 * n)
        row = syn.case_row(f"conc[concurrency={n}]", wall, weight_bytes=10**8, backend="numpy",
                           compute_units=None, index=i, params={"run.concurrency": n})  # fmt: skip
        kind = {"instances": "shared"} if n > 1 else {}
        append_case(path, run_id, {**row, "concurrency": n, **kind}, wall)
    finish_run(path, run_id, "finished")
    return run_id


def test_instances_that_did_not_run_at_once_are_said_so_everywhere(tmp_path):
    """No throughput is stored where a case's instances did not all run at once: the
    report called it '2 shared instances at once', share showed '-' with no reason, and
    chart sweep drew concurrency 1 alone with nothing said of the rest."""
    from anemll_spec.chart import report
    from anemll_spec.store.share import share_markdown

    path = tmp_path / "s.duckdb"
    run_id = _concurrency_run(path)
    con = connect(str(path))
    try:
        opts = Options(param="run.concurrency", metric="throughput_ips")
        subtitle = " ".join(sweep.build(con, opts)["title"]["subtitle"])
        md = share_markdown(con, run_id, baseline="M1 Max")
        cases = [dict(zip([d[0] for d in con.description], r, strict=True))
                 for r in con.execute("SELECT * FROM results WHERE run_id = ? ORDER BY case_index",
                                      [run_id]).fetchall()]  # fmt: skip
    finally:
        con.close()
    assert (
        "Not drawn, 1 case(s) with no throughput_ips: conc[concurrency=2] · numpy (their "
        "instances did not all run at once: no aggregate was measured" in subtitle
    ), subtitle
    assert "Row 2: its 2 instances did not all run at once" in md, md
    assert "Row 1:" not in md
    table = report._cases_table(cases)
    assert "2 shared instances, not all at once (no aggregate measured)" in table
    assert "2 shared instances at once" not in table


def test_sweep_param_picks_the_latest_run_that_swept_it(tmp_path):
    """`chart sweep --param model.vocab_size` failed ('not a swept parameter here') when
    the latest sweep run swept something else, though the store held one that swept it."""

    path = tmp_path / "s.duckdb"
    vocab = syn.sweep_run(path)
    later = _concurrency_run(path)
    con = connect(str(path))
    try:
        assert sweep.pick_run(con, Options(), needs=sweep.NEEDS) == later
        spec = sweep.build(con, Options(param="model.vocab_size"))
        assert vocab in json.dumps(spec["title"])
        for typo in ("model.vocab_sise", "model.{x}", "model.vocab_size}"):
            with pytest.raises(compare.InputError, match="no run in the store swept it .swept: "
                               "model.vocab_size, run.compute_units, run.concurrency"):  # fmt: skip
                sweep.build(con, Options(param=typo))

        # N instances at once: GB/s is each call's, and the title says so
        conc = json.dumps(sweep.build(con, Options(param="run.concurrency"))["title"])
        assert "per call (several instances at once)" in conc
        tput = sweep.build(con, Options(param="run.concurrency", metric="throughput_ips"))
        assert "calls/s of all instances together" in json.dumps(tput["title"])
        # no throughput stored at concurrency 2 (its instances did not all run at once):
        # no aggregate is made up for it; concurrency 1's is 1000 / its mean
        opts = Options(param="run.concurrency", metric="throughput_ips")
        rows, _, _ = sweep.query(con, opts, later)
        mean = con.execute(
            "SELECT 1e3 / avg(wall_ns / 1e6) FROM samples JOIN cases USING (case_id) "
            "WHERE run_id = ? AND case_index = 0",
            [later],
        ).fetchone()[0]
        assert [r["value"] for r in rows] == [pytest.approx(mean)]
    finally:
        con.close()


def _far_store(tmp_path: Path) -> Path:
    """A store of one case: 10,000 samples around 5 ms and 900 far out, around 50 ms."""
    from anemll_spec.store import append_case, begin_run, finish_run

    path = tmp_path / "s.duckdb"
    run_id = begin_run(path, {"spec_name": "far", "command": "synthetic"}, syn.LINUX_HOST)
    rng = np.random.default_rng(1)
    wall = np.concatenate([rng.normal(5e6, 5e4, 10_000), rng.normal(5e7, 1e6, 900)])
    wall = np.round(wall).astype(np.int64)
    row = syn.case_row("far", wall, weight_bytes=10**6, backend="numpy", compute_units=None)
    append_case(path, run_id, row, wall)
    finish_run(path, run_id, "finished")
    return path


def test_latency_subtitle_counts_the_clipped_samples_it_draws(tmp_path):
    """900 far-out samples, of which only the farthest MAX_CLIPPED are marked: the
    subtitle said all of them were drawn."""
    from anemll_spec.chart.latency import MAX_CLIPPED

    path = _far_store(tmp_path)
    con = connect(str(path))
    try:
        spec = latency.build(con, Options())
    finally:
        con.close()
    drawn = [p for p in spec["datasets"]["points"] if p["clipped"]]
    assert MAX_CLIPPED <= len(drawn) < 900
    sub = " ".join(spec["title"]["subtitle"])
    assert f"900 sample(s) lie beyond it, {len(drawn)} of them (the farthest" in sub
    assert f"and {len(drawn)} beyond the clipped axis" in sub


def test_timeline_subtitle_counts_the_clipped_samples_it_draws(tmp_path):
    """900 far-out samples, of which the farthest MAX_CLIPPED (and those of the thinning)
    are marked: the timeline's subtitle said it drew all 900 as triangles."""
    from anemll_spec.chart.timeline import MAX_CLIPPED

    path = _far_store(tmp_path)
    spec = build_chart("timeline", str(path), Options())
    drawn = [p for p in spec["datasets"]["samples"] if p["clipped"]]
    assert MAX_CLIPPED <= len(drawn) < 900
    assert {p["n_clipped"] for p in drawn} == {900}
    sub = " ".join(spec["title"]["subtitle"])
    assert f": 900 sample(s) beyond, {len(drawn)} of them (the farthest" in sub
    assert "draw the 900" not in sub
    (panel,) = spec["vconcat"]
    assert panel["title"]["subtitle"].endswith(f"900 sample(s) beyond, {len(drawn)} of them drawn")


def test_a_users_submitted_run_is_labelled_with_its_issue(store):
    """M3 Ultra's only figures are one user's run (an issue): its bars were labelled
    like the results tables' rows, the source only in the tooltip (lost in PNG/SVG)."""
    con = connect(str(store["path"]))
    try:
        rows = factors.query(con, Options())
    finally:
        con.close()
    submitted = {r["label"] for r in rows if "user submission" in r["source"]}
    assert submitted == {  # the reference table's three issues, as a reader names them
        "M3 Ultra · anemll-bench issue #8",
        "M4 Max · anemll-bench issue #1",
        "M4 · anemll-bench issue #5",
    }
    tables = [r for r in rows if "results table" in r["source"] and r["chip"] == "M1 Max"]
    assert tables and all(r["label"] == "M1 Max" for r in tables)


def test_placement_cost_shares_say_how_many_ops_had_a_cost(tmp_path):
    """Core ML gives some ops no cost: the cost shares divide only the others, and the
    chart now says so (`costed` was computed and never shown)."""
    from anemll_spec.store import append_case, begin_run, finish_run

    path = tmp_path / "s.duckdb"
    run_id = begin_run(path, {"spec_name": "p", "command": "synthetic"}, syn.MAC_HOST)
    plan = syn.placements("CPU_AND_NE")
    for p in plan[:2]:
        p["estimated_cost"] = None  # two ops without an estimate
    plan += [  # and a device none of whose ops has one (consts, say)
        {**plan[0], "op_name": f"c_{i}", "preferred_device": "GPU"} for i in range(3)
    ]
    wall = syn.samples_ns(5.0, 30, 3)
    append_case(path, run_id, syn.case_row("p", wall, weight_bytes=10**6), wall, plan)
    finish_run(path, run_id, "finished")
    con = connect(str(path))
    try:
        rows = placement.query(con, Options(), run_id)
        spec = placement.build(con, Options())
    finally:
        con.close()
    cost = [r for r in rows if r["measure"] == "share of estimated cost"]
    assert {(r["costed_ops"], r["total_ops"]) for r in cost} == {(10, 15)}
    assert not any(r["device"] == "GPU" for r in cost)  # no cost: no share of it
    known = [p for p in plan if p["estimated_cost"] is not None]
    ane = sum(p["estimated_cost"] for p in known if p["preferred_device"] == "NeuralEngine")
    (r,) = [r for r in cost if r["device"] == "NeuralEngine"]
    assert r["share"] == pytest.approx(ane / sum(p["estimated_cost"] for p in known))
    assert "(10 of 15 in p" in json.dumps(spec["title"])


@pytest.mark.parametrize("kind", ["factors", "latency", "timeline", "sweep", "placement"])
def test_every_kind_draws_the_same_spec_each_time(store, kind):
    """Rows that tie on the sort (two published sources of one chip with the same figure)
    come out in one order: the same store gives the same files, byte for byte."""
    opts = Options(runs=(store["sweep"],)) if kind in ("sweep", "placement") else Options()
    drawn = {json.dumps(build_chart(kind, str(store["path"]), opts), default=str) for _ in range(6)}
    assert len(drawn) == 1
