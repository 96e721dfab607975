"""Review 37 of concurrent instances, on real spawned processes and the numpy backend:
the start limit follows the run's warm-up and stops the instances when it passes; the
runtime's own duration is kept in threads mode; Ctrl-C ends instances that ignore
SIGTERM or are stopped, within a bounded time."""

from __future__ import annotations

import io
import json
import multiprocessing
import os
import signal
import time
from pathlib import Path

import pytest
from build_util import lm_head, lm_head_fields
from db_util import rows

from anemll_spec import concurrency
from anemll_spec.backends.base import Prepared
from anemll_spec.backends.numpy_ import ExecutorOptions, NumpyBackend
from anemll_spec.harness import Budget
from anemll_spec.progress import Progress
from anemll_spec.runner import Runner

OPTIONS = ExecutorOptions()
# timed until stopped: a million calls, 60 s
LONG = Budget(warmup=2, warmup_s=0.0, iterations=10**6, min_iterations=5, max_time_s=60.0)


@pytest.fixture(scope="module")
def build_cache(tmp_path_factory):
    return tmp_path_factory.mktemp("cache")


@pytest.fixture(scope="module")
def built(build_cache):
    from anemll_spec.build import build

    return build(lm_head(hidden_size=64, vocab_size=256, chunks=2), cache_dir=build_cache)


@pytest.fixture(scope="module")
def prepared(built) -> Prepared:
    from anemll_spec.model_io import describe

    p = Prepared(path=built.path, source=built.path, compile_s=None)
    p.input_dtypes = {t.name: t.dtype for t in describe(built.path).inputs}
    return p


@pytest.fixture(scope="module")
def inputs(built):
    from anemll_spec.model_io import describe, synth_inputs

    return synth_inputs(describe(built.path), seed=0)


def _instances_left() -> list:
    return [p for p in multiprocessing.active_children() if p.name.startswith("instance")]


def test_the_start_limit_is_the_load_allowance_plus_the_warm_up_budget():
    b = Budget(warmup=5, warmup_s=3000.0, iterations=10, min_iterations=5, max_time_s=3600.0)
    assert concurrency.start_limit_s(b) == concurrency.LOAD_ALLOWANCE_S + 3600.0
    assert concurrency.LOAD_ALLOWANCE_S >= 900.0  # a slow Core ML load keeps its 15 minutes
    # each instance has its allowance: 8 loads that Core ML runs one after another are
    # not a hang (the limit was one allowance for all of them)
    assert concurrency.start_limit_s(b, 8) == 8 * concurrency.LOAD_ALLOWANCE_S + 3600.0


def test_the_instances_start_limit_counts_each_instance(prepared, inputs, monkeypatch):
    """time_processes gives its instances the start limit of their number (it gave two
    instances, or eight, the allowance of one)."""
    asked = []

    def limit(budget, n_instances=1):
        asked.append(n_instances)
        return 120.0

    monkeypatch.setattr(concurrency, "start_limit_s", limit)
    quick = Budget(warmup=1, warmup_s=0.0, iterations=3, min_iterations=3, max_time_s=5.0)
    res = concurrency.time_processes("numpy", prepared, OPTIONS, inputs, quick, n_instances=2)
    assert asked == [2] and len(res.per_instance) == 2


def test_past_the_start_limit_the_instances_stop_warming_up_and_the_error_names_it(
    prepared, inputs
):
    """A start limit shorter than the warm-up: the parent's gate timed out, but the
    instances warmed up their whole warmup_s (30 s here) before the error, which said
    only 'not every instance reached the start barrier in time'. Now they stop at the
    limit (after their call in flight) and the message names it."""
    warm = Budget(warmup=2, warmup_s=30.0, iterations=5, min_iterations=5, max_time_s=60.0)
    t0 = time.monotonic()
    with pytest.raises(concurrency.ConcurrencyError) as err:
        concurrency.time_processes(
            "numpy", prepared, OPTIONS, inputs, warm, n_instances=2, start_timeout_s=2.0
        )
    took = time.monotonic() - t0
    assert str(err.value) == (
        "not every instance was loaded and warm within 2 s (load + warm-up allowance)"
    )
    assert 2.0 <= took < 10, took  # at the limit, not after the 30 s warm-up
    assert not _instances_left()


@pytest.mark.slow  # a 4 s warm-up in real processes: ~7 s
def test_a_warm_up_longer_than_the_load_allowance_is_not_cut_short(prepared, inputs, monkeypatch):
    """The start limit was a fixed 900 s whatever the spec's warmup_s (up to max_time_s,
    a day): a warm-up past it always failed. Here the load allowance is 3 s and the
    warm-up 4 s: the limit derived from the budget (3 + max_time_s) lets it finish."""
    monkeypatch.setattr(concurrency, "LOAD_ALLOWANCE_S", 3.0)
    warm = Budget(warmup=2, warmup_s=4.0, iterations=5, min_iterations=5, max_time_s=5.0)
    res = concurrency.time_processes("numpy", prepared, OPTIONS, inputs, warm, n_instances=2)
    assert [t.warmup_s >= 4.0 for t in res.per_instance] == [True, True]
    assert res.calls >= 5


def test_threads_mode_keeps_each_calls_runtime_duration_in_the_store(
    tmp_path, monkeypatch, build_cache, built
):
    """torch on CUDA at concurrency > 1 runs in threads, where each instance's Timer got
    no `after`: samples.runtime_ns and runtime_median_ms were NULL for every concurrent
    CUDA case (concurrency 1 and processes mode kept the CUDA-event times). Here numpy
    sessions carry a runtime_probe, as torch's do on CUDA, and run in threads."""
    load = NumpyBackend.load

    def probed(self, prepared, options):
        s = load(self, prepared, options)
        s.runtime_probe = lambda: 1000  # 1 us: well under any call's wall time
        return s

    monkeypatch.setattr(NumpyBackend, "load", probed)
    monkeypatch.setitem(concurrency.THREADS_RUN_AT_ONCE, ("numpy", None), True)

    spec = tmp_path / "c.yaml"
    spec.write_text(
        f"name: thr\nmodel: {json.dumps(lm_head_fields(hidden_size=64, vocab_size=256, chunks=2))}"
        "\nrun: {backends: [numpy], concurrency: 2, warmup: 2, iterations: 40, "
        "min_iterations: 5, max_time_s: 1, energy_s: 0, dispatch_floor: false}\n"
    )
    store = tmp_path / "s.duckdb"
    res = Runner(
        spec, store=str(store), cache_dir=build_cache, progress=Progress(io.StringIO())
    ).run()
    assert [m.status for m in res.results] == ["ok"], [m.error for m in res.results]
    got = rows(store, "SELECT count(*), count(runtime_ns), min(runtime_ns) FROM samples")
    n = got[0][0]
    assert n >= 2 and got == [(n, n, 1000)]
    ((median, notes),) = rows(store, "SELECT runtime_median_ms, notes FROM cases")
    assert median == pytest.approx(0.001) and "concurrency 2 (threads" in notes, notes


def _ctrl_c_while_timing(then=None):
    """An on_progress callback that, at instance 0's first report (both instances timing),
    runs `then` and sends this process (the bench, alone) a real SIGINT."""

    def report(*_):
        if then is not None:
            then()
        os.kill(os.getpid(), signal.SIGINT)

    return report


def _end(procs: list) -> list:
    """Kill and reap what a test left behind (else multiprocessing's exit handler would
    wait for it at the end of the session); the ones that were still there."""
    left = [p for p in procs if p.is_alive()]
    for p in left:
        p.kill()
        p.join(5)
    return left


def test_ctrl_c_ends_instances_that_ignore_sigterm_at_once(prepared, inputs):
    """Ctrl-C to the bench alone, its instances ignoring SIGTERM (a supervising parent's
    `trap '' TERM`): the bench only sent SIGTERM, never set `ended`, and joined each
    instance for 10 s, then 5 s more: 30 s, the instances timing on to max_time_s (60 s
    here) and left running. Now `ended` is set first: they stop after their call."""
    old = signal.signal(signal.SIGTERM, signal.SIG_IGN)  # the instances inherit it
    t0 = time.monotonic()
    try:
        with pytest.raises(KeyboardInterrupt):
            concurrency.time_processes(
                "numpy", prepared, OPTIONS, inputs, LONG, n_instances=2,
                on_progress=_ctrl_c_while_timing(),
            )  # fmt: skip
        took = time.monotonic() - t0
    finally:
        signal.signal(signal.SIGTERM, old)
        left = _end(_instances_left())
    assert not left
    assert took < 8, took


def test_ctrl_c_ends_a_stopped_instance_within_a_bounded_time(prepared, inputs, monkeypatch):
    """Ctrl-C to the bench while one instance is stopped (SIGSTOP): SIGTERM stays pending
    on a stopped process, the bench gave up on it after 15 s of joins, and at exit
    multiprocessing joined it without a limit: bench never exited. Now SIGKILL follows
    the graces (here 0.5 s, then 0.2 s after SIGTERM)."""
    monkeypatch.setattr(concurrency, "REAP_GRACE_S", 0.5, raising=False)
    monkeypatch.setattr(concurrency, "TERM_GRACE_S", 0.2, raising=False)
    stopped: list[int] = []

    def stop_instance_1() -> None:
        (p,) = [p for p in _instances_left() if p.name == "instance-1"]
        os.kill(p.pid, signal.SIGSTOP)
        deadline = time.monotonic() + 10  # stopped, for certain: a SIGTERM that came before
        while "T (stopped)" not in Path(f"/proc/{p.pid}/status").read_text():  # the stop
            assert time.monotonic() < deadline  # (a lower signal number) would end it
            time.sleep(0.01)
        stopped.append(p.pid)

    t0 = time.monotonic()
    try:
        with pytest.raises(KeyboardInterrupt):
            concurrency.time_processes(
                "numpy", prepared, OPTIONS, inputs, LONG, n_instances=2,
                on_progress=_ctrl_c_while_timing(stop_instance_1),
            )  # fmt: skip
        took = time.monotonic() - t0
    finally:
        left = _end(_instances_left())
    assert stopped and not left
    assert took < 8, took
