"""The energy and sustained charts and report sections: what they draw equals what the
store holds, recomputed here from its raw tables (numpy, plain SQL over `cases`,
`case_energy_rails`, `samples`, `power_samples`, `sustained_windows`).

The stores hold SYNTHETIC readings and samples (tests/fixtures/chart/chart_energy.py,
chart_sustained.py), not measurements.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).parent / "fixtures" / "chart"))
import chart_energy as ce  # noqa: E402
import chart_sustained as cs  # noqa: E402
import chart_synthetic as syn  # noqa: E402
from db_util import dict_rows

from anemll_spec.chart import build_chart  # noqa: E402
from anemll_spec.chart.report import write_report  # noqa: E402
from anemll_spec.chart.source import NoData, Options  # noqa: E402
from anemll_spec.chart.style import fmt_factor  # noqa: E402
from anemll_spec.chart.sustained import thermal_runs  # noqa: E402
from anemll_spec.errors import InputError  # noqa: E402

ULTRA_RAILS = {"ane/ANE0_0": 1.5, "ane/ANE0_1": 0.4, "cpu/DIE_0_CPU Energy": 1.0,
               "cpu/DIE_1_CPU Energy": 0.3, "dram": 2.0}  # fmt: skip


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> dict:
    path = tmp_path_factory.mktemp("energy") / "results.duckdb"
    out = {"path": path}
    out["m1"], _ = ce.energy_run(path, ce.M1_MAX_HOST)
    out["m4"], _ = ce.energy_run(path, syn.MAC_HOST, scale=0.8, cpu_only=True, seed=110)
    out["ultra"], _ = ce.energy_run(path, ce.ULTRA_HOST, rails_w=ULTRA_RAILS, seed=120)
    out["gpu"], _ = ce.gpu_run(path)
    out["unsplit"], _ = ce.unsplit_run(path)
    out["none"], _ = ce.no_energy_run(path, "RAPL: /sys/class/powercap does not exist")
    out["sustained"], out["sustained_cases"] = cs.sustained_run(path)
    return out


raw = dict_rows


def latest_energy_cases(path: Path) -> dict[tuple, dict]:
    """(chip, backend, compute units) -> the latest case with energy, from raw tables."""
    rows = raw(
        path,
        """SELECT c.*, r.started_at, CASE WHEN c.device = 'cuda' AND h.gpu IS NOT NULL
                  THEN regexp_replace(h.gpu, '^NVIDIA\\s+', '')  -- a CUDA case: its GPU
                  ELSE regexp_replace(coalesce(h.chip, h.cpu_model), '^Apple\\s+', '')
                  END AS chip
           FROM cases c JOIN runs r USING (run_id) JOIN hosts h USING (host_id)
           WHERE c.energy_total_mj IS NOT NULL ORDER BY r.started_at, c.finished_at""",
    )
    out: dict[tuple, dict] = {}
    for r in rows:  # later rows replace earlier ones
        out[(r["chip"], r["backend"], r["compute_units"])] = r
    return out


def test_energy_rows_and_factors_equal_the_store(store):
    spec = build_chart("energy", str(store["path"]), Options())
    drawn = spec["datasets"]["energy"]
    want = latest_energy_cases(store["path"])
    assert len(drawn) == len(want) == 6
    m1 = want[("M1 Max", "coreml", "CPU_AND_NE")]
    m1_ipj = 1000 * m1["energy_calls"] / m1["energy_total_mj"]
    for d in drawn:
        w = want[(d["chip"], d["backend"], d["compute_units"])]
        assert d["case_id"] == w["case_id"]  # the latest case of the chip and variant
        assert d["energy_mj_per_inference"] == pytest.approx(
            w["energy_total_mj"] / w["energy_calls"]
        )
        assert d["inferences_per_joule"] == pytest.approx(
            1000 * w["energy_calls"] / w["energy_total_mj"]
        )
        assert d["power_w_mean"] == pytest.approx(
            w["energy_total_mj"] / 1000 / w["energy_interval_s"]
        )
        if (d["backend"], d["compute_units"]) == ("coreml", "CPU_AND_NE"):
            assert d["energy_factor"] == pytest.approx(d["inferences_per_joule"] / m1_ipj)
            assert d["baseline_label"].startswith("M1 Max (own, Core ML ANE")
            assert d["factor_label"] == f"{fmt_factor(d['energy_factor'])} vs {d['baseline_label']}"
        else:  # no M1 Max row of this variant: no factor, and the label says so
            assert d["energy_factor"] is None and d["factor_label"] == "no baseline"
    # the M4 Max ANE row is the sustained case (the latest), not the earlier energy run
    m4 = next(d for d in drawn if d["chip"] == "M4 Max" and d["compute_units"] == "CPU_AND_NE")
    assert m4["case_id"] == store["sustained_cases"][0]["case_id"]
    # ordered by inferences per joule, highest first; a CUDA row is named by its GPU, as
    # the view names it (the chip that --where and --baseline take)
    ipj = [d["inferences_per_joule"] for d in drawn]
    assert ipj == sorted(ipj, reverse=True)
    gpu = next(d for d in drawn if d["label"] == "own: H100 80GB HBM3 (torch cuda)")
    assert gpu["chip"] == "H100 80GB HBM3"
    assert gpu["total_text"] == "204 mJ · 505 W (limit 700 W)"  # the GPU's limit, for scale


def test_rail_stacks_sum_the_parts_and_fill_the_total(store):
    spec = build_chart("energy", str(store["path"]), Options())
    drawn = {d["label"]: d for d in spec["datasets"]["energy"]}
    segs: dict[str, dict[str, dict]] = {}
    for s in spec["datasets"]["rails"]:
        segs.setdefault(s["label"], {})[s["rail"]] = s
    rails = raw(store["path"], "SELECT * FROM case_energy_rails")
    calls = {r["case_id"]: r["energy_calls"] for r in raw(store["path"], "SELECT * FROM cases")}
    for label, d in drawn.items():
        want: dict[str, float] = {}
        for r in rails:
            if r["case_id"] == d["case_id"] and r["in_total"]:
                want[r["rail"]] = want.get(r["rail"], 0.0) + r["energy_mj"]
        got = {k: s["mj_per_inference"] for k, s in segs[label].items() if k != "not split by rail"}
        assert got.keys() == want.keys(), label
        for k, mj in want.items():
            assert got[k] == pytest.approx(mj / calls[d["case_id"]]), (label, k)
        # the stack is the total: rails plus the part no rail accounts for
        total = sum(s["mj_per_inference"] for s in segs[label].values())
        assert total == pytest.approx(d["energy_mj_per_inference"])
        assert "gpu_sram" not in segs[label]  # outside the total: not stacked
    # an Ultra's two ANEs are one rail, the sum of its two parts
    ultra = next(d for d in drawn.values() if d["chip"] == "M3 Ultra")
    parts = [r for r in rails if r["case_id"] == ultra["case_id"] and r["rail"] == "ane"]
    assert sorted(r["part"] for r in parts) == ["ANE0_0", "ANE0_1"]
    ane = segs[ultra["label"]]["ane"]
    assert ane["parts"] == "ANE0_0, ANE0_1"
    assert ane["mj_per_inference"] == pytest.approx(
        sum(r["energy_mj"] for r in parts) / calls[ultra["case_id"]]
    )
    # a total stored without rails is one grey segment
    unsplit = next(d for d in drawn.values() if d["backend"] == "numpy")
    assert list(segs[unsplit["label"]]) == ["not split by rail"]
    subtitle = " ".join(spec["title"]["subtitle"])
    assert "Not stacked (they overlap the rails): gpu_sram." in subtitle
    assert "not wall power" in subtitle
    assert "powermetrics' manual warns against comparing its estimates across devices" in subtitle
    assert "No published energy figures exist" in subtitle


def test_baseline_run_and_where_choose_the_rows(store):
    path = str(store["path"])
    spec = build_chart("energy", path, Options(baseline="M4 Max"))
    rows = {(d["chip"], d["compute_units"]): d for d in spec["datasets"]["energy"]}
    m4 = rows[("M4 Max", "CPU_AND_NE")]["inferences_per_joule"]
    m1 = rows[("M1 Max", "CPU_AND_NE")]
    assert m1["energy_factor"] == pytest.approx(m1["inferences_per_joule"] / m4)
    assert rows[("M4 Max", "CPU_ONLY")]["energy_factor"] == pytest.approx(1.0)  # its own
    assert rows[("M3 Ultra", "CPU_AND_NE")]["energy_factor"] == pytest.approx(
        rows[("M3 Ultra", "CPU_AND_NE")]["inferences_per_joule"] / m4
    )
    assert "M4 Max" in spec["title"]["text"]
    spec = build_chart("energy", path, Options(runs=(store["m1"],)))
    assert {d["chip"] for d in spec["datasets"]["energy"]} == {"M1 Max"}
    spec = build_chart("energy", path, Options(where="backend = 'coreml'"))
    assert {d["backend"] for d in spec["datasets"]["energy"]} == {"coreml"}
    with pytest.raises(NoData, match="no energy rows pass the filters.*store has 6 without"):
        build_chart("energy", path, Options(where="backend = 'tpu'"))
    with pytest.raises(InputError, match="no chip of that name.*'M1 Max'"):
        build_chart("energy", path, Options(baseline="M9 Nope"))


def test_no_energy_names_the_reason_the_latest_cases_give(tmp_path):
    path = tmp_path / "results.duckdb"
    syn.linux_run(path)  # no reason recorded
    with pytest.raises(NoData, match="record no reason"):
        build_chart("energy", str(path), Options())
    ce.no_energy_run(path, "RAPL: energy_uj is readable by root only")
    with pytest.raises(NoData) as err:
        build_chart("energy", str(path), Options())
    assert "no case has an energy reading" in str(err.value)
    assert "'RAPL: energy_uj is readable by root only' (1 case(s))" in str(err.value)


def test_sustained_windows_samples_and_power_equal_the_store(store):
    spec = build_chart("sustained", str(store["path"]), Options())
    assert store["sustained"] in spec["title"]["text"]
    ds = spec["datasets"]
    written = {c["case_id"]: c for c in store["sustained_cases"]}
    windows = raw(store["path"], "SELECT * FROM sustained_windows ORDER BY case_id, window_index")
    samples = raw(
        store["path"],
        "SELECT case_id, idx, wall_ns, start_ns, window_index FROM samples "
        "WHERE case_id IN (SELECT unnest(?::VARCHAR[])) ORDER BY case_id, idx",
        [list(written)],
    )
    label_of = {w["label"]: w["case_id"] for w in ds["windows"]}
    assert set(label_of.values()) == set(written)
    for label, cid in label_of.items():
        mine = [s for s in samples if s["case_id"] == cid]
        drawn = [w for w in ds["windows"] if w["label"] == label]
        stored = [w for w in windows if w["case_id"] == cid]
        assert len(drawn) == len(stored) == len(written[cid]["walls"])
        for d, w in zip(drawn, stored, strict=True):
            ns = np.array([s["wall_ns"] for s in mine if s["window_index"] == w["window_index"]])
            # a window's median is its own samples' (numpy over the raw rows)
            assert d["median_ms"] == pytest.approx(float(np.median(ns)) / 1e6)
            assert d["calls"] == ns.size == w["calls"]
            assert d["end_s"] == pytest.approx(w["start_s"] + w["wall_s"])
        # the dots are stored samples at their start times, thinned evenly
        dots = [p for p in ds["samples"] if p["label"] == label]
        by_idx = {s["idx"]: s for s in mine}
        assert 50 <= len(dots) <= len(mine)
        for p in dots:
            s = by_idx[p["idx"]]
            assert p["t_s"] == pytest.approx(s["start_ns"] / 1e9)
            assert p["ms"] == pytest.approx(s["wall_ns"] / 1e6)
            assert p["window_index"] == s["window_index"]
    # power: every stored reading (few enough to draw all), a rail's parts summed
    power = raw(store["path"], "SELECT * FROM power_samples")
    drawn_power = {(label_of[p["label"]], p["rail"], round(p["t_s"], 9)): p["watts"]
                   for p in ds["power"]}  # fmt: skip
    want: dict[tuple, float] = {}
    for p in power:
        key = (p["case_id"], p["rail"], round(p["t_s"], 9))
        want[key] = want.get(key, 0.0) + p["watts"]
    assert drawn_power.keys() == want.keys() and len(want) > 100
    assert all(drawn_power[k] == pytest.approx(v) for k, v in want.items())


def test_ratios_near_one_get_the_decimals_that_tell_them_apart():
    """A CI [1.00012, 1.00035] that excludes 1 showed as '1.000 – 1.000'."""
    from anemll_spec.text import ratios

    assert ratios(1.0002318, 1.0001159, 1.0003478) == ["1.0002", "1.0001", "1.0003"]
    assert ratios(0.885, 0.881, 0.890) == ["0.885", "0.881", "0.890"]
    assert ratios(1.0, 0.99999, 1.00001) == ["1.00000", "0.99999", "1.00001"]
    assert ratios(1.2, None, None) == ["1.200", "–", "–"]
    # the ratio apart from its ends, not only the ends apart: '1.006 [1.005, 1.006]'
    assert ratios(1.0058537, 1.0054142, 1.0061922) == ["1.0059", "1.0054", "1.0062"]
    assert ratios(1.0114, 1.0112, 1.05) == ["1.0114", "1.0112", "1.0500"]
    assert ratios(1.0114, 1.0114, 1.05) == ["1.011", "1.011", "1.050"]  # equal: alike


def test_sustained_panels_share_one_time_axis_and_say_the_verdict(store):
    spec = build_chart("sustained", str(store["path"]), Options())
    windows = raw(store["path"], "SELECT * FROM sustained_windows")
    cases = {c["case_id"]: c for c in raw(store["path"], "SELECT * FROM cases")}
    labels = {w["label"]: w["case_id"] for w in spec["datasets"]["windows"]}
    for part in spec["vconcat"]:
        cid = labels[part["title"]["text"]]
        end = max(w["start_s"] + w["wall_s"] for w in windows if w["case_id"] == cid)
        domains = {
            json.dumps(layer["encoding"]["x"]["scale"]["domain"])
            for panel in part["vconcat"]
            for layer in panel["layer"]
            if "scale" in layer["encoding"].get("x", {})
        }
        assert domains == {json.dumps([0, end])}  # one x domain for every layer of both
        c = cases[cid]
        sub = " ".join(part["title"]["subtitle"])
        ratio, lo, hi = (c[k] for k in ("sustained_throughput_ratio", "sustained_ci_low",
                                        "sustained_ci_high"))  # fmt: skip
        got = re.search(
            rf"{c['sustained_verdict']}: last-window median throughput ([\d.]+)x the first "
            r"\(95% CI ([\d.]+)–([\d.]+)\); calls/s delivered ([\d.]+)x \(stalls included\)",
            sub,
        )
        assert got, sub
        mine = sorted((w for w in windows if w["case_id"] == cid), key=lambda w: w["window_index"])
        calls = mine[-1]["throughput_ips"] / mine[0]["throughput_ips"]
        for shown, value in zip(got.groups(), (ratio, lo, hi, calls), strict=True):
            decimals = len(shown.split(".")[1])
            assert decimals >= 3 and float(shown) == pytest.approx(value, abs=0.51 * 10**-decimals)
        assert got[2] != got[3]  # the CI's ends told apart
        states = [w["thermal_state"] for w in sorted(
            (w for w in windows if w["case_id"] == cid), key=lambda w: w["window_index"])]  # fmt: skip
        if c["sustained_throttled"]:
            assert "Throttled." in part["title"]["subtitle"]
            assert states[0] == "nominal" and states[-1].startswith("throttled")
            assert (
                "Thermal state per window: 0–2 nominal; 3–5 throttled: CPU_Speed_Limit 80." in sub
            )
            assert len(part["vconcat"]) == 2  # latency over power
        else:
            assert "Throttling not read (no thermal reading)." in part["title"]["subtitle"]
            assert "No power readings: no power reader on this host (synthetic)." in sub
            assert len(part["vconcat"]) == 1  # nothing to draw below
    assert "not wall power" in " ".join(spec["title"]["subtitle"])


def test_thermal_runs_group_consecutive_windows():
    ws = [{"window_index": i, "thermal_state": s} for i, s in
          enumerate(["nominal", "nominal", None, "hot", "hot", "nominal"])]  # fmt: skip
    assert thermal_runs(ws) == "0–1 nominal; 2 not read; 3–4 hot; 5 nominal"


def test_no_sustained_run_says_how_to_make_one(store, tmp_path):
    with pytest.raises(NoData, match="no sustained run in the store.*run.duration_s"):
        build_chart("sustained", str(store["path"]), Options(where="backend = 'torch'"))
    with pytest.raises(NoData, match="no cases to draw in the store .model = 'nope'"):
        build_chart("sustained", str(store["path"]), Options(model="nope"))
    path = tmp_path / "results.duckdb"
    syn.linux_run(path)
    with pytest.raises(NoData, match="no sustained run in the store"):
        build_chart("sustained", str(path), Options())
    with pytest.raises(NoData, match="has no sustained case"):
        build_chart("sustained", str(store["path"]), Options(runs=(store["m1"],)))


def test_report_sections_only_where_the_run_has_the_data(store, tmp_path):
    page = write_report(store["path"], store["sustained"], tmp_path / "s.html").read_text()
    assert "<h2>Energy per inference</h2>" in page and "<h2>Sustained run</h2>" in page
    assert 'id="chart-energy"' in page and 'id="chart-sustained"' in page
    c = raw(store["path"], "SELECT * FROM cases WHERE run_id = ? ORDER BY case_index",
            [store["sustained"]])[0]  # fmt: skip
    # the table's figures are the stored ones, as the cases table formats numbers
    from anemll_spec.chart.style import fmt_num

    for v in (c["energy_mj_per_inference"], 1000 / c["energy_mj_per_inference"],
              c["power_w_mean"]):  # fmt: skip
        assert f'<td class="num">{fmt_num(v, 4)}</td>' in page
    # the sustained ratios: 3 decimals at least, more where needed to tell the CI from 1
    ratio, lo, hi = (c[k] for k in ("sustained_throughput_ratio", "sustained_ci_low",
                                    "sustained_ci_high"))  # fmt: skip
    wins = raw(store["path"], "SELECT * FROM sustained_windows WHERE case_id = ? "
               "ORDER BY window_index", [c["case_id"]])  # fmt: skip
    calls = wins[-1]["throughput_ips"] / wins[0]["throughput_ips"]
    row = re.search(
        rf"<td>{re.escape(c['sustained_verdict'])}</td><td class=\"num\">(\d\.\d{{3,6}})</td>"
        r'<td class="num">(\d\.\d{3,6}) – (\d\.\d{3,6})</td><td class="num">(\d\.\d{3,6})</td>',
        page,
    )
    assert row is not None, "the sustained row, its ratios with 3 to 6 decimals"
    shown = [float(x) for x in row.groups()]
    assert shown == pytest.approx([ratio, lo, hi, calls], abs=5e-4)
    assert "last/first calls/s" in page
    assert "not wall power" in page and "degraded" in page
    # a run without energy or sustained cases: neither section
    page = write_report(store["path"], store["none"], tmp_path / "n.html").read_text()
    assert "Energy per inference" not in page and "Sustained run" not in page
    # an energy run without sustained cases: energy only
    page = write_report(store["path"], store["gpu"], tmp_path / "g.html").read_text()
    assert "<h2>Energy per inference</h2>" in page and "Sustained run" not in page
    assert f'<td class="num">{fmt_num(700.0, 4)}</td>' in page  # the GPU's power limit


@pytest.mark.slow  # chart processes: ~10 s (make test-slow; CI runs both)
def test_cli_draws_both_kinds_and_explains_an_empty_one(cli, store, tmp_path):
    for kind in ("energy", "sustained"):
        r = cli("chart", kind, "--store", store["path"], "--out", tmp_path / kind, "--json")
        assert r.returncode == 0, r.stderr
        files = {k: Path(v) for k, v in json.loads(r.stdout)["files"].items()}
        assert set(files) == {"html", "png", "svg", "json"}
        assert "not wall power" in files["svg"].read_text()
        assert json.loads(files["json"].read_text())["datasets"]
    empty = tmp_path / "plain.duckdb"
    syn.linux_run(empty)
    for kind, why in (("sustained", "no sustained run in the store"),
                      ("energy", "no case has an energy reading")):  # fmt: skip
        r = cli("chart", kind, "--store", empty, "--out", tmp_path / "o")
        assert r.returncode == 2 and why in r.stderr, r.stderr
        assert len(r.stderr.strip().splitlines()) == 1 and "Traceback" not in r.stderr
    assert not (tmp_path / "o").exists()
    r = cli("chart", "energy", "--store", store["path"], "--out", tmp_path / "o",
            "--baseline", "M9 Nope")  # fmt: skip
    assert r.returncode == 2 and "'M1 Max'" in r.stderr


@pytest.mark.parametrize("kind", ["energy", "sustained"])
def test_both_kinds_are_valid_vega_lite_with_units_in_their_axes(store, kind):
    import altair as alt
    import jsonschema

    spec = build_chart(kind, str(store["path"]), Options())
    jsonschema.validate(spec, alt.load_schema())
    text = json.dumps(spec)
    units = (
        ("inferences per joule", "mJ per inference")
        if kind == "energy"
        else ("latency (ms)", "(W)")
    )
    assert all(u in text for u in units)


@pytest.mark.parametrize("kind", ["energy", "sustained"])
def test_both_kinds_draw_the_same_spec_each_time(store, kind):
    """Rows that tie on the sort come out in one order: the same store, the same files."""
    drawn = {json.dumps(build_chart(kind, str(store["path"]), Options())) for _ in range(6)}
    assert len(drawn) == 1


def test_many_rows_show_each_chips_ane_row_and_name_the_baseline_by_a_key():
    """Past MANY rows of a model: the factors chart's default (a chip's Core ML ANE row
    where it has one), said in the subtitle; factor labels name their baseline by a key."""
    from anemll_spec.chart import energy, energy_draw

    rows = []
    for i in range(30):
        for cu in ("CPU_AND_NE", "CPU_ONLY"):
            rows.append({
                "source": "own", "chip": f"M{i} Max", "os_name": "macOS", "os_version": "15.3",
                "model": "llama_lm_head", "backend": "coreml", "device": None,
                "compute_units": cu, "published": False, "inferences_per_joule": 10.0 + i,
                "energy_mj_per_inference": 1000 / (10.0 + i), "power_w_mean": 4.0,
                "energy_factor": (10.0 + i) / 10.0, "energy_factor_label": None,
                "baseline_label": "M0 Max (own, Core ML ANE, ioreport)", "case_id": f"c{i}{cu}",
            })  # fmt: skip
    kept, notes = energy.fewer([dict(r) for r in rows], Options())
    assert len(kept) == 30 and {r["compute_units"] for r in kept} == {"CPU_AND_NE"}
    assert notes and notes[0].startswith("Not shown: 30 measured row(s)")
    kept, notes = energy.fewer([dict(r) for r in rows], Options(where="TRUE"))
    assert len(kept) == 60 and not notes  # any --where shows every row
    few = [dict(r) for r in rows[:10]]
    assert energy.fewer(few, Options()) == (few, [])  # a few rows: every compute unit
    spec = energy_draw.chart([dict(r) for r in rows[::2]], [], Options())
    labels = {r["factor_label"] for r in spec["datasets"]["energy"]}
    assert "1.5x [1]" in labels and not any(" vs " in x for x in labels)
    assert (
        "Factors of measured rows: [1] vs M0 Max (own, Core ML ANE, ioreport)."
        in (spec["title"]["subtitle"])
    )


def test_report_of_a_replaced_energy_run_says_why_it_has_no_chart(tmp_path):
    path = tmp_path / "results.duckdb"
    old, _ = ce.energy_run(path, ce.M1_MAX_HOST)
    ce.energy_run(path, ce.M1_MAX_HOST, scale=1.1, seed=101)  # the same chip and variant
    page = write_report(path, old, tmp_path / "old.html").read_text()
    assert "<h2>Energy per inference</h2>" in page and 'id="chart-energy"' not in page
    assert "later runs have replaced every one of this run's" in page


def test_sustained_latency_axis_is_clipped_past_far_outliers(tmp_path):
    import dataclasses

    path = tmp_path / "results.duckdb"
    plan = dataclasses.replace(cs.STEADY_NUMPY, spikes=5)
    cs.sustained_run(path, (plan,))
    spec = build_chart("sustained", str(path), Options())
    wall = np.array([r["wall_ns"] for r in raw(path, "SELECT wall_ns FROM samples")]) / 1e6
    q1, q3 = np.percentile(wall, [25, 75])
    hi = min(wall.max(), q3 + 3 * (q3 - q1))  # Tukey's far fence, cut to the extent
    (panel,) = spec["vconcat"][0]["vconcat"]  # no power reader: latency only
    scale = panel["layer"][1]["encoding"]["y"]["scale"]
    assert scale["clamp"] is True and scale["domain"][1] == pytest.approx(
        hi + 0.04 * (hi - max(wall.min(), q1 - 3 * (q3 - q1))), rel=1e-6
    )
    assert wall.max() > scale["domain"][1]  # the spikes are beyond it, drawn at its edge
    sub = " ".join(spec["vconcat"][0]["title"]["subtitle"])
    assert f"Latency axis clipped to {max(wall.min(), q1 - 3 * (q3 - q1)):.4g}–{hi:.4g} ms" in sub


def test_samples_without_start_times_are_placed_by_the_latency_before_them(tmp_path):
    import dataclasses

    path = tmp_path / "results.duckdb"
    cs.sustained_run(path, (dataclasses.replace(cs.STEADY_NUMPY, stamped=False),))
    spec = build_chart("sustained", str(path), Options())
    windows = {w["window_index"]: w for w in raw(path, "SELECT * FROM sustained_windows")}
    rows = raw(path, "SELECT idx, wall_ns, window_index, start_ns FROM samples ORDER BY idx")
    assert all(r["start_ns"] is None for r in rows)
    want = {}
    for k, w in windows.items():  # numpy: window start + wall x (latency before / total)
        mine = [r for r in rows if r["window_index"] == k]
        ns = np.array([r["wall_ns"] for r in mine], dtype=float)
        before = np.cumsum(ns) - ns
        for r, b in zip(mine, before, strict=True):
            want[r["idx"]] = w["start_s"] + w["wall_s"] * b / ns.sum()
    drawn = spec["datasets"]["samples"]
    assert len(drawn) >= 50 and all(p["estimated"] for p in drawn)
    for p in drawn:
        assert p["t_s"] == pytest.approx(want[p["idx"]], rel=1e-9)
        w = windows[p["window_index"]]
        assert w["start_s"] <= p["t_s"] < w["start_s"] + w["wall_s"]
    sub = " ".join(spec["vconcat"][0]["title"]["subtitle"])
    assert f"{len(rows):,} sample(s) stored without start times: placed in their window" in sub


def test_concurrent_instances_are_rows_of_their_own(tmp_path):
    """Issue 18 item 5: shared and distinct instances at N = 2, each its own row and
    label, beside the single instance (the store pairs factors within a variant)."""
    path = tmp_path / "results.duckdb"
    run_id = syn.begin_run(path, {"spec_name": "lm_head", "command": "synthetic"}, ce.ULTRA_HOST)
    for i, (n, inst, ane) in enumerate(((1, None, 2.0), (2, "shared", 2.2), (2, "distinct", 3.9))):
        wall = syn.samples_ns(8.8, 60, 300 + i)
        row = syn.case_row("llama_lm_head", wall, weight_bytes=syn.LM_HEAD_BYTES, index=i)
        row.update(concurrency=n, instances=inst)
        cols, rails = ce.energy("ioreport", {"ane/ANE0_0": ane / 2, "ane/ANE0_1": ane / 2,
                                             "dram": 1.5 * n}, interval_s=10.0, calls=1136 * n)  # fmt: skip
        ce.append(path, run_id, {**row, **cols}, wall, rails=rails)
    syn.finish_run(path, run_id, "finished")
    spec = build_chart("energy", str(path), Options())
    labels = {d["label"]: d for d in spec["datasets"]["energy"]}
    assert set(labels) == {
        "own: M3 Ultra (coreml CPU_AND_NE)",
        "own: M3 Ultra (coreml CPU_AND_NE ×2 shared)",
        "own: M3 Ultra (coreml CPU_AND_NE ×2 distinct)",
    }
    for d in labels.values():  # per inference: all instances' energy / all their calls
        n = d["concurrency"]
        assert d["energy_mj_per_inference"] == pytest.approx(
            ({1: 2.0, 2: 2.2}[n] if d["instances"] != "distinct" else 3.9) * 10_000 / (1136 * n)
            + 1.5 * n * 10_000 / (1136 * n)
        )


def test_published_energy_rows_would_be_drawn_beside_measured_ones():
    """None are published today (the caption says so); were a row published, it is its
    own series, labelled by its chip, and the caption says they are drawn together."""
    from anemll_spec.chart import energy_draw

    base = {"os_name": None, "os_version": None, "model": "llama_lm_head",
            "backend": "coreml", "device": None, "compute_units": "CPU_AND_NE",
            "power_w_mean": 4.0, "energy_factor_label": None, "case_id": None,
            "baseline_label": "M1 Max (published: x, Core ML ANE)"}  # fmt: skip
    rows = [
        {**base, "source": "published: x", "chip": "M1 Max", "published": True,
         "inferences_per_joule": 20.0, "energy_mj_per_inference": 50.0, "energy_factor": 1.0},
        {**base, "source": "own", "chip": "M4 Max", "published": False,
         "inferences_per_joule": 30.0, "energy_mj_per_inference": 33.3, "energy_factor": 1.5},
    ]  # fmt: skip
    spec = energy_draw.chart(rows, [], Options())
    drawn = {d["label"]: d for d in spec["datasets"]["energy"]}
    assert drawn["M1 Max"]["series"] == "published" and drawn["M1 Max"]["factor_label"] == "1.0x"
    assert drawn["own: M4 Max"]["factor_label"] == "1.5x vs M1 Max (published: x, Core ML ANE)"
    sub = spec["title"]["subtitle"]
    assert "Published energy rows are drawn beside measured ones." in sub
    assert not any("No published energy figures exist" in s for s in sub)


def test_power_breaks_between_windows_and_a_missing_total_says_why(store):
    """Step lines per rail ran across a window without readings (the next window's first
    point drawn over it); the subtitle dropped the stored reason for the missing total."""
    from anemll_spec.chart.sustained_draw import _subtitle

    spec = build_chart("sustained", str(store["path"]), Options())
    lines = [
        layer
        for part in spec["vconcat"]
        for panel in part["vconcat"]
        for layer in panel.get("layer", [])
        if layer.get("name") == "power_lines"
    ]
    assert lines and all(ly["encoding"]["detail"]["field"] == "window_index" for ly in lines)
    case = {"energy_method": None, "energy_note": "no energy for window 1 of 3: the energy "
            "reading failed: OSError: gone"}  # fmt: skip
    sub = " ".join(_subtitle(case, [], {}, None, has_power=True))
    assert "No energy for the run: no energy for window 1 of 3: the energy reading failed" in sub


def test_a_clipped_latency_axis_still_holds_every_window_median(tmp_path):
    """A fast first window among slow ones, with far outliers: the axis is clipped to the
    quartiles -/+ 3 IQR of all samples, which left the first window's median below it,
    drawn at the edge as if it were the fence (the change this chart exists to show)."""
    plan = cs.Plan(
        medians_ms=(6.0, 9.0, 9.0, 9.0, 9.0, 9.0),
        thermal=(None,) * 6,
        rails_w=None,
        window_s=1.0,
        spikes=5,
    )
    path = tmp_path / "results.duckdb"
    _, (written,) = cs.sustained_run(path, (plan,))
    spec = build_chart("sustained", str(path), Options())

    def layers(node):
        if isinstance(node, dict):
            yield node
            for v in node.values():
                yield from layers(v)
        elif isinstance(node, list):
            for v in node:
                yield from layers(v)

    (rule,) = [n for n in layers(spec) if n.get("name") == "window_medians"]
    lo, hi = rule["encoding"]["y"]["scale"]["domain"]
    medians = [w["median_ms"] for w in written["windows"]]
    assert min(medians) < 7.0 and lo <= min(medians) and max(medians) <= hi
    assert hi < 9.0 * 40 / 2  # still clipped: the 40x outliers do not set it
    assert "widened to every window's median" in json.dumps(spec)  # the panel says so
