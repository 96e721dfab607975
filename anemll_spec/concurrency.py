"""N model instances timed at once: in threads where that runs them at once, else in
processes.

Why processes: coremltools 9.0 binds `predict` without releasing the GIL (no
gil_scoped_release anywhere in coremlpython/), so Core ML instances in threads of one
process run one prediction at a time: throughput cannot exceed serial, and a thread's
timed call can include another thread's whole prediction. Each instance here is a
spawned process that loads its own model, warms up, waits at a shared start barrier,
times its calls with the harness's Timer until one instance meets its stop rule (a flag
in shared memory, read before every call, then stops the others after their call in
flight; one released after that makes no call), and sends its samples back over a pipe.
Start times come from perf_counter_ns, a system-wide monotonic clock (CLOCK_MONOTONIC on
Linux, mach_absolute_time on macOS), so instances' samples pool and their wall time
(the first call's start to the last call's end) spans processes.

Shared or distinct instances (issue 18 item 5): `shared` gives every instance the same
prepared model (for Core ML: the same compiled .mlmodelc, each process loading it);
`distinct` gives each its own weights (plan_instances: seed + k), so each is a separate
package, compiled separately, and nothing weight-bearing can be shared between them.
What Core ML shares between processes that load the same compiled model is not
documented (docs/coreml.md).
"""

from __future__ import annotations

import contextlib
import multiprocessing
import multiprocessing.connection
import os
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from anemll_spec.backends.base import Options, Prepared
from anemll_spec.gate import Gate
from anemll_spec.harness import Budget, Concurrent, calls_wall_s, time_concurrent
from anemll_spec.instance import (
    _abort,
    _backend,
    _child_env,
    _instance_main,
    _Job,
    _sigint_blocked,
)
from anemll_spec.power.base import guard

Instances = Literal["shared", "distinct"]
Mode = Literal["threads", "processes"]
Progress = Callable[[int, float, float], None]  # (calls, median ms, timed seconds)

# Where N instances of a backend scale better: threads of one process, or processes.
# Core ML: processes (the binding holds the GIL). numpy, torch on CPU: processes, each
# with cpus // N math-library threads; torch on CUDA: threads (one GPU; processes
# time-slice it). Measured by benchmarks/concurrency_scaling.py on a 16-core host
# (docs/coreml.md has the figures).
THREADS_RUN_AT_ONCE: dict[tuple[str, str | None], bool] = {
    ("coreml", None): False,
    ("numpy", None): False,
    ("torch", "cpu"): False,
    ("torch", "cuda"): True,
}


# What one instance may spend loading its model before its warm-up: a Core ML load
# (compiling for the device) takes minutes for a large model.
LOAD_ALLOWANCE_S = 900.0


def start_limit_s(budget: Budget, n_instances: int = 1) -> float:
    """How long the instances may take to be loaded and warm, all of them: the load
    allowance of each (they load at once, but nothing says Core ML compiles them side by
    side rather than one after another: 8 slow loads must not read as a hang) plus the
    warm-up's own budget (Timer.warm stops warming up at max_time_s, the spec's warmup_s
    never exceeds it), so a long warm-up the spec asks for is never cut short as if an
    instance had hung. An instance that dies is seen at once (_gates_watched)."""
    return LOAD_ALLOWANCE_S * max(1, n_instances) + budget.max_time_s


# How long instances may take to end once told to (their call in flight, sending their
# samples) before they are sent SIGTERM; and after it, before SIGKILL.
REAP_GRACE_S = 10.0
TERM_GRACE_S = 2.0


class ConcurrencyError(RuntimeError):
    """An instance failed to load, warm up or time (its message names which and why)."""


def default_mode(backend: str, device: str | None = None) -> Mode:
    """threads or processes for N instances of `backend` on `device` (torch: the
    resolved device, 'cuda' or 'cpu'; a device kind such as 'cuda:1' counts as 'cuda')."""
    kind = device.split(":")[0] if device else None
    if backend != "torch":
        kind = None
    return "threads" if THREADS_RUN_AT_ONCE.get((backend, kind), False) else "processes"


def default_threads(backend: str, n_instances: int, cpus: int | None = None) -> int | None:
    """Math-library threads per instance process: the CPUs split between the instances
    for the CPU backends (N processes each with a pool as large as the machine spin
    against each other: 0.02-0.28x the throughput of one instance, docs/coreml.md); None
    for Core ML, whose work is not on these pools."""
    if backend == "coreml":
        return None
    return max(1, (cpus or os.cpu_count() or 1) // max(1, n_instances))


@dataclass
class InstancesResult(Concurrent):
    """Concurrent, plus how the instances ran and what each spent loading its model."""

    mode: str = "processes"
    load_s: list[float] = field(default_factory=list)
    threads: int | None = None  # math-library threads per instance process (None: as is)


@contextlib.contextmanager
def _gates_watched(gates: tuple, procs: list) -> Iterator[None]:
    """While the parent waits at the gates, a thread breaks them as soon as an instance
    process ends (killed for memory, say): the parent and the other instances stop
    waiting then, not after the start limit (start_limit_s)."""
    passed = threading.Event()

    def watch() -> None:
        sentinels = [p.sentinel for p in procs]
        while not passed.is_set():
            if multiprocessing.connection.wait(sentinels, timeout=0.2) and not passed.is_set():
                _abort(gates)
                return

    watcher = threading.Thread(target=watch, daemon=True, name="instance-watcher")
    watcher.start()
    try:
        yield
    finally:
        passed.set()
        watcher.join()


def _instance_preps(
    prepared: Prepared | Sequence[Prepared], n_instances: int | None
) -> list[Prepared]:
    """One Prepared per instance: `prepared` shared by `n_instances` (default 1), or a list
    with one per instance (distinct models)."""
    preps = [prepared] * int(n_instances or 1) if isinstance(prepared, Prepared) else list(prepared)
    if not preps:
        raise ValueError("at least one instance")
    return preps


def time_processes(
    backend: str,
    prepared: Prepared | Sequence[Prepared],
    options: Options,
    inputs: dict[str, Any],
    budget: Budget,
    *,
    n_instances: int | None = None,
    on_progress: Progress | None = None,
    reader: Any = None,
    start_timeout_s: float | None = None,
    threads: int | None | Literal["auto"] = "auto",
) -> InstancesResult:
    """Time instances at once, each in its own spawned process.

    prepared: one Prepared shared by `n_instances` processes, or one per instance (distinct
    models); options: the backend's load options; inputs: the host inputs (each instance
    converts them with its own feed()); reader: a power reader started once every
    instance is loaded and warm, just before they are released together, and stopped
    when the last one finishes; start_timeout_s: how long all may take to be loaded and
    warm (None: start_limit_s(budget)); past it they stop at once, and ConcurrencyError
    says so; threads: math-library threads per process ("auto": default_threads; None:
    the libraries' own default). Raises ConcurrencyError naming the instance that failed."""
    preps = _instance_preps(prepared, n_instances)
    n = len(preps)
    if start_timeout_s is None:
        start_timeout_s = start_limit_s(budget, n)
    reader = guard(reader) if reader is not None else None
    if threads == "auto":
        threads = default_threads(backend, n)
    from anemll_spec import lean_coremltools

    ctx = multiprocessing.get_context("spawn")
    # the instances and this process: all warm at `ready`; the reader starts; `go` releases
    gates = (Gate(ctx, n + 1), Gate(ctx, n + 1))  # never a Barrier: see gate.py
    ended = ctx.RawValue("b", 0)  # read after each call: no lock (one writer value, 0 -> 1)
    conns, procs = [], []
    energy = None
    try:
        for k, p in enumerate(preps):
            job = _Job(
                backend, p, options, dict(inputs), budget,
                progress=(k == 0 and on_progress is not None), start_timeout_s=start_timeout_s,
                lean=lean_coremltools.wanted(),
            )  # fmt: skip
            recv, send = ctx.Pipe(duplex=False)
            proc = ctx.Process(
                target=_instance_main, args=(k, send, gates, ended, job), name=f"instance-{k}"
            )
            with _child_env(threads), _sigint_blocked():
                proc.start()
                send.close()  # the child holds its end; EOF here once it exits
                conns.append(recv)
                procs.append(proc)  # a Ctrl-C held off comes once it is there to end
        with _gates_watched(gates, procs), contextlib.suppress(Exception):
            # broken: an instance failed (or died: the watcher broke them); _collect says which
            try:
                gates[0].wait(start_timeout_s)
            except BaseException:  # past the limit too: those still warming up stop now
                ended.value = 1
                _abort(gates)
                raise
            if reader is not None:
                reader.start()
            gates[1].wait(start_timeout_s)
        done = _collect(conns, procs, gates, on_progress, ended, start_timeout_s)
        if reader is not None:
            energy = reader.stop(timed_only=True)
    except BaseException:  # Ctrl-C or a failure here: nobody waits for the instances' end
        ended.value = 1  # they stop after their call in flight, SIGTERM ignored or not
        _abort(gates)
        for proc in procs:
            if proc.is_alive():
                proc.terminate()
        raise
    finally:
        if reader is not None:  # a reading an instance's failure left running
            reader.close()
        for c in conns:  # first: an instance still sending its samples ends quietly
            c.close()
        _reap(procs)
    timings = [done[k][0] for k in range(n)]
    return InstancesResult(
        timings,
        calls_wall_s(timings),
        mode="processes",
        load_s=[done[k][1] for k in range(n)],
        energy=energy,
        threads=threads,
    )


def _reap(procs: list) -> None:
    """Every instance process ended, within a bounded time: REAP_GRACE_S (all together)
    to end on its own, then SIGTERM, then SIGKILL (for one that ignores SIGTERM, or one
    stopped by SIGSTOP, where SIGTERM stays pending). None is left for multiprocessing's
    exit handler, which joins every non-daemon child without a limit."""
    grace_s = REAP_GRACE_S
    for end in (lambda p: p.terminate(), lambda p: p.kill(), None):  # SIGTERM, SIGKILL
        deadline = time.monotonic() + grace_s
        for proc in procs:
            proc.join(timeout=max(0.0, deadline - time.monotonic()))
        alive = [p for p in procs if p.is_alive()]
        if not alive or end is None:
            return
        for proc in alive:
            end(proc)
        grace_s = TERM_GRACE_S


def _collect(conns, procs, gates, on_progress, ended=None, limit_s=None) -> dict[int, tuple]:
    """Every instance's ("done", ...) message; ConcurrencyError on any failure. An
    instance that fails or dies stops the others (the gates broken, `ended` set: they
    stop at their next call, not after their whole budget), whose results then come."""
    done: dict[int, tuple] = {}
    errors: list[tuple[int, str]] = []  # in instance order when raised: the same each time
    open_ = set(range(len(conns)))
    while open_:
        multiprocessing.connection.wait(
            [conns[k] for k in open_] + [procs[k].sentinel for k in open_], timeout=1.0
        )
        for k in sorted(open_):
            msg = _next_message(conns[k], on_progress)
            if msg is None:
                if procs[k].is_alive():
                    continue
                msg = ("eof",)  # exited, and nothing left in its pipe
            open_.discard(k)
            if msg[0] == "done":
                done[k] = msg[1:]
                continue
            if msg[0] == "error":
                errors.append((k, f"instance {k}: {msg[1]}"))
            elif msg[0] == "eof":
                procs[k].join(timeout=5)
                errors.append(
                    (k, f"instance {k} exited (code {procs[k].exitcode}) without a result")
                )
            _abort(gates)
            if ended is not None:
                ended.value = 1
    if not errors and len(done) < len(conns):
        within = "in time" if limit_s is None else f"within {limit_s:g} s"
        late = f"not every instance was loaded and warm {within} (load + warm-up allowance)"
        errors.append((len(conns), late))
    if errors:
        raise ConcurrencyError("; ".join(text for _, text in sorted(errors)))
    return done


def _next_message(conn, on_progress) -> tuple | None:
    """The next final message of one instance (progress is handed on); None: none yet."""
    try:
        while conn.poll():
            msg = conn.recv()
            if msg[0] != "progress":
                return msg
            if on_progress is not None:
                on_progress(msg[1], msg[2], msg[3])
    except EOFError:
        return ("eof",)
    return None


def time_threads(
    backend: str,
    prepared: Prepared | Sequence[Prepared],
    options: Options,
    inputs: dict[str, Any],
    budget: Budget,
    *,
    n_instances: int | None = None,
    on_progress: Progress | None = None,
    reader: Any = None,
) -> InstancesResult:
    """Time instances at once in threads of this process (harness.time_concurrent):
    only for backends whose predict releases the GIL."""
    preps = _instance_preps(prepared, n_instances)
    sessions, fns, load_s = [], [], []
    loader = _backend(backend)
    try:
        for p in preps:
            t0 = time.perf_counter()
            s = loader.load(p, options)
            load_s.append(time.perf_counter() - t0)
            sessions.append(s)
            fns.append(s.bind(s.feed(inputs), s.new_state()))
        probes = [s.runtime_probe for s in sessions]  # as each instance's own, in processes
        res = time_concurrent(fns, budget, on_progress=on_progress, reader=reader, afters=probes)
    finally:
        fns.clear()
        for s in sessions:
            s.close()
    return InstancesResult(
        res.per_instance, res.wall_s, mode="threads", load_s=load_s, energy=res.energy
    )


def time_instances(
    backend: str,
    prepared: Prepared | Sequence[Prepared],
    options: Options,
    inputs: dict[str, Any],
    budget: Budget,
    *,
    n_instances: int | None = None,
    mode: Mode | None = None,
    device: str | None = None,
    on_progress: Progress | None = None,
    reader: Any = None,
) -> InstancesResult:
    """Time instances at once, in threads or processes as default_mode(backend, device)
    says (measured: where N instances gave more throughput). `mode` overrides; `device`:
    torch's resolved device."""
    how = mode or default_mode(backend, device)
    if how == "threads":
        run = time_threads
    elif how == "processes":
        run = time_processes
    else:
        raise ValueError(f"mode must be 'threads' or 'processes', not {how!r}")
    return run(
        backend, prepared, options, inputs, budget,
        n_instances=n_instances, on_progress=on_progress, reader=reader,
    )  # fmt: skip


__all__ = [
    "ConcurrencyError",
    "InstancesResult",
    "default_mode",
    "default_threads",
    "time_instances",
    "time_processes",
    "time_threads",
]
