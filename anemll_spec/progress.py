"""Progress on stderr: one live status line on a TTY, plain lines otherwise.

Live: `[2/6] lm_head[vocab_size=32000] numpy  timing  212 it  median 3.412 ms`, rewritten
in place. Plain (CI logs, pipes): one line per phase change, no per-sample noise.
"""

from __future__ import annotations

import sys
import time
from typing import TextIO


class Progress:
    def __init__(self, stream: TextIO | None = None, *, live: bool | None = None):
        self.stream = stream or sys.stderr
        self.live = self.stream.isatty() if live is None else live
        self.prefix = ""
        self._status = ""
        self._last = 0.0

    def case(self, i: int, n: int, label: str) -> None:
        self.prefix = f"[{i}/{n}] {label}"
        self.phase("start")

    def phase(self, name: str, detail: str = "") -> None:
        text = f"{self.prefix}  {name}" + (f"  {detail}" if detail else "")
        if self.live:
            self._show(text)
        else:
            self._print(text)

    def samples(self, variant: str, n: int, median_ms: float) -> None:
        """Harness callback: only the live display shows it (at most 10 times a second)."""
        if not self.live:
            return
        now = time.monotonic()
        if now - self._last < 0.1:
            return
        self._last = now
        self._show(f"{self.prefix}  {variant}  timing  {n} it  median {median_ms:.3f} ms")

    def note(self, text: str) -> None:
        """A line that stays (results, warnings)."""
        self._print(text)

    def close(self) -> None:
        if self.live and self._status:
            self.stream.write("\r\033[K")
            self.stream.flush()
            self._status = ""

    def _show(self, text: str) -> None:
        self._status = text
        self.stream.write("\r\033[K" + text)
        self.stream.flush()

    def _print(self, text: str) -> None:
        if self.live and self._status:
            self.stream.write("\r\033[K")
        self.stream.write(text + "\n")
        if self.live and self._status:
            self.stream.write(self._status)
        self.stream.flush()
