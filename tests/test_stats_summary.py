"""Statistics of latency samples, checked against independent numpy formulas."""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pytest

from anemll_spec import stats
from anemll_spec.outliers import mad, tukey


def _samples(n: int, seed: int = 1) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (5e6 + rng.gamma(2.0, 2e5, n)).astype(np.int64)  # ns, right-skewed like latency


def test_summary_matches_numpy_formulas():
    ns = _samples(500)
    s = stats.summarize(ns)
    ms = ns / 1e6
    assert s.n == 500
    assert s.median_ms == pytest.approx(np.median(ms))
    assert s.mean_ms == pytest.approx(ms.mean())
    assert s.std_ms == pytest.approx(ms.std(ddof=1))
    assert s.min_ms == pytest.approx(ms.min()) and s.max_ms == pytest.approx(ms.max())
    for q, got in [(5, s.p5_ms), (50, s.p50_ms), (90, s.p90_ms), (95, s.p95_ms), (99, s.p99_ms)]:
        assert got == pytest.approx(np.percentile(ms, q))
    assert s.iqr_ms == pytest.approx(np.percentile(ms, 75) - np.percentile(ms, 25))
    assert s.mad_ms == pytest.approx(np.median(np.abs(ms - np.median(ms))))
    assert s.cv == pytest.approx(ms.std(ddof=1) / ms.mean())
    assert s.ci_low_ms <= s.median_ms <= s.ci_high_ms
    # how far the CI reaches from the median, in % of it: [9, 11] around 10 ms is +-10%;
    # a skewed [9.9, 13] reaches 30% (its half-width, 15.5%, reads tighter than it is)
    assert replace(s, median_ms=10.0, ci_low_ms=9.0, ci_high_ms=11.0).ci_reach_pct == pytest.approx(
        10.0
    )
    skewed = replace(s, median_ms=10.0, ci_low_ms=9.9, ci_high_ms=13.0)
    assert skewed.ci_reach_pct == pytest.approx(30.0)
    assert (
        skewed.to_dict()["ci_reach_pct"] == pytest.approx(30.0) and "ci_pct" not in skewed.to_dict()
    )


def test_bootstrap_ci_is_seeded_and_shrinks_with_n():
    small, big = _samples(50), _samples(5000)
    a = stats.median_ci(small / 1e6, seed=3)
    assert a == stats.median_ci(small / 1e6, seed=3)
    wide = a[1] - a[0]
    lo, hi = stats.median_ci(big / 1e6, seed=3)
    assert hi - lo < wide / 3  # ~ 1/sqrt(n): 10x the samples, ~3x narrower


def test_bootstrap_ci_covers_the_true_median_about_95_percent():
    # Exponential(1): true median ln 2. Count how often the 95% CI covers it.
    rng = np.random.default_rng(7)
    trials, covered = 150, 0
    for _ in range(trials):
        x = rng.exponential(1.0, 101)
        lo, hi = stats.median_ci(x, seed=int(rng.integers(1 << 30)), resamples=1000)
        covered += lo <= np.log(2) <= hi
    assert 0.87 <= covered / trials <= 0.995


def test_order_statistic_ci_covers_about_95_percent():
    rng = np.random.default_rng(11)
    trials, covered = 400, 0
    for _ in range(trials):
        x = rng.exponential(1.0, 200)
        half = stats.order_stat_ci_pct(x) / 100 * np.median(x)
        covered += abs(np.median(x) - np.log(2)) <= half
    assert 0.88 <= covered / trials <= 1.0


def test_tukey_counts_against_hand_fences():
    rng = np.random.default_rng(2)
    x = rng.normal(10.0, 0.1, 400)
    x[:3] = 30.0  # severe high
    x[3:5] = 10.6  # mild high (beyond 1.5 IQR, inside 3 IQR)
    x[5] = 0.0  # severe low
    q1, q3 = np.percentile(x, [25, 75])
    iqr = q3 - q1
    expect_total = np.sum((x < q1 - 1.5 * iqr) | (x > q3 + 1.5 * iqr))
    expect_severe = np.sum((x < q1 - 3 * iqr) | (x > q3 + 3 * iqr))
    t = tukey(x)
    assert t.total == expect_total
    assert t.low_severe + t.high_severe == expect_severe
    assert t.high_severe >= 3 and t.low_severe >= 1
    s = stats.summarize(x * 1e6)
    assert s.outliers == expect_total and s.outliers_severe == expect_severe


def test_mad_of_known_values():
    assert mad(np.array([1.0, 1.0, 2.0, 2.0, 4.0, 6.0, 9.0])) == 1.0


def test_drift_slope_is_ms_per_second_of_run():
    rng = np.random.default_rng(5)
    n = 400
    starts_ns = np.cumsum(rng.integers(9_000_000, 11_000_000, n))  # ~10 ms apart
    t_s = (starts_ns - starts_ns[0]) / 1e9
    lat_ms = 2.0 + 0.5 * t_s + rng.normal(0, 0.01, n)  # +0.5 ms per second of run
    s = stats.summarize((lat_ms * 1e6).astype(np.int64), starts_ns)
    slope, _ = np.polyfit(t_s, lat_ms, 1)
    assert s.drift_slope_ms_per_s == pytest.approx(slope, rel=1e-3)
    assert s.drift_slope_ms_per_s == pytest.approx(0.5, rel=0.05)


def test_decile_ratio_flags_throttling():
    flat = np.full(100, 5e6)
    s = stats.summarize(flat)
    assert s.drift_ratio == pytest.approx(1.0) and not s.throttled
    ramp = np.linspace(5e6, 7e6, 100)
    s = stats.summarize(ramp)
    expect = np.median(ramp[-10:]) / np.median(ramp[:10])
    assert s.drift_ratio == pytest.approx(expect)
    assert expect > stats.THROTTLE_RATIO and s.throttled
    assert stats.summarize(ramp[:15]).drift_ratio is None  # too few for deciles


def test_noisy_flag_follows_cv():
    rng = np.random.default_rng(0)
    quiet = stats.summarize(rng.normal(1e6, 1e4, 200))
    loud = stats.summarize(np.abs(rng.normal(1e6, 4e5, 200)) + 1)
    assert not quiet.noisy and loud.noisy


def test_zero_length_calls_have_no_cv():
    """A mean of 0 (every call under the clock's tick) has no std/mean: cv None, as
    docs/metrics.md says, not NaN."""
    s = stats.summarize(np.zeros(40, dtype=np.int64))
    assert (s.std_ms, s.cv, s.noisy) == (0.0, None, False)
    # no start times: each call's is the sum of those before it, all 0: one instant
    assert s.drift_slope_ms_per_s is None
    starts = np.arange(40) * 1_000_000
    assert stats.summarize(np.zeros(40, dtype=np.int64), starts).drift_slope_ms_per_s == 0.0


def test_bandwidth_and_tflops_formulas():
    assert stats.bandwidth_gbps(1_050_673_728, 8.74) == pytest.approx(1_050_673_728 / 8.74e-3 / 1e9)
    assert stats.tflops(137_438_953_472, 100.0) == pytest.approx(137_438_953_472 / 0.1 / 1e12)
    assert stats.bandwidth_gbps(None, 1.0) is None and stats.tflops(10, 0.0) is None


def test_single_sample_and_empty():
    s = stats.summarize(np.array([1_000_000]))
    # no CI under 6 samples: one sample's was [1, 1], a CI of no width ("within +-0 %")
    assert s.median_ms == 1.0 and s.ci_low_ms is None and s.ci_high_ms is None
    assert math.isnan(s.ci_reach_pct)
    five = stats.summarize(np.arange(1, 6) * 1_000_000)
    assert five.ci_low_ms is None and five.median_ms == 3.0
    six = stats.summarize(np.arange(1, 7) * 1_000_000)
    assert six.ci_low_ms is not None and six.ci_low_ms <= six.median_ms <= six.ci_high_ms
    # ddof = 1 has no spread of one sample: undefined, not 0 (a 0 read as 'no noise')
    assert (s.std_ms, s.cv, s.noisy) == (None, None, False)
    with pytest.raises(ValueError):
        stats.summarize(np.array([], dtype=np.int64))


def test_a_single_sample_case_stores_no_spread(tmp_path):
    """bench with iterations 1 stored std_ms 0 and cv 0 (noisy false), where the sample
    standard deviation (ddof = 1) of one sample is undefined: now NULL, read back from
    the store; two samples store their ddof = 1 figures, and the store's own statistics
    check (import of an exported bundle) accepts the NULLs."""
    import io

    import duckdb

    from anemll_spec.cli import main
    from anemll_spec.progress import Progress
    from anemll_spec.runner import Runner

    spec = tmp_path / "one.yaml"
    spec.write_text(
        "name: one\nmodel: {family: lm_head, hidden_size: 64, vocab_size: 128, chunks: 1}\n"
        "run: {backends: [numpy], warmup: 0, energy_s: 0, dispatch_floor: false}\n"
        "sweep: {run.iterations: [1, 2]}\n"
    )
    store = tmp_path / "s.duckdb"
    Runner(spec, store=str(store), progress=Progress(io.StringIO(), live=False)).run()
    bundle, again = tmp_path / "b.parquet", tmp_path / "again.duckdb"
    assert main(["export", "--store", str(store), "--out", str(bundle)]) == 0
    assert main(["import", "--store", str(again), str(bundle)]) == 0
    for path in (store, again):
        with duckdb.connect(str(path), read_only=True) as con:
            rows = con.execute(
                "SELECT c.n_samples, c.std_ms, c.cv, c.noisy, list(s.wall_ns ORDER BY s.idx) "
                "FROM cases c JOIN samples s USING (case_id) "
                "GROUP BY ALL ORDER BY c.n_samples"
            ).fetchall()
        assert [r[:4] for r in rows[:1]] == [(1, None, None, False)]
        n, std, cv, _, wall = rows[1]
        ms = np.array(wall) / 1e6
        assert (
            n == 2
            and std == pytest.approx(ms.std(ddof=1))
            and cv == pytest.approx(ms.std(ddof=1) / ms.mean())
        )
