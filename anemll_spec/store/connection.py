"""Opening the store: THE seam between anemll-spec and the storage engine.

Everything opens the store through `open_store`, which resolves the target, waits
(with exponential backoff) while another process holds DuckDB's single-writer lock,
creates a fresh store, upgrades an older one in place, and refuses a newer one (those
three in store/prepare.py).
A `ducklake:` target opens the shared store (store/lake.py) through the same steps:
what differs is only how the connection is made.

Read-only opens never change a store: an older one is refused with what to run to
upgrade it (a damaged old store made `query` crash halfway through an upgrade), and a
file that cannot be opened is reported as locked only when another process really
holds its lock; otherwise it is damaged, and the message says so.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import random
import shlex
import sys
import time
from pathlib import Path

import duckdb

from anemll_spec.errors import InputError, RunFailed
from anemll_spec.paths import NOT_REGULAR, is_special
from anemll_spec.store import lake, lake_target, schema
from anemll_spec.store.diagnose import (
    HEADERS_BYTES,
    cannot_make,
    cannot_open,
    locked_by_another,
    remove_unmade,
)
from anemll_spec.store.prepare import StorePrepared, check_readable, prepare
from anemll_spec.text import path_word

DEFAULT_PATH = "store/results.duckdb"
ENV_STORE = "ANEMLL_SPEC_STORE"
ENV_LOCK_TIMEOUT = "ANEMLL_SPEC_STORE_LOCK_TIMEOUT_S"
DEFAULT_LOCK_TIMEOUT_S = 60.0
# Checkpoint (merge the WAL into the file) only once the WAL passes this size, not at
# every close: a checkpoint rewrites the open row group of every changed table (the
# 80-column `cases` and the samples), and the runner closes the store after every case.
# A case of 10,000 samples logs ~667 KB (its case_id is repeated on every sample row), so
# at 1.5 MB (1,500,000 bytes) two appends in three only log and the third checkpoints,
# and an open replays at most ~1.3 MB. With 64 KiB blocks (below) a checkpoint adds ~20 ms
# to its append, so checkpointing every third case beats a longer log replayed at every
# open: 1.5 MB beat 1 and 2 MB on median and mean (benchmarks/store_append.py,
# docs/performance.md). finish_run checkpoints, so a finished run leaves no log behind.
WAL_CHECKPOINT_THRESHOLD = "1.5MB"
# The block size of a store file this code creates (DuckDB's default is 256 KiB; a store
# keeps the block size it was made with). A checkpoint rewrites the open row group of
# every changed table column by column, and a column's cost follows its block size: a
# cold checkpoint of one row of an 80-column table takes ~20 ms with 256 KiB blocks and
# ~5 ms with 16 KiB. At 64 KiB an append of a 10,000-sample case took ~40 ms instead of
# ~49 (median, 2 MB threshold), the file is 16% smaller (segments fill their blocks
# better) and scans are as fast; 16 KiB appends about as fast but doubles the file
# (docs/performance.md). DuckDB 1.1 and later open such a file; 1.0 cannot.
NEW_STORE_BLOCK_SIZE = 65_536


def _remember_missing_pandas() -> None:
    """Where pandas is not installed, say so once in sys.modules.

    DuckDB's client tries `import pandas` for every Python value it converts (each `?`
    parameter), and Python does not remember a failed import: each try searches the whole
    sys.path again (~0.17 ms here). A case row has ~80 parameters, so that was ~13 ms of a
    30-50 ms append (benchmarks/store_append.py). None in sys.modules is Python's own
    marker for "not importable": the import then fails at once, as it would anyway."""
    if "pandas" not in sys.modules and importlib.util.find_spec("pandas") is None:
        sys.modules["pandas"] = None  # type: ignore[assignment]


_remember_missing_pandas()


class StoreLocked(RunFailed):
    """Another process held the store's write lock for longer than the timeout."""


def default_target(cli_value: str | None = None) -> str:
    """--store > $ANEMLL_SPEC_STORE > store/results.duckdb (relative to the cwd)."""
    text = cli_value or os.environ.get(ENV_STORE) or DEFAULT_PATH
    name = str(text)  # API callers pass a Path
    utf8_name(name, "store", lake_target.redact if lake_target.is_lake(name) else str)
    return text


def utf8_name(text: str, what: str, shown=str) -> None:
    """A name DuckDB is given must be UTF-8: bytes that are not (0xff) arrive from the
    command line as surrogates, which it cannot take (UnicodeEncodeError, or pybind11's
    'Unable to cast Python instance', a traceback, after the command's checks)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise InputError(
            f"{what} {shown(text)!r}: the name is not UTF-8 text, which DuckDB "
            "cannot take; give it a UTF-8 name"
        ) from None


def describe_target(target: str | os.PathLike | None = None) -> str:
    """The store as messages name it: a file's path, or a shared store's target with
    any password redacted."""
    text = default_target(None if target is None else str(target))
    return lake_target.redact(text) if lake_target.is_lake(text) else str(Path(text).expanduser())


def store_path(target: str | os.PathLike | None = None) -> Path:
    """The file behind a target. A shared store has no file of its own: for one with a
    DuckDB catalog file, that file; otherwise its redacted target as a name that exists
    nowhere, so callers that only compare with it or name it in a message (out_file,
    import's clean-up, write errors) work unchanged and never see a password."""
    text = str(default_target(None if target is None else str(target)))
    if lake_target.is_lake(text):
        t = lake_target.parse_target(text)
        return Path(t.conninfo) if t.catalog == "duckdb" else Path(t.shown)
    if "://" in text or text.startswith(("postgres:", "md:", "s3:")):
        raise InputError(
            f"store {lake_target.redact(text)!r}: give a DuckDB file path, or a shared store as "
            "ducklake:postgres:<connection> data_path=<folder> (docs/store.md)"
        )
    if text == ":memory:":
        raise InputError("store ':memory:': the store must be a file (each write reopens it)")
    return _behind_links(Path(text).expanduser())


def _behind_links(path: Path) -> Path:
    """The file a symlink names. DuckDB (1.5.5) puts the log of a file it creates through a
    link beside the link (x.duckdb.wal) but reads the log beside the file on every later
    open: the run that made the store wrote only to that orphaned log and was lost."""
    if not path.is_symlink():
        return path  # as given, so messages name it as the user wrote it
    try:
        return path.resolve(strict=False)
    except (OSError, RuntimeError):  # a loop of links
        raise InputError(f"store {path}: a symlink that leads to itself") from None


def lock_timeout(value: float | None = None) -> float:
    if value is not None:
        return float(value)
    env = os.environ.get(ENV_LOCK_TIMEOUT)
    try:
        seconds = float(env) if env else DEFAULT_LOCK_TIMEOUT_S
    except ValueError:
        seconds = -1.0
    if not seconds >= 0:  # also NaN
        raise InputError(f"${ENV_LOCK_TIMEOUT}={env!r} is not a number of seconds >= 0")
    return seconds


def open_store(
    target: str | os.PathLike | None = None,
    *,
    read_only: bool = False,
    lock_timeout_s: float | None = None,
    sandbox: bool = False,
    check: bool = True,
) -> duckdb.DuckDBPyConnection:
    """Open the store, ready to use at the current schema version.

    read_only: the connection cannot change the store (a missing store is an error; an
    older store is refused, never upgraded: only a writing open upgrades).
    check: False skips a read-only open's version check, for a caller that knows the
    store's version and reads only that version's tables (export of an older store).
    sandbox: also deny the SQL any file or network access (for users' SQL: no ATTACH of
    other files, no COPY TO, no extension installs).
    Close the connection soon: while it is open, no other process can write a file store.
    """
    text = default_target(None if target is None else str(target))
    timeout = lock_timeout(lock_timeout_s)
    if lake_target.is_lake(text):
        lake_at = lake_target.parse_target(text)
        return _open_lake(lake_at, read_only, sandbox, timeout, check=check)[0]
    path = store_path(text)
    _check_duckdb_file(path)
    if read_only:
        if not path.is_file() or not path.stat().st_size:  # an empty file: no store yet
            raise InputError(
                f"no results store at {describe_target(text)} (run `anemll-spec bench` first, "
                f"or pass --store PATH / set ${ENV_STORE})"
            )
        con = _connect(path, read_only=True, timeout=timeout, sandbox=sandbox)
        try:
            if check:
                check_readable(con, path)
        except BaseException:
            con.close()
            raise
        return con
    return _connect_prepared(path, timeout)[0]


def upgrade_store(
    target: str | os.PathLike, *, lock_timeout_s: float | None = None
) -> StorePrepared:
    """A writing open that says what it did (`anemll-spec upgrade`), then closes: the
    version it found and whether it changed anything. Another process that upgraded the
    store first leaves nothing to do here."""
    text = default_target(str(target))
    timeout = lock_timeout(lock_timeout_s)
    if lake_target.is_lake(text):
        con, done = _open_lake(lake_target.parse_target(text), False, False, timeout, force=True)
    else:
        path = store_path(text)
        _check_duckdb_file(path)
        con, done = _connect_prepared(path, timeout)
        if done.changed:  # into the file itself: a copy of the .duckdb alone is upgraded
            with contextlib.suppress(duckdb.Error):  # the log keeps it all the same
                con.execute("CHECKPOINT")
    con.close()
    assert done is not None  # a writing open prepared the store
    return done


def _check_duckdb_file(path: Path) -> None:
    """A file that is there must be a DuckDB database: DuckDB opens a Parquet or CSV file
    as an in-memory database holding a view of it, so a bundle given as --store would be
    'written' to memory and lost. A folder, or a path under a file, is no store either
    (DuckDB's own words for them read like a damaged store); nor is a FIFO, socket or
    device, which is never opened (reading a FIFO waited forever for a writer, and
    /dev/null was called damaged)."""
    if path.is_dir():
        inside = path / "results.duckdb"
        hint = f", e.g. {inside}" if inside.is_file() else ""
        raise InputError(f"{path} is a folder: give the results store's file{hint}")
    if is_special(path):
        raise InputError(f"{path} is {NOT_REGULAR}: give a results store (a .duckdb file)")
    above = next((p for p in path.parents if p.exists()), None)
    if above is not None and not above.is_dir():
        raise InputError(f"cannot make a store at {path}: {above} is a file, not a folder")
    try:
        with path.open("rb") as f:
            head = f.read(12)
    except OSError:
        return  # missing (created by a writing open), or unreadable: the open says which
    if not head or head[8:12] == b"DUCK":
        return
    if head.startswith(b"PAR1"):
        raise InputError(
            f"{path} is a Parquet file (a results bundle?), not a results store: import it "
            f"into one with `anemll-spec import {shlex.quote(path_word(path))}`"
        )
    raise InputError(f"{path} is not a DuckDB database: give a results store (a .duckdb file)")


# Shared stores this process has checked (version) and prepared: done once per process,
# as its pooled connection stays attached (store/lake.py).
_READY: set[tuple[str, bool]] = set()


def _open_lake(
    target: lake_target.LakeTarget,
    read_only: bool,
    sandbox: bool,
    timeout: float,
    force: bool = False,
    check: bool = True,
) -> tuple[duckdb.DuckDBPyConnection, StorePrepared | None]:
    """The connection, and what preparing the store did (None: checked or known ready).
    force: prepare even where this process already did; check: see open_store."""
    con = lake.connect(target, read_only=read_only, sandbox=sandbox, timeout=timeout)
    key = (target.text, read_only)
    done = None
    try:
        if (key in _READY and not sandbox and not force) or (read_only and not check):
            return con, None
        if read_only:
            check_readable(con, target.shown, shared=True)
        else:
            done = _prepare_lake(con, target)
            if not force and done.version is not None and done.version < schema.SCHEMA_VERSION:
                print(  # `upgrade` (force) reports it itself
                    f"note: this command upgraded the shared store {target.shown} from "
                    f"v{done.version} to v{schema.SCHEMA_VERSION}: older anemll-spec versions "
                    "can no longer read or write it",
                    file=sys.stderr,
                )
        _READY.add(key)
    except duckdb.Error as exc:
        con.close()
        if lake.transient(exc):
            raise lake.failed(target.shown, exc, target=target) from None
        raise InputError(
            f"cannot open the store {target.shown}: {lake._message(exc, target)}"
        ) from None
    except BaseException:
        con.close()
        raise
    return con, done


def _prepare_lake(con, target: lake_target.LakeTarget, attempts: int = 30) -> StorePrepared:
    """prepare, retried: writers that create, upgrade or refresh the same lake at once
    conflict in DuckLake; the loser re-reads and finds the work done."""
    for attempt in range(attempts):
        try:
            return prepare(con, target.shown, shared=True)
        except (duckdb.TransactionException, duckdb.CatalogException) as exc:
            # two creators at once: the loser's CREATE conflicts, or finds the table made
            if isinstance(exc, duckdb.CatalogException) and "already exists" not in str(exc):
                raise
            lake._rollback(con)
            if attempt == attempts - 1:
                raise
            time.sleep(0.05 * (1 + random.random()) * min(attempt + 1, 10))
    raise AssertionError("unreachable: the last attempt returns or raises")


def _connect_prepared(
    path: Path, timeout: float
) -> tuple[duckdb.DuckDBPyConnection, StorePrepared]:
    path.parent.mkdir(parents=True, exist_ok=True)
    held = remove_unmade(path, 1)  # an empty file is no store yet: DuckDB makes one there
    try:
        con = _connect(path, read_only=False, timeout=timeout, sandbox=False)
    finally:
        if held is not None:
            os.close(held)
    try:
        con.execute("PRAGMA disable_checkpoint_on_shutdown")
        con.execute(f"SET checkpoint_threshold = '{WAL_CHECKPOINT_THRESHOLD}'")
        try:
            done = prepare(con, path)
        except (
            duckdb.IOException,
            duckdb.InternalException,
            duckdb.SerializationException,
            duckdb.TransactionException,  # a COMMIT whose log cannot be written
        ) as exc:
            raise cannot_open(path, exc) from None
    except BaseException:
        con.close()
        raise
    return con, done


def _connect(path: Path, *, read_only: bool, timeout: float, sandbox: bool):
    config: dict[str, str | bool | int | float | list[str]] = (
        {"enable_external_access": False, "lock_configuration": True} if sandbox else {}
    )
    if not read_only:  # used only where the file is created; an existing file keeps its own
        # (given on every writable open: DuckDB refuses a second connection to one file
        # in one process under a different configuration)
        config["default_block_size"] = str(NEW_STORE_BLOCK_SIZE)
    deadline = time.monotonic() + timeout
    delay = 0.01
    warned = False
    retried = False
    made = not read_only and not path.exists()  # a failed open leaves no file it made
    first: duckdb.Error | None = None
    while True:
        try:
            return duckdb.connect(str(path), read_only=read_only, config=config)
        except duckdb.IOException as exc:
            msg = str(exc)
            # DuckDB's own word for a lock conflict, or the OS's: with several writers the
            # holder may let go between the failed open and the OS probe, and the next
            # writer take it before the retry; the probe alone then called the store damaged
            conflict = "Could not set lock on file" in msg and "Conflicting lock" in msg
            if not conflict and not locked_by_another(path, write=not read_only):
                if made:  # a full disk: the file it began (empty, or a header or two)
                    first = first or exc
                    unmade = remove_unmade(path, HEADERS_BYTES)
                    if unmade is not None:
                        os.close(unmade)
                if not retried:  # the holder may have let go just now: look once more
                    retried = True
                    continue
                if first is not None:
                    raise cannot_make(path, first, left=path.exists()) from None
                raise cannot_open(path, exc) from None
            now = time.monotonic()
            if now >= deadline:
                raise StoreLocked(
                    f"the store {path} stayed locked by another process for {timeout:g} s "
                    f"({msg.split(' See also')[0].split(' However,')[0]}); retry when it is "
                    "done, or use --store"
                ) from None
            if not warned:
                print(
                    f"waiting for the store {path} (locked by another process)...",
                    file=sys.stderr,
                    flush=True,
                )
                warned = True
            time.sleep(min(delay * (0.5 + random.random()), deadline - now))
            delay = min(delay * 2, 1.0)
        except duckdb.Error as exc:
            raise InputError(f"cannot open the store {path}: {exc}") from None
