"""bench's sustained runs, distinct concurrent instances and energy bookkeeping, end to end
on the numpy backend with a real store (issue 18); figures re-derived from the stored
samples, never from the runner's own objects."""

from __future__ import annotations

import dataclasses
import io
import re
import time
from pathlib import Path

import duckdb
import numpy as np
import pytest
from db_util import dict_rows
from power_util import ClockedRapl, ClockReader

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
    return dict_rows(store, sql, args)


@pytest.mark.slow  # a sustained run of seconds, twice: ~12 s (make test-slow; CI runs both)
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
    # the note prints each ratio with 3 to 6 decimals (as many as keep the CI's ends apart)
    shown_ratio, lo, hi, shown_delivered = (
        float(x)
        for x in re.fullmatch(
            r"sustained 2 s: \w+, last/first-window median throughput ([\d.]+)x "
            r"\[([\d.]+), ([\d.]+)\]; calls/s delivered ([\d.]+)x \(stalls included\).*",
            note,
        ).groups()  # type: ignore[union-attr]
    )
    assert shown_ratio == pytest.approx(v.throughput_ratio, abs=5e-4)
    assert (lo, hi) == pytest.approx((v.ci_low, v.ci_high), abs=5e-4)
    assert shown_delivered == pytest.approx(delivered, abs=5e-4)
    # progress shows each window's median as it ends
    shown = [line.split("window ")[1].split()[0] for line in log.splitlines() if "window " in line]
    assert shown == ["1/4", "2/4", "3/4", "4/4"]
    share, page = _share_and_report(tmp_path, store)  # a whole run is not 'cut short'
    assert f"| {v.verdict} |" in share and "cut short" not in share + page
    # energy: a figure where this machine has counters, else NULL and why
    assert case["energy_method"] is not None or case["energy_note"]
    assert _reimported_cases(store, tmp_path) == 1


def _reimported_cases(store: Path, tmp_path: Path) -> int:
    """What bench stored passes the import's checks (every figure recomputed from the
    samples): exported and imported into a fresh store."""
    from anemll_spec.store.exporting import export_bundle
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
    # both instances' calls, pooled: one ran its 20, the other stopped with it (none if
    # released after the first was done: then no aggregate, and the note says why)
    assert 20 <= case["n_samples"] <= 40
    apart = "the instances did not all run at once" in case["notes"]
    assert (case["throughput_ips"] is None) == apart and (apart or case["n_samples"] > 20)
    assert _reimported_cases(store, tmp_path) == 1
    (m,) = res.results
    assert any("distinct weights" in n for n in m.notes)
    # the note says how the CPU was split: each instance's math-library pool
    import os

    from anemll_spec.concurrency import default_threads

    each = default_threads("numpy", 2, os.cpu_count())
    assert any(f"(processes, {each} math-library thread(s) each, " in n for n in m.notes), m.notes
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


def test_windows_of_too_few_calls_give_no_verdict():
    """One call per window gave 'improved' with a CI of no width, and the next run
    'degraded': a bootstrap of a few points decides nothing."""
    rng = np.random.default_rng(0)
    few = judge(rng.normal(100, 5, 5), rng.normal(200, 5, 5), seed=0)
    assert few.verdict == "too few calls" and few.throughput_ratio < 0.6
    enough = judge(rng.normal(100, 5, 6), rng.normal(200, 5, 6), seed=0)
    assert enough.verdict == "degraded"


def test_a_sustained_warm_up_stops_at_max_time():
    """docs/metrics.md: warm-up never runs longer than max_time_s (a huge count)."""
    from anemll_spec.sustained import run_sustained

    t0 = time.perf_counter()
    res = run_sustained(lambda: time.sleep(0.001), 0.4, 0.2, warmup=10**9, max_warmup_s=0.3)
    assert time.perf_counter() - t0 < 2.0 and len(res.windows) == 2


def test_sustained_energy_reaches_the_summary_and_a_skipped_pass_says_why(tmp_path, monkeypatch):
    from anemll_spec.cli.bench import summary
    from anemll_spec.runner import energy

    rapl = ClockedRapl(tmp_path / "powercap", watts=10.0)
    monkeypatch.setattr(energy, "reader", rapl.reader)
    store = tmp_path / "s.duckdb"
    res, _ = _bench(tmp_path, SUSTAINED, store)
    (m,) = res.results
    (case,) = _one(store, "SELECT * FROM cases")
    assert case["energy_method"] == "rapl" and case["energy_mj_per_inference"] > 0
    assert m.energy.total_mj / m.reading_calls == pytest.approx(case["energy_mj_per_inference"])
    # against the counter's own rate: 10 W over the interval the counters covered (which
    # holds the windows, and the gaps between them a loaded machine may stretch), per call
    windows = _one(store, "SELECT wall_s, calls FROM sustained_windows")
    assert case["energy_interval_s"] >= sum(w["wall_s"] for w in windows)
    assert case["energy_calls"] == sum(w["calls"] for w in windows)
    joules = 10.0 * case["energy_interval_s"]
    per_call_mj = 1e3 * joules / case["energy_calls"]
    assert case["energy_mj_per_inference"] == pytest.approx(per_call_mj, rel=0.01)
    assert f"{case['energy_mj_per_inference']:.3g}" in summary(res)  # not "-"


def test_interleaved_variants_without_an_energy_pass_say_why(tmp_path, monkeypatch):
    """A chip-wide counter cannot split interleaved calls; with energy_s 0 there is no
    separate pass, and the NULL energy says so (it had no reason at all)."""
    pytest.importorskip("torch")
    from anemll_spec.runner import energy, timing

    monkeypatch.setattr(energy, "reader", ClockedRapl(tmp_path / "powercap", watts=10.0).reader)
    monkeypatch.setattr(timing, "_interleave_groups", lambda opened: [opened])  # interleave them
    store = tmp_path / "s.duckdb"
    text = (
        "name: il\nmodel: {family: matmul, m: 8, k: 8, n: 8}\n"
        "run: {backends: [numpy, torch], device: cpu, warmup: 1, iterations: 8, "
        "dispatch_floor: false, energy_s: 0}\n"
    )
    res, _ = _bench(tmp_path, text, store)
    assert res.status == "finished", [m.error for m in res.results]
    rows = _one(store, "SELECT backend, energy_method, energy_note FROM cases ORDER BY backend")
    assert [(r["backend"], r["energy_method"]) for r in rows] == [("numpy", None), ("torch", None)]
    for r in rows:
        assert r["energy_note"] == (
            "not read: the variants were interleaved, and run.energy_s is 0 (no energy pass)"
        )


def test_numpy_and_torch_on_the_cpu_are_not_interleaved(tmp_path):
    """Their thread pools fight in one process: timed one after the other, and said."""
    pytest.importorskip("torch")
    text = (
        "name: both\nmodel: {family: matmul, m: 8, k: 8, n: 8}\n"
        "run: {backends: [numpy, torch], device: cpu, warmup: 1, iterations: 8, "
        "dispatch_floor: false}\n"
    )
    res, log = _bench(tmp_path, text, tmp_path / "s.duckdb")
    assert res.status == "finished", [m.error for m in res.results]
    for m in res.results:
        assert any(n.startswith("not interleaved: numpy and torch on the CPU") for n in m.notes)
    assert "interleaved: " not in log.replace("not interleaved: ", "")


@pytest.mark.slow  # a sustained bench process and its Ctrl-C: ~8 s (make test-slow; CI runs both)
def test_ctrl_c_keeps_a_sustained_runs_finished_windows(tmp_path):
    """A 30-minute sustained run stopped at minute 20 kept nothing: its finished windows
    are stored (the one in progress is dropped), judged first against last, and the run
    is marked interrupted."""
    from bench_util import interrupted_bench

    spec = tmp_path / "long.yaml"
    spec.write_text(
        "name: long\nmodel: {family: lm_head, hidden_size: 64, vocab_size: 128, chunks: 1}\n"
        "run: {backends: [numpy], warmup: 2, duration_s: 60, window_s: 0.5, "
        "dispatch_floor: false}\n"
    )
    store = tmp_path / "s.duckdb"
    status, said = interrupted_bench(spec, store, tmp_path / "cache", lambda ln: "window 3/" in ln)
    assert status == 130, said
    (case,) = _one(store, "SELECT * FROM cases")
    windows = _one(store, "SELECT * FROM sustained_windows ORDER BY window_index")
    samples = _one(store, "SELECT wall_ns, window_index FROM samples ORDER BY idx")
    assert 3 <= len(windows) == case["sustained_windows"] < 120
    assert case["n_samples"] == len(samples) == sum(w["calls"] for w in windows)
    first = np.array([s["wall_ns"] for s in samples if s["window_index"] == 0])
    last = np.array([s["wall_ns"] for s in samples if s["window_index"] == len(windows) - 1])
    assert case["sustained_verdict"] == judge(first, last, seed=0).verdict
    assert "interrupted after" in case["notes"]
    # what it ran, not what was asked ("sustained 60 s: ..." for a run of 1.5 s)
    assert f"sustained {len(windows) * 0.5:g} of 60 s: " in case["notes"], case["notes"]
    assert _one(store, "SELECT status FROM runs")[0]["status"] == "interrupted"
    # share and the report say it was cut short, and how far it ran (they did not)
    timed = max(w["start_s"] + w["wall_s"] for w in windows)  # the windows' span
    share, page = _share_and_report(tmp_path, store)
    assert f"{case['sustained_verdict']} (cut short: {timed:.3g} of 60 s)" in share, share
    assert f"{case['sustained_verdict']} (cut short: {timed:.3g} of 60 s)</td>" in page
    from anemll_spec.chart import build_chart
    from anemll_spec.chart.source import Options

    spec = build_chart("sustained", str(store), Options())  # and the chart's subtitle
    assert f"{case['sustained_verdict']} (cut short: {timed:.3g} of 60 s): " in str(spec)


def _share_and_report(tmp_path: Path, store: Path) -> tuple[str, str]:
    """What `share` prints and the report's HTML, for the store's latest run."""
    import contextlib

    from anemll_spec.cli import main

    out, page = io.StringIO(), tmp_path / "report.html"
    with contextlib.redirect_stdout(out):
        assert main(["share", "--store", str(store)]) == 0
        assert main(["report", "--store", str(store), "--out", str(page)]) == 0
    return out.getvalue(), page.read_text()


@pytest.mark.slow  # a sustained bench process and its Ctrl-C: ~11 s (make test-slow; CI runs both)
def test_ctrl_c_in_a_later_variants_first_window_keeps_the_finished_variant(tmp_path):
    """Variant 1 ran its whole duration; Ctrl-C before variant 2 had two windows lost
    both. Variant 1 is stored, variant 2 is not, and the run is interrupted."""
    pytest.importorskip("torch")
    from bench_util import interrupted_bench

    spec = tmp_path / "two.yaml"
    spec.write_text(
        "name: two\nmodel: {family: lm_head, hidden_size: 64, vocab_size: 128, chunks: 1}\n"
        "run: {backends: [numpy, torch], device: cpu, warmup: 2, duration_s: 2, "
        "window_s: 1, dispatch_floor: false}\n"
    )
    store = tmp_path / "s.duckdb"
    status, said = interrupted_bench(
        spec, store, tmp_path / "cache", lambda ln: "sustained" in ln and "torch" in ln
    )
    assert status == 130, said
    rows = _one(store, "SELECT backend, sustained_windows FROM cases")
    assert rows == [{"backend": "numpy", "sustained_windows": 2}]
    assert _one(store, "SELECT status FROM runs")[0]["status"] == "interrupted"


def test_whole_windows_are_counted_without_float_rounding():
    from anemll_spec.sustained import window_count

    assert (window_count(1.0, 0.1), window_count(6, 0.2), window_count(2.9, 1)) == (10, 30, 2)


def test_a_run_is_cut_short_only_when_it_stopped_before_its_last_whole_window():
    from anemll_spec.sustained_grid import cut_short

    assert cut_short(1.5, 60, 0.5) == " (cut short: 1.5 of 60 s)"
    assert cut_short(59.5, 60, 0.5) == " (cut short: 59.5 of 60 s)"  # one window short
    assert cut_short(60.002, 60, 0.5) == cut_short(2.0, 2.9, 1) == ""  # a remainder: by design
    assert cut_short(2.01, 2.0, 0.05) == cut_short(None, 60, 0.5) == ""  # calls outlast windows


def test_torch_on_the_cpu_alone_leaves_the_others_interleaved(tmp_path):
    """On a Mac a case may list Core ML, numpy and torch on the CPU: only torch is kept
    apart, Core ML and numpy still take turns (they used to lose interleaving all three)."""
    from anemll_spec.runner.measurement import Measurement, Variant
    from anemll_spec.runner.stages import Opened
    from anemll_spec.runner.timing import _interleave_groups
    from anemll_spec.spec import load_cases

    spec = tmp_path / "s.yaml"
    spec.write_text("name: g\nmodel: {family: matmul, m: 8, k: 8, n: 8}\n")
    _, (case,) = load_cases(spec)

    def opened(backend: str, device: str | None = None) -> Opened:
        cu = "CPU_AND_NE" if backend == "coreml" else None
        m = Measurement(Variant(case, backend, cu), device=device)
        return Opened(m, session=None, feed=None, state=None)  # type: ignore[arg-type]

    coreml, numpy_, torch_cpu, torch_mps = (
        opened("coreml"),
        opened("numpy"),
        opened("torch", "cpu"),
        opened("torch", "mps"),
    )
    groups = _interleave_groups([coreml, numpy_, torch_cpu])
    assert [[o.m.variant.backend for o in g] for g in groups] == [["coreml", "numpy"], ["torch"]]
    assert not coreml.m.notes and numpy_.m.notes and torch_cpu.m.notes
    # torch on the GPU beside numpy clashes with nothing; nor torch on the CPU alone
    assert _interleave_groups([coreml, numpy_, torch_mps]) == [[coreml, numpy_, torch_mps]]
    assert _interleave_groups([coreml, opened("torch", "cpu")])[0][0] is coreml


def test_a_sustained_run_says_its_variants_were_not_interleaved(tmp_path):
    """Sustained runs time each variant for its whole duration, one after another: with
    interleave on (the default) and two variants, each result says so."""
    pytest.importorskip("torch")
    text = SUSTAINED.replace("backends: [numpy]", "backends: [numpy, torch], device: cpu")
    res, _ = _bench(tmp_path, text.replace("duration_s: 2", "duration_s: 1"), tmp_path / "s.db")
    assert res.status == "finished", [m.error for m in res.results]
    assert len(res.results) == 2
    for m in res.results:
        assert (
            "not interleaved: a sustained run times each variant for its whole duration, "
            "one after the other" in m.notes
        )


def test_the_verdict_names_the_time_it_judged(tmp_path):
    """duration_s 1.2 in 0.5 s windows times two whole windows (1 s): the verdict's note
    said "sustained 1.2 s" though 1 s was judged."""
    text = SUSTAINED.replace("duration_s: 2", "duration_s: 1.2")
    res, _ = _bench(tmp_path, text, tmp_path / "s.duckdb")
    (m,) = res.results
    assert len(m.sustained.windows) == 2
    notes = " | ".join(m.notes)
    assert "2 whole windows of 0.5 s timed 1 s of the 1.2 s asked" in notes, notes
    (verdict,) = [n for n in m.notes if n.startswith("sustained ") and "median throughput" in n]
    assert verdict.startswith("sustained 1 of 1.2 s: "), verdict


def test_too_few_samples_for_a_ci_are_said(tmp_path):
    """With 3 samples a bootstrap 'CI' of the median held it 76% of the time, at 1 sample
    it had no width (compare gives no verdict below 6): no CI is stored, and said."""
    text = (
        "name: few\nmodel: {family: matmul, m: 8, k: 8, n: 8}\n"
        "run: {backends: [numpy], warmup: 1, iterations: 3, min_iterations: 1, "
        "dispatch_floor: false}\n"
    )
    res, _ = _bench(tmp_path, text, tmp_path / "s.duckdb")
    (m,) = res.results
    assert len(m.wall_ns) == 3
    assert "only 3 samples: no 95% CI of the median (fewer than 6" in " ".join(m.notes)
    assert m.summary.ci_low_ms is None and m.summary.ci_high_ms is None
    con = duckdb.connect(str(tmp_path / "s.duckdb"), read_only=True)
    row = con.execute("SELECT n_samples, ci_low_ms, ci_high_ms, median_ms FROM cases").fetchone()
    con.close()
    assert row[:3] == (3, None, None) and row[3] == pytest.approx(np.median(m.wall_ns) / 1e6)


def test_calls_that_outlast_the_windows_end_at_duration_not_one_call_per_window():
    """8 ms calls in 1 ms windows for 0.5 s: 500 windows of one call each took 5 s."""
    from anemll_spec.sustained import run_sustained

    res = run_sustained(lambda: time.sleep(0.02), 0.2, 0.01, warmup=1)
    n = len(res.windows)
    assert 2 <= n < 20 and all(w.calls == 1 for w in res.windows)  # 20 planned
    took = res.windows[-1].end_ns - res.grid_start_ns
    longest = max(int(w.samples_ns.max()) for w in res.windows)
    assert 0.2e9 <= took <= 0.2e9 + 2 * longest  # duration_s, and the call in flight


def test_a_sustained_case_whose_calls_outlast_its_windows_says_so(tmp_path):
    store = tmp_path / "s.duckdb"
    text = SUSTAINED.replace("duration_s: 2, window_s: 0.5", "duration_s: 0.05, window_s: 0.001")
    text = text.replace("hidden_size: 64, vocab_size: 128", "hidden_size: 1024, vocab_size: 32768")
    res, _ = _bench(tmp_path, text, store)
    (m,) = res.results
    (case,) = _one(store, "SELECT sustained_windows, notes FROM cases")
    assert 2 <= case["sustained_windows"] < 50, case
    assert f"{case['sustained_windows']} of 50 windows" in case["notes"], case["notes"]
    assert "outlast window_s (0.001 s)" in case["notes"]


def test_a_window_under_a_millisecond_is_refused(tmp_path):
    """1e-300 validated, then the run made no call in any of 2.5e300 windows."""
    from anemll_spec.errors import SpecError
    from anemll_spec.spec import load_cases

    spec = tmp_path / "w.yaml"
    spec.write_text(SUSTAINED.replace("window_s: 0.5", "window_s: 1e-300"))
    with pytest.raises(SpecError, match=r"run\.window_s: must be >= 0\.001, got 1e-300"):
        load_cases(spec)


def test_the_variants_of_a_sustained_case_cool_down_between_them(tmp_path):
    """Each variant starts as cool as the first: cooldown_s applied between cases only,
    so the second started hot and read 'sustained' off a throttled first window."""
    pytest.importorskip("torch")
    from anemll_spec.runner.plan import time_bound_s
    from anemll_spec.spec import load_cases

    text = SUSTAINED.replace("backends: [numpy]", "backends: [numpy, torch], device: cpu")
    text = text.replace("duration_s: 2", "duration_s: 1, cooldown_s: 0.5")
    res, said = _bench(tmp_path, text, tmp_path / "s.duckdb")
    lines = said.splitlines()
    first = next(i for i, ln in enumerate(lines) if "  sustained  numpy" in ln)
    second = next(i for i, ln in enumerate(lines) if "  sustained  torch" in ln)
    assert any("cooldown" in ln and "0.5 s" in ln for ln in lines[first:second]), said
    spec = tmp_path / "c.yaml"
    spec.write_text(text)
    (case,) = load_cases(spec)[1]
    no_cool = case.run.model_copy(update={"cooldown_s": 0.0})
    diff = time_bound_s(case, 2) - time_bound_s(dataclasses.replace(case, run=no_cool), 2)
    assert diff == pytest.approx(2 * 0.5)  # before the case and between its two variants
