"""bench's sustained runs, distinct concurrent instances and energy bookkeeping, end to end
on the numpy backend with a real store (issue 18); figures re-derived from the stored
samples, never from the runner's own objects."""

from __future__ import annotations

import io
import time
from pathlib import Path

import duckdb
import numpy as np
import pytest
from power_util import ClockReader

from anemll_spec.harness import Budget, time_concurrent
from anemll_spec.progress import Progress
from anemll_spec.runner import Runner
from anemll_spec.sustained import judge

SUSTAINED = """
name: tiny_sustained
model: {family: lm_head, hidden_size: 64, vocab_size: 128, chunks: 1}
run: {backends: [numpy], warmup: 2, duration_s: 2, window_s: 0.5, dispatch_floor: false}
"""
DISTINCT = """
name: tiny_distinct
model: {family: lm_head, hidden_size: 64, vocab_size: 128, chunks: 1}
run: {backends: [numpy], warmup: 2, iterations: 20, concurrency: 2, instances: distinct,
      dispatch_floor: false}
"""


def _bench(tmp_path: Path, text: str, store: Path):
    spec = tmp_path / "spec.yaml"
    spec.write_text(text)
    out = io.StringIO()
    runner = Runner(spec, store=str(store), cache_dir=tmp_path / "cache", progress=Progress(out))
    return runner.run(), out.getvalue()


def _one(store: Path, sql: str, *args):
    con = duckdb.connect(str(store), read_only=True)
    try:
        cur = con.execute(sql, list(args))
        names = [d[0] for d in cur.description]
        return [dict(zip(names, r, strict=True)) for r in cur.fetchall()]
    finally:
        con.close()


def test_a_sustained_run_stores_its_windows_and_verdict(tmp_path):
    store = tmp_path / "s.duckdb"
    res, log = _bench(tmp_path, SUSTAINED, store)
    assert res.status == "finished", [m.error for m in res.results]
    (case,) = _one(store, "SELECT * FROM cases")
    windows = _one(store, "SELECT * FROM sustained_windows ORDER BY window_index")
    samples = _one(store, "SELECT wall_ns, window_index FROM samples ORDER BY idx")
    assert case["sustained_windows"] == len(windows) == 4  # 2 s in windows of 0.5 s
    assert case["sustained_duration_s"] == 2.0 and case["sustained_window_s"] == 0.5
    by_window: dict[int, list[int]] = {}
    for s in samples:
        by_window.setdefault(s["window_index"], []).append(s["wall_ns"])
    for w in windows:  # each window's figures are its own samples'
        mine = np.array(by_window[w["window_index"]])
        assert w["calls"] == len(mine)
        assert w["median_ms"] == pytest.approx(float(np.median(mine)) / 1e6)
    first = np.array(by_window[0])
    last = np.array(by_window[len(windows) - 1])
    v = judge(first, last, [None] * len(windows), seed=0)
    assert case["sustained_first_median_ms"] == pytest.approx(float(np.median(first)) / 1e6)
    assert case["sustained_throughput_ratio"] == pytest.approx(v.throughput_ratio)
    assert case["sustained_verdict"] == v.verdict
    assert case["n_samples"] == len(samples)
    # beside the median ratio, the calls/s a caller got (stalls included), window by window
    delivered = windows[-1]["throughput_ips"] / windows[0]["throughput_ips"]
    (note,) = [n for n in res.results[0].notes if n.startswith("sustained ")]
    assert f"median throughput {v.throughput_ratio:.3f}x" in note
    assert f"calls/s delivered {delivered:.3f}x (stalls included)" in note
    # progress shows each window's median as it ends
    shown = [line.split("window ")[1].split()[0] for line in log.splitlines() if "window " in line]
    assert shown == ["1/4", "2/4", "3/4", "4/4"]
    # energy: a figure where this machine has counters, else NULL and why
    assert case["energy_method"] is not None or case["energy_note"]
    assert _reimported_cases(store, tmp_path) == 1


def _reimported_cases(store: Path, tmp_path: Path) -> int:
    """What bench stored passes the import's checks (every figure recomputed from the
    samples): exported and imported into a fresh store."""
    from anemll_spec.store.bundle import export_bundle
    from anemll_spec.store.importing import import_bundles

    export_bundle(str(store), tmp_path / "b.parquet")
    (imported,) = import_bundles(str(tmp_path / "other.duckdb"), [tmp_path / "b.parquet"])
    return imported["rows"]["cases"]


def test_distinct_instances_each_load_their_own_weights(tmp_path):
    store = tmp_path / "s.duckdb"
    res, _ = _bench(tmp_path, DISTINCT, store)
    assert res.status == "finished", [m.error for m in res.results]
    (case,) = _one(store, "SELECT * FROM cases")
    assert case["instances"] == "distinct" and case["concurrency"] == 2
    assert case["n_samples"] == 40  # both instances' calls, pooled
    assert _reimported_cases(store, tmp_path) == 1
    (m,) = res.results
    assert any("distinct weights" in n for n in m.notes)
    # distinct weights are distinct packages: instance 0 is the case's own, instance 1 seed+1
    import json

    entries = [p for p in (tmp_path / "cache").iterdir() if not p.name.startswith(".")]
    manifests = [json.loads((p / "manifest.json").read_text()) for p in entries]
    assert sorted(m["model"]["seed"] for m in manifests) == [0, 1]
    assert len({m["weights_sha256"] for m in manifests}) == 2
    shared = res.results[0].variant.case.run.model_copy(update={"instances": "shared"})
    assert shared.measured() != res.results[0].variant.case.run.measured()


def test_a_reader_spans_the_instances_common_timed_phase():
    reader = ClockReader()
    budget = Budget(warmup=3, warmup_s=0.0, iterations=20, min_iterations=5, max_time_s=10)
    res = time_concurrent([lambda: time.sleep(0.001)] * 2, budget, reader=reader)
    first = min(int(t.starts_ns[0]) for t in res.per_instance)
    last = max(int(t.starts_ns[-1] + t.samples_ns[-1]) for t in res.per_instance)
    assert reader.t0 <= first and reader.t1 >= last  # warm-ups outside, every timed call inside
    assert res.energy == ("read", True)
