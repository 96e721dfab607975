"""Opening the store: THE seam between anemll-spec and the storage engine.

Everything opens the store through `open_store`, which resolves the target, waits
(with exponential backoff) while another process holds DuckDB's single-writer lock,
creates a fresh store, upgrades an older one in place, and refuses a newer one.
A later store kind (DuckLake with a PostgreSQL catalog) plugs in here only.
"""

from __future__ import annotations

import hashlib
import os
import random
import sys
import time
from pathlib import Path

import duckdb

from anemll_spec.errors import InputError, RunFailed
from anemll_spec.store import migrations, reference, schema, views

DEFAULT_PATH = "store/results.duckdb"
ENV_STORE = "ANEMLL_SPEC_STORE"
ENV_LOCK_TIMEOUT = "ANEMLL_SPEC_STORE_LOCK_TIMEOUT_S"
DEFAULT_LOCK_TIMEOUT_S = 60.0
# Checkpoint (merge the WAL into the file) only once the WAL passes this size, not at
# every close: a checkpoint rewrites the open row group of every changed table (the
# 60-column `cases` costs ~13 ms each time), and the runner closes the store after
# every case. Opening replays a WAL of this size in ~10 ms.
WAL_CHECKPOINT_THRESHOLD = "1MB"


class StoreLocked(RunFailed):
    """Another process held the store's write lock for longer than the timeout."""


def default_target(cli_value: str | None = None) -> str:
    """--store > $ANEMLL_SPEC_STORE > store/results.duckdb (relative to the cwd)."""
    return cli_value or os.environ.get(ENV_STORE) or DEFAULT_PATH


def store_path(target: str | os.PathLike | None = None) -> Path:
    """The file behind a target; URLs are refused until their store kind exists."""
    text = str(default_target(None if target is None else str(target)))
    if "://" in text or text.startswith(("ducklake:", "postgres:", "md:", "s3:")):
        raise InputError(
            f"store {text!r}: only DuckDB files are supported as stores for now (give a file path)"
        )
    if text == ":memory:":
        raise InputError("store ':memory:': the store must be a file (each write reopens it)")
    return Path(text).expanduser()


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
) -> duckdb.DuckDBPyConnection:
    """Open the store, ready to use at the current schema version.

    read_only: the connection cannot change the store (a missing store is an error).
    sandbox: also deny the SQL any file or network access (for users' SQL: no ATTACH of
    other files, no COPY TO, no extension installs).
    Close the connection soon: while it is open, no other process can write.
    """
    path = store_path(target)
    timeout = lock_timeout(lock_timeout_s)
    if read_only:
        if not path.is_file():
            raise InputError(
                f"no results store at {path} (run `anemll-spec bench` first, "
                f"or pass --store PATH / set ${ENV_STORE})"
            )
        con = _connect(path, read_only=True, timeout=timeout, sandbox=sandbox)
        try:
            version = _version(con, path)
        except BaseException:
            con.close()
            raise
        if version is not None and version == schema.SCHEMA_VERSION:
            return con
        con.close()
        if version is None:
            raise InputError(f"{path} is an empty DuckDB file, not a results store yet")
        _check_not_newer(version, path)
        # An older store: upgrade it in place once, then open it read-only.
        _connect_prepared(path, timeout).close()
        return _connect(path, read_only=True, timeout=timeout, sandbox=sandbox)
    return _connect_prepared(path, timeout)


def _connect_prepared(path: Path, timeout: float) -> duckdb.DuckDBPyConnection:
    path.parent.mkdir(parents=True, exist_ok=True)
    con = _connect(path, read_only=False, timeout=timeout, sandbox=False)
    try:
        con.execute("PRAGMA disable_checkpoint_on_shutdown")
        con.execute(f"SET checkpoint_threshold = '{WAL_CHECKPOINT_THRESHOLD}'")
        _prepare(con, path)
    except BaseException:
        con.close()
        raise
    return con


def _connect(path: Path, *, read_only: bool, timeout: float, sandbox: bool):
    config = {"enable_external_access": False, "lock_configuration": True} if sandbox else {}
    deadline = time.monotonic() + timeout
    delay = 0.01
    warned = False
    while True:
        try:
            return duckdb.connect(str(path), read_only=read_only, config=config)
        except duckdb.IOException as exc:
            msg = str(exc)
            if "lock" not in msg.lower():
                raise InputError(f"cannot open the store {path}: {msg}") from None
            now = time.monotonic()
            if now >= deadline:
                raise StoreLocked(
                    f"the store {path} stayed locked by another process for {timeout:g} s "
                    f"({msg.split(' See also')[0]}); retry when it is done, or use --store"
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


def _version(con, path: Path) -> int | None:
    """Schema version; None for an empty file; InputError for a foreign database."""
    try:
        row = con.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
    except duckdb.CatalogException:
        (n,) = con.execute(
            "SELECT count(*) FROM duckdb_tables() WHERE database_name = current_database()"
        ).fetchone()  # type: ignore[misc]
        if n == 0:
            return None
        raise InputError(
            f"{path} is a DuckDB database but not an anemll-spec results store"
        ) from None
    try:
        return int(row[0])  # type: ignore[index]
    except (TypeError, ValueError):
        raise InputError(f"{path}: the store's schema_version is missing or unreadable") from None


def _check_not_newer(version: int, path: Path) -> None:
    if version > schema.SCHEMA_VERSION:
        raise InputError(
            f"the store {path} has schema v{version}, written by a newer anemll-spec; "
            f"this one reads up to v{schema.SCHEMA_VERSION}: upgrade anemll-spec"
        )


def _derived_fingerprint() -> str:
    """Views, comments and reference data: re-installed whenever this changes."""
    parts = [*views.ALL, *(s for t in schema.TABLES for s in schema.comment_sql(t))]
    parts.append(reference.fingerprint())
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()


def _prepare(con, path: Path) -> None:
    """Create, upgrade, or refresh the derived objects of a writable store."""
    version = _version(con, path)
    fingerprint = _derived_fingerprint()
    if version is None:
        con.execute("BEGIN")
        for table in schema.TABLES:
            con.execute(schema.create_table_sql(table))
        con.execute("INSERT INTO meta VALUES ('schema_version', ?)", [str(schema.SCHEMA_VERSION)])
        _install_derived(con, fingerprint)
        con.execute("COMMIT")
        return
    _check_not_newer(version, path)
    upgraded = version < schema.SCHEMA_VERSION
    if upgraded:  # steps may drop views and reference data: install them whatever the hash
        migrations.upgrade(con, version)
    row = con.execute("SELECT value FROM meta WHERE key = 'derived_sha256'").fetchone()
    if upgraded or row is None or row[0] != fingerprint:
        con.execute("BEGIN")
        _install_derived(con, fingerprint)
        con.execute("COMMIT")


def _install_derived(con, fingerprint: str) -> None:
    views.install(con)
    for table in schema.TABLES:
        for stmt in schema.comment_sql(table):
            con.execute(stmt)
    if reference.PUBLISHED_CSV.is_file():
        reference.reload(con)
    else:
        print(
            f"warning: {reference.PUBLISHED_CSV} not found; the reference table stays empty",
            file=sys.stderr,
        )
    con.execute("INSERT OR REPLACE INTO meta VALUES ('derived_sha256', ?)", [fingerprint])
