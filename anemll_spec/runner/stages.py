"""One case, as a short sequence of stages sharing one context: build, reference, open,
time, close, floor. Each stage works on the variants still ok; a variant's failure is
recorded by `attempt` (the one place that turns an error into a failed variant), an
unexpected error fails the case (`run_case`), and Ctrl-C passes through untouched.
"""

from __future__ import annotations

import contextlib
import shutil
import time
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from anemll_spec import backends, stats
from anemll_spec.backends.base import Backend, BackendError, Prepared, Session
from anemll_spec.errors import InputError
from anemll_spec.harness import Budget, Timer, time_interleaved, time_one
from anemll_spec.progress import Progress
from anemll_spec.runner import energy, verifying
from anemll_spec.runner.measurement import Measurement, Variant
from anemll_spec.runner.plan import tiny_model
from anemll_spec.spec import Case

FLOOR_BUDGET = Budget(warmup=10, warmup_s=0.0, iterations=200, min_iterations=10, max_time_s=1.0)


@dataclass
class Env:
    """What every case of one run shares."""

    progress: Progress
    workdir: Path
    cache_dir: Path | None
    spec_name: str
    backends: dict[str, Backend] = field(default_factory=dict)
    floors: dict[tuple, float | None] = field(default_factory=dict)

    def backend(self, name: str) -> Backend:
        if name not in self.backends:
            self.backends[name] = backends.get(name)
        return self.backends[name]


@dataclass
class Opened:
    """A variant's first instance, loaded and checked: what timing calls."""

    m: Measurement
    session: Session
    feed: Any
    state: Any


@dataclass
class CaseRun:
    """The context the stages of one case share."""

    env: Env
    case: Case
    measurements: list[Measurement]
    built: Any = None
    io: Any = None
    inputs: dict[str, Any] = field(default_factory=dict)
    references: dict[bool, Any] = field(default_factory=dict)  # fp16 mode -> outputs
    prepared: dict[str, Prepared] = field(default_factory=dict)
    opened: list[Opened] = field(default_factory=list)

    @property
    def live(self) -> list[Measurement]:
        return [m for m in self.measurements if m.status == "ok"]


def err(exc: BaseException) -> str:
    """One line naming the error (and, for our own bugs, where it happened)."""
    text = f"{type(exc).__name__}: {exc}".strip()
    if not isinstance(exc, InputError | BackendError):
        tb = traceback.extract_tb(exc.__traceback__)
        if tb:
            text += f" (at {Path(tb[-1].filename).name}:{tb[-1].lineno})"
    return text


@contextlib.contextmanager
def attempt(ms: Measurement | list[Measurement], what: str = "") -> Iterator[None]:
    """Run a step for these variants; an error fails them (with `what` and the error)."""
    try:
        yield
    except KeyboardInterrupt:
        raise
    except Exception as exc:
        for m in ms if isinstance(ms, list) else [ms]:
            m.fail(f"{what}{err(exc)}")


# -- the stages -----------------------------------------------------------------------
def build(cr: CaseRun) -> None:
    from anemll_spec.build import build as build_model
    from anemll_spec.model_io import describe, synth_inputs

    progress = cr.env.progress
    progress.phase("build")
    with attempt(cr.live, "build failed: "):
        built = build_model(
            cr.case.model,
            cache_dir=cr.env.cache_dir,
            progress=progress.build_step,
            spec_name=cr.env.spec_name,
        )
        progress.phase("build", "cache hit" if built.cached else f"{built.build_s:.1f} s")
        cr.io = describe(built.path)
        cr.inputs = synth_inputs(
            cr.io,
            seed=cr.case.model.seed,
            int_ranges=getattr(cr.case.model, "input_ranges", None),
        )
        cr.built = built
        for m in cr.live:
            m.built = built
            m.phases_ms["build"] = 0.0 if built.cached else built.build_s * 1e3


def reference(cr: CaseRun) -> None:
    """The reference executor's outputs each variant's verify needs (verifying says which)."""
    modes = {verifying.reference_mode(m.variant) for m in cr.live}
    modes.discard(None)
    for fp16 in sorted(modes, key=str):
        assert fp16 is not None
        cr.env.progress.phase("reference", "fp16" if fp16 else "fp32")
        try:
            cr.references[fp16] = verifying.reference_outputs(cr.built.path, cr.inputs, fp16)
        except KeyboardInterrupt:
            raise
        except Exception as exc:
            cr.references[fp16] = exc


def open_variants(cr: CaseRun) -> None:
    """Prepare (once per backend), load the first instance, first predict, verify."""
    for m in cr.live:
        with attempt(m):
            cr.opened.append(_open_one(cr, m))


def _open_one(cr: CaseRun, m: Measurement) -> Opened:
    v, run, progress = m.variant, cr.case.run, cr.env.progress
    backend = cr.env.backend(v.backend)
    prepared = _prepared(cr, backend)
    m.phases_ms["compile"] = None if prepared.compile_s is None else prepared.compile_s * 1e3
    m.compile_cached = prepared.compile_s == 0.0 if backend.compiles else None
    progress.phase("load", v.label)
    t0 = time.perf_counter()
    session = backend.load(prepared, backend.options(run, v.compute_units))
    m.phases_ms["load"] = (time.perf_counter() - t0) * 1e3
    opened = Opened(m, session, None, None)
    try:
        m.device = getattr(session, "device", None)
        opened.feed, opened.state = session.feed(cr.inputs), session.new_state()
        progress.phase("first predict", v.label)
        t0 = time.perf_counter()
        first = session.predict(opened.feed, opened.state)
        m.phases_ms["first_predict"] = (time.perf_counter() - t0) * 1e3
        for n in getattr(session, "notes", []):  # e.g. why a CUDA graph fell back to eager
            m.note(n)
        if cr.case.model.compression != "none" and backend.decodes_weights:
            m.note(
                f"{v.backend} decodes the compressed weights once, at load: each call reads "
                "them dense, while GB/s counts the stored (compressed) bytes"
            )
        m.verdict = verifying.verdict(m, first, cr.references, cr.case)
        if m.verdict.status == "fail":
            m.fail(f"verify failed: {m.verdict.note}")
        try:
            m.placements = session.placements()
        except Exception as exc:  # a missing plan costs the placements, not the case
            m.note(f"compute plan unavailable: {err(exc)}")
        return opened
    except BaseException:
        session.close()
        raise


def _prepared(cr: CaseRun, backend: Backend) -> Prepared:
    if backend.name not in cr.prepared:
        cr.env.progress.phase("compile" if backend.compiles else "prepare")
        p = backend.prepare(cr.built.path, cr.env.workdir)
        p.input_dtypes = {t.name: t.dtype for t in cr.io.inputs}
        p.states = tuple(t.name for t in cr.io.states)
        cr.prepared[backend.name] = p
    return cr.prepared[backend.name]


def time_variants(cr: CaseRun) -> None:
    """Sustained, concurrent, or plain (interleaved across variants where asked)."""
    run = cr.case.run
    opened = [o for o in cr.opened if o.m.status == "ok"]
    if not opened:
        return
    if run.duration_s:
        for o in opened:
            with attempt(o.m, "predict failed while timing: "):
                _sustained(cr, o)
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
    run, progress = cr.case.run, cr.env.progress
    budget = Budget.from_run(run)
    timers = [
        Timer(
            o.session.bind(o.feed, o.state),
            budget,
            after=o.session.runtime_probe,
            on_progress=_on_progress(cr, o.m),
        )
        for o in opened
    ]
    if run.interleave and len(timers) > 1:
        progress.phase("timing", "interleaved: " + " ".join(o.m.variant.label for o in opened))
        outcomes: list[Any] = time_interleaved(timers, block=1, isolate=True)
        for o, out in zip(opened, outcomes, strict=True):
            _finish_plain(o.m, out)
            if o.m.status == "ok":  # a chip-wide counter cannot split interleaved calls
                with attempt(o.m, "energy: "):
                    _energy_pass(cr, o, why="the variants were interleaved")
        return
    for o, t in zip(opened, timers, strict=True):
        progress.phase("warmup", o.m.variant.label)
        reader = energy.reader(run, o.m.variant.backend, o.m.device)
        try:
            t.warm()
            progress.phase("timing", o.m.variant.label)
            if energy.is_reader(reader):
                reader.start()
            t.step()
            if energy.is_reader(reader):
                o.m.energy, o.m.reading_calls = reader.stop(timed_only=True), t.n
            else:
                o.m.energy = reader  # why there is none
            _finish_plain(o.m, t.result())
        except KeyboardInterrupt:
            raise
        except Exception as exc:
            _finish_plain(o.m, exc)
            continue
        short = getattr(o.m.energy, "interval_s", None)
        if short is not None and short < run.energy_s and o.m.status == "ok":
            with attempt(o.m, "energy: "):  # too short for the counters: read a longer pass
                _energy_pass(cr, o, why=f"the timed loop lasted {short:.2g} s")


def _finish_plain(m: Measurement, out: Any) -> None:
    if isinstance(out, BaseException):
        m.fail(f"predict failed while timing: {err(out)}")
        return
    runtime = None
    if out.runtime_ns is not None:
        runtime = np.where(out.runtime_ns >= 0, out.runtime_ns, np.nan).astype(np.float64)
    summarize(m, out, out.samples_ns, out.starts_ns, runtime)
    m.throughput_ips = 1e3 / m.summary.mean_ms if m.summary and m.summary.mean_ms else None


def summarize(m: Measurement, timing: Any, wall, starts, runtime) -> None:
    """The statistics of what was timed, and the notes they call for."""
    m.timing = timing
    m.wall_ns, m.starts_ns, m.runtime_ns = np.asarray(wall), starts, runtime
    m.summary = s = stats.summarize(np.asarray(wall), starts, seed=0)
    m.energy_t0_ns = int(starts[0]) if starts is not None and len(starts) else None
    if s.noisy:
        m.note(f"noisy: CV {s.cv:.1%} > {stats.NOISY_CV:.0%}")
    if s.throttled:
        m.note(f"throttling? last-decile median is {s.drift_ratio:.2f}x the first")


def _energy_pass(cr: CaseRun, o: Opened, *, why: str) -> None:
    """Energy of one variant over `energy_s` of its own back-to-back calls, where the timed
    loop cannot give it (interleaved variants, or a loop too short for the counters)."""
    run = cr.case.run
    reader = energy.reader(run, o.m.variant.backend, o.m.device)
    if not energy.is_reader(reader):
        o.m.energy = reader  # why there is none
        return
    if run.energy_s <= 0:
        return  # not asked for
    cr.env.progress.phase("energy", f"{o.m.variant.label} {run.energy_s:g} s")
    fn = o.session.bind(o.feed, o.state)
    calls = 0
    reader.start()
    t0 = time.perf_counter_ns()
    until = t0 + int(run.energy_s * 1e9)
    while time.perf_counter_ns() < until:
        fn()
        calls += 1
    o.m.energy = reader.stop(timed_only=False)
    o.m.reading_calls, o.m.energy_t0_ns = calls, t0
    o.m.note(
        f"energy read over {calls} back-to-back calls after timing ({run.energy_s:g} s): {why}"
    )


def _sustained(cr: CaseRun, o: Opened) -> None:
    from anemll_spec.sustained import run_sustained

    run, m, progress = cr.case.run, o.m, cr.env.progress
    reader = energy.reader(run, m.variant.backend, m.device)
    thermal = energy.thermal(m.variant.backend, m.device)
    progress.phase("sustained", f"{m.variant.label} {run.duration_s:g} s")
    assert run.duration_s is not None
    result = run_sustained(
        o.session.bind(o.feed, o.state),
        run.duration_s,
        run.window_s,
        warmup=run.warmup,
        reader=reader if energy.is_reader(reader) else None,
        thermal=thermal,
        on_window=lambda w: progress.window(m.variant.label, w, run),
        seed=0,
    )
    m.sustained = result
    if not energy.is_reader(reader):
        m.energy = reader  # why there is no energy
    wall = np.concatenate([w.samples_ns for w in result.windows])
    m.window_of = np.repeat(np.arange(len(result.windows)), [w.calls for w in result.windows])
    summarize(m, None, wall, None, None)
    m.throughput_ips = sum(w.calls for w in result.windows) / sum(w.wall_s for w in result.windows)
    v = result.verdict
    m.note(
        f"sustained {run.duration_s:g} s: {v.verdict}, last/first-window throughput "
        f"{v.throughput_ratio:.3f}x [{v.ci_low:.3f}, {v.ci_high:.3f}]"
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
    plan = concurrency.plan_instances(cr.case.model, run.concurrency, run.instances)
    prepared: list[Prepared] | Prepared = cr.prepared[backend.name]
    if plan.distinct_weights:
        preps = []
        for k, model in enumerate(plan.models):
            progress.phase("build", f"instance {k}: distinct weights")
            built = build_model(model, cache_dir=cr.env.cache_dir, spec_name=cr.env.spec_name)
            p = backend.prepare(built.path, cr.env.workdir / f"instance-{k}")
            base = cr.prepared[backend.name]
            p.input_dtypes, p.states = base.input_dtypes, base.states
            preps.append(p)
        prepared = preps
    reader = energy.reader(run, m.variant.backend, m.device)
    progress.phase("timing", f"{m.variant.label} x{run.concurrency} {plan.instances}")
    res = concurrency.time_instances(
        backend.name,
        prepared,
        backend.options(run, m.variant.compute_units),
        cr.inputs,
        Budget.from_run(run),
        instances=run.concurrency,
        device=m.device,
        on_progress=_on_progress(cr, m),
        reader=reader if energy.is_reader(reader) else None,
    )
    wall, starts = res.pooled()
    summarize(m, res.per_instance[0], wall, starts, _pooled_runtime(res.per_instance))
    m.throughput_ips = res.throughput_per_s
    m.energy = res.energy if energy.is_reader(reader) else reader
    m.reading_calls = res.calls
    per = ", ".join(f"{float(np.median(t.samples_ns)) / 1e6:.3f}" for t in res.per_instance)
    m.note(
        f"concurrency {run.concurrency} ({res.mode}, {plan.note}): {res.throughput_per_s:.1f} "
        f"inferences/s aggregate; per-instance median ms: {per}; latency statistics pool all "
        "instances"
    )


def _pooled_runtime(timings: list[Any]) -> np.ndarray | None:
    """The instances' runtime durations in the pooled (start) order; None if any has none."""
    if any(t.runtime_ns is None for t in timings):
        return None
    order = np.argsort(np.concatenate([t.starts_ns for t in timings]), kind="stable")
    pooled = np.concatenate([t.runtime_ns for t in timings])[order]
    return np.where(pooled >= 0, pooled, np.nan).astype(np.float64)


def close(cr: CaseRun) -> None:
    """Release every session and compiled copy of the case (before the dispatch floor, so
    no large model stays resident while tiny ones are timed)."""
    for o in cr.opened:
        o.session.close()
    cr.opened.clear()
    for p in cr.prepared.values():  # compiled copies can be GBs: drop them per case
        if p.path != p.source and cr.env.workdir in p.path.parents:
            shutil.rmtree(p.path.parent, ignore_errors=True)
    cr.prepared.clear()


def dispatch_floor(cr: CaseRun) -> None:
    if not cr.case.run.dispatch_floor:
        return
    for m in cr.live:
        m.dispatch_floor_ms = _floor(cr, m)


def _floor(cr: CaseRun, m: Measurement) -> float | None:
    """Median latency of a tiny model on the same backend and compute units."""
    from anemll_spec.build import build as build_model
    from anemll_spec.model_io import describe, synth_inputs

    v, env = m.variant, cr.env
    tiny = tiny_model(cr.case.model)
    key = (v.backend, v.compute_units, m.device, tiny.dtype, tiny.precision, tiny.deployment_target)
    if key in env.floors:
        return env.floors[key]
    env.progress.phase("dispatch floor", v.label)
    floor = None
    try:
        built = build_model(tiny, cache_dir=env.cache_dir)
        io = describe(built.path)
        backend = env.backend(v.backend)
        prepared = backend.prepare(built.path, env.workdir / "floor")
        prepared.input_dtypes = {t.name: t.dtype for t in io.inputs}
        run = cr.case.run.model_copy(update={"fp16_reference": False})
        sess = backend.load(prepared, backend.options(run, v.compute_units))
        try:
            feed = sess.feed(synth_inputs(io, seed=0))
            t = time_one(sess.bind(feed, sess.new_state()), FLOOR_BUDGET)
            floor = float(np.median(t.samples_ns)) / 1e6
        finally:
            sess.close()
    except KeyboardInterrupt:
        raise
    except Exception as exc:
        m.note(f"dispatch floor not measured: {err(exc)}")
    env.floors[key] = floor
    return floor


STAGES: tuple[Callable[[CaseRun], None], ...] = (
    build,
    reference,
    open_variants,
    time_variants,
    close,
    dispatch_floor,
)


def run_case(
    env: Env, case: Case, variants: list[Variant], notes: list[str] = ()
) -> list[Measurement]:
    """Every stage in turn; an unexpected error fails the case's remaining variants.
    notes: the case's own (how its variants were resolved), kept with every result."""
    cr = CaseRun(env, case, [Measurement(v, notes=list(notes)) for v in variants])
    try:
        for stage in STAGES:
            if not cr.live and stage is not close:
                continue
            stage(cr)
    except KeyboardInterrupt:
        raise
    except Exception as exc:
        for m in cr.live:
            m.fail(f"internal error: {err(exc)}")
    finally:
        close(cr)
    return cr.measurements
