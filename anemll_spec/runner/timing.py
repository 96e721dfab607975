"""The timing stage of one case: sustained windows, concurrent instances, or plain timed
loops (interleaved across variants where asked), with the energy read around them."""

from __future__ import annotations

import dataclasses
import sys
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from anemll_spec import stats
from anemll_spec.backends.base import Prepared
from anemll_spec.harness import Budget, Timer, time_interleaved
from anemll_spec.interrupts import deferred
from anemll_spec.power.base import Guarded, Unavailable
from anemll_spec.runner import energy
from anemll_spec.runner.measurement import Measurement
from anemll_spec.runner.plan import plan_instances
from anemll_spec.runner.stages import CaseRun, Opened, attempt, err, prepare
from anemll_spec.text import ratios
from anemll_spec.vocab import MIN_SAMPLES


def time_variants(cr: CaseRun) -> None:
    """Sustained, concurrent, or plain (interleaved across variants where asked)."""
    run = cr.case.run
    opened = [o for o in cr.opened if o.m.status == "ok"]
    if not opened:
        return
    if run.duration_s:  # one variant after the other (plan.resolve_variants notes it)
        for i, o in enumerate(opened):
            if i and run.cooldown_s:  # each starts as cool as the first did
                cr.env.progress.phase("cooldown", f"{run.cooldown_s:g} s")
                time.sleep(run.cooldown_s)
            try:
                with attempt(o.m, "predict failed while timing: "):
                    _sustained(cr, o)
            except KeyboardInterrupt:  # before this variant had two windows
                if not any(p.m.sustained is not None for p in opened[:i]):
                    raise
                o.m.interrupted = True  # nothing of it is kept; the variants before it are
            if o.m.interrupted:  # Ctrl-C: the variants after it are not timed
                break
        return
    if run.concurrency > 1:
        for o in opened:
            with attempt(o.m, "concurrent instances failed: "):
                _concurrent(cr, o)
        return
    _plain(cr, opened)


def _on_progress(cr: CaseRun, m: Measurement) -> Callable[[int, float, float], None]:
    run, label = cr.case.run, m.variant.label
    return lambda n, med, s: cr.env.progress.samples(label, n, med, s, run)


def _plain(cr: CaseRun, opened: list[Opened]) -> None:
    run = cr.case.run
    groups = _interleave_groups(opened) if run.interleave and len(opened) > 1 else [opened]
    for group in groups:
        if run.interleave and len(group) > 1:
            _interleaved(cr, group)
        else:
            for o in group:
                _one_by_one(cr, o)


def _timer(cr: CaseRun, o: Opened) -> Timer:
    return Timer(
        o.session.bind(o.feed, o.state),
        Budget.from_run(cr.case.run),
        after=o.session.runtime_probe,
        on_progress=_on_progress(cr, o.m),
    )


def _interleaved(cr: CaseRun, group: list[Opened]) -> None:
    """The variants take turns call by call; a chip-wide counter cannot split their calls,
    so each one's energy is read over a pass of its own."""
    cr.env.progress.phase("timing", "interleaved: " + " ".join(o.m.variant.label for o in group))
    outcomes: list[Any] = time_interleaved([_timer(cr, o) for o in group], block=1, isolate=True)
    for o, out in zip(group, outcomes, strict=True):
        _finish_plain(o.m, out)
        if o.m.status == "ok":
            with attempt(o.m, "energy: "):
                _energy_pass(cr, o, why="the variants were interleaved")


def _one_by_one(cr: CaseRun, o: Opened) -> None:
    run, progress, t = cr.case.run, cr.env.progress, _timer(cr, o)
    progress.phase("warmup", o.m.variant.label)
    reader = energy.reading(run, o.m.variant.backend, o.m.device)
    loop_s: float | None = None  # the timed loop's own duration
    try:
        t.warm()
        progress.phase("timing", o.m.variant.label)
        if isinstance(reader, Guarded):
            reader.start()
        loop_t0 = time.perf_counter_ns()
        t.step()
        loop_s = (time.perf_counter_ns() - loop_t0) / 1e9
        if isinstance(reader, Guarded):
            o.m.energy, o.m.reading_calls = reader.stop(timed_only=True), t.n
        else:
            o.m.energy = reader  # why there is none
        _finish_plain(o.m, t.result())
    except KeyboardInterrupt:
        raise
    except Exception as exc:
        _finish_plain(o.m, exc)
        return
    finally:  # a reading the timing left running ends with it
        if isinstance(reader, Guarded):
            reader.close()
    ok = o.m.status == "ok" and isinstance(reader, Guarded)
    if ok and loop_s is not None and loop_s < run.energy_s:
        # too short for the counters: a longer pass replaces it (a Ctrl-C there keeps
        # none), decided by the loop's own duration, whatever its reading was (a 0 mJ
        # total, or IOReport's "counters not published", or a reader that failed)
        o.m.energy = Unavailable(
            f"not read: the timed loop lasted {loop_s:.2g} s and the energy pass that "
            "replaces it did not finish"
        )
        with attempt(o.m, "energy: "):
            _energy_pass(cr, o, why=f"the timed loop lasted {loop_s:.2g} s")


def _interleave_groups(opened: list[Opened]) -> list[list[Opened]]:
    """Which variants may take turns call by call. numpy's BLAS pool and torch's CPU pool,
    each as large as the machine, spin against each other in one process, and each call
    of one waits for the other's threads (numpy's median rose 70x here). So torch on the
    CPU takes turns only with itself, after the others, which still take turns among
    themselves (Core ML beside numpy on a Mac, say); each variant of the clash says so."""

    def backend(o: Opened) -> str | None:
        return o.m.variant.backend if o.m.device in (None, "cpu") else None

    torch_cpu = [o for o in opened if backend(o) == "torch"]
    if not torch_cpu or not any(backend(o) == "numpy" for o in opened):
        return [opened]
    for o in opened:
        if backend(o) in ("numpy", "torch"):
            o.m.note(
                "not interleaved: numpy and torch on the CPU would fight over the cores call "
                "by call, so torch on the CPU was timed after the other variants"
            )
    return [[o for o in opened if backend(o) != "torch"], torch_cpu]


def _finish_plain(m: Measurement, out: Any) -> None:
    if isinstance(out, BaseException):
        m.fail(f"predict failed while timing: {err(out)}")
        return
    runtime = None if out.runtime_ns is None else _runtime(out.runtime_ns)
    with deferred(_finishing(out.n)):  # the calls are timed: a Ctrl-C waits, then stops
        summarize(m, out, out.samples_ns, out.starts_ns, runtime)


def _runtime(runtime_ns: np.ndarray) -> np.ndarray:
    """Core ML's runtime durations as float ns, NaN where a call reported none (< 0)."""
    return np.where(runtime_ns >= 0, runtime_ns, np.nan).astype(np.float64)


def summarize(
    m: Measurement, timing: Any, wall, starts, runtime, throughput_ips: float | None = None
) -> None:
    """The statistics of what was timed, and the notes they call for. Throughput is 1000 /
    mean ms (one definition for any timed loop) unless measured otherwise (concurrency:
    every instance's calls over the wall time they shared)."""
    m.timing = timing
    m.wall_ns, m.starts_ns, m.runtime_ns = np.asarray(wall), starts, runtime
    m.summary = s = stats.summarize(np.asarray(wall), starts, seed=0)
    if throughput_ips is None and s.mean_ms:
        throughput_ips = 1e3 / s.mean_ms
    m.throughput_ips = throughput_ips
    m.energy_t0_ns = int(starts[0]) if starts is not None and len(starts) else None
    if len(m.wall_ns) < MIN_SAMPLES:  # a bootstrap of so few covers far less than 95%
        m.note(
            f"only {len(m.wall_ns)} samples: no 95% CI of the median (fewer than "
            f"{MIN_SAMPLES}; compare gives no verdict on them)"
        )
    if s.noisy:
        m.note(f"noisy: CV {s.cv:.1%} > {stats.NOISY_CV:.0%}")
    if s.throttled:
        m.note(f"throttling? last-decile median is {s.drift_ratio:.2f}x the first")


def _finishing(calls: int) -> Callable[[], None]:
    """What a first Ctrl-C is told while the statistics of timed calls are computed."""
    return lambda: print(
        f"\nCtrl-C: finishing the statistics of {calls:,} timed calls to keep them, then "
        "stopping (Ctrl-C again drops them)",
        file=sys.stderr,
        flush=True,
    )


def _energy_pass(cr: CaseRun, o: Opened, *, why: str) -> None:
    """Energy of one variant over `energy_s` of its own back-to-back calls, where the timed
    loop cannot give it (interleaved variants, or a loop too short for the counters)."""
    run = cr.case.run
    reader = energy.reading(run, o.m.variant.backend, o.m.device)
    if not isinstance(reader, Guarded):
        o.m.energy = reader  # why there is none
        return
    if run.energy_s <= 0:  # not asked for: said, as any missing reading is
        o.m.energy = Unavailable(f"not read: {why}, and run.energy_s is 0 (no energy pass)")
        return
    cr.env.progress.phase("energy", f"{o.m.variant.label} {run.energy_s:g} s")
    fn = o.session.bind(o.feed, o.state)
    calls = 0
    reader.start()
    if reader.failed is not None:  # no pass of calls for a reading that never started
        o.m.energy = reader.failed
        return
    try:
        t0 = time.perf_counter_ns()
        until = t0 + int(run.energy_s * 1e9)
        while time.perf_counter_ns() < until:
            fn()
            calls += 1
        o.m.energy = reader.stop(timed_only=False)
    finally:  # a call that failed, or Ctrl-C: the reading ends with the pass
        reader.close()
    o.m.reading_calls, o.m.energy_t0_ns = calls, t0
    o.m.note(
        f"energy read over {calls} back-to-back calls after timing ({run.energy_s:g} s): {why}"
    )


def _sustained(cr: CaseRun, o: Opened) -> None:
    from anemll_spec.sustained import run_sustained, window_count

    run, m, progress = cr.case.run, o.m, cr.env.progress
    reader = energy.reading(run, m.variant.backend, m.device)
    thermal = energy.thermal(m.variant.backend, m.device)
    progress.phase("sustained", f"{m.variant.label} {run.duration_s:g} s")
    assert run.duration_s is not None
    n_windows = window_count(run.duration_s, run.window_s)
    result = run_sustained(
        o.session.bind(o.feed, o.state),
        run.duration_s,
        run.window_s,
        warmup=run.warmup,
        warmup_s=run.warmup_s,
        max_warmup_s=run.max_time_s,
        reader=reader if isinstance(reader, Guarded) else None,
        thermal=thermal,
        on_window=lambda w: progress.window(m.variant.label, w, n_windows),
        on_finishing=lambda calls: _finishing(calls)(),
        seed=0,
    )
    with deferred(_finishing(sum(w.calls for w in result.windows))):  # kept whole
        _finish_sustained(cr, m, result, reader)


def _finish_sustained(cr: CaseRun, m: Measurement, result: Any, reader: Any) -> None:
    """The windows into the measurement: energy, notes, statistics, the verdict's note."""
    from anemll_spec.sustained import window_count

    run, progress = cr.case.run, cr.env.progress
    assert run.duration_s is not None
    n_windows = window_count(run.duration_s, run.window_s)
    m.sustained = result
    if isinstance(reader, Guarded):  # the windows' readings as one: what the summary shows
        from anemll_spec.store.energy import combined_energy

        m.energy = combined_energy(result.windows)
        m.reading_calls = sum(w.calls for w in result.windows)
    else:
        m.energy = reader  # why there is no energy
    timed_s = n_windows * run.window_s  # window_count's rule: equal up to rounding
    if result.interrupted:  # stored, then the run stops (bench)
        m.interrupted = True
        m.note(
            f"sustained: interrupted after {len(result.windows)} of {n_windows} windows; "
            "the verdict compares the first and the last finished window"
        )
    elif len(result.windows) < n_windows:  # calls outlast the windows
        longest = max(float(np.max(w.samples_ns)) for w in result.windows) / 1e9
        m.note(
            f"sustained: {len(result.windows)} of {n_windows} windows in the {timed_s:g} s "
            f"of whole windows: calls (up to {longest:.3g} s) outlast window_s "
            f"({run.window_s:g} s), so a window holds one call and the run stopped at its time"
        )
    elif run.duration_s - timed_s > 1e-9 * run.duration_s:
        m.note(
            f"sustained: {n_windows} whole windows of {run.window_s:g} s timed {timed_s:g} s "
            f"of the {run.duration_s:g} s asked"
        )
    wall = np.concatenate([w.samples_ns for w in result.windows])
    starts = np.concatenate([w.starts_ns for w in result.windows if w.starts_ns is not None])
    m.window_of = np.repeat(np.arange(len(result.windows)), [w.calls for w in result.windows])
    progress.phase("statistics", f"{m.variant.label}: {len(wall):,} calls")  # ~0.3 s a million
    summarize(m, None, wall, starts, None)  # each window's own calls/s: sustained_windows
    v = result.verdict
    first, last = result.windows[0], result.windows[-1]
    r, lo, hi = ratios(v.throughput_ratio, v.ci_low, v.ci_high)
    # what was judged: the whole windows timed (Ctrl-C: those finished), not what was asked
    judged = len(result.windows) * run.window_s if result.interrupted else timed_s
    whole = abs(judged - run.duration_s) <= 1e-9 * run.duration_s
    ran = f"{judged:g} s" if whole else f"{judged:g} of {run.duration_s:g} s"
    m.note(
        f"sustained {ran}: {v.verdict}, last/first-window median throughput "
        f"{r}x [{lo}, {hi}]; calls/s delivered "
        f"{ratios(last.throughput_per_s / first.throughput_per_s)[0]}x (stalls included)"
        + ("" if v.throttled is None else f", throttled: {'yes' if v.throttled else 'no'}")
    )


def _concurrent(cr: CaseRun, o: Opened) -> None:
    """N instances at once (threads or processes, as measured best per backend); the first
    instance, which was opened and verified, is closed first so it holds no memory."""
    from anemll_spec import concurrency
    from anemll_spec.build import build as build_model

    run, m, progress = cr.case.run, o.m, cr.env.progress
    o.session.close()
    backend = cr.env.backend(m.variant.backend)
    plan = plan_instances(cr.case.model, run.concurrency, run.instances)
    prepared: list[Prepared] | Prepared = cr.prepared[backend.name]
    if plan.distinct_weights:
        preps = []
        for k, model in enumerate(plan.models):
            progress.phase("build", f"instance {k}: distinct weights")
            built = build_model(model, cache_dir=cr.env.cache_dir, spec_name=cr.env.spec_name)
            # distinct weights, the same inputs and states: the case's description holds
            preps.append(prepare(backend, built.path, cr.env.workdir / f"instance-{k}", cr.io))
        prepared = preps
    reader = energy.reading(run, m.variant.backend, m.device)
    progress.phase("timing", f"{m.variant.label} x{run.concurrency} {plan.instances}")
    res = concurrency.time_instances(
        backend.name,
        prepared,
        backend.options(run, m.variant.compute_units),
        cr.inputs,
        Budget.from_run(run),
        n_instances=run.concurrency,
        device=m.device,
        on_progress=_on_progress(cr, m),
        reader=reader if isinstance(reader, Guarded) else None,
    )
    with deferred(_finishing(res.calls)):  # the calls are timed: a Ctrl-C waits, then stops
        _finish_concurrent(cr, m, res, plan, reader)


def _finish_concurrent(cr: CaseRun, m: Measurement, res: Any, plan: Any, reader: Any) -> None:
    """The instances' calls into the measurement: statistics, energy, the note."""
    run = cr.case.run
    wall, starts = res.pooled()
    runtime = _pooled_runtime(res.per_instance)
    # the case's stop: the rule that ended the phase (the other instances stopped with it)
    first = dataclasses.replace(res.per_instance[0], stop=res.stop)
    apart = res.apart()  # then no aggregate of N instances was measured: none is stored
    summarize(m, first, wall, starts, runtime, None if apart else res.throughput_per_s)
    if apart:
        m.throughput_ips = None
    m.energy = res.energy if isinstance(reader, Guarded) else reader
    m.energy = energy.concurrent_energy(m.energy, res, run.energy_s, apart)
    m.reading_calls = res.calls
    per = ", ".join(
        f"{float(np.median(t.samples_ns)) / 1e6:.3f}" if t.n else "- (no call)"
        for t in res.per_instance
    )
    pools = getattr(res, "threads", None)  # the CPU split between the instances
    threads = f", {pools} math-library thread(s) each" if pools else ""
    aggregate = (
        f"the instances did not all run at once ({apart}), so no aggregate throughput is "
        "stored; more iterations or a longer max_time_s give them time to overlap"
        if apart
        else f"{res.throughput_per_s:.1f} inferences/s aggregate"
    )
    m.note(
        f"concurrency {run.concurrency} ({res.mode}{threads}, {plan.note}): {aggregate}; "
        f"per-instance median ms: {per}; all stopped when the first met its rule "
        f"({res.stop}); latency statistics pool all instances"
    )


def _pooled_runtime(timings: list[Any]) -> np.ndarray | None:
    """The instances' runtime durations in the pooled (start) order; None if any has none."""
    if any(t.runtime_ns is None for t in timings):
        return None
    order = np.argsort(np.concatenate([t.starts_ns for t in timings]), kind="stable")
    return _runtime(np.concatenate([t.runtime_ns for t in timings])[order])
