"""`bench`: spec -> cases -> build -> backends -> timed runs -> store, one case at a time.

Each finished case variant is appended to the store at once (the store is opened per
write, never held across the benchmark). A variant that fails (load, predict, an
unsupported compute unit, a verify mismatch) is recorded as failed with its error and
the run goes on; Ctrl-C keeps what finished and marks the run 'interrupted'.
"""

from __future__ import annotations

import dataclasses
import shlex
import shutil
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from anemll_spec import backends, stats
from anemll_spec.backends.base import Prepared, Session
from anemll_spec.errors import InputError
from anemll_spec.harness import Budget, Timer, Timing, time_concurrent, time_interleaved, time_one
from anemll_spec.progress import Progress
from anemll_spec.spec import Case
from anemll_spec.spec.families import LmHead, ModelBase
from anemll_spec.verify import SELF_COMPARISON, Verdict, compare, skipped

FLOOR_BUDGET = Budget(warmup=10, warmup_s=0.0, iterations=200, min_iterations=10, max_time_s=1.0)
PUBLISHED_MODELS = ("llama_lm_head", "llama_lm_head_lut6")


@dataclass
class VariantResult:
    """One measured variant (backend x compute units) of one case."""

    case: Case
    backend: str
    compute_units: str | None
    device: str | None = None
    status: str = "ok"  # ok | failed | skipped
    error: str | None = None
    summary: stats.Summary | None = None
    timing: Timing | None = None
    samples: np.ndarray | None = None  # (n, 2): wall_ns, runtime_ns (NaN: unknown)
    placements: list[dict] = field(default_factory=list)
    verdict: Verdict | None = None
    phases_ms: dict[str, float | None] = field(default_factory=dict)
    build: Any = None
    throughput_ips: float | None = None
    dispatch_floor_ms: float | None = None
    runtime_median_ms: float | None = None
    notes: list[str] = field(default_factory=list)
    case_id: str | None = None
    published: dict | None = None

    @property
    def label(self) -> str:
        return self.backend + (f"/{self.compute_units}" if self.compute_units else "")

    @property
    def bandwidth_gbs(self) -> float | None:
        if self.summary is None or self.build is None:
            return None
        return stats.bandwidth_gbs(self.build.weight_bytes, self.summary.median_ms)

    @property
    def tflops(self) -> float | None:
        if self.summary is None or self.build is None:
            return None
        return stats.tflops(self.build.flops, self.summary.median_ms)

    def samples_or_empty(self) -> np.ndarray:
        return self.samples if self.samples is not None else np.zeros(0, dtype=np.int64)

    def fail(self, error: str) -> None:
        self.status = "failed"
        self.error = self.error or error

    def store_row(self) -> dict:
        """The `cases` row (store column names)."""
        c, s, v, b = self.case, self.summary, self.verdict, self.build
        row: dict[str, Any] = {
            "case_key": c.key,
            "case_index": c.index,
            "model_name": c.model_name,
            "params": c.params,
            "model_family": c.model.family,
            "model_sha256": getattr(b, "weights_sha256", None),
            "weight_bytes": getattr(b, "weight_bytes", None),
            "flops": getattr(b, "flops", None),
            "backend": self.backend,
            "device": self.device,
            "compute_units": self.compute_units,
            "concurrency": c.run.concurrency,
            "status": self.status,
            "error": self.error,
            "n_samples": 0 if self.samples is None else len(self.samples),
            "build_ms": self.phases_ms.get("build"),
            "build_cached": getattr(b, "cached", None),
            "compile_ms": self.phases_ms.get("compile"),
            "load_ms": self.phases_ms.get("load"),
            "first_predict_ms": self.phases_ms.get("first_predict"),
            "throughput_ips": self.throughput_ips,
            "dispatch_floor_ms": self.dispatch_floor_ms,
            "runtime_median_ms": self.runtime_median_ms,
            "variant_key": c.variant_key(self.backend, self.compute_units, self.device),
            "build_key": c.build_key,
        }
        if s is not None:
            row.update(s.case_columns(), bandwidth_gbps=self.bandwidth_gbs, tflops=self.tflops)
        if v is not None:  # the Verdict's fields, stored as verify_<field>
            row.update({f"verify_{k}": x for k, x in v.to_dict().items()})
        return row

    def to_json(self) -> dict:
        t = self.timing
        return {
            "case_id": self.case_id,
            "case_key": self.case.key,
            "case_index": self.case.index,
            "model_name": self.case.model_name,
            "params": self.case.params,
            "backend": self.backend,
            "compute_units": self.compute_units,
            "status": self.status,
            "error": self.error,
            "stats": self.summary.to_dict() if self.summary else None,
            "bandwidth_gbps": self.bandwidth_gbs,
            "tflops": self.tflops,
            "throughput_ips": self.throughput_ips,
            "dispatch_floor_ms": self.dispatch_floor_ms,
            "runtime_median_ms": self.runtime_median_ms,
            "phases_ms": self.phases_ms,
            "warmup": None if t is None else {"n": t.warmup_n, "s": t.warmup_s},
            "stop": None if t is None else t.stop,
            "verify": self.verdict.to_dict() if self.verdict else None,
            "placement_shares": _shares(self.placements),
            "published": self.published,
            "weight_bytes": getattr(self.build, "weight_bytes", None),
            "flops": getattr(self.build, "flops", None),
            "notes": self.notes,
        }


@dataclass
class BenchResult:
    run_id: str | None
    status: str  # finished | failed | interrupted
    store: str
    spec: str
    host: dict
    results: list[VariantResult]
    notes: list[str]

    @property
    def failed(self) -> bool:
        return any(r.status == "failed" for r in self.results)

    def to_json(self) -> dict:
        return {
            "run_id": self.run_id,
            "status": self.status,
            "store": self.store,
            "spec": self.spec,
            "host": self.host,
            "notes": self.notes,
            "results": [r.to_json() for r in self.results],
        }


# -- planning (no building) ----------------------------------------------------------
def override_backend(cases: list[Case], backend: str | None) -> list[Case]:
    """--backend replaces the spec's backends (so the case keys say what was measured)."""
    if not backend:
        return cases
    return [
        dataclasses.replace(c, run=c.run.model_copy(update={"backends": [backend]})) for c in cases
    ]


def check_backends(cases: list[Case], *, preview: bool = False) -> tuple[str | None, list[str]]:
    """Resolve `auto` once; refuse explicitly named backends that are not available
    (a `preview`, such as `plan`, notes them instead: it runs nothing)."""
    named = {b for c in cases for b in c.run.backends}
    notes: list[str] = []
    for name in sorted(named - {"auto"}):
        a = backends.availability(name)
        if not a.available:
            if not preview:
                raise InputError(f"backend {name} is not available here: {a.reason}")
            notes.append(f"backend {name} is not available here ({a.reason}): bench would refuse")
    auto = None
    if "auto" in named:
        auto, why = backends.resolve_auto()
        notes.append(f"backend {why}")
    return auto, notes


def resolve_variants(
    case: Case, auto: str | None
) -> tuple[list[tuple[str, str | None]], list[str]]:
    """(backend, compute units) to measure; compute units collapse where they don't apply."""
    out: list[tuple[str, str | None]] = []
    collapsed: dict[str, int] = {}
    for b, cu in case.variants():
        rb = auto if b == "auto" else b
        if rb not in backends.USES_COMPUTE_UNITS and cu is not None:
            collapsed[rb] = collapsed.get(rb, 0) + 1
            cu = None
        if (rb, cu) not in out:
            out.append((rb, cu))
    notes = [
        f"{b}: compute units do not apply; {n} compute-unit variants collapsed into one"
        for b, n in collapsed.items()
        if n > 1
    ]
    return out, notes


def tiny_model(like: ModelBase) -> LmHead:
    """The dispatch-floor model: one 64 -> 64 linear op in the case's dtype and target."""
    return LmHead(
        family="lm_head",
        hidden_size=64,
        vocab_size=64,
        chunks=1,
        layout="linear",
        dtype=like.dtype,
        compute_precision=like.precision,
        deployment_target=like.deployment_target,
    )


# -- the run ----------------------------------------------------------------------
class Runner:
    def __init__(
        self,
        spec_path: str | Path,
        *,
        backend: str | None = None,
        store: str | None = None,
        max_cases: int | None = None,
        progress: Progress | None = None,
        cache_dir: Path | None = None,
        command: str | None = None,
    ):
        from anemll_spec.spec import DEFAULT_MAX_CASES, load_cases
        from anemll_spec.store import default_target

        self.spec, cases = load_cases(spec_path, max_cases=max_cases or DEFAULT_MAX_CASES)
        self.cases = override_backend(cases, backend)
        self.auto, self.notes = check_backends(self.cases)
        self.target = default_target(store)
        self.progress = progress or Progress()
        self.cache_dir = cache_dir
        self.command = command or shlex.join(["anemll-spec", *sys.argv[1:]])
        self.floors: dict[tuple[str, str | None, str | None, str], float | None] = {}
        self._backends: dict[str, Any] = {}

    def _store(self, append_case: Callable, run_id: str, r: VariantResult) -> str:
        """Append one finished variant; a value the store refuses (say an infinite error)
        fails that case, with the reason, and never the rest of the run."""
        try:
            return append_case(
                self.target, run_id, r.store_row(), r.samples_or_empty(), r.placements
            )
        except InputError as exc:
            r.fail(f"could not be stored as measured: {exc}")
            r.summary = r.verdict = r.samples = None
            r.placements = []
            return append_case(self.target, run_id, r.store_row(), r.samples_or_empty(), [])

    def _accelerator_info(self) -> dict:
        """GPU name, driver, torch and CUDA versions when a case runs on torch.

        Kept out of host.capture(), which must never import torch."""
        devices = {c.run.device for c in self.cases for b, _ in c.variants() if b == "torch"}
        if not devices:
            return {}
        from anemll_spec.backends.torch_ import torch_info

        try:
            found = torch_info(sorted(devices)[0])
        except Exception as exc:  # host facts are provenance, not a reason to fail the run
            self.notes.append(f"torch host info unavailable: {_err(exc)}")
            return {}
        return {k: v for k, v in found.items() if v is not None}

    # ---- top level
    def run(self) -> BenchResult:
        from anemll_spec import host as host_mod
        from anemll_spec.store import append_case, begin_run, finish_run, schema

        self._preflight()
        info = host_mod.capture()
        info.update(self._accelerator_info())
        host_row = {k: info.get(k) for k in schema.HOSTS.names if k != "host_id"}
        run_row = {
            "spec_name": self.spec.name,
            "spec_sha256": self.spec.sha256,
            "spec_yaml": self.spec.text,
            "tool_version": info.get("tool_version"),
            "git_commit": info.get("git_commit"),
            "git_dirty": info.get("git_dirty"),
            "command": self.command,
        }
        run_id = begin_run(self.target, run_row, host_row)
        for n in self.notes:
            self.progress.note(n)
        results: list[VariantResult] = []
        status = "finished"
        workdir = Path(tempfile.mkdtemp(prefix="anemll-spec-"))
        try:
            for i, case in enumerate(self.cases):
                if i and case.run.cooldown_s:
                    self.progress.phase("cooldown", f"{case.run.cooldown_s:g} s")
                    time.sleep(case.run.cooldown_s)
                self.progress.case(i + 1, len(self.cases), case.model_name)
                for r in self._run_case_guarded(case, workdir):
                    r.case_id = self._store(append_case, run_id, r)
                    results.append(r)
                    self.progress.note(_one_line(r))
        except KeyboardInterrupt:
            status = "interrupted"
            self.progress.note("interrupted: finished cases are kept; run marked 'interrupted'")
        except BaseException:
            status = "failed"  # e.g. the store stayed locked: close the run, then report
            raise
        finally:
            self.progress.close()
            shutil.rmtree(workdir, ignore_errors=True)
            if status != "interrupted" and any(r.status == "failed" for r in results):
                status = "failed"
            finish_run(self.target, run_id, status)
        add_published(self.target, results, info)
        return BenchResult(
            run_id, status, str(self.target), str(self.spec.path), info, results, self.notes
        )

    # ---- one case
    def _run_case_guarded(self, case: Case, workdir: Path) -> list[VariantResult]:
        """run_case, with an unexpected error failing the case instead of the run."""
        try:
            return self.run_case(case, workdir)
        except KeyboardInterrupt:
            raise
        except Exception as exc:
            variants, _ = resolve_variants(case, self.auto)
            error = f"internal error: {_err(exc)}"
            return [VariantResult(case, b, cu, status="failed", error=error) for b, cu in variants]

    def run_case(self, case: Case, workdir: Path) -> list[VariantResult]:
        variants, notes = resolve_variants(case, self.auto)
        for n in notes:
            self.progress.note(n)
        results = [VariantResult(case, b, cu, notes=list(notes)) for b, cu in variants]
        try:
            built, io, inputs = self._build(case)
        except KeyboardInterrupt:
            raise
        except Exception as exc:
            for r in results:
                r.fail(f"build failed: {_err(exc)}")
            return results
        build_ms = 0.0 if built.cached else built.build_s * 1e3
        for r in results:
            r.build = built
            r.phases_ms["build"] = build_ms
        reference = self._reference(case, built, inputs, results)
        opened: list[tuple[VariantResult, list[Session], Any, Any]] = []
        prepared: dict[str, Prepared] = {}  # per backend: compile once per case
        try:
            for r in results:
                got = self._open(r, case, built, io, inputs, reference, workdir, prepared)
                if got is not None:
                    opened.append((r, *got))
            self._time(case, opened, inputs)
        finally:
            for _, sessions, _, _ in opened:
                for s in sessions:
                    s.close()
            for p in prepared.values():  # compiled copies can be GBs: drop them per case
                if p.path != p.source and workdir in p.path.parents:
                    shutil.rmtree(p.path.parent, ignore_errors=True)
        for r in results:
            if r.status == "ok" and case.run.dispatch_floor:
                r.dispatch_floor_ms = self._floor(r, case, workdir)
        return results

    def _build(self, case: Case):
        from anemll_spec.build import build
        from anemll_spec.model_io import describe, synth_inputs

        self.progress.phase("build")
        built = build(case.model, cache_dir=self.cache_dir, spec_name=self.spec.name)
        self.progress.phase("build", "cache hit" if built.cached else f"{built.build_s:.1f} s")
        io = describe(built.path)
        inputs = synth_inputs(
            io, seed=case.model.seed, int_ranges=getattr(case.model, "input_ranges", None)
        )
        return built, io, inputs

    def _reference(self, case, built, inputs, results) -> dict | None:
        """The reference executor's output from a fresh state, when some variant needs it."""
        for r in results:
            if not case.run.verify:
                r.verdict = skipped("verify is off in the spec (run.verify: false)")
            elif r.backend == "numpy":
                r.verdict = skipped(SELF_COMPARISON)
        if all(r.verdict is not None for r in results):
            return None
        from anemll_spec.executor import load

        self.progress.phase("reference")
        try:
            prog = load(built.path, fp16=case.run.fp16_reference)
            return prog.predict(inputs, prog.make_state() if prog.states else None)
        except KeyboardInterrupt:
            raise
        except Exception as exc:
            for r in results:
                if r.verdict is None:
                    r.verdict = skipped(f"the reference executor failed: {_err(exc)}")
            return None

    def _backend(self, name: str):
        if name not in self._backends:
            self._backends[name] = backends.get(name)
        return self._backends[name]

    def _prepared(self, backend, built, io, workdir: Path, cache: dict) -> Prepared:
        if backend.name not in cache:
            self.progress.phase("compile" if backend.uses_compute_units else "prepare")
            p = backend.prepare(built.path, workdir)
            p.input_dtypes = {t.name: t.dtype for t in io.inputs}
            p.states = tuple(t.name for t in io.states)
            cache[backend.name] = p
        return cache[backend.name]

    def _open(self, r: VariantResult, case, built, io, inputs, reference, workdir, cache):
        """Prepare, load (x concurrency), first prediction and verify; None if it failed."""
        sessions: list[Session] = []
        try:
            backend = self._backend(r.backend)
            prepared = self._prepared(backend, built, io, workdir, cache)
            r.phases_ms["compile"] = (
                None if prepared.compile_s is None else prepared.compile_s * 1e3
            )
            fp16 = case.run.fp16_reference
            self.progress.phase("load", r.label)
            for k in range(case.run.concurrency):
                t0 = time.perf_counter()
                sessions.append(
                    backend.load(prepared, r.compute_units, fp16=fp16, device=case.run.device)
                )
                if k == 0:
                    r.phases_ms["load"] = (time.perf_counter() - t0) * 1e3
                    r.device = getattr(sessions[0], "device", None)
            feed = sessions[0].feed(inputs)
            state = sessions[0].new_state()
            self.progress.phase("first predict", r.label)
            t0 = time.perf_counter_ns()
            first = sessions[0].predict(feed, state)
            r.phases_ms["first_predict"] = (time.perf_counter_ns() - t0) / 1e6
            # backend notes (e.g. why a CUDA graph fell back to eager) reach the results
            r.notes += [n for n in getattr(sessions[0], "notes", []) if n not in r.notes]
            compressed = case.model.compression != "none"
            if compressed and self._backend(r.backend).decodes_weights:
                r.notes.append(
                    f"{r.backend} decodes the compressed weights once, at load: each call "
                    "reads them dense, while GB/s counts the stored (compressed) bytes"
                )
            if r.verdict is None:
                r.verdict = compare(
                    first, reference, case.run.tolerance, vocab_chunk=_vocab_chunk(case)
                )
                if r.verdict.status == "fail":
                    r.fail(f"verify failed: {r.verdict.note}")
            try:
                r.placements = sessions[0].placements()
            except Exception as exc:  # a missing plan costs the placements, not the case
                r.notes.append(f"compute plan unavailable: {_err(exc)}")
            return sessions, feed, state
        except KeyboardInterrupt:
            for s in sessions:
                s.close()
            raise
        except Exception as exc:
            for s in sessions:
                s.close()
            r.fail(_err(exc))
            return None

    def _time(self, case: Case, opened: list, host_inputs: dict) -> None:
        budget = Budget.from_run(case.run)
        conc = case.run.concurrency
        if not opened:
            return
        if conc > 1:
            for r, sessions, feed, state in opened:
                self.progress.phase("timing", f"{r.label} x{conc} concurrent")
                fns = [sessions[0].bind(feed, state)]
                for s in sessions[1:]:  # from the host inputs: `feed` is session 0's tensors
                    fns.append(s.bind(s.feed(host_inputs), s.new_state()))
                try:
                    res = time_concurrent(fns, budget, on_progress=self._on_progress(r))
                except KeyboardInterrupt:
                    raise
                except Exception as exc:
                    r.fail(f"predict failed while timing: {_err(exc)}")
                    continue
                wall, starts = res.pooled()
                self._finish(r, res.per_instance[0], wall, starts, None)
                r.throughput_ips = res.throughput_per_s
                per = ", ".join(
                    f"{float(np.median(t.samples_ns)) / 1e6:.3f}" for t in res.per_instance
                )
                r.notes.append(
                    f"concurrency {conc}: {res.throughput_per_s:.1f} inferences/s aggregate; "
                    f"per-instance median ms: {per}; latency statistics pool all instances"
                )
            return
        timers = []
        for r, sessions, feed, state in opened:
            s = sessions[0]
            timers.append(
                Timer(
                    s.bind(feed, state),
                    budget,
                    after=s.runtime_probe,
                    on_progress=self._on_progress(r),
                )
            )
        if case.run.interleave and len(timers) > 1:
            self.progress.phase("timing", "interleaved: " + " ".join(r.label for r, *_ in opened))
            outcomes = time_interleaved(timers, block=1, isolate=True)
        else:
            outcomes = []
            for (r, *_), t in zip(opened, timers, strict=True):
                self.progress.phase("warmup", r.label)
                try:
                    t.warm()
                    self.progress.phase("timing", r.label)
                    t.step()
                    outcomes.append(t.result())
                except KeyboardInterrupt:
                    raise
                except Exception as exc:
                    outcomes.append(exc)
        for (r, *_), out in zip(opened, outcomes, strict=True):
            if isinstance(out, BaseException):
                r.fail(f"predict failed while timing: {_err(out)}")
                continue
            self._finish(r, out, out.samples_ns, out.starts_ns, out.runtime_ns)
            r.throughput_ips = 1e3 / r.summary.mean_ms if r.summary and r.summary.mean_ms else None

    def _finish(self, r: VariantResult, timing: Timing, wall, starts, runtime) -> None:
        r.timing = timing
        r.summary = stats.summarize(wall, starts, seed=0)
        rt = np.full(len(wall), np.nan)
        if runtime is not None:
            known = runtime >= 0
            rt[known] = runtime[known]
            if known.any():
                r.runtime_median_ms = float(np.median(runtime[known])) / 1e6
        r.samples = np.column_stack([np.asarray(wall, np.float64), rt])
        if r.summary.noisy:
            r.notes.append(f"noisy: CV {r.summary.cv:.1%} > {stats.NOISY_CV:.0%}")
        if r.summary.throttling:
            r.notes.append(
                f"throttling? last-decile median is {r.summary.drift_ratio:.2f}x the first"
            )

    def _preflight(self) -> None:
        """Every case's build checks before the run begins: bad input (a model too big
        for this machine, a cache path that is a file, an external model's unknown
        inputs) stops here with exit 2 and nothing stored, not as failed cases."""
        from anemll_spec.build import preflight

        seen: set[str] = set()
        for case in self.cases:
            if case.build_key not in seen:
                seen.add(case.build_key)
                preflight(case.model, self.cache_dir)

    def _on_progress(self, r: VariantResult) -> Callable[[int, float], None]:
        return lambda n, med: self.progress.samples(r.label, n, med)

    def _floor(self, r: VariantResult, case: Case, workdir: Path) -> float | None:
        """Median latency of a tiny model on the same backend and compute units."""
        tiny = tiny_model(case.model)
        what = (tiny.dtype, tiny.precision, tiny.deployment_target)
        key = (r.backend, r.compute_units, r.device, *what)  # all that makes the floor differ
        if key in self.floors:
            return self.floors[key]
        self.progress.phase("dispatch floor", r.label)
        from anemll_spec.build import build
        from anemll_spec.model_io import describe, synth_inputs

        floor = None
        try:
            built = build(tiny, cache_dir=self.cache_dir)
            io = describe(built.path)
            backend = self._backend(r.backend)
            prepared = backend.prepare(built.path, workdir / "floor")
            prepared.input_dtypes = {t.name: t.dtype for t in io.inputs}
            sess = backend.load(prepared, r.compute_units, device=case.run.device)
            try:
                feed = sess.feed(synth_inputs(io, seed=0))
                t = time_one(sess.bind(feed, sess.new_state()), FLOOR_BUDGET)
                floor = float(np.median(t.samples_ns)) / 1e6
            finally:
                sess.close()
        except KeyboardInterrupt:
            raise
        except Exception as exc:
            r.notes.append(f"dispatch floor not measured: {_err(exc)}")
        self.floors[key] = floor
        return floor


def _vocab_chunk(case: Case) -> int | None:
    m = case.model
    return m.vocab_size // m.chunks if isinstance(m, LmHead) else None


def _err(exc: BaseException) -> str:
    text = f"{type(exc).__name__}: {exc}".strip()
    if not isinstance(exc, InputError | backends.base.BackendError):
        tb = traceback.extract_tb(exc.__traceback__)
        if tb:
            f = tb[-1]
            text += f" (at {Path(f.filename).name}:{f.lineno})"
    return text


def _shares(placements: list[dict]) -> dict[str, float] | None:
    if not placements:
        return None
    from anemll_spec.backends.coreml import placement_shares

    return placement_shares(placements)


def _one_line(r: VariantResult) -> str:
    if r.status != "ok" or r.summary is None:
        return f"  {r.label}: FAILED: {r.error}"
    s = r.summary
    text = (
        f"  {r.label}: median {s.median_ms:.3f} ms [{s.ci_low_ms:.3f}, {s.ci_high_ms:.3f}] n={s.n}"
    )
    if r.bandwidth_gbs:
        text += f", {r.bandwidth_gbs:.2f} GB/s"
    return text


# -- published comparison ------------------------------------------------------------
def chip_name(chip: str | None) -> str | None:
    """'Apple M4 Max' -> 'M4 Max' (the published tables' names)."""
    if not chip:
        return None
    return chip.removeprefix("Apple ").strip()


def published_factor(
    model_name: str,
    bandwidth_gbs: float | None,
    median_ms: float | None,
    rows: list[tuple],
    chip: str | None,
) -> dict | None:
    """Speed of this result relative to a published one (>1: faster than published).

    llama_lm_head was published as GB/s (factor = ours / theirs), llama_lm_head_lut6 as
    ms (factor = theirs / ours). rows: (chip, metric, value, source) of that model,
    non-derived. Compared with the same chip where published, else the fastest one.
    """
    metric = "bandwidth_gbps" if model_name == "llama_lm_head" else "latency_ms"
    ours = bandwidth_gbs if metric == "bandwidth_gbps" else median_ms
    cands = [r for r in rows if r[1] == metric]
    if not ours or not cands:
        return None
    same = [r for r in cands if chip and r[0] == chip]
    if same:
        ref, which = same[0], "same chip"
    else:
        best = max if metric == "bandwidth_gbps" else min
        ref, which = best(cands, key=lambda r: r[2]), "fastest published"
    factor = ours / ref[2] if metric == "bandwidth_gbps" else ref[2] / ours
    return {
        "factor": factor,
        "chip": ref[0],
        "metric": metric,
        "published_value": ref[2],
        "source": ref[3],
        "basis": which,
        "text": f"{factor:.2f}x {ref[0]}, "
        + ("published" if which == "same chip" else "fastest published"),
    }


def add_published(target: str, results: list[VariantResult], host: dict) -> None:
    wanted = {r.case.model_name for r in results if r.status == "ok"} & set(PUBLISHED_MODELS)
    if not wanted:
        return
    try:
        from anemll_spec.store import open_store

        con = open_store(target, read_only=True)
        try:
            rows = con.execute(
                "SELECT model, chip, metric, value, source FROM reference "
                "WHERE NOT derived ORDER BY source, chip"
            ).fetchall()
        finally:
            con.close()
    except Exception:  # the comparison is a courtesy; never fail a run over it
        return
    chip = chip_name(host.get("chip"))
    for r in results:
        if r.status != "ok" or r.case.model_name not in wanted or r.summary is None:
            continue
        mine = [(c, m, v, s) for model, c, m, v, s in rows if model == r.case.model_name]
        r.published = published_factor(
            r.case.model_name, r.bandwidth_gbs, r.summary.median_ms, mine, chip
        )
