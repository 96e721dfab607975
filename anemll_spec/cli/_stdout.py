"""sys.stdout while a command runs: every byte written, or an error raised.

Python's BufferedWriter hands a write larger than its buffer to the OS at once and
returns the count the OS took; TextIOWrapper ignores that count. On a pipe whose reader
leaves mid-write (`query ... | head -1`, 64 KB of it in the pipe), the OS takes part of
the text and says so, no error: the rest was dropped and the command exited 0, not 141
as SIGPIPE would. Here text goes to the byte buffer in a loop until every byte is taken,
so the next write meets the closed pipe and raises BrokenPipeError.

Any other failure to write stdout (a full disk: `> /dev/full`) is OutputError, said as
the output's (exit 1), not as the OS error of a path the user gave (exit 2, bad input).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from typing import Any, TextIO

from anemll_spec.errors import AnemllError


class OutputError(AnemllError):
    """stdout could not be written (exit 1): the work is done, its output is lost."""

    exit_code = 1


@contextlib.contextmanager
def _said() -> Iterator[None]:
    try:
        yield
    except BrokenPipeError:  # its reader went away: 141, as SIGPIPE would
        raise
    except OSError as exc:
        raise OutputError(f"could not write the output (stdout): {exc.strerror or exc}") from None


class Stdout:
    """Wraps the process's stdout (a TextIOWrapper); anything without a byte buffer (a
    StringIO a caller put there) is written as it is: it takes every character. Small
    writes (json.dump writes token by token) are gathered first, as the wrapped stream
    would: written one by one, they cost a quarter more."""

    GATHER = 8192  # characters

    def __init__(self, stream: TextIO):
        self.stream = stream
        self._pending: list[str] = []
        self._size = 0
        self._lines = bool(getattr(stream, "line_buffering", False))  # a terminal's
        # `python -u` / PYTHONUNBUFFERED: every write goes out at once, as it would unwrapped
        self._direct = bool(getattr(stream, "write_through", False))
        self._before = True  # text the stream holds from before: written first, once

    def write(self, text: str) -> int:
        self._pending.append(text)
        self._size += len(text)
        if self._direct or self._size >= self.GATHER or (self._lines and "\n" in text):
            self._drain()  # a terminal sees each line at once, as before
        return len(text)

    def flush(self) -> None:
        self._drain()
        with _said():
            self.stream.flush()

    def _drain(self) -> None:
        text = "".join(self._pending)
        self._pending, self._size = [], 0
        buffer = getattr(self.stream, "buffer", None)
        with _said():
            if buffer is None:
                self.stream.write(text)
                return
            if self._before:  # a caller's print before main(), still in the text layer
                self.stream.flush()
                self._before = False
            data = memoryview(text.encode(self.stream.encoding, self.stream.errors or "strict"))
            while data:  # until the OS took every byte: a closed pipe then raises
                data = data[buffer.write(data) or 0 :]
            if self._lines or self._direct:
                buffer.flush()

    def __getattr__(self, name: str) -> Any:  # fileno, isatty, encoding, ...
        return getattr(self.stream, name)


def discard(stream: TextIO) -> None:
    """After a failed write: what is still buffered goes nowhere, so Python's own flush
    at exit does not fail again ('Exception ignored ...', exit 120)."""
    try:
        fd = stream.fileno()
    except (OSError, ValueError):  # not a file (a test's StringIO): nothing flushes it at exit
        return
    null = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(null, fd)
    finally:
        os.close(null)
