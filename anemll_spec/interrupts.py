"""Imports that keep a Ctrl-C.

coremltools' package __init__ wraps its optional imports in bare `except:` clauses, so a
Ctrl-C that lands inside one of them, during the seconds `import coremltools` takes, is
caught there and the command goes on building; worse, one that lands in a module of the
standard library that coremltools imports (asyncio) leaves that module half made, and
the import fails later with an unrelated NameError. Importing through `import_module`
notes the first Ctrl-C and raises it once the import has returned (a few seconds at
most), so no module is cut off half-way; a second Ctrl-C stops at once.
"""

from __future__ import annotations

import importlib
import signal
import sys
import threading
from types import FrameType, ModuleType


def import_module(name: str) -> ModuleType:
    """`importlib.import_module(name)`, raising KeyboardInterrupt once it returns (or
    fails) if a Ctrl-C arrived during it; a second Ctrl-C raises it at once."""
    if (
        name in sys.modules
        or threading.current_thread() is not threading.main_thread()  # signals: main only
        or signal.getsignal(signal.SIGINT) is not signal.default_int_handler  # not ours
    ):
        return importlib.import_module(name)
    interrupted = False

    def on_sigint(signum: int, frame: FrameType | None) -> None:
        nonlocal interrupted
        if interrupted:  # the second: the user insists
            raise KeyboardInterrupt
        interrupted = True

    signal.signal(signal.SIGINT, on_sigint)
    try:
        module = importlib.import_module(name)
    except Exception as exc:
        if interrupted:
            raise KeyboardInterrupt from exc
        raise
    finally:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    if interrupted:
        raise KeyboardInterrupt
    return module
