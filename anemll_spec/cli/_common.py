"""Small helpers shared by the command modules (kept import-light)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from anemll_spec.text import human_bytes  # noqa: F401  (the commands import it from here)


def add_json(p: argparse.ArgumentParser) -> None:
    p.add_argument("--json", action="store_true", help="print machine-readable JSON to stdout")


def nonempty(value: str) -> str:
    """argparse type: a path or id given as '' is a mistake, not 'use the default'."""
    if not value.strip():
        raise argparse.ArgumentTypeError("must not be empty")
    return value


def _integer(value: str) -> int:
    try:
        return int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {value!r}") from None


def nonnegative_int(value: str) -> int:
    n = _integer(value)
    if n < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {n}")
    return n


def finite_float(value: str) -> float:
    """argparse type: a number; 'nan' or 'inf' would make every comparison false and
    switch a gate off without a word."""
    import math

    try:
        x = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {value!r}") from None
    if not math.isfinite(x):
        raise argparse.ArgumentTypeError(f"must be a finite number, got {value!r}")
    return x


def positive_int(value: str) -> int:
    n = _integer(value)
    if n <= 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {n}")
    return n


def add_store(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--store",
        metavar="PATH",
        type=nonempty,
        help="results store (default: $ANEMLL_SPEC_STORE or store/results.duckdb)",
    )


RUN_FORMS = "a run id, a unique prefix, 'latest' or 'previous'"


def add_run_flag(p: argparse.ArgumentParser, what: str, *, repeatable: bool = True) -> None:
    """`--run RUN` (as args.run_flag, a list), taken by every command that reads stored
    runs, beside the positional form some of them also take: one way to name runs works
    everywhere. repeatable: whether the command takes several (share and report take one,
    and refuse a second with a message that says so)."""
    p.add_argument(
        "--run", dest="run_flag", action="append", default=[], type=nonempty, metavar="RUN",
        help=f"{what}: {RUN_FORMS}" + (" (repeatable)" if repeatable else ""),
    )  # fmt: skip


def runs_given(
    args: argparse.Namespace,
    positional: str,
    *,
    exactly: int | None = None,
    at_most: int | None = None,
) -> list[str]:
    """The runs named by position and by --run, in that order; InputError when they are
    not as many as the command takes (never one silently dropped)."""
    from anemll_spec.errors import InputError

    named = getattr(args, positional)
    refs = ([named] if isinstance(named, str) else list(named or ())) + list(args.run_flag)
    if exactly is not None and len(refs) != exactly:
        raise InputError(f"give {exactly} runs (as RUN arguments or --run), got {len(refs)}")
    if at_most is not None and len(refs) > at_most:
        raise InputError(f"give at most {at_most} run (as RUN or --run), got {len(refs)}")
    return refs  # '' among them: the lookup refuses it ("an empty run id")


def out_file(
    value: str,
    flag: str = "--out",
    *,
    store: str | None = None,
    force: bool = False,
    replaceable: Callable[[Path], bool] | None = None,
    kind: tuple[str, str] | None = None,
) -> Path:
    """Check a file to write before any work: not a folder, its folder writable, never
    the store (or its log), named as `kind` = (suffix, what) says, and an existing file
    only with `force` or when `replaceable(path)` says it is ours to replace."""

    from anemll_spec.errors import InputError

    path = Path(value)
    if path.is_dir():
        raise InputError(f"{flag} {value}: is a folder; give a file name")
    _not_the_store(path, flag, value, store, "file")
    if kind and path.suffix.lower() != kind[0]:
        raise InputError(f"{flag} {value}: {kind[1]}: name it FILE{kind[0]}")
    _writable(path, flag, value)
    if path.exists() and not force and not (replaceable and replaceable(path)):
        raise InputError(f"{flag} {value}: the file exists; give --force to replace it")
    return path


def out_dir(value: str, flag: str = "--out", *, store: str | None = None) -> Path:
    """Check a folder to write into before any work (created when missing): never the
    store or its log (a folder named store.duckdb.wal made the store read as damaged)."""

    from anemll_spec.errors import InputError

    path = Path(value)
    if path.exists() and not path.is_dir():
        raise InputError(f"{flag} {value}: is a file; give a folder")
    _not_the_store(path, flag, value, store, "folder")
    _writable(path / "_", flag, value)
    return path


def _not_the_store(path: Path, flag: str, value: str, store: str | None, what: str) -> None:
    from anemll_spec.errors import InputError

    if store is None:
        return
    from anemll_spec.store.connection import store_path

    db = store_path(store)  # as the store itself resolves it (~, $ANEMLL_SPEC_STORE)
    if path.resolve() in (db.resolve(), db.with_name(db.name + ".wal").resolve()):
        raise InputError(f"{flag} {value}: that is the results store; give another {what}")


def _writable(path: Path, flag: str, value: str) -> None:
    """The nearest existing folder above `path` must be writable (the rest is made)."""
    import os

    from anemll_spec.errors import InputError

    parent = path.parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if not parent.is_dir() or not os.access(parent, os.W_OK | os.X_OK):
        raise InputError(f"{flag} {value}: cannot write in {parent}")


def add_backend(p: argparse.ArgumentParser, help: str) -> None:
    from anemll_spec.backends import REGISTRY

    p.add_argument("--backend", choices=["auto", *REGISTRY], help=help)


def add_max_cases(p: argparse.ArgumentParser) -> None:
    from anemll_spec.vocab import DEFAULT_MAX_CASES, MAX_CASES_LIMIT

    def max_cases(value: str) -> int:
        n = positive_int(value)
        if n > MAX_CASES_LIMIT:
            raise argparse.ArgumentTypeError(f"must be <= {MAX_CASES_LIMIT:,}, got {n:,}")
        return n

    p.add_argument(
        "--max-cases",
        type=max_cases,
        default=DEFAULT_MAX_CASES,
        metavar="N",
        help=f"allow sweeps of up to N cases (default {DEFAULT_MAX_CASES}, at most "
        f"{MAX_CASES_LIMIT:,})",
    )


def print_json(value: Any) -> None:
    """Strict JSON on stdout: NaN and infinities, however deep, become null; a Decimal is
    written exactly (json_text)."""
    sys.stdout.write(json_text(value) + "\n")


def json_value(v: Any) -> Any:
    """A value JSON can hold, however deep: lists and structs (dicts) are walked, so a NaN
    inside a list becomes null too (bare NaN/Infinity are not JSON). A Decimal stays one
    (json_text writes its digits; a float would round DECIMAL(18,9) to 17 digits)."""
    import datetime as dt
    import decimal

    if isinstance(v, float) and (v != v or v in (float("inf"), float("-inf"))):
        return None
    if isinstance(v, decimal.Decimal):
        return v if v.is_finite() else None
    if isinstance(v, dt.datetime | dt.date | dt.time):
        return v.isoformat()
    if isinstance(v, bytes):
        return v.hex()
    if isinstance(v, list | tuple):
        return [json_value(x) for x in v]
    if isinstance(v, dict):
        return {str(k): json_value(x) for k, x in v.items()}
    return v


def json_text(value: Any, indent: int | None = 2, ascii_only: bool = True) -> str:
    """`value` as json.dumps(json_value(value), indent=indent, default=str) writes it, but
    a Decimal as the number it is: its own digits (str), e.g. 12345678901234567.5, where
    json (through float) wrote 1.2345678901234568e+16. ascii_only=False: other text kept
    as it is (json.dumps' ensure_ascii=False)."""
    from json.encoder import encode_basestring, encode_basestring_ascii

    quote = encode_basestring_ascii if ascii_only else encode_basestring
    out: list[str] = []
    _encode(json_value(value), out, quote, indent, 0)
    return "".join(out)


def _encode(v: Any, out: list[str], quote: Callable[[str], str], indent, level: int) -> None:
    import decimal

    if isinstance(v, str):
        out.append(quote(v))
    elif v is None or isinstance(v, bool):
        out.append({None: "null", True: "true", False: "false"}[v])
    elif isinstance(v, int):
        out.append(int.__repr__(v))
    elif isinstance(v, float):
        out.append(float.__repr__(v))  # finite: json_value made NaN null
    elif isinstance(v, decimal.Decimal):
        out.append(format(v, "f"))  # its digits, no exponent (0.000000100, as DuckDB shows)
    elif isinstance(v, list | dict):
        items = list(v.items()) if isinstance(v, dict) else [(None, x) for x in v]
        ends = "{}" if isinstance(v, dict) else "[]"
        if not items:
            out.append(ends)
            return
        pad = "" if indent is None else "\n" + " " * (indent * (level + 1))
        out.append(ends[0])
        for i, (k, x) in enumerate(items):
            out.append(("," if indent is not None else ", ") * (i > 0) + pad)
            if k is not None:
                out.append(quote(k) + ": ")
            _encode(x, out, quote, indent, level + 1)
        out.append(("" if indent is None else "\n" + " " * (indent * level)) + ends[1])
    else:
        out.append(quote(str(v)))  # json.dumps' default=str


def human_flops(n: float | None) -> str:
    if n is None:
        return "-"
    for unit in ("", "K", "M", "G", "T", "P"):
        if abs(n) < 1000 or unit == "P":
            return f"{n:,.2f} {unit}FLOP"
        n /= 1000
    return str(n)


def table(rows: list[list[Any]], header: list[str]) -> str:
    """A plain aligned text table (numbers right-aligned, None as '-'). Cells may hold text
    from outside (a model's tensor names, a stored name): control characters are escaped."""
    from anemll_spec.text import aligned, printable

    cells = [["-" if c is None else printable(c) for c in r] for r in rows]
    numeric = [
        all(_is_num(r[i]) for r in rows if r[i] is not None) and rows != []
        for i in range(len(header))
    ]
    return "\n".join(aligned(header, cells, numeric))


def _is_num(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


# The energy and sustained tables (schema v4) a copy of runs may add rows to, as the
# import, push and pull summaries name them.
EXTRA_ROWS = (
    ("case_energy_rails", "energy rail row(s)"),
    ("power_samples", "power sample(s)"),
    ("sustained_windows", "sustained window(s)"),
)


def extra_rows(counts: dict, suffix: str = "") -> list[str]:
    """'3 power sample(s)', ... for each extra table with rows in `counts` (key: the table
    name + `suffix`)."""
    return [f"{counts[t + suffix]} {what}" for t, what in EXTRA_ROWS if counts.get(t + suffix)]


def note_new_store(target: str, what: str) -> None:
    """A store that is not there yet is made by `what` (this run): say where, so that a
    typo in --store (or a command run from another folder) is not a silent second store."""
    if is_new_store(target):
        print(f"note: no store at {shown_store(target)} yet: {what} creates it", file=sys.stderr)


def is_new_store(target: str) -> bool:
    """Whether the store's file (or a shared store's DuckDB catalog file) is not there yet
    (an empty file is none: a writing open makes the store there)."""
    from anemll_spec.store import lake_target, store_path

    if lake_target.is_lake(target) and lake_target.parse_target(target).catalog != "duckdb":
        return False  # a catalog on a server: no file here to make
    path = store_path(target)
    return not path.exists() or (path.is_file() and not path.stat().st_size)


def note_created(target: str, was_new: bool, what: str) -> None:
    """After a command that copies runs succeeded: the store it made, if it made one
    (said after, not before: a refused import makes none)."""
    if was_new and not is_new_store(target):
        print(f"note: {what} created the store {shown_store(target)}", file=sys.stderr)


def shown_store(store: str) -> str:
    """A file store by its absolute path, a shared store with its password redacted."""
    from anemll_spec.store import lake_target
    from anemll_spec.store.connection import describe_target

    if lake_target.is_lake(store):
        return lake_target.redact(store)
    return str(Path(describe_target(store)).absolute())


def add_cache_dir(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--cache-dir",
        metavar="DIR",
        type=nonempty,
        help="build cache folder (default: $ANEMLL_SPEC_CACHE, else $XDG_CACHE_HOME or "
        "~/.cache, /anemll-spec)",
    )


def cache_dir_of(args: argparse.Namespace) -> Path | None:
    """--cache-dir as a folder (None: the default); a file there is refused, not listed
    as an empty cache."""
    from anemll_spec.errors import InputError

    if not args.cache_dir:
        return None
    path = Path(args.cache_dir).expanduser()
    if path.exists() and not path.is_dir():
        raise InputError(f"--cache-dir {args.cache_dir}: is a file, not a folder")
    return path


def check_build_env() -> None:
    """The build's settings from the environment, checked before anything runs: a bad one
    would otherwise fail each palettized case's build, one by one."""
    from anemll_spec.build.palettize import workers

    workers()


def refuse_spec(path: str, command: str) -> None:
    """A spec given where a saved model is wanted: say how to get its models."""
    from anemll_spec.errors import InputError

    if Path(path).suffix.lower() in (".yaml", ".yml"):
        raise InputError(
            f"{path}: a spec, not a model; `anemll-spec build {path}` builds its models and "
            f"prints their paths, which {command} takes"
        )
