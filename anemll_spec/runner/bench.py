"""`bench`: spec -> cases -> stages -> store, one case at a time.

Each finished case variant is appended to the store at once (through store.fallback's
BenchStore: a shared store that becomes unreachable moves the run to the local store and
says how to push it later). A variant that fails is recorded as failed with its error and
the run goes on; Ctrl-C keeps what finished and marks the run 'interrupted'.
"""

from __future__ import annotations

import shutil
import sys
import tempfile
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import TYPE_CHECKING

from anemll_spec.errors import InputError
from anemll_spec.interrupts import deferred
from anemll_spec.progress import Progress
from anemll_spec.runner import case as case_mod
from anemll_spec.runner import plan, record, stages
from anemll_spec.runner.measurement import Measurement
from anemll_spec.text import sig, with_ci

if TYPE_CHECKING:
    from anemll_spec.build.records import Estimate


@dataclass
class BenchResult:
    run_id: str | None
    status: str  # finished | failed | interrupted
    store: str  # where the run is (a shared store's password redacted)
    spec: str
    host: dict
    results: list[Measurement]
    notes: list[str]
    store_message: str | None = None  # e.g. how to push a run that fell back to local
    target: str = ""  # the store to read the run back from (never printed: may hold a password)

    @property
    def failed(self) -> bool:
        return any(m.status == "failed" for m in self.results)

    def to_json(self) -> dict:
        return {
            "run_id": self.run_id,
            "status": self.status,
            "store": self.store,
            "store_message": self.store_message,
            "spec": self.spec,
            "host": self.host,
            "notes": self.notes,
            "results": [m.to_json() for m in self.results],
        }


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
        self.cases, notes = plan.plan_cases(plan.override_backend(cases, backend))
        self.notes = self.spec.notes + notes  # sweep points measured once, then the plan's
        self.target = default_target(store)
        self.progress = progress or Progress()
        self.output_lost = False  # the run stopped because its progress had no reader
        self.cache_dir = cache_dir
        # runs.command: what the CLI was given (it passes it), else the Python command line
        # that really ran (a script, `python -c ...`), never an anemll-spec never run
        self.command = command or _command_text(sys.orig_argv) or None  # None: embedded
        # at construction, so `bench a.yaml b.yaml` refuses b's bad input before a runs
        self._preflight()

    def run(self) -> BenchResult:
        from anemll_spec.store.connection import StoreLocked  # duckdb: only when running
        from anemll_spec.store.fallback import BenchStore

        host = self._host()
        store = BenchStore(self.target, note=self.progress.note)
        run_id = store.begin_run(self.target, self._run_row(host), self._host_row(host))
        for n in dict.fromkeys(self.notes + [n for p in self.cases for n in p.notes]):
            self.progress.note(n)  # what the summary repeats per result, said up front too
        workdir = Path(tempfile.mkdtemp(prefix="anemll-spec-"))
        env = stages.Env(self.progress, workdir, self.cache_dir, self.spec.name)
        results: list[Measurement] = []
        status = "finished"
        self.progress.begin([plan.time_bound_s(p.case, len(p.variants)) for p in self.cases])
        try:
            for i, p in enumerate(self.cases):
                if i and p.case.run.cooldown_s:
                    self.progress.phase("cooldown", f"{p.case.run.cooldown_s:g} s")
                    time.sleep(p.case.run.cooldown_s)
                if self.progress.lost:  # no one reads what it says: stop as Ctrl-C does
                    self.output_lost = True
                    raise KeyboardInterrupt
                self.progress.case(i + 1, len(self.cases), p.case.model_name)
                measured = case_mod.run_case(env, p.case, p.variants, p.notes)
                stop = any(m.interrupted for m in measured)
                with deferred(self._storing):  # a case cut mid-write would be lost
                    self._store(store, run_id, p, measured, stop, results)
                if stop:
                    raise KeyboardInterrupt  # what was finished is stored: stop here
        except KeyboardInterrupt:
            status = "interrupted"
            self.progress.note("interrupted: finished cases are kept; run marked 'interrupted'")
        except StoreLocked:
            status = "locked"  # finishing the run would wait for the lock all over again
            raise
        except BaseException:
            status = "failed"  # close the run, then report
            raise
        finally:
            self.progress.close()
            shutil.rmtree(workdir, ignore_errors=True)
            if status not in ("interrupted", "locked") and any(
                m.status == "failed" for m in results
            ):
                status = "failed"
            if status != "locked":
                store.finish_run(self.target, run_id, status)
        where = store.local if store.fell_back else self.target
        record.add_factors(where, results, run_id)
        return BenchResult(
            run_id, status, store.where, str(self.spec.path), host, results, self.notes,
            store.message, where,
        )  # fmt: skip

    def _store(self, store, run_id: str, p, measured: list, stop: bool, results: list) -> None:
        """Every finished variant of a case into the store, each as it is written."""
        from anemll_spec.store.connection import StoreLocked

        for m in measured:
            if stop and m.status == "ok" and m.summary is None:
                continue  # its turn never came, or Ctrl-C came first: nothing kept
            try:
                m.case_id = record.store_measurement(store, self.target, run_id, m)
            except StoreLocked as exc:  # what is lost, and what the store holds
                raise StoreLocked(
                    f"{exc}. The case just measured ({p.case.model_name} on "
                    f"{m.variant.label}) is not stored, nor is anything after it; "
                    f"run {run_id} stays 'running' there until the next bench "
                    "marks it interrupted"
                ) from None
            results.append(m)
            self.progress.note(_one_line(m))

    def _storing(self) -> None:
        """What a first Ctrl-C during a case's write is told: it ends, then the run."""
        self.progress.note("Ctrl-C: storing the variants just measured, then stopping")

    def _preflight(self) -> None:
        """Every case's build and backend checks before any run begins: bad input (a model
        too big for this machine, a cache folder that is a file, cannot be written or lacks
        the disk the build needs, an external model's unknown inputs, a deployment target
        this macOS cannot run) stops here with exit 2 and nothing stored, not as failed
        cases."""
        from anemll_spec import backends
        from anemll_spec.build import preflight, preflight_disk
        from anemll_spec.hashing import digest

        seen: set[str] = set()
        devices: set[str] = set()
        # build key -> the estimate of a model to be built, for the disk they need (and
        # bench's check of several specs' builds together: preflight_together); and the
        # bytes of the compiled copies Core ML will write into the cache
        self.builds: dict[str, Estimate] = {}
        self.compiles: dict[str, int] = {}
        for p in self.cases:
            try:
                for v in p.variants:
                    backends.check_runs(v.backend, p.case.model, what=p.case.model_name)
                    if v.backend == "torch":
                        devices.add(p.case.run.device)
                coreml = any(v.backend == "coreml" for v in p.variants)
                for model in _models_built(p.case):
                    key = digest(model.build_key_fields())
                    if key not in seen:
                        seen.add(key)
                        est = preflight(model, self.cache_dir)
                        if est is not None:
                            self.builds[key] = est
                    if coreml and key not in self.compiles:
                        self.compiles[key] = _compile_need(model, self.builds.get(key), self)
            except InputError as exc:  # which spec and case, when bench runs several
                where = self.spec.refused_at(p.case, str(exc))
                raise InputError(f"{where}: {p.case.model_name}: {exc}") from None
        try:
            sizes = self.compiles.values()
            preflight_disk(
                list(self.builds.values()), self.cache_dir, sum(sizes), max(sizes, default=0)
            )
        except InputError as exc:
            raise InputError(f"{self.spec.path}: {exc}") from None
        if devices:  # a torch device this machine lacks (cuda without CUDA)
            from anemll_spec.executor.torch_host import resolve_device

            for device in sorted(devices):
                try:
                    resolve_device(device)
                except InputError as exc:
                    raise InputError(f"{self.spec.path}: run.device: {exc}") from None

    def _host(self) -> dict:
        """Host facts (host.capture), and the GPU's and torch's where a case runs on torch
        (collected by the torch backend: host.capture must never import torch)."""
        from anemll_spec import host as host_mod

        info = host_mod.capture()
        devices = {
            p.case.run.device for p in self.cases for v in p.variants if v.backend == "torch"
        }
        if devices:
            from anemll_spec.backends.torch_ import torch_info

            try:
                found = torch_info(facts_device(devices))
            except Exception as exc:  # provenance, not a reason to fail the run
                self.notes.append(f"torch host info unavailable: {stages.err(exc)}")
            else:
                info.update({k: v for k, v in found.items() if v is not None})
        return info

    def _host_row(self, info: dict) -> dict:
        from anemll_spec.store import schema
        from anemll_spec.store.rowsource import row_from

        return row_from(schema.HOSTS, info, managed=("host_id",))

    def _run_row(self, info: dict) -> dict:
        from anemll_spec.store import schema
        from anemll_spec.store.rowsource import row_from
        from anemll_spec.store.writer import RUN_MANAGED

        spec = SimpleNamespace(
            spec_name=self.spec.name,
            spec_sha256=self.spec.sha256,
            spec_yaml=self.spec.text,
            command=self.command,
        )
        # the checkout's provenance (tool version, commit, dirty) comes with the host facts
        return row_from(schema.RUNS, spec, info, managed=RUN_MANAGED)


def preflight_together(runners: list[Runner]) -> None:
    """The specs of one bench share the build cache: room on its disk for all their
    builds at once (each spec's own were checked as it was read), so `bench a.yaml
    b.yaml` whose specs fit one by one but not together stops before a, not mid-b."""
    from anemll_spec.build import preflight_disk

    if len(runners) < 2:
        return
    builds = {k: e for r in runners for k, e in r.builds.items()}  # a model shared: once
    compiles = {k: n for r in runners for k, n in r.compiles.items()}
    try:
        sizes = compiles.values()
        preflight_disk(
            list(builds.values()), runners[0].cache_dir, sum(sizes), max(sizes, default=0)
        )
    except InputError as exc:
        specs = ", ".join(str(r.spec.path) for r in runners)
        raise InputError(f"{specs} together: {exc}") from None


def _compile_need(model, est: Estimate | None, runner: Runner) -> int:
    """Bytes of the compiled copy Core ML writes into the cache for `model`
    (coreml_compile.compile_need): none for an external model (compiled into the run's
    folder); a model to be built counts its estimated package."""
    from anemll_spec.backends.coreml_compile import compile_need
    from anemll_spec.build import cache_folder, cache_key
    from anemll_spec.build.checks import kept_bytes
    from anemll_spec.spec.families import External

    if isinstance(model, External):
        return 0
    size = kept_bytes(est) if est is not None else None
    return compile_need(cache_folder(runner.cache_dir), cache_key(model), size)


def _models_built(case) -> list:
    """The models a case builds: its own, and with `instances: distinct` each instance's
    (seeds +1..+N-1, plan_instances), built when its instances are timed."""
    run = case.run
    if run.concurrency > 1 and not run.duration_s and run.instances == "distinct":
        return plan.plan_instances(case.model, run.concurrency, run.instances).models
    return [case.model]


def _one_line(m: Measurement) -> str:
    label = m.variant.label
    if m.status != "ok" or m.summary is None:
        return f"  {label}: FAILED: {m.error}"
    s = m.summary
    median = with_ci(s.median_ms, s.ci_low_ms, s.ci_high_ms).replace(" [", " ms [", 1)
    text = f"  {label}: median {median} n={s.n}"
    if m.bandwidth_gbps:
        text += f", {sig(m.bandwidth_gbps)} GB/s"
    return text


def facts_device(devices: Iterable[str]) -> str:
    """The torch device whose facts a run's host row keeps: a GPU's where the run used one
    (a sweep over cpu and cuda asked the CPU and stored none of the GPU's), so cuda, then
    mps, then auto, then cpu."""
    return min(devices, key=("cuda", "mps", "auto", "cpu").index)


def _command_text(argv: list[str]) -> str:
    from anemll_spec.store.lake_target import command_text  # the store package: duckdb

    return command_text(argv)
