"""Sustained runs: time one callable for `duration_s` in fixed windows, then judge whether
throughput held up.

Per window: every call's latency (the harness's timed region, t0; fn(); t1), its median,
the energy the power reader measured over the window, and the thermal state read at its
end. The verdict compares the last window with the first: the throughput ratio
median(first) / median(last) (> 1: faster at the end) with a seeded percentile-bootstrap
CI of that ratio from the two windows' samples, and whether any window reported
throttling. A callback sees each window as it ends (progress shows window medians live).
"""

from __future__ import annotations

import math
import time
from array import array
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from anemll_spec.bootstrap import DEFAULT_N_BOOT, ratio_of_medians_ci
from anemll_spec.harness import gc_paused
from anemll_spec.interrupts import deferred
from anemll_spec.power.base import Reader, guard
from anemll_spec.sustained_grid import window_count
from anemll_spec.vocab import MIN_SAMPLES

NOISE_FLOOR_PCT = 2.0  # a CI-significant change smaller than this is still 'sustained'


@dataclass
class Window:
    index: int
    start_ns: int  # perf_counter_ns at the window's first call
    end_ns: int  # ... after its last call
    samples_ns: np.ndarray  # int64, per-call latency
    energy: object = None  # power.Energy | power.Unavailable | None (no reader)
    thermal: object = None  # power.thermal.Thermal | Unavailable | None
    starts_ns: np.ndarray | None = None  # int64, perf_counter_ns at each call's start

    @property
    def calls(self) -> int:
        return int(self.samples_ns.size)

    @property
    def wall_s(self) -> float:
        return (self.end_ns - self.start_ns) / 1e9

    @property
    def median_ms(self) -> float:
        return float(np.median(self.samples_ns)) / 1e6 if self.calls else math.nan

    @property
    def throughput_per_s(self) -> float:
        """Calls per second of window wall time (includes the loop's own bookkeeping)."""
        return self.calls / self.wall_s if self.wall_s > 0 else math.nan


@dataclass(frozen=True)
class SustainedVerdict:
    first_median_ms: float
    last_median_ms: float
    throughput_ratio: float  # median(first) / median(last): < 1 means slower at the end
    ci_low: float
    ci_high: float
    level: float
    throttled: bool | None  # None: no window had a thermal reading
    verdict: str  # 'sustained' | 'degraded' | 'improved' | 'too few calls' (a window < 6)


@dataclass
class Sustained:
    windows: list[Window]
    verdict: SustainedVerdict
    window_s: float
    duration_s: float
    interrupted: bool = False  # Ctrl-C after two or more windows: these are kept
    grid_start_ns: int = 0  # window i ends with the first call past this + (i + 1) window_s


def ci_verdict(
    ratio: float, low: float, high: float, noise_floor_pct: float = NOISE_FLOOR_PCT
) -> str:
    """The verdict of a throughput ratio and its CI (before "too few calls" existed, the
    verdict of every run: import checks older runs by it)."""
    if low <= 1.0 <= high or abs(ratio - 1.0) * 100 < noise_floor_pct:
        return "sustained"
    return "degraded" if high < 1.0 else "improved"


def judge(
    first_ns: np.ndarray,
    last_ns: np.ndarray,
    thermals: list[object] | None = None,
    *,
    level: float = 0.95,
    n_boot: int = DEFAULT_N_BOOT,
    seed: int = 0,
    noise_floor_pct: float = NOISE_FLOOR_PCT,
    resampled: bool = False,
) -> SustainedVerdict:
    """Throughput of the last window relative to the first, with its bootstrap CI.

    ratio_of_medians_ci(first, last) gives median(last)/median(first) (latency); the
    throughput ratio is its reciprocal, and so is each end of the CI (swapped).
    `resampled`: the bootstrap of versions up to b03f3c6 (to check what they stored)."""
    ci = ratio_of_medians_ci(
        first_ns, last_ns, level=level, n_boot=n_boot, seed=seed, resampled=resampled
    )
    ratio = 1.0 / ci.estimate
    low, high = 1.0 / ci.high, 1.0 / ci.low
    if min(len(first_ns), len(last_ns)) < MIN_SAMPLES:  # a CI of a few points: no verdict
        word = "too few calls"
    else:
        word = ci_verdict(ratio, low, high, noise_floor_pct)
    flags = [t.throttled for t in thermals or [] if hasattr(t, "throttled")]
    return SustainedVerdict(
        first_median_ms=float(np.median(first_ns)) / 1e6,
        last_median_ms=float(np.median(last_ns)) / 1e6,
        throughput_ratio=ratio,
        ci_low=low,
        ci_high=high,
        level=level,
        throttled=any(flags) if flags else None,
        verdict=word,
    )


def run_sustained(
    fn: Callable[[], object],
    duration_s: float,
    window_s: float,
    *,
    warmup: int = 10,
    warmup_s: float = 0.0,
    max_warmup_s: float = math.inf,
    reader: Reader | None = None,
    thermal: Callable[[], object] | None = None,
    on_window: Callable[[Window], None] | None = None,
    on_finishing: Callable[[int], None] | None = None,
    seed: int = 0,
) -> Sustained:
    """Warm up (`warmup` calls, and for at least `warmup_s` seconds, but no longer than
    `max_warmup_s`), then time `fn` for
    `duration_s` in windows of `window_s` (at least two windows, so there is a first and
    a last to compare).

    reader: a power reader (anemll_spec.power.open_reader), started and stopped around
    each window. thermal: a callable read at each window's end (power.thermal).
    Windows lie on a grid from the first timed call: window i ends with the first call to
    end past start + (i + 1) * window_s, so the run ends one call past duration_s, and
    where calls outlast window_s (each window then holds one) it ends at duration_s with
    fewer windows (at least two), never at n_windows calls.
    Ctrl-C after two windows ends the run early, with `interrupted` set and the windows
    finished so far (the one in progress is dropped); before that, it propagates. Once
    the windows end, a first Ctrl-C waits for the verdict (interrupts.deferred), and
    `on_finishing(calls)` says so."""
    if window_s <= 0 or duration_s < 2 * window_s:
        raise ValueError(
            f"duration_s ({duration_s}) must hold at least two windows of {window_s} s"
        )
    n_windows = window_count(duration_s, window_s)
    # `warmup` calls and >= warmup_s, but never past max_warmup_s (run.max_time_s)
    start = time.perf_counter()
    calls, until, cap = 0, start + warmup_s, start + max_warmup_s
    while (calls < warmup or time.perf_counter() < until) and time.perf_counter() < cap:
        fn()
        calls += 1
    windows: list[Window] = []
    interrupted = False
    guarded = guard(reader) if reader is not None else None
    window_ns = int(window_s * 1e9)
    begin_ns = time.perf_counter_ns()
    try:
        for i in range(n_windows):
            if len(windows) >= 2 and time.perf_counter_ns() >= begin_ns + n_windows * window_ns:
                break  # calls outlast the windows: duration_s is up
            if guarded is not None:
                guarded.start()
            until = begin_ns + (i + 1) * window_ns
            samples, starts, start_ns, end_ns = _time_window(fn, until)
            energy = guarded.stop(alone=False) if guarded is not None else None
            therm = thermal() if thermal else None
            w = Window(i, start_ns, end_ns, samples, energy, therm, starts_ns=starts)
            windows.append(w)
            if on_window is not None:
                on_window(w)
    except KeyboardInterrupt:  # a long run stopped: its finished windows still tell
        if len(windows) < 2:
            raise
        interrupted = True
    finally:  # the window in progress (a failed call, Ctrl-C): its reading ends with it
        if guarded is not None:
            guarded.close()
    calls = sum(w.calls for w in windows)
    if interrupted and on_finishing is not None:
        on_finishing(calls)  # say why it does not stop at once
    # a Ctrl-C now would throw the windows away: held until the verdict is made, then the
    # run counts as interrupted (its caller keeps what was measured and stops)
    verdict = None
    try:
        with deferred(None if on_finishing is None else lambda: on_finishing(calls)):
            verdict = judge(
                windows[0].samples_ns, windows[-1].samples_ns, [w.thermal for w in windows],
                seed=seed,
            )  # fmt: skip
    except KeyboardInterrupt:
        if verdict is None:  # a second Ctrl-C: the user insists
            raise
        interrupted = True
    return Sustained(windows, verdict, window_s, duration_s, interrupted, begin_ns)


def _time_window(fn: Callable[[], object], until: int) -> tuple[np.ndarray, np.ndarray, int, int]:
    """Time calls until perf_counter_ns passes `until` (at least one call): (latencies,
    start times, window start, window end). A call starts while the window is open (its
    start is the clock read just after that check) and the window ends when its last call
    ends. Same timed region as the harness (the call alone), GC off while timing; samples
    go into array('q')s (amortised O(1) append, no float boxing)."""
    pc = time.perf_counter_ns
    samples, starts = array("q"), array("q")
    append, append_start = samples.append, starts.append
    with gc_paused():
        start = pc()
        t1 = start
        while True:
            t0 = pc()
            fn()
            t1 = pc()
            append(t1 - t0)
            append_start(t0)
            if t1 >= until:
                break
    lat = np.frombuffer(samples, dtype=np.int64).copy()
    return lat, np.frombuffer(starts, dtype=np.int64).copy(), start, t1
