"""A sustained run's grid of whole windows, as pure arithmetic: how many windows a
duration holds, and whether stored windows fell short of it. Apart from `sustained`
(numpy, the harness, the power readers) so `share`, the report and the charts, which
only read stored windows, need none of that."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

# The same rule as windows_span_s, over `sustained_windows w` rows grouped by case (share)
SPAN_SQL = (
    "CASE WHEN count(w.start_s) = count(*) THEN max(w.start_s + w.wall_s) ELSE sum(w.wall_s) END"
)


def window_count(duration_s: float, window_s: float) -> int:
    """How many whole windows a sustained run of `duration_s` times (rounding kept out:
    1.0 // 0.1 is 9.0 in floats)."""
    return math.floor(duration_s / window_s + 1e-9)


def windows_span_s(windows: Iterable[Mapping[str, Any]]) -> float | None:
    """How long a run's stored windows ran: the first one's start to the last one's end
    (`start_s` counts from the first window's start). Not the sum of their wall times:
    the bookkeeping between windows (energy reader, thermal read, progress) lies on the
    grid but in no window, so many short windows summed well under a whole run. Where a
    window has no start_s, the sum (all that is known). None: no windows."""
    rows = list(windows)
    if not rows:
        return None
    if all(r.get("start_s") is not None for r in rows):
        return max(float(r["start_s"]) + float(r["wall_s"]) for r in rows)
    return sum(float(r["wall_s"]) for r in rows)


def cut_short(timed_s: float | None, duration_s: float | None, window_s: float | None) -> str:
    """' (cut short: 1.5 of 60 s)' for a run stopped before its last window (Ctrl-C after
    two): its windows (timed_s: their span, windows_span_s) cover under all but half
    a window of the whole windows duration_s holds; '' else (calls that outlast
    window_s end the run at duration_s with fewer windows but their time; a remainder
    under one window is never timed)."""
    if timed_s is None or not duration_s or not window_s:
        return ""
    if timed_s >= (window_count(duration_s, window_s) - 0.5) * window_s:
        return ""
    return f" (cut short: {timed_s:.3g} of {duration_s:g} s)"
