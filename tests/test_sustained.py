"""Sustained runs: the verdict math on synthetic samples (hand-checked), and a real numpy
workload timed in windows for a couple of seconds."""

from __future__ import annotations

import sys

import numpy as np
import pytest
from power_util import rapl_zone

from anemll_spec.bootstrap import ratio_of_medians_ci
from anemll_spec.power.base import Unavailable
from anemll_spec.power.rapl import open_rapl
from anemll_spec.power.thermal import Thermal, thermal_reader
from anemll_spec.sustained import judge, run_sustained


def _latencies(median_ns: float, n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (median_ns * rng.lognormal(0.0, 0.05, n)).astype(np.int64)


def test_slower_last_window_is_degraded():
    first, last = _latencies(1e6, 500, 1), _latencies(1.25e6, 500, 2)
    v = judge(first, last, seed=0)
    assert v.throughput_ratio == pytest.approx(np.median(first) / np.median(last))
    assert v.throughput_ratio == pytest.approx(0.8, abs=0.02)
    assert v.ci_high < 1.0 and v.verdict == "degraded"
    assert v.first_median_ms == pytest.approx(np.median(first) / 1e6)
    assert v.last_median_ms == pytest.approx(np.median(last) / 1e6)


def test_ci_is_the_reciprocal_of_the_latency_ratio_ci():
    first, last = _latencies(1e6, 400, 3), _latencies(1.1e6, 400, 4)
    v = judge(first, last, seed=7, n_boot=500)
    ci = ratio_of_medians_ci(first, last, n_boot=500, seed=7)
    assert (v.ci_low, v.ci_high) == pytest.approx((1 / ci.high, 1 / ci.low))
    assert v.ci_low <= v.throughput_ratio <= v.ci_high
    assert judge(first, last, seed=7, n_boot=500) == v  # seeded: the same CI every time


def test_same_and_faster_and_below_the_noise_floor():
    same = judge(_latencies(1e6, 500, 5), _latencies(1e6, 500, 6))
    assert same.verdict == "sustained" and same.ci_low <= 1.0 <= same.ci_high
    faster = judge(_latencies(1e6, 500, 7), _latencies(0.8e6, 500, 8))
    assert faster.verdict == "improved" and faster.ci_low > 1.0
    # 1% slower with 20,000 samples each: the CI excludes 1, but 1% is under the 2% floor
    tiny = judge(_latencies(1e6, 20000, 9), _latencies(1.01e6, 20000, 10), n_boot=300)
    assert tiny.ci_high < 1.0 and tiny.verdict == "sustained"


def test_throttled_flag_from_thermal_readings():
    a, b = _latencies(1e6, 100, 11), _latencies(1e6, 100, 12)
    hot = Thermal("nvml", "throttled: sw_power_cap", True)
    cool = Thermal("pmset", "nominal", False)
    assert judge(a, b, [cool, hot], n_boot=100).throttled is True
    assert judge(a, b, [cool, cool], n_boot=100).throttled is False
    assert judge(a, b, [Unavailable("none"), None], n_boot=100).throttled is None


def test_real_numpy_workload_in_windows(tmp_path):
    rng = np.random.default_rng(0)
    a = rng.standard_normal((96, 96)).astype(np.float32)

    def matmul():
        return a @ a

    # a real reader: RAPL over a sysfs-shaped tree (its counters stand still here, so each
    # window's energy is 0 mJ over a real interval)
    rapl_zone(tmp_path, energy_uj=1000, max_range_uj=99999999)
    reader = open_rapl(tmp_path, period_s=None)
    seen = []
    res = run_sustained(
        matmul,
        duration_s=1.5,
        window_s=0.5,
        warmup=5,
        reader=reader,
        thermal=thermal_reader("numpy", "cpu"),
        on_window=lambda w: seen.append((w.index, w.median_ms)),
    )
    assert [i for i, _ in seen] == [0, 1, 2]  # the callback saw each window as it ended
    assert [m for _, m in seen] == [w.median_ms for w in res.windows]
    for i, w in enumerate(res.windows):
        assert w.calls > 10
        # the window's rule, whatever the load: windows lie on a grid from the first call;
        # every call but the last ended inside its cell (so the last one began after a
        # check that the window was open), and the window ends when the last call ended,
        # at or past the cell's end (so the run ends one call past duration_s)
        grid_end = res.grid_start_ns + (i + 1) * 500_000_000
        ends = w.starts_ns + w.samples_ns
        assert w.end_ns == ends[-1] >= grid_end > ends[:-1].max()
        assert w.start_ns >= (res.windows[i - 1].end_ns if i else res.grid_start_ns)
        assert w.samples_ns.sum() <= w.end_ns - w.start_ns  # calls inside the window
        assert w.median_ms == pytest.approx(float(np.median(w.samples_ns)) / 1e6)
        assert w.throughput_per_s == pytest.approx(w.calls / w.wall_s)
        assert (
            w.energy.rails_mj == {"package-0": 0.0}
            and w.wall_s <= w.energy.interval_s < w.wall_s + 0.5
        )
        if sys.platform != "darwin":
            assert isinstance(w.thermal, Unavailable)  # no thermal source for numpy on Linux
    v = res.verdict
    assert v.verdict in ("sustained", "degraded", "improved")
    assert v.ci_low <= v.throughput_ratio <= v.ci_high
    if sys.platform != "darwin":
        assert v.throttled is None


def test_needs_two_windows():
    with pytest.raises(ValueError, match="two windows"):
        run_sustained(lambda: None, duration_s=1.0, window_s=0.6)


def test_warm_up_takes_its_calls_and_its_seconds():
    """`warmup` calls and at least `warmup_s` seconds before the first window (as the
    harness warms up), so a sustained run's first window is not a cold start."""
    import time

    calls: list[float] = []
    t0 = time.perf_counter()
    res = run_sustained(lambda: calls.append(time.perf_counter()), 0.2, 0.1, warmup=3, warmup_s=0.3)
    timed = sum(w.calls for w in res.windows)
    warm = len(calls) - timed
    # the warm-up ends at the first check past warmup_s, not at a call: under load its
    # last call may start a few ms before (CI saw 0.2947 s once), the first timed one not
    assert warm >= 3
    assert calls[warm] - t0 >= 0.3  # the first timed call came after the warm-up
