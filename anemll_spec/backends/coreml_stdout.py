"""Keep native chatter off stdout while `--json` owns it.

coremltools 9.0's binding prints to stdout on some errors (`py::print("Error: value type
not convertible:")` in CoreMLPythonUtils.mm), and `compile_model` does not silence the
Core ML compiler (only `MLModel(.mlpackage)` does, in CoreMLPython.mm). Anything written
to file descriptor 1 while `bench --json` runs would corrupt the JSON document.

`stdout_to_stderr()` points fd 1 at fd 2 (`os.dup2`), and Python's `sys.stdout` at
`sys.stderr`, for the duration of the block, then restores both. C stdio buffers are
flushed (`fflush(NULL)`) on the way in and out: a native `printf` into a pipe is
block-buffered, and a buffer flushed after the restore would land in the JSON.
Where fd 2 is not this process's stderr (started with it closed, `2>&-`: sys.stderr is
None, and a file opened since may hold fd 2), the block's writes go to /dev/null instead.

Wrap the whole preparation and timing phase (prepare, load, first predict, timing), never
a single timed call: the redirect costs syscalls, which must stay out of timed regions.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import os
import sys
from collections.abc import Iterator


def _flush_c_stdio() -> None:
    """fflush(NULL): write out every C stdio buffer of this process (best effort)."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c"))
        libc.fflush(None)
    except (OSError, AttributeError):
        pass


@contextlib.contextmanager
def stdout_to_stderr(enabled: bool = True) -> Iterator[None]:
    """Inside the block, whatever is written to stdout (fd 1, C stdio, Python's
    sys.stdout) goes to stderr; stdout is restored on exit, even on an exception."""
    if not enabled:
        yield
        return
    sys.stdout.flush()
    _flush_c_stdio()
    # fd 2 is stderr only if Python opened sys.stderr on it (None: fd 2 was closed at
    # start, and a file opened since may hold that number) and it is still open; else the
    # chatter goes to /dev/null, never into that file
    devnull = None
    if sys.stderr is None or not _is_open(2):
        devnull = open(os.devnull, "w")  # noqa: SIM115 (closed in the finally below)
    err, err_fd = (sys.stderr, 2) if devnull is None else (devnull, devnull.fileno())
    saved = os.dup(1)
    try:
        os.dup2(err_fd, 1)
        with contextlib.redirect_stdout(err):
            yield
    finally:
        with contextlib.suppress(OSError, ValueError):
            err.flush()
        _flush_c_stdio()
        os.dup2(saved, 1)
        os.close(saved)
        if devnull is not None:
            devnull.close()


def _is_open(fd: int) -> bool:
    try:
        os.fstat(fd)
    except OSError:
        return False
    return True
