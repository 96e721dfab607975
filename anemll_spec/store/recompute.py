"""Every statistic of a case, recomputed from its stored samples (the import's check).

A bundle's figures are claims; its samples are the data. This recomputes what
`anemll_spec.stats.summarize` computed when the case was measured (same formulas, same
seeded bootstrap), for many cases at once: cases with the same number of samples are
stacked into one (cases x samples) array, so a 100,000-case bundle costs numpy passes,
not 100,000 Python calls. The bootstrap CI is exact too: with seed 0 every case of n
samples draws the SAME resample indices, so the two middle ranks of each resample are
found once per n (by running `bootstrap.bootstrap_medians` itself on two probe
vectors) and applied to every case of that n (see `median_ci`).
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import numpy as np

from anemll_spec import bootstrap, stats
from anemll_spec.outliers import MILD_IQR

# Relative tolerance of a stored figure against the recomputed one: recomputation is
# exact up to floating-point summation order (numpy version, stacking).
REL_TOL = 1e-9
ABS_TOL_MS = 1e-9  # ms: figures that are legitimately 0 (IQR, MAD, CI width)
_CHUNK = 4_000_000  # elements per bootstrap block (~32 MB of float64)

# cases columns recomputed from the samples, in the order `recompute` returns them
FLOAT_COLUMNS = (
    "median_ms",
    "mean_ms",
    "std_ms",
    "min_ms",
    "max_ms",
    "p5_ms",
    "p50_ms",
    "p90_ms",
    "p95_ms",
    "p99_ms",
    "iqr_ms",
    "mad_ms",
    "ci_low_ms",
    "ci_high_ms",
    "cv",
    "drift_ratio",
    "drift_slope_ms_per_s",
    "bandwidth_gbps",
    "tflops",
    "throughput_ips",
)
EXACT_COLUMNS = ("outliers", "noisy", "throttled")


def middle_ranks(
    n: int, resamples: int = stats.BOOTSTRAP_RESAMPLES, *, resampled: bool = False
) -> tuple[np.ndarray, ...]:
    """(lo, hi): per bootstrap resample of n samples (seed 0, as stats.summarize draws
    them), the ranks in the sorted samples of the two middle order statistics.

    bootstrap_medians returns (x[lo] + x[hi]) / 2 for sorted x. With x = ranks it gives
    a = (lo + hi) / 2, with x = ranks**2 it gives b = (lo**2 + hi**2) / 2; then
    hi - lo = 2 sqrt(b - a**2). Every step is exact in float64 for n < 2**26."""
    r = np.arange(n, dtype=np.float64)
    a = bootstrap.bootstrap_medians(r, resamples, np.random.default_rng(0), resampled=resampled)
    b = bootstrap.bootstrap_medians(r * r, resamples, np.random.default_rng(0), resampled=resampled)
    half = np.sqrt(np.maximum(b - a * a, 0.0))
    lo = np.rint(a - half).astype(np.int64)
    hi = np.rint(a + half).astype(np.int64)
    return lo, hi


def recompute(
    wall_ns: np.ndarray,
    starts_ns: np.ndarray | None,
    weight_bytes: np.ndarray,
    flops: np.ndarray,
    *,
    resamples: int = stats.BOOTSTRAP_RESAMPLES,
) -> dict[str, np.ndarray]:
    """Statistics of m cases of n samples each, as the store's `cases` columns.

    wall_ns: (m, n) int64 in the order taken; starts_ns: (m, n) or None (drift slope
    then NaN: it cannot be recomputed without start times); weight_bytes, flops: (m,)
    float with NaN where unknown. NaN in a result = the figure is NULL (undefined)."""
    x = np.asarray(wall_ns, dtype=np.float64) / 1e6  # ms, as stats.summarize
    m, n = x.shape
    p5, p25, p50, p75, p90, p95, p99 = np.percentile(x, [5, 25, 50, 75, 90, 95, 99], axis=1)
    mean = x.mean(axis=1)
    std = x.std(axis=1, ddof=1) if n > 1 else np.zeros(m)
    iqr = p75 - p25
    mad = np.median(np.abs(x - np.median(x, axis=1)[:, None]), axis=1)
    lo_m, hi_m = p25 - MILD_IQR * iqr, p75 + MILD_IQR * iqr
    outliers = (x < lo_m[:, None]).sum(axis=1) + (x > hi_m[:, None]).sum(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        cv = np.where(mean > 0, std / mean, np.nan)
    ci_low, ci_high = median_ci(x, resamples)
    ratio = _decile_ratio(x)
    slope = _slope(x, starts_ns)
    with np.errstate(divide="ignore", invalid="ignore"):
        ok = p50 > 0
        bandwidth = np.where(ok & (weight_bytes > 0), weight_bytes / (p50 / 1e3) / 1e9, np.nan)
        tflops = np.where(ok & (flops > 0), flops / (p50 / 1e3) / 1e12, np.nan)
        throughput = np.where(mean > 0, 1e3 / mean, np.nan)
    return {
        "median_ms": p50,
        "mean_ms": mean,
        "std_ms": std,
        "min_ms": x.min(axis=1),
        "max_ms": x.max(axis=1),
        "p5_ms": p5,
        "p50_ms": p50,
        "p90_ms": p90,
        "p95_ms": p95,
        "p99_ms": p99,
        "iqr_ms": iqr,
        "mad_ms": mad,
        "ci_low_ms": ci_low,
        "ci_high_ms": ci_high,
        "cv": cv,
        "drift_ratio": ratio,
        "drift_slope_ms_per_s": slope,
        "bandwidth_gbps": bandwidth,
        "tflops": tflops,
        "throughput_ips": throughput,
        "outliers": outliers,
        "noisy": np.nan_to_num(cv, nan=0.0) > stats.NOISY_CV,
        "throttled": np.nan_to_num(ratio, nan=0.0) > stats.THROTTLE_RATIO,
    }


def median_ci(
    x: np.ndarray, resamples: int = stats.BOOTSTRAP_RESAMPLES, *, resampled: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """Percentile-bootstrap CI of each row's median, as stats.median_ci computes it
    (`resampled`: as versions up to b03f3c6 did; see `anemll_spec.bootstrap`).

    A resample's median is (xs[lo] + xs[hi]) / 2 over few distinct (lo, hi) pairs (at
    most n(n+1)/2): each row sorts those values, weighted by how often each pair was
    drawn, and reads the CI's order statistics off the cumulative weights."""
    m, n = x.shape
    lo, hi = middle_ranks(n, resamples, resampled=resampled)
    codes, counts = np.unique(lo * n + hi, return_counts=True)
    lo_u, hi_u = codes // n, codes % n
    xs = np.sort(x, axis=1)
    alpha = (1 - stats.CI_LEVEL) / 2
    out = []
    for q in (alpha, 1 - alpha):  # numpy's default (linear) quantile of `resamples` values
        h = (resamples - 1) * q
        k = math.floor(h)
        out.append((k, h - k))
    low, high = np.empty(m), np.empty(m)
    rows = max(1, _CHUNK // max(1, len(codes)))
    for s in range(0, m, rows):
        vals = (xs[s : s + rows, lo_u] + xs[s : s + rows, hi_u]) / 2.0
        order = np.argsort(vals, axis=1, kind="stable")
        sv = np.take_along_axis(vals, order, axis=1)
        cw = np.cumsum(counts[order], axis=1)

        def kth(k: int, sv=sv, cw=cw) -> np.ndarray:  # the k-th (0-based) smallest value
            idx = (cw <= k).sum(axis=1)
            return np.take_along_axis(sv, idx[:, None], axis=1)[:, 0]

        for (k, frac), dest in zip(out, (low, high), strict=True):
            a = kth(k)
            b = kth(min(k + 1, resamples - 1))
            dest[s : s + rows] = _lerp(a, b, frac)
    return low, high


def _lerp(a: np.ndarray, b: np.ndarray, t: float) -> np.ndarray:
    """numpy's quantile interpolation (a + (b - a) t, from b's side when t >= 0.5)."""
    d = b - a
    return b - d * (1 - t) if t >= 0.5 else a + d * t


def _decile_ratio(x: np.ndarray) -> np.ndarray:
    m, n = x.shape
    if n < stats.DRIFT_MIN_N:
        return np.full(m, np.nan)
    d = n // stats.DRIFT_PARTS
    first = np.median(x[:, :d], axis=1)
    last = np.median(x[:, -d:], axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(first > 0, last / first, np.nan)


def _slope(x: np.ndarray, starts_ns: np.ndarray | None) -> np.ndarray:
    m, n = x.shape
    if starts_ns is None or n < stats.SLOPE_MIN_N:
        return np.full(m, np.nan)
    st = np.asarray(starts_ns, dtype=np.float64)
    t = (st - st[:, :1]) / 1e9
    tc = t - t.mean(axis=1, keepdims=True)
    denom = np.einsum("ij,ij->i", tc, tc)
    num = np.einsum("ij,ij->i", tc, x - x.mean(axis=1, keepdims=True))
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(denom != 0.0, num / denom, np.nan)


def agree(
    stored: np.ndarray, computed: np.ndarray, column: str, scale: np.ndarray | None = None
) -> np.ndarray:
    """Per case: is the stored figure the recomputed one? (Claimed figures only: the
    caller masks NULLs.) A figure the samples leave undefined (NaN) agrees with none.
    `scale` widens the absolute tolerance where a figure is a difference of large terms
    (the drift slope: relative to the steepest slope the samples could show)."""
    computed = np.asarray(computed, dtype=np.float64)
    if column == "outliers":
        return stored == computed
    if column in EXACT_COLUMNS:
        return (stored != 0) == (computed != 0)
    tol = np.maximum(REL_TOL * np.maximum(np.abs(stored), np.abs(computed)), ABS_TOL_MS)
    if scale is not None:
        tol = np.maximum(tol, REL_TOL * scale)
    with np.errstate(invalid="ignore"):
        return ~np.isnan(computed) & (np.abs(stored - computed) <= tol)


def groups(n_samples: np.ndarray) -> Iterator[tuple[int, np.ndarray]]:
    """(n, indices of the cases with n samples), for n > 0."""
    for n in np.unique(n_samples):
        if n > 0:
            yield int(n), np.flatnonzero(n_samples == n)
