"""The `anemll-spec` command line: one command per module (asv style).

Each command module defines `HELP`, `add_arguments(parser)` and `run(args) -> int`,
and imports heavy libraries (coremltools, torch, altair) only inside `run`, so
`--help` starts fast.
"""

from __future__ import annotations

import argparse
import importlib
import os
import signal
import sys
import threading
import warnings
from typing import NoReturn

from anemll_spec import __version__
from anemll_spec.errors import AnemllError, SpecError
from anemll_spec.text import printable

# command name -> module under anemll_spec.cli
COMMANDS: dict[str, str] = {
    "validate": "validate",
    "schema": "schema",
    "plan": "plan",
    "info": "info",
    "build": "build",
    "inspect": "inspect_",
    "ops": "ops",
    "cache": "cache",
    "predict": "predict",
    "bench": "bench",
    "query": "query",
    "compare": "compare",
    "export": "export",
    "import": "import_",
    "push": "push",
    "pull": "pull",
    "chart": "chart",
    "report": "report",
    "share": "share",
    "upgrade": "upgrade",
}


def _quiet_coremltools() -> None:
    """Keep coremltools' 'Failed to load libcoremlpython' noise off Linux screens (its
    logger must be quieted before coremltools is first imported, wherever that happens),
    and its import free of torch (lean_coremltools: seconds of every build's start-up)."""
    from anemll_spec import lean_coremltools

    lean_coremltools.install()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    warnings.filterwarnings("ignore", module="coremltools")
    import logging

    logging.getLogger("coremltools").setLevel(logging.ERROR)


_terminated: list[int] = []  # SIGTERM came (its status, 143, replaces Ctrl-C's 130)


def _sigterm_as_ctrl_c() -> None:
    """SIGTERM (`kill`, `timeout`, a CI job cancelled) ends a command as Ctrl-C does, the
    cases done kept and the run marked 'interrupted', not killed mid-write with the run
    left 'running' and instance processes orphaned. It is handed on as SIGINT (where SIGINT
    is ignored, to interrupts.interrupt), so the work Ctrl-C holds off for
    (interrupts.deferred) is held off for it too. Left alone where
    a parent process set SIGTERM ignored, or outside the main thread."""
    if threading.current_thread() is not threading.main_thread():
        return
    if signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL:
        return

    def on_sigterm(signum: int, frame: object) -> None:
        _terminated.append(128 + signum)
        if not callable(signal.getsignal(signal.SIGINT)):  # ignored (`cmd &` in a script):
            from anemll_spec.interrupts import interrupt  # handed on, it would be ignored

            interrupt()  # with it; a deferred block holds it off as it would a Ctrl-C
            return
        signal.raise_signal(signal.SIGINT)

    signal.signal(signal.SIGTERM, on_sigterm)


def interrupted_status() -> int:
    """The exit status of a command stopped by Ctrl-C (130), or by SIGTERM (143)."""
    return _terminated[0] if _terminated else 130


class _Parser(argparse.ArgumentParser):
    """argparse, its errors redacted: an unquoted shared-store target splits into words,
    and 'unrecognized arguments: ... password=...' echoed the password."""

    def error(self, message: str) -> NoReturn:
        from anemll_spec.store.lake_target import redact

        super().error(redact(message))

    def _get_values(self, action, arg_strings):
        """`--opt=--`: argparse (3.11) strips the '--' and hands the option [] as its
        value, past type= and choices=: `cache clear --cache-dir=--` cleared the default
        cache, `bench --store=--` wrote to the default store, others raised tracebacks."""
        if action.option_strings and action.nargs is None and arg_strings == ["--"]:
            self.error(f"argument {'/'.join(action.option_strings)}: expected one argument")
        return super()._get_values(action, arg_strings)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="anemll-spec",
        description="Declarative benchmarks for Core ML models on Apple's Neural Engine.",
    )
    parser.add_argument("--version", action="version", version=f"anemll-spec {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, modname in COMMANDS.items():
        mod = importlib.import_module(f"anemll_spec.cli.{modname}")
        p = sub.add_parser(name, help=mod.HELP, description=getattr(mod, "DESCRIPTION", mod.HELP))
        mod.add_arguments(p)
        p.set_defaults(_run=mod.run, _parser=p)
    return parser


def main(argv: list[str] | None = None) -> int:
    _quiet_coremltools()
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    # the command line as given (runs.command): main's own argv, not the process's
    args.argv = ["anemll-spec", *(sys.argv[1:] if argv is None else argv)]
    if extra:  # said by the command's own parser, which shows the flags it has
        getattr(args, "_parser", parser).error(f"unrecognized arguments: {' '.join(extra)}")
    if not getattr(args, "_run", None):
        parser.print_help(sys.stderr)
        return 2
    if sys.stderr is None:  # started with fd 2 closed (`2>&-`): no line can say why, so
        return 2  # the status does, before any work (a file opened later may take fd 2)
    if sys.stdout is None:  # started with fd 1 closed (`>&-`): refused before any work
        print(
            f"anemll-spec {args.command}: error: stdout is closed; redirect it to a file "
            "or /dev/null",
            file=sys.stderr,
        )
        return 2
    from anemll_spec.cli._stdout import OutputError, Stdout, discard

    _sigterm_as_ctrl_c()
    real, out = sys.stdout, Stdout(sys.stdout)
    sys.stdout = out
    try:
        status = int(args._run(args) or 0)
        sys.stdout.flush()  # what is still buffered fails here, said, not at exit
        return status
    except AnemllError as exc:
        # one line per problem (a spec's problems are several); store text escaped in each.
        # A spec's problems are taken one by one, and any other error is one: a newline
        # inside it (a key written "a\nb", a file named $'x\nforged: ok') is escaped with
        # it, never a forged line of its own
        lines = [str(p) for p in exc.problems] if isinstance(exc, SpecError) else [str(exc)]
        from anemll_spec.store.lake_target import redact  # a run ref may be a target's word

        for line in lines:
            print(f"anemll-spec {args.command}: error: {printable(redact(line))}", file=sys.stderr)
        if isinstance(exc, OutputError):
            discard(real)
        return exc.exit_code
    except KeyboardInterrupt:
        said = "terminated (SIGTERM)" if _terminated else "interrupted"
        print(f"anemll-spec {args.command}: {said}", file=sys.stderr)
        return interrupted_status()
    except RuntimeError as exc:
        from anemll_spec.paths import NO_HOME_ERROR, home_unknown

        if not str(exc).startswith(NO_HOME_ERROR):
            raise
        # Path.home() with no home (a container's uid): Altair calls it on import, and
        # a '~' path needs it; the cache folder says so itself (InputError, above)
        print(f"anemll-spec {args.command}: error: {home_unknown()}", file=sys.stderr)
        return 2
    except OSError as exc:  # a path the user gave that the system refuses: their input
        if isinstance(exc, BrokenPipeError):  # `| head` took what it wanted: as SIGPIPE would
            discard(real)
            return 141
        where = f": {exc.filename}" if exc.filename else ""
        text = printable(f"{exc.strerror or exc}{where}")
        print(f"anemll-spec {args.command}: error: {text}", file=sys.stderr)
        return 2
    except Exception as exc:
        if not type(exc).__module__.lstrip("_").startswith("duckdb"):
            raise
        # the store failed under the command (a shared store's server went away, a
        # disk): one line, its connection string redacted, exit 1 as for a locked store
        from anemll_spec.store.lake import _message

        text = printable(_message(exc))
        print(f"anemll-spec {args.command}: error: the store failed: {text}", file=sys.stderr)
        return 1
    finally:
        sys.stdout = real
        try:  # what a command printed before it failed, as Python's exit would flush it
            out.flush()
        except (OSError, ValueError, OutputError):
            discard(real)
