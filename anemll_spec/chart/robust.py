"""A robust axis range for sample charts: a few outliers must not flatten the rest.

The range is Tukey's far-out fences (quartiles -/+ 3 IQR), cut to the samples' own
extent, over every case drawn on the axis. It is used only when the outliers would
squeeze the body of the data into less than 1/FLATTEN of the axis; then the samples
beyond it are drawn at the axis' edge with their own mark (and their real value in the
tooltip), and the chart says how many there are. Quantiles are computed in DuckDB over
every sample; this module only decides.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

FENCE = 3.0  # IQRs beyond the quartiles (Tukey's "far out")
FLATTEN = 3.0  # clip when the full extent is more than this many times the fences'
MIN_IQR = 0.01  # of the median: quantised timers can give an IQR of 0
EDGE = 0.04  # the clipped marks sit this far (share of the range) beyond it


@dataclass(frozen=True)
class Clip:
    """The axis range [lo, hi] and where clipped samples are drawn (lo_edge, hi_edge)."""

    lo: float
    hi: float
    log: bool = False  # on a log axis the edges are a ratio away, not a difference

    @property
    def lo_edge(self) -> float:
        if self.log:
            return self.lo * (self.lo / self.hi) ** EDGE
        return self.lo - EDGE * (self.hi - self.lo)

    @property
    def hi_edge(self) -> float:
        if self.log:
            return self.hi * (self.hi / self.lo) ** EDGE
        return self.hi + EDGE * (self.hi - self.lo)

    @property
    def domain(self) -> list[float]:
        return [self.lo_edge, self.hi_edge]

    def words(self, n: int, unit: str = "ms", drawn: int | None = None) -> str:
        """The subtitle sentence for `n` clipped samples, of which `drawn` are marked
        (None: all of them)."""
        marked = (
            f"{n:,} sample(s) beyond it are drawn as triangles at the edge"
            if drawn is None or drawn >= n
            else f"{n:,} sample(s) lie beyond it, {drawn:,} of them (the farthest, and those "
            "of the subsample) drawn as triangles at the edge"
        )
        return (
            f"Axis clipped to {self.lo:.4g}–{self.hi:.4g} {unit} (quartiles ± {FENCE:g} IQR): "
            f"{marked} (tooltip: real value)."
        )


def fences(q1: float, median: float, q3: float, lo: float, hi: float) -> tuple[float, float]:
    """Far-out fences of one case, cut to its extent [lo, hi]."""
    iqr = max(q3 - q1, MIN_IQR * abs(median))
    return max(lo, q1 - FENCE * iqr), min(hi, q3 + FENCE * iqr)


def clip_range(cases: Iterable[dict[str, Any]], log: bool = False) -> Clip | None:
    """The clipped range over cases with q1/median/q3/min_ms/max_ms, or None when every
    sample fits comfortably (nothing is clipped then). `log`: for a log axis."""
    cases = list(cases)
    if not cases:
        return None
    spans = [fences(c["q1"], c["median"], c["q3"], c["min_ms"], c["max_ms"]) for c in cases]
    lo, hi = min(s[0] for s in spans), max(s[1] for s in spans)
    full_lo = min(c["min_ms"] for c in cases)
    full_hi = max(c["max_ms"] for c in cases)
    if hi <= lo or full_hi - full_lo <= FLATTEN * (hi - lo) or (log and lo <= 0):
        return None
    return Clip(lo, hi, log)
