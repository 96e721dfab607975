"""A time limit for a block of Python code in the test's own process (SIGALRM), for tests
whose failure would otherwise be a hang (an endless loop neither ended nor refused)."""

from __future__ import annotations

import signal
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def deadline(seconds: float) -> Iterator[None]:
    """Raise TimeoutError in the block once it has run `seconds` (Python code only: a
    handler runs between bytecodes, so a long C call ends first)."""

    def expired(signum, frame):
        raise TimeoutError(f"still running after {seconds} s: neither ended nor refused")

    previous = signal.signal(signal.SIGALRM, expired)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
