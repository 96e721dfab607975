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
