"""Keep native chatter off stdout while `--json` owns it.

coremltools 9.0's binding prints to stdout on some errors (`py::print("Error: value type
not convertible:")` in CoreMLPythonUtils.mm), and `compile_model` does not silence the
Core ML compiler (only `MLModel(.mlpackage)` does, in CoreMLPython.mm). Anything written
to file descriptor 1 while `bench --json` runs would corrupt the JSON document.

`stdout_to_stderr()` points fd 1 at fd 2 (`os.dup2`), and Python's `sys.stdout` at
`sys.stderr`, for the duration of the block, then restores both. C stdio buffers are
flushed (`fflush(NULL)`) on the way in and out: a native `printf` into a pipe is
block-buffered, and a buffer flushed after the restore would land in the JSON.

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
    saved = os.dup(1)
    try:
        os.dup2(2, 1)
        with contextlib.redirect_stdout(sys.stderr):
            yield
    finally:
        with contextlib.suppress(OSError, ValueError):
            sys.stderr.flush()
        _flush_c_stdio()
        os.dup2(saved, 1)
        os.close(saved)
