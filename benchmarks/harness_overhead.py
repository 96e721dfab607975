"""Harness overhead per iteration: a no-op predict timed through `harness.time_one`
against a bare `perf_counter_ns` loop doing the same call, in one process.

Both loops store each sample in a preallocated array; the figure is the difference of
the medians (over repeats) of wall time per iteration. Target: < 1 us.
Prints one JSON line.
"""

from __future__ import annotations

import json
import statistics
import time

import numpy as np

from anemll_spec.harness import Budget, time_one

N = 200_000
REPEATS = 7
TARGET_NS = 1000  # docs/performance.md: < 1 us per iteration


def noop_predict() -> None:
    return None


def bare(n: int) -> float:
    """ns per iteration of the minimal timing loop."""
    pc = time.perf_counter_ns
    samples = np.zeros(n, dtype=np.int64)
    fn = noop_predict
    start = pc()
    for i in range(n):
        t0 = pc()
        fn()
        t1 = pc()
        samples[i] = t1 - t0
    return (pc() - start) / n


def harness(n: int) -> float:
    """ns per iteration through the harness (no warmup, no time limit in reach)."""
    budget = Budget(warmup=0, warmup_s=0.0, iterations=n, min_iterations=1, max_time_s=3600.0)
    start = time.perf_counter_ns()
    timing = time_one(noop_predict, budget)
    elapsed = time.perf_counter_ns() - start
    assert timing.n == n
    return elapsed / n


def main() -> None:
    bare(10_000)
    harness(10_000)  # warm both paths
    b, h = [], []
    for _ in range(REPEATS):  # alternate, so drift hits both alike
        b.append(bare(N))
        h.append(harness(N))
    bare_ns, harness_ns = statistics.median(b), statistics.median(h)
    print(
        json.dumps(
            {
                "benchmark": "harness_overhead",
                "iterations": N,
                "repeats": REPEATS,
                "bare_loop_ns_per_iter_median": round(bare_ns, 1),
                "harness_ns_per_iter_median": round(harness_ns, 1),
                "overhead_ns_per_iter": round(harness_ns - bare_ns, 1),
                "ratio": round(harness_ns / bare_ns, 3),
                "target_overhead_ns": TARGET_NS,
                "ok": harness_ns - bare_ns < TARGET_NS,
            }
        )
    )


if __name__ == "__main__":
    main()
