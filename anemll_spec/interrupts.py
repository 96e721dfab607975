"""Imports that keep a Ctrl-C.

coremltools' package __init__ wraps its optional imports in bare `except:` clauses, so a
Ctrl-C that lands inside one of them, during the seconds `import coremltools` takes, is
caught there and the command goes on building. Importing through `import_module` notes
the interrupt as it arrives and raises it again once the import has returned.
"""

from __future__ import annotations

import importlib
import signal
import sys
import threading
from types import FrameType, ModuleType


def import_module(name: str) -> ModuleType:
    """`importlib.import_module(name)`, raising KeyboardInterrupt afterwards if a Ctrl-C
    arrived during it and the module's own code swallowed it."""
    if (
        name in sys.modules
        or threading.current_thread() is not threading.main_thread()  # signals: main only
        or signal.getsignal(signal.SIGINT) is not signal.default_int_handler  # not ours
    ):
        return importlib.import_module(name)
    interrupted = False

    def on_sigint(signum: int, frame: FrameType | None) -> None:
        nonlocal interrupted
        interrupted = True
        raise KeyboardInterrupt

    signal.signal(signal.SIGINT, on_sigint)
    try:
        module = importlib.import_module(name)
    finally:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    if interrupted:
        raise KeyboardInterrupt
    return module
