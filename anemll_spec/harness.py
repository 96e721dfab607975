"""The timing loop: warmup, timed samples, stop rules, interleaving, concurrency.

The timed region is exactly `t0 = perf_counter_ns(); fn(); t1 = perf_counter_ns()`;
bookkeeping (storing the sample, stop checks, Core ML's own duration) happens
outside it, into arrays allocated once per variant. Stop rules, in order: the
`iterations` cap; `max_time_s` of this variant's own timed calls (never before
`min_iterations`); the adaptive stop once the 95% CI of the median is within
`target_ci_pct` (checked on a geometric schedule, so the cost stays O(n)). Concurrent
instances also stop together: once one meets its rule, the others stop after the call
they are in (stop "peer"; the flag is read before every call, the first included, so an
instance released late makes none), so the aggregate throughput has no tail where fewer
run. Each instance's span is its own calls' (first start to last end).
"""

from __future__ import annotations

import contextlib
import functools
import gc
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from anemll_spec.power.base import guard
from anemll_spec.stats import order_stat_ci_pct

if TYPE_CHECKING:
    from anemll_spec.spec.run_section import Run

Progress = Callable[[int, float, float], None]  # (samples so far, median ms, timed s so far)
_REPORT_NS = 250_000_000  # progress callbacks at most 4 times a second

_gc_lock = threading.Lock()
_gc_pauses = 0  # timed regions under way in this process (threads time concurrently)
_gc_was_enabled = False


@contextlib.contextmanager
def gc_paused() -> Iterator[None]:
    """Python's garbage collector off while any thread of the process is timing (as in
    timeit), so a collection set off by the model's allocations is not charged to one
    unlucky call. The switch is process-wide: it is counted, so the first instance of a
    concurrent run to finish does not turn it back on under the others."""
    global _gc_pauses, _gc_was_enabled
    with _gc_lock:
        if _gc_pauses == 0:
            _gc_was_enabled = gc.isenabled()
            gc.disable()
        _gc_pauses += 1
    try:
        yield
    finally:
        with _gc_lock:
            _gc_pauses -= 1
            if _gc_pauses == 0 and _gc_was_enabled:
                gc.enable()


@dataclass(frozen=True)
class Budget:
    """How long and how carefully to time one variant (the spec's run fields: their
    defaults live in the spec, `spec.run_section.Run`)."""

    warmup: int
    warmup_s: float
    iterations: int
    min_iterations: int
    max_time_s: float
    target_ci_pct: float | None = None
    check_every: int = 20  # first adaptive check after min_iterations + this

    @classmethod
    def from_run(cls, run: Run) -> Budget:
        return cls(
            warmup=run.warmup,
            warmup_s=run.warmup_s,
            iterations=run.iterations,
            min_iterations=run.min_iterations,
            max_time_s=run.max_time_s,
            target_ci_pct=run.target_ci_pct,
        )


@dataclass
class Timing:
    """One variant's timed phase."""

    samples_ns: np.ndarray  # int64, per-call wall latency
    starts_ns: np.ndarray  # int64, perf_counter_ns at each call's start
    runtime_ns: np.ndarray | None  # int64, the runtime's own duration (-1: not reported)
    warmup_n: int
    warmup_s: float
    stop: str  # iterations | max_time | target_ci | peer (another instance met its rule)
    timed_s: float  # wall time of this variant's timed calls (incl. bookkeeping)

    @property
    def n(self) -> int:
        return int(self.samples_ns.size)


class Timer:
    """One variant's timing state; `step` runs up to k timed calls, so variants can
    take turns (interleaving) without sharing a loop.

    halt: asked before each call, the first included (outside the timed region); true
    ends the loop with stop "peer" (concurrent instances: another one met its rule), so
    no call starts after another instance stopped."""

    def __init__(
        self,
        fn: Callable[[], object],
        budget: Budget,
        *,
        after: Callable[[], int | None] | None = None,
        on_progress: Progress | None = None,
        halt: Callable[[], object] | None = None,
    ):
        if budget.iterations < 1:
            raise ValueError("iterations must be >= 1")
        self.fn = fn
        self.budget = budget
        self.after = after
        self.on_progress = on_progress
        self.halt = halt
        cap = budget.iterations
        self._samples = np.zeros(cap, dtype=np.int64)
        self._starts = np.zeros(cap, dtype=np.int64)
        self._runtime = np.full(cap, -1, dtype=np.int64) if after is not None else None
        self.n = 0
        self.done = False
        self.stop = ""
        self.spent_ns = 0
        self.warmup_n = 0
        self.warmup_s = 0.0
        self._next_check = (
            max(budget.min_iterations, 6) + budget.check_every if budget.target_ci_pct else cap + 1
        )
        self._next_report = 0

    def warm(self) -> None:
        """Untimed calls: `warmup` of them, and for at least `warmup_s` seconds, but never
        longer than `max_time_s` (a huge warm-up count is not an unbounded run). `halt`
        (another concurrent instance failed) ends it after the call in flight."""
        fn, pc, halt = self.fn, time.perf_counter_ns, self.halt or (lambda: False)
        t_start = pc()
        cap = t_start + int(self.budget.max_time_s * 1e9)
        n = 0
        while n < self.budget.warmup:
            fn()
            n += 1
            if pc() >= cap or halt():
                break
        until = min(t_start + int(self.budget.warmup_s * 1e9), cap)
        while pc() < until and not halt():
            fn()
            n += 1
        self.warmup_n = n
        self.warmup_s = (pc() - t_start) / 1e9

    def step(self, k: int | None = None) -> bool:
        """Run up to k timed calls (all remaining if None); True once this variant is done.

        Python's garbage collector is off while timing (gc_paused)."""
        if self.done:
            return True
        with gc_paused():
            return self._step(k)

    def _step(self, k: int | None) -> bool:
        b = self.budget
        fn, after, halt, pc = self.fn, self.after, self.halt, time.perf_counter_ns
        samples, starts, runtime = self._samples, self._starts, self._runtime
        i = self.n
        end = b.iterations if k is None else min(b.iterations, i + k)
        min_it = b.min_iterations
        block_start = pc()
        deadline = block_start + int(b.max_time_s * 1e9) - self.spent_ns
        next_check = self._next_check
        next_report = self._next_report
        stop = ""
        while i < end:
            if halt is not None and halt():
                stop = "peer"
                break
            t0 = pc()
            fn()
            t1 = pc()
            samples[i] = t1 - t0
            starts[i] = t0
            if after is not None:
                d = after()
                if d is not None and runtime is not None:
                    runtime[i] = d
            i += 1
            if t1 >= deadline and i >= min_it:
                stop = "max_time"
                break
            if i >= next_check:
                target = b.target_ci_pct or 0.0  # a check is only due when it is set
                if order_stat_ci_pct(samples[:i].astype(np.float64)) <= target:
                    stop = "target_ci"
                    break
                next_check = max(i + b.check_every, int(i * 1.1))
            if t1 >= next_report and self.on_progress is not None:
                elapsed = (self.spent_ns + t1 - block_start) / 1e9
                self.on_progress(i, float(np.median(samples[:i])) / 1e6, elapsed)
                next_report = t1 + _REPORT_NS
        if not stop and i >= b.iterations:
            stop = "iterations"
        self.spent_ns += pc() - block_start
        self.n = i
        self._next_check = next_check
        self._next_report = next_report
        if stop:
            self.done = True
            self.stop = stop
            if self.on_progress is not None and i:
                self.on_progress(i, float(np.median(samples[:i])) / 1e6, self.spent_ns / 1e9)
        return self.done

    def result(self) -> Timing:
        n = self.n
        return Timing(
            samples_ns=self._samples[:n].copy(),
            starts_ns=self._starts[:n].copy(),
            runtime_ns=None if self._runtime is None else self._runtime[:n].copy(),
            warmup_n=self.warmup_n,
            warmup_s=self.warmup_s,
            stop=self.stop,
            timed_s=self.spent_ns / 1e9,
        )


def time_one(
    fn: Callable[[], object],
    budget: Budget,
    *,
    after: Callable[[], int | None] | None = None,
    on_progress: Progress | None = None,
) -> Timing:
    """Warm up, then time `fn` until a stop rule fires."""
    t = Timer(fn, budget, after=after, on_progress=on_progress)
    t.warm()
    t.step()
    return t.result()


def time_interleaved(
    timers: Sequence[Timer], *, block: int = 1, isolate: bool = False
) -> list[Timing | Exception]:
    """Warm every variant, then take turns, `block` timed calls each (A B A B ...).

    Slow drift (thermal, background load) then hits every variant alike instead of
    biasing whichever ran last. Each variant keeps its own stop rules and time budget.
    isolate: a variant whose call raises drops out (its exception takes its place in
    the result) and the others go on; otherwise the exception propagates.
    """
    errors: dict[int, Exception] = {}

    def guarded(i: int, action: Callable[[], object]) -> None:
        try:
            action()
        except Exception as exc:
            if not isolate:
                raise
            errors[i] = exc
            timers[i].done = True

    for i, t in enumerate(timers):
        guarded(i, t.warm)
    while not all(t.done for t in timers):
        for i, t in enumerate(timers):
            if not t.done:
                guarded(i, functools.partial(t.step, block))
    return [errors[i] if i in errors else t.result() for i, t in enumerate(timers)]


def span_ns(t: Timing) -> tuple[int, int] | None:
    """An instance's own calls: its first call's start and its last call's end (None:
    it made no call)."""
    if not t.n:
        return None
    return int(t.starts_ns[0]), int(t.starts_ns[-1] + t.samples_ns[-1])


def calls_wall_s(timings: Sequence[Timing]) -> float:
    """First call's start to last call's end over the instances that made calls."""
    spans = [s for t in timings if (s := span_ns(t)) is not None]
    return (max(e for _, e in spans) - min(b for b, _ in spans)) / 1e9 if spans else 0.0


@dataclass
class Concurrent:
    """N instances timed at once, each in its own thread."""

    per_instance: list[Timing]
    wall_s: float  # first call's start to last call's end over all instances (calls_wall_s)
    energy: Any = None  # power.Energy | Unavailable over the timed phases; None: not read

    @property
    def stop(self) -> str:
        """The rule that ended the phase: the first instance's own (the others stopped
        with it, "peer")."""
        return next((t.stop for t in self.per_instance if t.stop != "peer"), "peer")

    @property
    def calls(self) -> int:
        return sum(t.n for t in self.per_instance)

    @property
    def throughput_per_s(self) -> float:
        """Aggregate inferences per second over all instances; NaN where they did not all
        run at once (apart): no aggregate of N instances was measured."""
        if self.apart() or self.wall_s <= 0:
            return float("nan")
        return self.calls / self.wall_s

    def apart(self) -> str | None:
        """Why the instances did not all run at once, or None where they did: an instance
        that made no call (released after another had met its rule), or one whose first
        call began only after another's last had ended (no window common to all)."""
        spans = [span_ns(t) for t in self.per_instance]
        if none := [k for k, s in enumerate(spans) if s is None]:
            who = f"instance {none[0]}" if len(none) == 1 else f"instances {none}"
            return f"{who} made no call: released after another had met its rule"
        got = [s for s in spans if s is not None]
        late = max(range(len(got)), key=lambda k: got[k][0])
        early = min(range(len(got)), key=lambda k: got[k][1])
        if got[late][0] < got[early][1]:
            return None
        return (
            f"instance {late}'s first call began {(got[late][0] - got[early][1]) / 1e6:.3g} "
            f"ms after instance {early}'s last ended"
        )

    def pooled(self) -> tuple[np.ndarray, np.ndarray]:
        """All instances' samples (and starts), in start order: per-call latency under load."""
        s = np.concatenate([t.samples_ns for t in self.per_instance])
        st = np.concatenate([t.starts_ns for t in self.per_instance])
        order = np.argsort(st, kind="stable")
        return s[order], st[order]


def time_concurrent(
    fns: Sequence[Callable[[], object]],
    budget: Budget,
    *,
    on_progress: Progress | None = None,
    reader: Any = None,
    afters: Sequence[Callable[[], int | None] | None] | None = None,
) -> Concurrent:
    """Each fn (one model instance each) warms up, waits at a barrier, then all are
    timed at once, until the first meets its rule (the others stop after their call in
    flight). Throughput = all calls / wall time from first start to last end.
    reader: a power reader started as the barrier releases, stopped when all are done;
    afters: per fn, its session's runtime_probe (Timer's `after`), or None."""
    n = len(fns)
    ended = [False]  # an instance met its rule (or failed): all stop
    probes = list(afters) if afters is not None else [None] * n
    reports = [on_progress if i == 0 else None for i in range(n)]
    timers = [
        Timer(f, budget, after=a, on_progress=r, halt=lambda: ended[0])
        for f, a, r in zip(fns, probes, reports, strict=True)
    ]
    reader = guard(reader) if reader is not None else None
    barrier = threading.Barrier(n, action=reader.start if reader is not None else None)
    errors: list[BaseException] = []

    def work(i: int) -> None:
        try:
            timers[i].warm()
            barrier.wait()
            timers[i].step()
        except threading.BrokenBarrierError:
            pass
        except BaseException as exc:  # re-raised in the caller's thread
            errors.append(exc)
            barrier.abort()
        finally:
            ended[0] = True

    threads = [
        threading.Thread(target=work, args=(i,), daemon=True, name=f"instance-{i}")
        for i in range(n)
    ]
    for th in threads:
        th.start()
    try:
        for th in threads:
            th.join()
    except BaseException:  # Ctrl-C: the instances stop after their call in flight, and
        ended[0] = True  # are gone before the caller closes their sessions
        barrier.abort()
        for th in threads:
            th.join()
        if reader is not None:
            reader.close()
        raise
    energy = None
    if reader is not None:
        energy = None if errors else reader.stop(timed_only=True)
        reader.close()  # a reading the failed instance left running
    if errors:
        raise errors[0]
    timings = [t.result() for t in timers]
    return Concurrent(timings, calls_wall_s(timings), energy)
