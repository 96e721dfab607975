"""Progress on stderr: one live status line on a TTY, plain lines otherwise.

Live: `[2/6] lm_head[vocab_size=32000] numpy  timing 212/300 it  median 3.412 ms
4.1/60 s  ETA case 2 s, run 1 min`, rewritten in place. Plain (CI logs, pipes): one line
per phase change, and the same status line at most every PLAIN_EVERY_S seconds, so a long
case is never minutes of silence.

ETAs: the case's remaining timed calls at the running median, capped by what is left of
max_time_s; the run's adds the cases still to come, each estimated by the average of the
cases so far (before any has finished: their time bound, an upper limit).
"""

from __future__ import annotations

import sys
import time
from typing import Any, TextIO

PLAIN_EVERY_S = 5.0
LIVE_EVERY_S = 0.1


def seconds(s: float, *, up: bool = False) -> str:
    """A duration for people: 42 s, 3 min, 1.5 h. `up`: rounded up, for a bound ("at
    most"), which rounded to the nearest read 131 s as "at most 2 min"."""
    import math

    s = max(s, 0)
    if s < 90:
        return f"{math.ceil(s) if up else round(s)} s"
    if s < 5400:
        return f"{math.ceil(s / 60) if up else round(s / 60)} min"
    return f"{math.ceil(s / 360) / 10 if up else round(s / 3600, 1):.1f} h"


class Progress:
    def __init__(self, stream: TextIO | None = None, *, live: bool | None = None):
        self.stream = stream or sys.stderr
        self.live = self.stream.isatty() if live is None else live
        self.prefix = ""
        self._status = ""
        self._last = 0.0
        self._bounds: list[float] = []  # per case: its time bound (s)
        self._started = time.monotonic()
        self._case_started = self._started
        self._done_s: list[float] = []  # durations of the finished cases
        self._index = 0
        self.lost = False  # the stream's reader has gone (`| head`): nothing more is shown

    # -- the run and its cases
    def begin(self, case_bounds_s: list[float]) -> None:
        """The run starts; each case's time bound, for the run's ETA."""
        self._bounds = list(case_bounds_s)
        self._started = time.monotonic()

    def case(self, i: int, n: int, label: str) -> None:
        now = time.monotonic()
        if self._index:
            self._done_s.append(now - self._case_started)
        self._index, self._case_started = i, now
        self.prefix = f"[{i}/{n}] {label}"
        self.phase("start")

    def phase(self, name: str, detail: str = "") -> None:
        text = f"{self.prefix}  {name}" + (f"  {detail}" if detail else "")
        if self.live:
            self._show(text)
        else:
            self._print(text)
            self._last = time.monotonic()

    # -- callbacks of the long phases
    def samples(self, variant: str, n: int, median_ms: float, elapsed_s: float, run: Any) -> None:
        """Harness callback: timed calls so far, their median, this variant's timed time."""
        if not self._due():
            return
        left = max(0.0, run.max_time_s - elapsed_s)
        case_eta = min(left, max(0, run.iterations - n) * median_ms / 1e3)
        text = (
            f"{self.prefix}  {variant}  timing {n}/{run.iterations} it  median {median_ms:.3f} ms"
            f"  {elapsed_s:.1f}/{run.max_time_s:g} s  ETA case {seconds(case_eta)}"
        )
        run_eta = self._run_eta(case_eta)
        if run_eta is not None:
            text += f", run {seconds(run_eta)}"
        self._tick(text)

    def window(self, variant: str, w: Any, n_windows: int) -> None:
        """Sustained runs: each window's median as it ends (always a line of its own)."""
        self._print(
            f"{self.prefix}  {variant}  window {w.index + 1}/{n_windows}  median {w.median_ms:.3f} ms"
            f"  {w.throughput_per_s:.1f}/s"
        )

    def build_step(self, message: str) -> None:
        """The builder's progress (weights drawn, k-means groups done, ETA)."""
        if self._due():
            self._tick(f"{self.prefix}  build  {message}")

    def note(self, text: str) -> None:
        """A line that stays (results, warnings)."""
        self._print(text)

    def close(self) -> None:
        if self.live and self._status:
            self._write("\r\033[K")
            self._status = ""

    # -- internals
    def _run_eta(self, case_eta: float) -> float | None:
        if not self._bounds or self._index == 0:
            return None
        rest = self._bounds[self._index :]
        if self._done_s:
            per_case = sum(self._done_s) / len(self._done_s)
            rest = [min(b, per_case) for b in rest]
        return case_eta + sum(rest)

    def _due(self) -> bool:
        now = time.monotonic()
        return now - self._last >= (LIVE_EVERY_S if self.live else PLAIN_EVERY_S)

    def _tick(self, text: str) -> None:
        self._last = time.monotonic()
        if self.live:
            self._show(text)
        else:
            self._print(text)

    def _show(self, text: str) -> None:
        self._status = text
        self._write("\r\033[K" + text)

    def _print(self, text: str) -> None:
        over = self.live and self._status
        self._write(("\r\033[K" if over else "") + text + "\n" + (self._status if over else ""))

    def _write(self, text: str) -> None:
        """Write and flush. A stream whose reader has gone (`bench ... 2>&1 | head`) is
        left alone from then on: the case in hand is measured and stored, and the runner,
        seeing `lost`, stops before the next (a failed write had failed the case)."""
        if self.lost:
            return
        try:
            self.stream.write(text)
            self.stream.flush()
        except (BrokenPipeError, ValueError):  # ValueError: the stream was closed
            self.lost = True
