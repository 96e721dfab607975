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
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from anemll_spec import backends
from anemll_spec.backends.base import Backend, BackendError, Prepared, Session
from anemll_spec.errors import InputError
from anemll_spec.harness import Budget, time_one
from anemll_spec.progress import Progress
from anemll_spec.runner import verifying
from anemll_spec.runner.measurement import Measurement
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
    # the dispatch floor per kind of tiny model: (ms or None, the case it was timed after)
    floors: dict[tuple, tuple[float | None, int]] = field(default_factory=dict)

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
    """One line naming the error (and, for our own bugs, where it happened: never for
    the expected failures, which say what went wrong themselves)."""
    from anemll_spec.concurrency import ConcurrencyError

    text = f"{type(exc).__name__}: {exc}".strip()
    if not isinstance(exc, InputError | BackendError | ConcurrencyError):
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
            int_ranges=cr.case.model.int_ranges(),
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


def compile_cached(compiles: bool, compile_s: float | None) -> bool | None:
    """cases.compile_cached: whether Core ML's compiled model came from the build cache
    (compile_s 0); None where nothing was compiled (another backend, or an external
    .mlmodelc used as it is: compile_s None)."""
    return None if not compiles or compile_s is None else compile_s == 0.0


def _open_one(cr: CaseRun, m: Measurement) -> Opened:
    v, run, progress = m.variant, cr.case.run, cr.env.progress
    backend = cr.env.backend(v.backend)
    prepared = _prepared(cr, backend)
    m.phases_ms["compile"] = None if prepared.compile_s is None else prepared.compile_s * 1e3
    m.compile_cached = compile_cached(backend.compiles, prepared.compile_s)
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
        cr.prepared[backend.name] = prepare(backend, cr.built.path, cr.env.workdir, cr.io)
    return cr.prepared[backend.name]


def prepare(backend: Backend, path: Path, workdir: Path, io: Any) -> Prepared:
    """The backend's prepared copy of a saved model, told the model's input dtypes and
    states (from its description `io`): every prepare of the runner goes through here."""
    p = backend.prepare(path, workdir)
    p.input_dtypes = {t.name: t.dtype for t in io.inputs}
    p.states = tuple(t.name for t in io.states)
    return p


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
    if not cr.case.run.dispatch_floor or any(m.interrupted for m in cr.measurements):
        return  # not asked for, or the run was stopped (Ctrl-C): store what there is
    for m in cr.live:
        m.dispatch_floor_ms = _floor(cr, m)


def _floor(cr: CaseRun, m: Measurement) -> float | None:
    """Median latency of a tiny model on the same backend and compute units, timed once
    per run and kind of tiny model (m.dispatch_floor_after: the case it was timed after,
    which the summary names)."""
    from anemll_spec.build import build as build_model
    from anemll_spec.model_io import describe, synth_inputs

    v, env = m.variant, cr.env
    tiny = tiny_model(cr.case.model)
    key = (v.backend, v.compute_units, m.device, tiny.dtype, tiny.precision, tiny.deployment_target)
    if key in env.floors:
        floor, m.dispatch_floor_after = env.floors[key]
        return floor
    env.progress.phase("dispatch floor", v.label)
    floor = None
    try:
        built = build_model(tiny, cache_dir=env.cache_dir)
        io = describe(built.path)
        backend = env.backend(v.backend)
        prepared = prepare(backend, built.path, env.workdir / "floor", io)
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
    env.floors[key] = (floor, cr.case.index)
    m.dispatch_floor_after = cr.case.index
    return floor
