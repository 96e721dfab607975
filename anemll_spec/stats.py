"""Statistics of one variant's latency samples, and the metrics derived from them.

Every figure is computed from all samples (outliers are counted, not dropped); the
unit is in the name. See docs/metrics.md for the exact definition of each.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np

from anemll_spec import bootstrap
from anemll_spec.outliers import mad, tukey
from anemll_spec.vocab import MIN_SAMPLES

CI_LEVEL = 0.95
BOOTSTRAP_RESAMPLES = bootstrap.DEFAULT_N_BOOT
THROTTLE_RATIO = 1.10  # last-decile median / first-decile median above this: throttling
NOISY_CV = 0.10  # std / mean above this: noisy
DRIFT_PARTS = 10  # drift_ratio compares the first and the last tenth of the samples
DRIFT_MIN_N = 20  # fewer samples: no drift ratio (a tenth of them is too few)
SLOPE_MIN_N = 3  # fewer samples: no drift slope
_Z95 = 1.959963984540054


@dataclass(frozen=True)
class Summary:
    n: int
    median_ms: float
    mean_ms: float
    std_ms: float | None  # ddof = 1: undefined (None) for fewer than 2 samples
    min_ms: float
    max_ms: float
    p5_ms: float
    p50_ms: float
    p90_ms: float
    p95_ms: float
    p99_ms: float
    iqr_ms: float
    mad_ms: float
    # bootstrap 95% CI of the median; None under vocab.MIN_SAMPLES samples (one
    # sample gave a CI of no width; two, one that held the median half the time)
    ci_low_ms: float | None
    ci_high_ms: float | None
    outliers: int  # Tukey, beyond 1.5 IQR (mild + severe)
    outliers_severe: int  # beyond 3 IQR
    drift_slope_ms_per_s: float | None  # least-squares slope of latency over run time
    drift_ratio: float | None  # median(last decile) / median(first decile)
    throttled: bool  # drift_ratio above THROTTLE_RATIO
    cv: float | None  # std / mean; None where std is undefined (n < 2) or the mean is 0
    noisy: bool  # cv > NOISY_CV; False where cv is undefined

    @property
    def ci_reach_pct(self) -> float:
        """How far the median's CI reaches from the median on its farther side, as % of
        the median: what `target_ci_pct` is met by (within +-X % on both sides; the
        half-width would show a skewed interval as tighter than it is). NaN: no CI."""
        if not self.median_ms or self.ci_low_ms is None or self.ci_high_ms is None:
            return float("nan")
        m = self.median_ms
        return 100.0 * max(self.ci_high_ms - m, m - self.ci_low_ms) / m

    def to_dict(self) -> dict:
        return {**asdict(self), "ci_reach_pct": self.ci_reach_pct}

    def case_columns(self) -> dict:
        """The statistics as the store's `cases` columns (names as stored)."""
        return {n: getattr(self, n) for n in _CASE_COLUMNS}


_CASE_COLUMNS = (
    *("median_ms", "mean_ms", "std_ms", "min_ms", "max_ms", "p5_ms", "p50_ms"),
    *("p90_ms", "p95_ms", "p99_ms", "iqr_ms", "mad_ms", "ci_low_ms", "ci_high_ms"),
    *("cv", "outliers", "drift_ratio", "noisy", "drift_slope_ms_per_s", "throttled"),
)


def summarize(
    samples_ns: np.ndarray,
    starts_ns: np.ndarray | None = None,
    *,
    seed: int = 0,
    resamples: int = BOOTSTRAP_RESAMPLES,
) -> Summary:
    """All statistics of one set of samples.

    samples_ns: per-call latencies (ns). starts_ns: when each call started (ns, any
    origin); without it, run time is approximated by the cumulative latency.
    """
    x = np.asarray(samples_ns, dtype=np.float64) / 1e6  # ms
    n = int(x.size)
    if n == 0:
        raise ValueError("no samples to summarise")
    p5, p25, p50, p75, p90, p95, p99 = np.percentile(x, [5, 25, 50, 75, 90, 95, 99])
    mean = float(x.mean())
    std = float(x.std(ddof=1)) if n > 1 else None  # one sample has no spread to measure
    few = n < MIN_SAMPLES  # a CI of a few points covers far less than 95%
    lo, hi = (None, None) if few else median_ci(x, seed=seed, resamples=resamples)
    counts = tukey(x)
    if starts_ns is None:
        t_s = (np.cumsum(x) - x) / 1e3
    else:
        st = np.asarray(starts_ns, dtype=np.float64)
        t_s = (st - st[0]) / 1e9
    slope = drift_slope(t_s, x)
    ratio = decile_ratio(x)
    cv = std / mean if std is not None and mean > 0 else None  # zero-length calls: no ratio
    return Summary(
        n=n,
        median_ms=float(p50),
        mean_ms=mean,
        std_ms=std,
        min_ms=float(x.min()),
        max_ms=float(x.max()),
        p5_ms=float(p5),
        p50_ms=float(p50),
        p90_ms=float(p90),
        p95_ms=float(p95),
        p99_ms=float(p99),
        iqr_ms=float(p75 - p25),
        mad_ms=mad(x),
        ci_low_ms=lo,
        ci_high_ms=hi,
        outliers=counts.total,
        outliers_severe=counts.low_severe + counts.high_severe,
        drift_slope_ms_per_s=slope,
        drift_ratio=ratio,
        throttled=ratio is not None and ratio > THROTTLE_RATIO,
        cv=cv,
        noisy=cv is not None and bool(cv > NOISY_CV),
    )


def median_ci(
    x: np.ndarray, *, seed: int = 0, resamples: int = BOOTSTRAP_RESAMPLES, level: float = CI_LEVEL
) -> tuple[float, float]:
    """Percentile-bootstrap CI of the median (seeded, vectorised; the store's
    `anemll_spec.bootstrap`, so `compare` and the runner resample the same way)."""
    ci = bootstrap.median_ci(x, level=level, n_boot=resamples, seed=seed)
    return ci.low, ci.high


def order_stat_ci_pct(x: np.ndarray) -> float:
    """How far a cheap distribution-free 95% CI of the median reaches from the median,
    on its farther side, as % of the median (so "within +-X %" holds on both sides; the
    half-width would let a skewed interval pass with one end past X %).

    The binomial order-statistic interval (ranks n/2 -+ 1.96 sqrt(n)/2): one partition,
    no resampling, so the adaptive stop can check it every few samples.
    """
    n = x.size
    if n < 6:
        return float("inf")
    half = _Z95 * math.sqrt(n) / 2.0
    # 1-based ranks floor(n/2 - half) and ceil(1 + n/2 + half), as 0-based indices
    j = max(0, int(math.floor(n / 2.0 - half)) - 1)
    k = min(n - 1, int(math.ceil(1.0 + n / 2.0 + half)) - 1)
    lo_mid, hi_mid = (n - 1) // 2, n // 2
    part = np.partition(x, sorted({j, lo_mid, hi_mid, k}))
    med = float(part[lo_mid] + part[hi_mid]) / 2.0
    if med <= 0:
        return float("inf")
    return 100.0 * max(float(part[k]) - med, med - float(part[j])) / med


def drift_slope(t_s: np.ndarray, y_ms: np.ndarray) -> float | None:
    """Least-squares slope of latency (ms) against run time (s): ms per second of run."""
    if t_s.size < SLOPE_MIN_N:
        return None
    tc = t_s - t_s.mean()
    denom = float(np.dot(tc, tc))
    if denom == 0.0:
        return None
    return float(np.dot(tc, y_ms - y_ms.mean()) / denom)


def decile_ratio(y_ms: np.ndarray) -> float | None:
    """Median of the last tenth of samples over the median of the first tenth."""
    n = y_ms.size
    if n < DRIFT_MIN_N:
        return None
    d = n // DRIFT_PARTS
    first = float(np.median(y_ms[:d]))
    last = float(np.median(y_ms[-d:]))
    return last / first if first > 0 else None


def bandwidth_gbps(weight_bytes: int | None, median_ms: float | None) -> float | None:
    """Effective weight bandwidth: weight bytes / median latency, in GB/s (10^9 B/s).

    anemll-bench divides by the MEAN latency; we use the median (robust to stalls).
    """
    if not weight_bytes or not median_ms:
        return None
    return weight_bytes / (median_ms / 1e3) / 1e9


def tflops(flops: int | None, median_ms: float | None) -> float | None:
    """Achieved TFLOPS: analytic FLOPs (2 x MACs) / median latency, in 10^12 FLOP/s."""
    if not flops or not median_ms:
        return None
    return flops / (median_ms / 1e3) / 1e12
