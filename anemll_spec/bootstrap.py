"""Percentile-bootstrap confidence intervals of medians (vectorised numpy, seeded).

Shared by the runner (CI of a case's median), `sustained` (CI of the first/last-window
ratio) and `compare` (CI of a ratio of medians). A resample's median is, with x sorted,
x at the two middle order statistics of its n indices drawn with replacement, and only
their law matters: an index is floor(n U) with U uniform, the k-th smallest of n
uniforms is Beta(k + 1, n - k), and the next one above it, u + (1 - u) Beta(1, n - k - 1).
So a replicate costs two Beta draws, whatever n: the same distribution as drawing n
indices (tests/test_bootstrap.py checks it against the exact law), 2,000 replicates of
a million samples in milliseconds after the sort (drawing the indices took ~20 s).

`resampled=True` draws the n indices instead, as every version up to git b03f3c6
(2026-12-06) did: the import checks a bundle's stored CIs against either, so older bundles still pass.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

DEFAULT_N_BOOT = 2000
_CHUNK_ELEMENTS = 4_000_000


class CI(NamedTuple):
    estimate: float
    low: float
    high: float
    level: float


def bootstrap_medians(
    samples, n_boot: int = DEFAULT_N_BOOT, rng=None, *, resampled: bool = False
) -> np.ndarray:
    """`n_boot` medians of resamples (with replacement) of `samples`."""
    x = _clean(samples)
    rng = rng if rng is not None else np.random.default_rng(0)
    n = len(x)
    x = np.sort(x)
    lo, hi = (n - 1) // 2, n // 2  # the two middle ranks (equal when n is odd)
    if resampled:
        return _resampled_medians(x, n_boot, rng, lo, hi)
    u_lo = rng.beta(lo + 1, n - lo, size=n_boot)
    i_lo = np.minimum((u_lo * n).astype(np.int64), n - 1)
    if hi == lo:
        return x[i_lo].copy()
    u_hi = u_lo + (1.0 - u_lo) * rng.beta(1, n - hi, size=n_boot)
    i_hi = np.minimum((u_hi * n).astype(np.int64), n - 1)
    return (x[i_lo] + x[i_hi]) / 2.0


def _resampled_medians(x: np.ndarray, n_boot: int, rng, lo: int, hi: int) -> np.ndarray:
    """The medians of n_boot sets of n indices drawn and partitioned (the draw
    up to b03f3c6, kept to check CIs stored then)."""
    n = len(x)
    out = np.empty(n_boot, dtype=np.float64)
    kth = sorted({lo, hi})
    step = max(1, _CHUNK_ELEMENTS // n)
    for start in range(0, n_boot, step):
        k = min(step, n_boot - start)
        idx = rng.integers(0, n, size=(k, n), dtype=np.int32 if n < 2**31 else np.int64)
        part = np.partition(idx, kth, axis=1)
        out[start : start + k] = (x[part[:, lo]] + x[part[:, hi]]) / 2.0
    return out


def median_ci(
    samples,
    level: float = 0.95,
    n_boot: int = DEFAULT_N_BOOT,
    seed: int = 0,
    *,
    resampled: bool = False,
) -> CI:
    """Median of `samples` and its percentile-bootstrap CI at `level`."""
    x = _clean(samples)
    boots = bootstrap_medians(x, n_boot, np.random.default_rng(seed), resampled=resampled)
    low, high = _percentiles(boots, level)
    return CI(float(np.median(x)), low, high, level)


def ratio_of_medians_ci(
    a,
    b,
    level: float = 0.95,
    n_boot: int = DEFAULT_N_BOOT,
    seed: int = 0,
    *,
    resampled: bool = False,
) -> CI:
    """median(b) / median(a) and its CI (a and b resampled independently).

    > 1 means b is slower than a when the samples are latencies.
    """
    xa, xb = _clean(a), _clean(b)
    ma = float(np.median(xa))
    if ma <= 0:
        raise ValueError("ratio_of_medians_ci: median(a) must be positive")
    rng = np.random.default_rng(seed)
    ba = bootstrap_medians(xa, n_boot, rng, resampled=resampled)
    bb = bootstrap_medians(xb, n_boot, rng, resampled=resampled)
    with np.errstate(divide="ignore"):
        ratios = bb / ba
    low, high = _percentiles(ratios, level)
    return CI(float(np.median(xb)) / ma, low, high, level)


def _percentiles(values: np.ndarray, level: float) -> tuple[float, float]:
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), got {level}")
    alpha = (1 - level) / 2
    low, high = np.quantile(values, [alpha, 1 - alpha])
    return float(low), float(high)


def _clean(samples) -> np.ndarray:
    x = np.asarray(samples, dtype=np.float64).ravel()
    if x.size == 0:
        raise ValueError("no samples")
    if not np.isfinite(x).all():
        raise ValueError("samples must be finite")
    return x
