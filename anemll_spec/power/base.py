"""What every power reader returns, and the sampler thread the timeline readers share.

A reading is the energy each rail used between `start()` and `stop()`, taken from the
hardware's own energy counters (SoC energy model, GPU board counter, RAPL), never from
wall power. Readers that cannot measure say why (`Unavailable`) instead of returning a
number: a benchmark row with NULL energy and a reason beats an invented one.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Generic, Protocol, TypeVar

T = TypeVar("T")  # what a reader's read() returns: a counter value or a tuple of them

UNITS_TO_MJ = {"J": 1e3, "mJ": 1.0, "uJ": 1e-3, "µJ": 1e-3, "nJ": 1e-6}


def to_mj(value: float, unit: str) -> float:
    """An energy counter value in `unit` (J/mJ/uJ/nJ) -> millijoules."""
    try:
        return float(value) * UNITS_TO_MJ[unit.strip()]
    except KeyError:
        raise ValueError(f"not an energy unit: {unit!r}") from None


@dataclass(frozen=True)
class PowerSample:
    """One point of a power timeline: power of `rail` over the period ending at t_ns (the
    mean over it where the reader differences energy counters: IOReport, RAPL,
    powermetrics; NVML's is the board's own power reading, a 1 s trailing average on
    Ampere and newer).

    t_ns is `time.perf_counter_ns()`, the clock of the harness's `starts_ns`, so the
    timeline lines up with the per-call latencies."""

    t_ns: int
    rail: str
    watts: float


@dataclass(frozen=True)
class Energy:
    """Energy per rail over one interval, from the hardware's own counters."""

    rails_mj: Mapping[str, float]  # energy of each rail over the interval, mJ
    total_rails: tuple[str, ...]  # the rails that add up to the total without overlap
    interval_s: float  # wall time the counters cover
    method: str  # ioreport | powermetrics | nvml | rapl
    samples: int  # counter reads (or powermetrics samples) the figure came from
    timed_only: bool  # True: the interval is the timed region and nothing else
    timeline: tuple[PowerSample, ...] = ()
    notes: tuple[str, ...] = ()  # caveats a reader of the figure must see
    extra: Mapping[str, float | str | None] = field(default_factory=dict)  # e.g. power limit
    # what each rail was summed from, mJ: "ane/ANE0_0", "ane/ANE0_1" (an Ultra's two dies)
    parts_mj: Mapping[str, float] = field(default_factory=dict)

    @property
    def total_mj(self) -> float:
        return float(sum(self.rails_mj[r] for r in self.total_rails if r in self.rails_mj))

    def mean_power_w(self) -> dict[str, float]:
        """Mean power of each rail (and 'total') over the interval, W (= mJ / ms)."""
        if self.interval_s <= 0:
            return {}
        out = {r: mj / self.interval_s / 1e3 for r, mj in self.rails_mj.items()}
        out["total"] = self.total_mj / self.interval_s / 1e3
        return out

    def per_inference_mj(self, calls: int) -> dict[str, float]:
        """Energy per inference of each rail (and 'total'), mJ: the interval's energy
        divided by the calls made in it. Meaningful when the interval held only those
        calls (timed_only); otherwise idle time between them is charged to them too."""
        if calls <= 0:
            return {}
        out = {r: mj / calls for r, mj in self.rails_mj.items()}
        out["total"] = self.total_mj / calls
        return out


# How often a reader samples power for the timeline (s): the one default of every reader.
DEFAULT_PERIOD_S = 0.1
# How far apart a reader's energy counter can move (the longest gap seen): a single
# reading over a shorter interval may hold no update or one whose energy is many times
# the interval's, so the runner takes it as no figure (Guarded.stop). IOReport:
# gaps up to 1.7 s on an M1 Ultra (lablup/all-smi #424); NVML: 100 ms steps on an H100
# (benchmarks/gpu_energy.py). RAPL updates about every millisecond; powermetrics reads
# whole sample windows of its own.
UPDATE_PERIOD_S = {"ioreport": 1.7, "nvml": 0.1}


@dataclass(frozen=True)
class Unavailable:
    """No reading here, and exactly why (stored as the reason beside NULL energy)."""

    reason: str
    method: str | None = None


class Reader(Protocol):
    """start() just before the timed region, stop() just after it."""

    method: str

    def start(self) -> None: ...

    def stop(self, *, timed_only: bool = True) -> Energy | Unavailable: ...


def _failed(reader: Reader, what: str, exc: Exception) -> Unavailable:
    why = f"{type(exc).__name__}: {exc}".strip().splitlines()[0]
    return Unavailable(f"the energy reading {what}: {why}", getattr(reader, "method", None))


class Guarded:
    """A reader whose failures cost the energy, never the timing: start() and stop()
    raise nothing (a counter that fails is the reading's Unavailable, with the error as
    its reason: the calls were timed all the same), and close() stops a reader that
    timing left running, so its sampler thread or powermetrics process never outlives
    the variant it measured. open_reader hands out readers this way."""

    def __init__(self, reader: Reader):
        self.reader = reader
        self.method = reader.method
        self._failure: Unavailable | None = None
        self._running = False

    def start(self) -> None:
        self._failure, self._running = None, False
        try:
            self.reader.start()
        except Exception as exc:
            self._failure = _failed(self.reader, "failed to start", exc)
            with contextlib.suppress(Exception):  # release what a partial start made
                self.reader.stop(timed_only=False)
            return
        self._running = True

    @property
    def failed(self) -> Unavailable | None:
        """Why the reading started last failed to start, or None."""
        return self._failure

    def stop(self, *, timed_only: bool = True, alone: bool = True) -> Energy | Unavailable:
        """The reading; alone=False: one of several summed (a sustained run's windows),
        which may be shorter than the counter's update period (the sum is sound)."""
        if self._failure is not None:
            return self._failure
        if not self._running:
            return Unavailable("the energy reading was never started", self.method)
        self._running = False
        try:
            energy = self.reader.stop(timed_only=timed_only)
        except Exception as exc:
            return _failed(self.reader, "failed", exc)
        period, seconds = UPDATE_PERIOD_S.get(self.method), getattr(energy, "interval_s", 0)
        if alone and period is not None and 0 < seconds < period:
            return Unavailable(
                f"{self.method} reading over {seconds:.3g} s, shorter than the counter's "
                f"update period (up to {period} s): one update there holds up to "
                f"{period / seconds:.3g} times the interval's energy, or none does "
                "(run.energy_s sets a longer reading)",
                self.method,
            )
        return energy

    def close(self) -> None:
        """Stop a reading still running and drop it (timing failed or was interrupted)."""
        if self._running:
            self.stop(timed_only=False)


def guard(reader: Reader) -> Guarded:
    """`reader` as a Guarded (itself where it already is one)."""
    return reader if isinstance(reader, Guarded) else Guarded(reader)


class Sampler(Generic[T]):
    """A daemon thread that calls `read()` every `period_s` and keeps (t_ns, value).

    The first and last reads are made by start()/stop() in the caller's thread, so the
    interval is exact even when the period is long; the thread only fills the timeline
    in between. It sleeps on an Event, so stop() does not wait for a period to end.
    """

    def __init__(self, read: Callable[[], T], period_s: float | None):
        self._read = read
        self.period_s = period_s
        self.points: list[tuple[int, T]] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.error: Exception | None = None

    def start(self) -> None:
        self.points, self.error = [(time.perf_counter_ns(), self._read())], None
        self._stop.clear()
        if self.period_s:
            self._thread = threading.Thread(target=self._run, daemon=True, name="power-sampler")
            self._thread.start()

    def _run(self) -> None:
        period = self.period_s or 0.0
        try:
            while not self._stop.wait(period):
                t = time.perf_counter_ns()  # stamped before the read, as in start() and stop()
                self.points.append((t, self._read()))
        except Exception as exc:  # a counter that failed mid-run: stop() raises it
            self.error = exc

    def stop(self) -> list[tuple[int, T]]:
        """The timeline, ending with a read made now; raises what a read in the thread
        raised (a counter that failed mid-run makes no reading)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        if self.error is not None:
            error, self.error = self.error, None
            raise error
        self.points.append((time.perf_counter_ns(), self._read()))
        return self.points
