"""Percentile-bootstrap confidence intervals of medians (vectorised numpy, seeded).

Shared by the runner (CI of a case's median) and `compare` (CI of a ratio of medians).
Resampling works on ranks: with x sorted, the median of a resample is x at the median
of the resampled indices, so each bootstrap replicate costs one `np.partition` of
int32 indices (no gather of float copies). Replicates are drawn in chunks to bound
memory (~16 MB), so 10,000 samples x 2,000 replicates takes ~0.25 s.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

DEFAULT_N_BOOT = 2000
# Below this many samples a side, a bootstrap CI is a few distinct values (at n = 1 a
# single point, a CI of no width): no verdict is drawn from it.
MIN_SAMPLES = 6
_CHUNK_ELEMENTS = 4_000_000


class CI(NamedTuple):
    estimate: float
    low: float
    high: float
    level: float


def bootstrap_medians(samples, n_boot: int = DEFAULT_N_BOOT, rng=None) -> np.ndarray:
    """`n_boot` medians of resamples (with replacement) of `samples`."""
    x = _clean(samples)
    rng = rng if rng is not None else np.random.default_rng(0)
    n = len(x)
    x = np.sort(x)
    out = np.empty(n_boot, dtype=np.float64)
    lo, hi = (n - 1) // 2, n // 2  # the two middle ranks (equal when n is odd)
    kth = sorted({lo, hi})
    step = max(1, _CHUNK_ELEMENTS // n)
    for start in range(0, n_boot, step):
        k = min(step, n_boot - start)
        idx = rng.integers(0, n, size=(k, n), dtype=np.int32 if n < 2**31 else np.int64)
        part = np.partition(idx, kth, axis=1)
        out[start : start + k] = (x[part[:, lo]] + x[part[:, hi]]) / 2.0
    return out


def median_ci(samples, level: float = 0.95, n_boot: int = DEFAULT_N_BOOT, seed: int = 0) -> CI:
    """Median of `samples` and its percentile-bootstrap CI at `level`."""
    x = _clean(samples)
    boots = bootstrap_medians(x, n_boot, np.random.default_rng(seed))
    low, high = _percentiles(boots, level)
    return CI(float(np.median(x)), low, high, level)


def ratio_of_medians_ci(
    a, b, level: float = 0.95, n_boot: int = DEFAULT_N_BOOT, seed: int = 0
) -> CI:
    """median(b) / median(a) and its CI (a and b resampled independently).

    > 1 means b is slower than a when the samples are latencies.
    """
    xa, xb = _clean(a), _clean(b)
    ma = float(np.median(xa))
    if ma <= 0:
        raise ValueError("ratio_of_medians_ci: median(a) must be positive")
    rng = np.random.default_rng(seed)
    ba = bootstrap_medians(xa, n_boot, rng)
    bb = bootstrap_medians(xb, n_boot, rng)
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
