"""The timing loop: stop rules, warmup, interleaving, isolation, concurrency."""

from __future__ import annotations

import time

import numpy as np
import pytest

from anemll_spec.harness import Budget, Timer, time_concurrent, time_interleaved, time_one
from anemll_spec.spec.run_section import Run
from anemll_spec.stats import order_stat_ci_pct


def make_budget(**fields) -> Budget:
    """A budget as a spec's run section gives it (the spec holds the defaults)."""
    return Budget.from_run(Run(**fields))


def _counter():
    calls = []
    return calls, lambda: calls.append(time.perf_counter_ns())


def test_iterations_cap_and_warmup_count():
    calls, fn = _counter()
    t = time_one(fn, make_budget(warmup=7, iterations=25, min_iterations=1, max_time_s=60))
    assert t.n == 25 and t.stop == "iterations" and t.warmup_n == 7
    assert len(calls) == 32
    assert t.samples_ns.dtype == np.int64 and (t.samples_ns > 0).all()
    # starts are the timed calls' own clock readings, in order
    assert (np.diff(t.starts_ns) > 0).all()
    assert np.all(t.starts_ns <= np.array(calls[7:]))


def test_samples_measure_the_call():
    t = time_one(lambda: time.sleep(0.002), make_budget(warmup=0, iterations=5, min_iterations=1))
    assert (t.samples_ns >= 2_000_000).all()
    assert (t.samples_ns < 200_000_000).all()


def test_max_time_stops_early():
    budget = make_budget(warmup=0, iterations=100_000, min_iterations=1, max_time_s=0.1)
    t0 = time.perf_counter()
    t = time_one(lambda: time.sleep(0.002), budget)
    elapsed = time.perf_counter() - t0
    assert t.stop == "max_time"
    assert 1 <= t.n <= 60  # <= 0.1 s / 2+ ms per call, + the call that crossed the limit
    # the rule exactly, whatever the load: every call but the last ended within 0.1 s of
    # the first start, the last one crossed it; the timed region holds the calls
    ends = t.starts_ns + t.samples_ns
    assert ends[:-1].max(initial=0) - t.starts_ns[0] < 0.1e9 <= t.timed_s * 1e9
    assert t.samples_ns.sum() <= t.timed_s * 1e9 <= elapsed * 1e9


def test_min_iterations_outlasts_max_time():
    budget = make_budget(warmup=0, iterations=1000, min_iterations=12, max_time_s=1e-6)
    t = time_one(lambda: time.sleep(0.001), budget)
    assert t.n == 12 and t.stop == "max_time"


def test_warmup_by_time():
    calls, fn = _counter()

    def slow():
        fn()
        time.sleep(0.001)

    t = time_one(slow, make_budget(warmup=2, warmup_s=0.05, iterations=3, min_iterations=1))
    assert t.warmup_s >= 0.05  # the time rule outlasts the 2 warm-up calls asked for
    assert t.warmup_n >= 2 and len(calls) == t.warmup_n + 3


def test_adaptive_stop_at_target_ci():
    budget = make_budget(
        warmup=0, iterations=100_000, min_iterations=10, max_time_s=30, target_ci_pct=5.0
    )
    t = time_one(lambda: time.sleep(0.001), budget)
    assert t.stop == "target_ci"
    assert t.n < 2000
    # independently: the order-statistic interval of the stored samples (ranks
    # n/2 -+ 1.96 sqrt(n)/2, 1-based) lies within +-5 % of the median on BOTH sides
    x = np.sort(t.samples_ns.astype(float))
    n, med = x.size, float(np.median(x))
    half = 1.959963984540054 * np.sqrt(n) / 2
    lo, hi = (
        x[max(0, int(np.floor(n / 2 - half)) - 1)],
        x[min(n - 1, int(np.ceil(1 + n / 2 + half)) - 1)],
    )
    assert max(hi - med, med - lo) / med * 100 <= 5.0
    reach = max(hi - med, med - lo) / med * 100  # the same ranks; rounding may differ
    assert order_stat_ci_pct(t.samples_ns.astype(float)) == pytest.approx(reach, rel=1e-12)


def test_the_ci_stop_counts_the_farther_end_of_a_skewed_interval():
    """Samples whose interval is skewed: its half-width is within 1 %, its upper end is
    not, so the target of 1 % is not met (the docs promise +-1 %)."""
    x = np.concatenate([np.full(100, 100.0), 100.0 + 0.1 * np.arange(1, 101)])
    x = np.sort(x)
    n, med = x.size, float(np.median(x))
    half = 1.959963984540054 * np.sqrt(n) / 2
    lo, hi = (
        x[max(0, int(np.floor(n / 2 - half)) - 1)],
        x[min(n - 1, int(np.ceil(1 + n / 2 + half)) - 1)],
    )
    assert (hi - lo) / 2 / med * 100 <= 1.0 < (hi - med) / med * 100  # the case it is about
    assert order_stat_ci_pct(x) > 1.0


def test_adaptive_stop_not_before_min_iterations():
    budget = make_budget(warmup=0, iterations=1000, min_iterations=200, target_ci_pct=50.0)
    t = time_one(lambda: None, budget)
    assert t.n >= 200


def test_runtime_probe_is_recorded_outside_the_timed_call():
    seq = iter(range(100, 200))
    t = time_one(lambda: None, make_budget(warmup=0, iterations=5), after=lambda: next(seq))
    assert t.runtime_ns.tolist() == [100, 101, 102, 103, 104]
    t = time_one(lambda: None, make_budget(warmup=0, iterations=3), after=lambda: None)
    assert t.runtime_ns.tolist() == [-1, -1, -1]


def test_interleaving_alternates_variants():
    order: list[str] = []
    budget = make_budget(warmup=2, iterations=4, min_iterations=1, max_time_s=60)
    timers = [Timer(lambda k=k: order.append(k), budget) for k in "ABC"]
    res = time_interleaved(timers)
    assert order[:6] == list("AABBCC")  # each variant warms up first
    assert order[6:] == list("ABC") * 4  # then A B C A B C ...
    assert [r.n for r in res] == [4, 4, 4]


def test_interleaving_keeps_each_variants_budget():
    order: list[str] = []
    short = make_budget(warmup=0, iterations=2, min_iterations=1)
    long = make_budget(warmup=0, iterations=5, min_iterations=1)
    res = time_interleaved(
        [Timer(lambda: order.append("A"), short), Timer(lambda: order.append("B"), long)]
    )
    assert order == list("ABAB") + list("BBB")
    assert [r.n for r in res] == [2, 5]


def test_interleaving_isolates_a_failing_variant():
    n = {"B": 0}

    def b():
        n["B"] += 1
        if n["B"] > 3:
            raise RuntimeError("device lost")

    budget = make_budget(warmup=1, iterations=6, min_iterations=1)
    res = time_interleaved([Timer(lambda: None, budget), Timer(b, budget)], isolate=True)
    assert res[0].n == 6
    assert isinstance(res[1], RuntimeError)
    with pytest.raises(RuntimeError):
        n["B"] = 0
        time_interleaved([Timer(lambda: None, budget), Timer(b, budget)])


def test_concurrency_aggregate_throughput():
    # time.sleep releases the GIL, like Core ML's and BLAS's native work
    budget = make_budget(warmup=1, iterations=30, min_iterations=1, max_time_s=60)
    single = time_one(lambda: time.sleep(0.01), budget)
    single_ips = single.n / (single.samples_ns.sum() / 1e9)
    res = time_concurrent([lambda: time.sleep(0.01)] * 4, budget)
    n = [t.n for t in res.per_instance]
    # the first to reach 30 stops the others after their call in flight
    assert max(n) == 30 and min(n) >= 20 and len(n) == 4 and res.stop == "iterations"
    assert res.calls == sum(n)
    assert res.throughput_per_s == pytest.approx(res.calls / res.wall_s)
    assert res.throughput_per_s > 2.0 * single_ips  # 4 instances overlap
    # every instance's first call started before every other's last call ended
    firsts = [t.starts_ns[0] for t in res.per_instance]
    lasts = [t.starts_ns[-1] + t.samples_ns[-1] for t in res.per_instance]
    assert max(firsts) < min(lasts)
    wall, starts = res.pooled()
    assert len(wall) == res.calls and (np.diff(starts) >= 0).all()
    assert (wall >= 10_000_000).all()  # per-instance latency stays ~ one call


def test_a_halt_ends_the_loop_after_the_call_in_flight():
    calls, fn = _counter()
    budget = make_budget(warmup=0, iterations=100, min_iterations=50, max_time_s=60)
    t = Timer(fn, budget, halt=lambda: len(calls) >= 7)
    t.step()
    res = t.result()
    # min_iterations is a floor on a variant's own rules, not on another's stop
    assert (res.n, res.stop, len(calls)) == (7, "peer", 7)
    # the halt is asked before every call, the first included: an instance released
    # after another met its rule makes no call (it ran after the others stopped)
    before = len(calls)
    t = Timer(fn, make_budget(warmup=0, iterations=3, min_iterations=1), halt=lambda: True)
    assert t.step() and (t.n, t.stop) == (0, "peer")
    t = Timer(fn, make_budget(warmup=0, iterations=1, min_iterations=1), halt=lambda: True)
    assert t.step() and (t.n, t.stop, len(calls)) == (0, "peer", before)


def test_concurrent_instances_stop_together_when_the_first_meets_its_rule():
    """A fast (1 ms) and a slow (20 ms) instance: the fast one meets `iterations` and the
    slow one stops after its call in flight, not 20 calls later."""
    budget = make_budget(warmup=1, iterations=20, min_iterations=1, max_time_s=60)
    res = time_concurrent([lambda: time.sleep(0.001), lambda: time.sleep(0.02)], budget)
    fast, slow = res.per_instance
    assert (fast.n, fast.stop, res.stop) == (20, "iterations", "iterations")
    assert slow.stop == "peer" and 1 <= slow.n < 20
    ends = [int(t.starts_ns[-1] + t.samples_ns[-1]) for t in res.per_instance]
    assert ends[1] - ends[0] <= 2 * int(slow.samples_ns.max())
    # the wall: the instances' own calls, first start to last end
    first = min(int(t.starts_ns[0]) for t in res.per_instance)
    assert res.wall_s * 1e9 == pytest.approx(max(ends) - first, abs=1)


def test_concurrency_propagates_errors():
    def boom():
        raise ValueError("bad input")

    with pytest.raises(ValueError, match="bad input"):
        time_concurrent([lambda: None, boom], make_budget(warmup=1, iterations=3))


def test_the_garbage_collector_stays_off_until_every_concurrent_instance_is_done():
    """The GC switch is process-wide: each thread restored what it saw when it finished,
    so an instance that started timing first and finished first turned it back on while
    another was still timed (threaded concurrency: torch on CUDA)."""
    import gc
    import threading

    from anemll_spec.harness import Budget, Timer

    budget = Budget(warmup=0, warmup_s=0.0, iterations=3, min_iterations=3, max_time_s=30)
    a_started, b_started, a_done = threading.Event(), threading.Event(), threading.Event()
    seen: list[bool] = []

    def a() -> None:  # times first, waits until b times too, then finishes first
        a_started.set()
        assert b_started.wait(10)

    def b() -> None:
        b_started.set()
        assert a_done.wait(10)
        seen.append(gc.isenabled())

    def run_a() -> None:
        Timer(a, budget).step()
        a_done.set()

    def run_b() -> None:
        assert a_started.wait(10)
        Timer(b, budget).step()

    assert gc.isenabled()
    threads = [threading.Thread(target=f) for f in (run_a, run_b)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(20)
    assert seen == [False, False, False]  # b's calls after a was done: still off
    assert gc.isenabled()  # and on again once both are done
