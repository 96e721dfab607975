"""Outlier classification of latency samples (Tukey fences on the IQR; MAD).

Outliers are counted, never dropped: every statistic is computed over all samples,
and the counts tell the reader how much of the tail is noise (Criterion's convention:
mild beyond 1.5 IQR, severe beyond 3 IQR).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

MILD_IQR = 1.5
SEVERE_IQR = 3.0


@dataclass(frozen=True)
class TukeyCounts:
    low_severe: int
    low_mild: int
    high_mild: int
    high_severe: int

    @property
    def total(self) -> int:
        """Samples outside the 1.5 IQR fences (mild and severe together)."""
        return self.low_severe + self.low_mild + self.high_mild + self.high_severe


def fences(x: np.ndarray, k: float) -> tuple[float, float]:
    """(Q1 - k IQR, Q3 + k IQR) with numpy's default (linear) quartiles."""
    q1, q3 = np.percentile(x, [25, 75])
    iqr = q3 - q1
    return float(q1 - k * iqr), float(q3 + k * iqr)


def tukey(x: np.ndarray) -> TukeyCounts:
    """Count samples beyond the mild (1.5 IQR) and severe (3 IQR) fences, each side."""
    x = np.asarray(x, dtype=np.float64)
    if x.size == 0:
        return TukeyCounts(0, 0, 0, 0)
    lo_m, hi_m = fences(x, MILD_IQR)
    lo_s, hi_s = fences(x, SEVERE_IQR)
    low_severe = int(np.count_nonzero(x < lo_s))
    high_severe = int(np.count_nonzero(x > hi_s))
    return TukeyCounts(
        low_severe=low_severe,
        low_mild=int(np.count_nonzero(x < lo_m)) - low_severe,
        high_mild=int(np.count_nonzero(x > hi_m)) - high_severe,
        high_severe=high_severe,
    )


def mad(x: np.ndarray) -> float:
    """Median absolute deviation from the median (unscaled: no 1.4826 factor)."""
    x = np.asarray(x, dtype=np.float64)
    if x.size == 0:
        return float("nan")
    return float(np.median(np.abs(x - np.median(x))))
