"""One concurrent instance, the child side (concurrency.py spawns it): load its model,
warm up, wait at the gates with the others, time its calls, send the samples back. Kept
apart from the parent's side so that what runs in a spawned process, and the environment
and signal mask it is spawned with, are read in one place.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
import traceback
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from anemll_spec.backends.base import Options, Prepared
from anemll_spec.harness import Budget, Timer

# Thread-pool sizes of the math libraries, read when they load (at import, in the child).
THREAD_ENV = (
    "OMP_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "MKL_NUM_THREADS",
    "VECLIB_MAXIMUM_THREADS",
)


@contextlib.contextmanager
def _child_env(threads: int | None) -> Iterator[None]:
    """The environment a child is spawned with: thread-pool sizes set, then restored."""
    if threads is None:
        yield
        return
    saved = {k: os.environ.get(k) for k in THREAD_ENV}
    os.environ.update({k: str(threads) for k in THREAD_ENV})
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


@dataclass(frozen=True)
class _Job:
    backend: str
    prepared: Prepared
    options: Options  # the backend's load options (picklable)
    inputs: dict[str, Any]
    budget: Budget
    progress: bool
    start_timeout_s: float
    lean: bool = False  # import coremltools without torch, as the CLI that spawned us does
    # the spawning process (bench): once it is gone (SIGKILL), nobody comes to the gates.
    # Read in the parent: a child that asked getppid() itself, after a kill that came while
    # Python started, got init's pid and waited out start_timeout_s.
    parent_pid: int = field(default_factory=os.getpid)


def _backend(name: str):
    """A backend, its runtime imported: made before any load is timed."""
    from anemll_spec import backends

    return backends.get(name)


def instance_backend(job: _Job):
    """An instance's backend. Spawned, an instance runs no CLI main: the lean coremltools
    import (lean_coremltools: seconds of start-up where torch is installed) comes from
    the parent, in the job."""
    if job.lean:
        from anemll_spec import lean_coremltools

        lean_coremltools.install()
    return _backend(job.backend)


def _one_line(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}".strip().splitlines()[0]


def _send(conn, message: tuple) -> None:
    """A message to the parent, if it is still there: one killed (SIGTERM, SIGKILL) has
    closed its end, and the instance then ends quietly, never with a BrokenPipeError
    traceback of its own (a progress report that fails so stops the timing)."""
    with contextlib.suppress(OSError, ValueError):  # ValueError: this end closed
        conn.send(message)


def _instance_main(k: int, conn, gates: tuple, ended, job: _Job) -> None:
    """A spawned instance: load, warm, wait for all, time, send the samples back.

    gates: (ready, go), Gates (gate.py) of every instance and the parent: all are warm at
    `ready`; the parent starts the power reader between the two, so its reading covers
    the timed calls, not the loads and warm-ups. ended: a shared flag, set by the first
    instance to meet its stop rule (or to fail); the others stop at their next call."""
    session = None
    try:
        # Ctrl-C came blocked (spawned under _sigint_blocked): it lands here, handled
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
        backend = instance_backend(job)
        t0 = time.perf_counter()
        session = backend.load(job.prepared, job.options)
        load_s = time.perf_counter() - t0
        feed = session.feed(job.inputs)
        fn = session.bind(feed, session.new_state())
        report = (lambda i, med, s: conn.send(("progress", i, med, s))) if job.progress else None
        timer = Timer(
            fn, job.budget, after=session.runtime_probe, on_progress=report,
            halt=lambda: ended.value,
        )  # fmt: skip
        timer.warm()
    except BaseException as exc:
        _abort(gates)
        ended.value = 1  # the others stop warming up (Timer.warm asks `halt` too)
        _send(conn, ("error", _one_line(exc), traceback.format_exc()))
        return
    try:
        for gate in gates:
            gate.wait(job.start_timeout_s, give_up=lambda: os.getppid() != job.parent_pid)
    except BaseException:  # BrokenBarrierError (another instance failed, or the wait timed
        # out), or Ctrl-C at a terminal: a quiet end, never a traceback of this process
        _send(conn, ("aborted",))
        session.close()
        return
    try:
        try:
            timer.step()  # asks `ended` before every call: none once another stopped
        finally:
            ended.value = 1
        _send(conn, ("done", timer.result(), load_s))
    except BaseException as exc:  # a progress report to a parent that is gone ends here too
        _send(conn, ("error", _one_line(exc), traceback.format_exc()))
    finally:
        session.close()
        conn.close()


@contextlib.contextmanager
def _sigint_blocked() -> Iterator[None]:
    """SIGINT blocked while an instance is spawned: the child inherits the mask, so a
    Ctrl-C at a terminal that reaches it while Python starts and multiprocessing's
    bootstrap unpickles its job (no handler of ours yet: a KeyboardInterrupt traceback
    from spawn.py per instance) waits until _instance_main unblocks it inside its
    handler. Here, it comes once the block ends. multiprocessing's resource tracker,
    started first if it is not running, unblocks SIGINT as it starts: it is not left to
    do that inside the block."""
    from multiprocessing import resource_tracker

    resource_tracker.ensure_running()
    old = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)


def _abort(gates: tuple) -> None:
    """Break every gate: no instance (nor the parent) waits for one that failed."""
    for gate in gates:
        gate.abort()
