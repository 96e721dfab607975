"""Published data in the store and the chip_factors view/macro, checked against the CSV."""

from __future__ import annotations

import csv
from pathlib import Path

import duckdb
import numpy as np
import pytest
from fixtures.store.synth import case, new_run, samples_ns

from anemll_spec.store import append_case, open_store

ROOT = Path(__file__).resolve().parents[1]
CSV = ROOT / "store" / "reference" / "anemll_bench_published.csv"
SIX = "ANEMLL-Bench results table (6 chips)"
FP16_BYTES, LUT6_BYTES = 1_050_673_728, 396_055_616

# The factor columns as printed in the published 6-chip table (store/reference/README.md).
PUBLISHED_BANDWIDTH_FACTOR = {
    "M1 Max": "1.0x", "M1 Ultra": "1.0x", "M2 Max": "1.1x",
    "M2 Ultra": "1.1x", "M4 Pro": "2.3x", "M4 Max": "2.2x",
}  # fmt: skip
PUBLISHED_INFERENCE_FACTOR = {
    "M1 Max": "1.0x", "M1 Ultra": "1.0x", "M2 Max": "1.1x",
    "M2 Ultra": "1.1x", "M4 Pro": "2.0x", "M4 Max": "2.0x",
}  # fmt: skip


def csv_rows() -> list[dict]:
    with open(CSV, newline="") as f:
        return list(csv.DictReader(f))


def published(source: str, model: str, metric: str) -> dict[str, float]:
    return {
        r["chip"]: float(r["value"])
        for r in csv_rows()
        if r["source"] == source and r["model"] == model and r["metric"] == metric
    }


@pytest.fixture
def store(tmp_path):
    path = tmp_path / "r.duckdb"
    open_store(path).close()
    return path


def query(store, sql, params=()):
    con = duckdb.connect(str(store), read_only=True)
    try:
        return con.execute(sql, list(params)).fetchall()
    finally:
        con.close()


def test_reference_holds_every_published_number_unchanged(store):
    rows = query(
        store,
        "SELECT chip, model, metric, value, unit, source, note FROM reference WHERE NOT derived",
    )
    expected = [
        (r["chip"], r["model"], r["metric"], float(r["value"]), r["unit"], r["source"], r["note"])
        for r in csv_rows()
    ]
    assert sorted(rows) == sorted(expected)


def test_derived_values_are_marked_and_explained(store):
    bw = published(SIX, "llama_lm_head", "bandwidth_gbps")
    ms = published(SIX, "llama_lm_head_lut6", "latency_ms")
    rows = query(
        store,
        "SELECT chip, model, metric, value, note FROM reference WHERE derived AND source = ?",
        [SIX],
    )
    got = {(c, m, k): (v, note) for c, m, k, v, note in rows}
    assert len(got) == 12
    for chip, gbps in bw.items():
        v, note = got[(chip, "llama_lm_head", "latency_ms")]
        assert v == pytest.approx(FP16_BYTES / gbps / 1e9 * 1e3)
        assert note.startswith("derived: 1,050,673,728 weight bytes /")
    for chip, lat in ms.items():
        v, note = got[(chip, "llama_lm_head_lut6", "bandwidth_gbps")]
        assert v == pytest.approx(LUT6_BYTES / (lat / 1e3) / 1e9)
        assert "396,055,616" in note
    # a published pair is never overwritten by a derived one
    assert query(
        store,
        "SELECT count(*) FROM reference WHERE derived AND source LIKE '%issue #1%'",
    ) == [(0,)]


def test_chip_factors_reproduce_the_published_factor_columns(store):
    bw = published(SIX, "llama_lm_head", "bandwidth_gbps")
    ms = published(SIX, "llama_lm_head_lut6", "latency_ms")
    rows = query(
        store,
        "SELECT chip, model, bandwidth_factor, inference_factor, bandwidth_factor_label, "
        "inference_factor_label, baseline_chip, baseline_source FROM chip_factors WHERE source = ?",
        [f"published: {SIX}"],
    )
    by = {(r[0], r[1]): r for r in rows}
    assert {c for c, _ in by} == set(PUBLISHED_BANDWIDTH_FACTOR)
    for chip in PUBLISHED_BANDWIDTH_FACTOR:
        fp16 = by[(chip, "llama_lm_head")]
        lut6 = by[(chip, "llama_lm_head_lut6")]
        # independently from the CSV
        assert fp16[2] == pytest.approx(bw[chip] / bw["M1 Max"])
        assert lut6[3] == pytest.approx(ms["M1 Max"] / ms[chip])
        assert f"{round(bw[chip] / bw['M1 Max'], 1):.1f}x" == PUBLISHED_BANDWIDTH_FACTOR[chip]
        # and as published
        assert fp16[4] == PUBLISHED_BANDWIDTH_FACTOR[chip]
        assert lut6[5] == PUBLISHED_INFERENCE_FACTOR[chip]
        assert fp16[6] == "M1 Max" and fp16[7] == f"published: {SIX}"


def test_the_quirk_stays_visible(store):
    """The fp16 head's latency is derived from its GB/s; the LUT6's GB/s from its ms."""
    rows = dict(
        ((m, s), (bd, ld))
        for m, s, bd, ld in query(
            store,
            "SELECT model, source, bandwidth_derived, latency_derived FROM chip_factors "
            "WHERE chip = 'M4 Pro'",
        )
    )
    assert rows[("llama_lm_head", f"published: {SIX}")] == (False, True)
    assert rows[("llama_lm_head_lut6", f"published: {SIX}")] == (True, False)


def test_another_baseline_through_the_macro(store):
    bw = published(SIX, "llama_lm_head", "bandwidth_gbps")
    rows = dict(
        query(
            store,
            "SELECT chip, bandwidth_factor FROM chip_factors_vs('M4 Pro') "
            "WHERE source = ? AND model = 'llama_lm_head'",
            [f"published: {SIX}"],
        )
    )
    for chip, gbps in bw.items():
        assert rows[chip] == pytest.approx(gbps / bw["M4 Pro"])


def test_sources_without_the_baseline_borrow_the_published_one(store):
    thirteen = "anemll-bench Results.MD (13 chips; commit 5c434f2)"
    bw13 = published(thirteen, "llama_lm_head", "bandwidth_gbps")
    bw6 = published(SIX, "llama_lm_head", "bandwidth_gbps")
    ((factor, base_source),) = query(
        store,
        "SELECT bandwidth_factor, baseline_source FROM chip_factors "
        "WHERE source = ? AND chip = 'M5' AND model = 'llama_lm_head'",
        [f"published: {thirteen}"],
    )
    assert base_source == f"published: {SIX}"
    assert factor == pytest.approx(bw13["M5"] / bw6["M1 Max"])


def test_of_several_published_baselines_the_measured_one_is_taken(store):
    """M4's fp16 head is published by Results.MD (GB/s; its ms derived) and by issue #5
    (both measured): the name's order picked Results.MD ('a' < 'r' after 'anemll-bench ')
    and its derived ms; the source with more measured figures wins."""
    rows = query(
        store,
        "SELECT baseline_source, baseline_latency_ms, baseline_latency_derived, "
        "inference_factor_label FROM case_factors_vs('M4') "
        "WHERE chip = 'M1 Max' AND model = 'llama_lm_head'",
    )
    issue5 = "anemll-bench issue #5 (user submission; M4 16GB)"
    ms = published(issue5, "llama_lm_head", "latency_ms")["M4"]
    assert rows and {r[:3] for r in rows} == {(f"published: {issue5}", ms, False)}
    assert all("derived" not in r[3] for r in rows)


def test_own_runs_side_by_side_with_published(store):
    rng = np.random.default_rng(3)
    # an own M4 Max run, no own M1 Max: the factor uses the published M1 Max
    run_id = new_run(store, chip="Apple M4 Max")
    wall = samples_ns(rng, 200, 8.9)
    # no stored GB/s: the view derives it from weight bytes and the median
    append_case(store, run_id, case("fp16", "llama_lm_head", wall=wall, bandwidth_gbps=None), wall)
    median = float(np.median(wall)) / 1e6
    rows = query(
        store,
        "SELECT bandwidth_gbps, latency_ms, bandwidth_factor, inference_factor, baseline_source, "
        "latency_stat FROM chip_factors WHERE source = 'own'",
    )
    assert len(rows) == 1
    gbps, lat, bf, inf, base_source, stat = rows[0]
    assert lat == pytest.approx(median) and gbps == pytest.approx(FP16_BYTES / (median * 1e6))
    m1 = published(SIX, "llama_lm_head", "bandwidth_gbps")["M1 Max"]
    assert bf == pytest.approx(gbps / m1)
    assert inf == pytest.approx((FP16_BYTES / (m1 * 1e6)) / lat)
    assert base_source == f"published: {SIX}" and stat == "median"

    # an own M1 Max run appears: own rows now use the own baseline
    run_m1 = new_run(store, chip="Apple M1 Max")
    wall_m1 = samples_ns(rng, 200, 19.0)
    append_case(store, run_m1, case("fp16", "llama_lm_head", wall=wall_m1), wall_m1)
    ((bf, base_source),) = query(
        store,
        "SELECT bandwidth_factor, baseline_source FROM chip_factors "
        "WHERE source = 'own' AND chip = 'M4 Max'",
    )
    assert base_source == "own"
    assert bf == pytest.approx(float(np.median(wall_m1)) / float(np.median(wall)))

    # a newer M4 Max run replaces the older one (latest per chip and model)
    run2 = new_run(store, chip="Apple M4 Max")
    wall2 = samples_ns(rng, 200, 9.5)
    append_case(store, run2, case("fp16", "llama_lm_head", wall=wall2), wall2)
    ((lat, rid),) = query(
        store,
        "SELECT latency_ms, run_id FROM chip_factors WHERE source = 'own' AND chip = 'M4 Max'",
    )
    assert rid == run2 and lat == pytest.approx(float(np.median(wall2)) / 1e6)


def test_concurrent_runs_and_other_devices_do_not_replace_a_chip_figure(store):
    """A later concurrency-4 run (median per call while four run at once) must not become
    the chip's figure, and a torch/cuda row must not replace a torch/cpu one."""
    rng = np.random.default_rng(5)
    single = new_run(store, chip="Apple M4 Max")
    wall = samples_ns(rng, 200, 8.9)
    append_case(store, single, case("fp16", "llama_lm_head", wall=wall), wall)
    busy = new_run(store, chip="Apple M4 Max")
    wall4 = samples_ns(rng, 200, 30.0)
    append_case(store, busy, case("fp16", "llama_lm_head", wall=wall4, concurrency=4), wall4)
    ((lat,),) = query(store, "SELECT latency_ms FROM chip_factors WHERE source = 'own'")
    assert lat == pytest.approx(float(np.median(wall)) / 1e6)

    for device, ms in (("cpu", 50.0), ("cuda", 0.4)):
        rid = new_run(store, chip="Apple M4 Max")
        w = samples_ns(rng, 100, ms)
        row = case(
            "fp16", "llama_lm_head", wall=w, backend="torch", compute_units=None, device=device
        )
        append_case(store, rid, row, w)
    rows = query(
        store,
        "SELECT device, round(latency_ms) FROM chip_factors WHERE source = 'own' AND backend = 'torch' "
        "ORDER BY device",
    )
    assert rows == [("cpu", 50.0), ("cuda", 0.0)]


def own_case(store, chip: str, ms: float, seed: int, os_version: str = "15.3", **over) -> str:
    """One own run on `chip` (macOS `os_version`) with one llama_lm_head case."""
    from fixtures.store.synth import host, run

    from anemll_spec.store import begin_run

    run_id = begin_run(store, run(), host(chip=chip, os_version=os_version))
    wall = samples_ns(np.random.default_rng(seed), 100, ms)
    append_case(store, run_id, case(wall=wall, **over), wall)
    return run_id


def test_one_factor_rule_own_numpy_against_the_published_baseline(store):
    """Issue 14.6: an own row is compared with the baseline chip's own row of the same
    backend when there is one, else with its PUBLISHED figure (so a numpy run gets a
    factor, not NULL); for_run (the bench summary) and chip_factors give the same."""
    from anemll_spec.store.factors import for_run

    own_case(store, "Apple M1 Max", 19.0, 1)
    run_id = own_case(store, "Apple M4 Max", 9.0, 2)
    wall = samples_ns(np.random.default_rng(3), 100, 420.0)
    append_case(store, run_id, case(wall=wall, backend="numpy", compute_units=None), wall)
    m1_published = published(SIX, "llama_lm_head", "bandwidth_gbps")["M1 Max"]
    numpy_gbps = FP16_BYTES / (float(np.median(wall)) / 1e9) / 1e9  # ns -> s -> GB/s
    rows = query(
        store,
        "SELECT backend, bandwidth_factor, bandwidth_factor_label, baseline_source, "
        "baseline_label FROM chip_factors WHERE source = 'own' AND chip = 'M4 Max' ORDER BY 1",
    )
    (cm, cm_f, _, cm_src, cm_label), (np_, np_f, np_label, np_src, np_blabel) = rows
    assert (cm, cm_src, cm_label) == ("coreml", "own", "M1 Max (own, Core ML ANE)")
    assert np_ == "numpy" and np_src == f"published: {SIX}"
    assert np_blabel == "M1 Max (published, Core ML ANE)"
    assert np_f == pytest.approx(numpy_gbps / m1_published)
    assert np_label == f"{numpy_gbps / m1_published:.2g}x" and np_label.startswith("0.0")
    con = open_store(store, read_only=True)
    try:
        mine = {r["backend"]: r for r in for_run(con, run_id)}
    finally:
        con.close()
    assert mine["numpy"]["bandwidth_factor"] == np_f
    assert mine["coreml"]["bandwidth_factor"] == cm_f
    assert mine["numpy"]["baseline_label"] == np_blabel


def test_two_macos_versions_of_one_chip_are_two_rows(store):
    """Issue 14.4: own rows per chip x OS version; a baseline of the same OS first."""
    own_case(store, "Apple M1 Max", 20.0, 1, os_version="14.6")
    own_case(store, "Apple M1 Max", 19.0, 2, os_version="15.3")
    own_case(store, "Apple M4 Max", 10.0, 3, os_version="14.6")
    own_case(store, "Apple M4 Max", 9.0, 4, os_version="15.3")
    rows = query(
        store,
        "SELECT chip, os_name, os_version, baseline_os_version, latency_ms, "
        "baseline_latency_ms, inference_factor FROM chip_factors WHERE source = 'own' "
        "ORDER BY chip, os_version",
    )
    assert [(r[0], r[1], r[2], r[3]) for r in rows] == [
        ("M1 Max", "macOS", "14.6", "14.6"),
        ("M1 Max", "macOS", "15.3", "15.3"),
        ("M4 Max", "macOS", "14.6", "14.6"),
        ("M4 Max", "macOS", "15.3", "15.3"),
    ]
    for *_, lat, base, factor in rows:
        assert factor == pytest.approx(base / lat)
    assert query(
        store, "SELECT DISTINCT os_name, os_version FROM chip_factors WHERE source <> 'own'"
    ) == [(None, None)]


def test_results_show_runtime_bandwidth_and_binding_overhead(store):
    """Issue 19.2: GB/s from Core ML's own runtime, and wall - runtime, per case."""
    run_id = own_case(store, "Apple M4 Max", 9.0, 1)
    ((median, runtime, gbps, overhead),) = query(
        store,
        "SELECT median_ms, runtime_median_ms, runtime_bandwidth_gbps, binding_overhead_ms "
        "FROM results WHERE run_id = ?",
        [run_id],
    )
    assert runtime is None and gbps is None and overhead is None  # unknown: NULL
    wall = samples_ns(np.random.default_rng(9), 100, 9.0)
    rt = wall - 400_000
    append_case(
        store, run_id, case(wall=wall, runtime_median_ms=float(np.median(rt)) / 1e6),
        np.column_stack([wall, rt]),
    )  # fmt: skip
    ((median, runtime, gbps, overhead),) = query(
        store,
        "SELECT median_ms, runtime_median_ms, runtime_bandwidth_gbps, binding_overhead_ms "
        "FROM results WHERE run_id = ? AND runtime_median_ms IS NOT NULL",
        [run_id],
    )
    assert gbps == pytest.approx(FP16_BYTES / (float(np.median(rt)) / 1e9) / 1e9)
    assert overhead == pytest.approx((float(np.median(wall)) - float(np.median(rt))) / 1e6)
