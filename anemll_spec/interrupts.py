"""Work that a Ctrl-C holds off for, to end it whole: imports, a timed variant's statistics,
a case being stored (`deferred`).

coremltools' package __init__ wraps its optional imports in bare `except:` clauses, so a
Ctrl-C that lands inside one of them, during the seconds `import coremltools` takes, is
caught there and the command goes on building; worse, one that lands in a module of the
standard library that coremltools imports (asyncio) leaves that module half made, and
the import fails later with an unrelated NameError. Importing through `import_module`
notes the first Ctrl-C and raises it once the import has returned (a few seconds at
most), so no module is cut off half-way; a second Ctrl-C stops at once. Likewise the
statistics of calls already timed (a sustained run's 10 million calls take seconds) and the
store's write of a measured case: cut, they would throw the measurement away.
"""

from __future__ import annotations

import contextlib
import importlib
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from types import FrameType, ModuleType

# the handler of the deferred block under way (one at most: an inner one runs as it is)
_active: list[Callable[[int, FrameType | None], None]] = []


@contextlib.contextmanager
def deferred(on_first: Callable[[], None] | None = None) -> Iterator[None]:
    """Ctrl-C held off until the block ends: the first is noted (`on_first` says what
    happens meanwhile) and raised as KeyboardInterrupt when the block returns or fails; a
    second raises at once. Where SIGINT is ignored (a script's background job, `cmd &`)
    it stays ignored, and what `interrupt()` asks for (SIGTERM) is held off alike.
    Outside the main thread, or under another SIGINT handler (an enclosing deferred
    block), the block runs as it is."""
    handler = signal.getsignal(signal.SIGINT)
    if (
        threading.current_thread() is not threading.main_thread()  # signals: main only
        or _active  # an enclosing block holds it off
        or handler not in (signal.default_int_handler, signal.SIG_IGN)  # not ours
    ):
        yield
        return
    interrupted = False

    def on_sigint(signum: int, frame: FrameType | None) -> None:
        nonlocal interrupted
        if interrupted:  # the second: the user insists
            raise KeyboardInterrupt
        interrupted = True
        if on_first is not None:
            on_first()

    _active.append(on_sigint)
    if handler is signal.default_int_handler:
        signal.signal(signal.SIGINT, on_sigint)
    try:
        yield
    except Exception as exc:
        if interrupted:
            raise KeyboardInterrupt from exc
        raise
    finally:
        _active.clear()
        if handler is signal.default_int_handler:
            signal.signal(signal.SIGINT, signal.default_int_handler)
    if interrupted:
        raise KeyboardInterrupt


def interrupt() -> None:
    """A Ctrl-C that SIGINT cannot carry (it is ignored: SIGTERM to a script's background
    job): the deferred block under way notes it as it would a Ctrl-C (a second raises at
    once); outside one, KeyboardInterrupt now."""
    if _active:
        _active[-1](signal.SIGINT, None)
    else:
        raise KeyboardInterrupt


def import_module(name: str) -> ModuleType:
    """`importlib.import_module(name)`, raising KeyboardInterrupt once it returns (or
    fails) if a Ctrl-C arrived during it; a second Ctrl-C raises it at once."""
    if name in sys.modules:
        return importlib.import_module(name)
    with deferred():
        return importlib.import_module(name)
