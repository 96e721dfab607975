"""A start gate for instance processes that no dead process can hang.

multiprocessing's Barrier is a threading.Barrier over a multiprocessing Condition, whose
notify wakes each sleeper and then waits, unbounded, for each to say it woke. A process
ended while asleep at the barrier (Ctrl-C at a terminal reaches every instance; a crash;
the OOM killer) never says so, and whoever then breaks the barrier waits forever: bench
hung after Ctrl-C. Here waiting is a semaphore, and opening or breaking the gate releases
it once per party, acknowledged by no one.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

POLL_S = 0.25  # how often a waiter with a give_up rule asks it

BrokenGate = threading.BrokenBarrierError  # what a Barrier raises: callers catch either


class Gate:
    """`parties` processes wait until all have come (`wait`), or until one breaks the gate
    (`abort`: every waiter, now and later, raises BrokenGate); a wait that times out breaks
    it too, as a Barrier's does. Created in the parent, handed to spawned processes."""

    def __init__(self, ctx: Any, parties: int):
        self.parties = parties
        self._count = ctx.Value("i", 0)  # arrivals, under the value's own lock
        self._open = ctx.Semaphore(0)
        self._state = ctx.RawValue("b", 0)  # 0 closed, 1 open, -1 broken

    @property
    def broken(self) -> bool:
        return self._state.value < 0

    def wait(self, timeout: float | None = None, give_up: Callable[[], bool] | None = None) -> None:
        """Wait for every party. give_up: asked every POLL_S while waiting; True breaks the
        gate (an instance whose parent died: nobody else will come, and waiting out the
        start limit, 15 minutes and more, left it holding the model and the terminal's stderr)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        lock = self._count.get_lock()
        if not lock.acquire(timeout=timeout):
            self.abort()
            raise BrokenGate
        try:
            self._count.value += 1
            last = self._count.value == self.parties
            if last and self._state.value == 0:  # opened under the lock abort takes too
                self._state.value = 1
        finally:
            lock.release()
        if self.broken:
            raise BrokenGate
        if last:
            for _ in range(self.parties - 1):
                self._open.release()
            return
        while True:
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            last_try = give_up is None or (left is not None and left <= POLL_S)
            if self._open.acquire(timeout=left if last_try else POLL_S):
                break
            if last_try or (give_up is not None and give_up()):
                self.abort()
                raise BrokenGate
        if self.broken:
            raise BrokenGate

    def abort(self) -> None:
        """Break the gate: wake every waiter (each release is taken by at most one). The
        lock is waited for a second at most: one who died holding it blocks no one."""
        lock = self._count.get_lock()
        held = lock.acquire(timeout=1.0)
        try:
            self._state.value = -1
        finally:
            if held:
                lock.release()
        for _ in range(self.parties):
            self._open.release()
