"""Test doubles for power readers (no counters: nothing here pretends to measure energy)."""

from __future__ import annotations

import time


class ClockReader:
    """A power reader that only records when it was started and stopped (perf_counter_ns,
    one clock for every process on the machine), so a test can check which phase a
    reading covered against the samples' own start times."""

    method = "clock"

    def start(self) -> None:
        self.t0 = time.perf_counter_ns()

    def stop(self, *, timed_only: bool = True):
        self.t1 = time.perf_counter_ns()
        return ("read", timed_only)
