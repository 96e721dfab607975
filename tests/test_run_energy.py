"""The runner's energy readings end with the variant they measure: a call that fails
while timed, or a counter that fails to start, costs the energy or the case, never
leaves a sampler running into the next variant, and never fails a timing on its own."""

from __future__ import annotations

import io
import threading
from pathlib import Path

import pytest
from db_util import dict_rows
from power_util import ClockedRapl, rapl_zone

from anemll_spec import harness
from anemll_spec.progress import Progress
from anemll_spec.runner import Runner, energy

MODEL = "name: tiny\nmodel: {family: matmul, m: 8, k: 8, n: 8}\n"
PLAIN = MODEL + "run: {backends: [numpy], warmup: 1, iterations: 8, dispatch_floor: false}\n"
SUSTAINED = MODEL + (
    "run: {backends: [numpy], warmup: 1, duration_s: 1, window_s: 0.5, dispatch_floor: false}\n"
)


def _bench(tmp_path: Path, text: str):
    spec = tmp_path / "spec.yaml"
    spec.write_text(text)
    store = tmp_path / "s.duckdb"
    runner = Runner(
        spec, store=str(store), cache_dir=tmp_path / "cache", progress=Progress(io.StringIO())
    )
    return runner.run(), store


def _samplers() -> set[threading.Thread]:
    return {t for t in threading.enumerate() if t.name == "power-sampler" and t.is_alive()}


def _rapl_reader(root: Path, period_s: float | None, *, break_before_start: bool = False):
    """The runner's `energy.reader`: a real RAPL reader over a fresh sysfs-shaped tree
    (with a sampler thread where period_s is set), optionally unreadable by the time it
    starts."""
    from anemll_spec.power.rapl import open_rapl

    opened = iter(range(1000))

    def reader(run, backend, device):
        counter = rapl_zone(root / f"tree{next(opened)}")
        found = open_rapl(counter.parent.parent, period_s=period_s)
        if break_before_start:
            counter.unlink()
        return found

    return reader


@pytest.mark.parametrize("text", [PLAIN, SUSTAINED], ids=["plain", "sustained"])
def test_a_call_that_fails_while_timed_ends_the_reading_with_it(tmp_path, monkeypatch, text):
    from anemll_spec import sustained

    before = _samplers()
    monkeypatch.setattr(energy, "reader", _rapl_reader(tmp_path / "powercap", period_s=0.01))

    def failing(*args):
        raise RuntimeError("the program failed")

    monkeypatch.setattr(harness.Timer, "_step", failing)  # the plain timed loop
    monkeypatch.setattr(sustained, "_time_window", failing)  # a sustained window
    res, _ = _bench(tmp_path, text)
    (m,) = res.results
    assert m.status == "failed" and "the program failed" in (m.error or "")
    for t in _samplers() - before:  # a stopped sampler may be on its way out: a moment
        t.join(timeout=2)
    assert not (_samplers() - before), "a power sampler outlived the variant it measured"


def test_a_counter_that_fails_to_start_costs_the_energy_not_the_timing(tmp_path, monkeypatch):
    root = tmp_path / "powercap"
    monkeypatch.setattr(energy, "reader", _rapl_reader(root, None, break_before_start=True))
    res, store = _bench(tmp_path, PLAIN)
    assert res.status == "finished", [m.error for m in res.results]
    (case,) = dict_rows(store, "SELECT * FROM cases")
    assert case["status"] == "ok" and case["n_samples"] >= 8
    assert case["energy_total_mj"] is None and case["energy_method"] is None
    assert case["energy_note"].startswith(
        "the energy reading failed to start: FileNotFoundError"
    ), case["energy_note"]


def test_an_instance_that_fails_ends_the_concurrent_reading(tmp_path):
    from anemll_spec.harness import Budget, time_concurrent
    from anemll_spec.power.rapl import open_rapl

    before = _samplers()
    rapl_zone(tmp_path / "powercap")
    reader = open_rapl(tmp_path / "powercap", period_s=0.01)
    calls = []

    def call() -> None:
        calls.append(1)
        if len(calls) > 4:  # warmed up, the reader started: one instance fails
            raise RuntimeError("instance failed")

    budget = Budget(warmup=1, warmup_s=0.0, iterations=50, min_iterations=50, max_time_s=10)
    with pytest.raises(RuntimeError, match="instance failed"):
        time_concurrent([call, call], budget, reader=reader)
    for t in _samplers() - before:
        t.join(timeout=2)
    assert not (_samplers() - before), "the reading outlived the failed instances"


def test_concurrent_instances_too_short_for_the_counters_store_why_not_a_figure(
    tmp_path, monkeypatch
):
    """Two instances timed for 40 ms read 0 mJ on the H100 (NVML's counter moves every
    100 ms) and the summary crashed; a plain loop that short gets an energy pass, the
    instances' phase gets none: its energy is NULL, and the note says why."""
    monkeypatch.setattr(energy, "reader", ClockedRapl(tmp_path / "powercap", 10.0).reader)
    text = PLAIN.replace("iterations: 8", "iterations: 8, concurrency: 2, energy_s: 5")
    res, store = _bench(tmp_path, text)
    assert res.status == "finished", [m.error for m in res.results]
    (case,) = dict_rows(store, "SELECT energy_total_mj, energy_note FROM cases")
    assert case["energy_total_mj"] is None
    assert case["energy_note"].startswith("not read: the instances' timed phase lasted ")
    assert "under run.energy_s (5 s)" in case["energy_note"]


class _FailsAtStop:
    """A reader whose reading fails at stop() (as IOReport's "counters not published"
    verdict did for a 1.2 s loop): it reads no counter and makes no figure."""

    method = "rapl"

    def start(self) -> None:
        pass

    def stop(self, *, timed_only: bool = True):
        raise OSError("the counter went away")


def test_a_short_loop_gets_its_energy_pass_whatever_its_reading_was(tmp_path, monkeypatch):
    """Whether a timed loop gets a separate energy pass is its own duration's call: a
    short loop whose reading was an Unavailable got none (IOReport called 0 mJ over 1.2 s
    "not published", and a 1.2 s loop stored NULL where a 0.9 s loop got its pass)."""
    rapl = ClockedRapl(tmp_path / "powercap", 10.0)
    opened = []

    def reader(run, backend, device):  # the timed loop's reader fails, the pass's reads
        opened.append(backend)
        return _FailsAtStop() if len(opened) == 1 else rapl.reader()

    monkeypatch.setattr(energy, "reader", reader)
    res, store = _bench(tmp_path, PLAIN.replace("iterations: 8", "iterations: 8, energy_s: 0.5"))
    assert res.status == "finished", [m.error for m in res.results]
    assert len(opened) == 2  # the timed loop's reader, then the pass's
    (case,) = dict_rows(store, "SELECT * FROM cases")
    assert case["energy_method"] == "rapl" and case["energy_timed_only"] is False
    assert case["energy_interval_s"] >= 0.5
    # the clocked counter's own rate: 10 W over the interval, per call of the pass
    per_call_mj = 1e3 * 10.0 * case["energy_interval_s"] / case["energy_calls"]
    assert case["energy_mj_per_inference"] == pytest.approx(per_call_mj, rel=0.01)
    assert "back-to-back calls after timing (0.5 s): the timed loop lasted" in case["notes"]


def test_a_pass_whose_reader_fails_to_start_makes_no_calls(tmp_path, monkeypatch):
    """The pass's reading never started: its energy_s of calls would measure nothing."""
    import time

    root = tmp_path / "powercap"
    monkeypatch.setattr(energy, "reader", _rapl_reader(root, None, break_before_start=True))
    t = time.perf_counter()
    res, store = _bench(tmp_path, PLAIN.replace("iterations: 8", "iterations: 8, energy_s: 30"))
    assert time.perf_counter() - t < 25  # no 30 s pass
    (case,) = dict_rows(store, "SELECT energy_note, notes FROM cases")
    assert case["energy_note"].startswith("the energy reading failed to start: FileNotFound")
    assert "back-to-back" not in (case["notes"] or "")


def _reading(interval_s: float):
    from anemll_spec.power.base import Energy

    return Energy({"package": 1000.0}, ("package",), interval_s, "rapl", 2, True)


def test_a_concurrent_reading_is_kept_only_as_the_energy_of_overlapping_calls():
    """The reading runs from the instances' release to their last result: for 20 fast calls
    it lasted 0.214 s against 16 ms of calls (13x the energy per inference), and it was kept
    where the instances had not run at once at all (a lone instance's calls filed as
    'concurrency 2'). Kept: within 10% of the calls' span, instances overlapping."""
    from types import SimpleNamespace

    from anemll_spec.runner.energy import SPAN_SLACK, concurrent_energy

    ok = _reading(0.105)
    assert concurrent_energy(ok, SimpleNamespace(wall_s=0.1), 0.0, None) is ok
    long = concurrent_energy(_reading(0.214), SimpleNamespace(wall_s=0.01645), 0.0, None)
    assert long.reason == (
        "not kept: the reading lasted 0.21 s, 13x the instances' calls (0.016 s): it counts "
        "their release and the hand-back of their results, not only the calls; more "
        "iterations or a longer max_time_s make that share small"
    )
    apart = concurrent_energy(
        _reading(0.1), SimpleNamespace(wall_s=0.1), 0.0, "instance 1 made no call"
    )
    assert apart.reason.startswith("not kept: the instances did not all run at once (instance 1")
    short = concurrent_energy(_reading(0.1), SimpleNamespace(wall_s=0.1), 2.0, None)
    assert short.reason.startswith("not read: the instances' timed phase lasted 0.1 s, under")
    assert SPAN_SLACK == 1.1


def test_twenty_fast_concurrent_calls_store_no_energy_figure(tmp_path, monkeypatch):
    """A real bench, a counter at 10 W: 20 calls of a tiny model on 2 instances with
    energy_s 0 stored 32 mJ per inference (about 60x the calls' own) as a 'concurrency 2'
    figure. Now NULL, and the note says why."""
    monkeypatch.setattr(energy, "reader", ClockedRapl(tmp_path / "powercap", 10.0).reader)
    text = PLAIN.replace("iterations: 8", "iterations: 20, concurrency: 2, energy_s: 0")
    res, store = _bench(tmp_path, text)
    assert res.status == "finished", [m.error for m in res.results]
    (case,) = dict_rows(store, "SELECT energy_total_mj, energy_note FROM cases")
    assert case["energy_total_mj"] is None
    assert case["energy_note"].startswith("not kept: the "), case["energy_note"]


def test_a_window_shorter_than_its_counters_update_period_stores_no_energy_of_its_own():
    """Sustained windows of 0.055 s on a counter that moves every 100 ms (NVML) stored
    1000 mJ for every other window, 'power_w_mean' 17-18 W for a 10 W device, drawn as
    each window's power. Such a window keeps no energy of its own; the case sums them."""
    from types import SimpleNamespace

    import numpy as np

    from anemll_spec.power.base import Energy
    from anemll_spec.store.energy import sustained_rows

    def window(i: int, seconds: float, mj: float):
        e = Energy({"gpu": mj}, ("gpu",), seconds, "nvml", 2, True)
        return SimpleNamespace(index=i, start_ns=i * 10**9, wall_s=seconds, calls=10,
                               median_ms=1.0, energy=e, thermal=None,
                               samples_ns=np.full(10, 10**6, np.int64))  # fmt: skip

    wins = [window(0, 0.055, 1000.0), window(1, 0.055, 0.0), window(2, 0.15, 1500.0)]
    verdict = SimpleNamespace(first_median_ms=1.0, last_median_ms=1.0, throughput_ratio=1.0,
                              ci_low=1.0, ci_high=1.0, verdict="stable", throttled=False)  # fmt: skip
    s = SimpleNamespace(windows=wins, verdict=verdict, duration_s=1.0, window_s=0.055)
    rows = sustained_rows(s)
    assert [r.get("energy_total_mj") for r in rows["windows"]] == [None, None, 1500.0]
    assert rows["case"]["energy_total_mj"] == 2500.0  # the case still sums every window
