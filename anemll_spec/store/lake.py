"""The shared store: a DuckLake (catalog in PostgreSQL or a DuckDB file, data as Parquet
files in a shared folder), opened through the same `open_store` seam as a DuckDB file.

A target names it in one string (docs/store.md, "A shared store"):

    ducklake:postgres:host=db.lab dbname=anemll user=bench data_path=/Volumes/lab/anemll
    ducklake:postgres://bench@db.lab:5432/anemll?data_path=/Volumes/lab/anemll
    ducklake:/Volumes/lab/anemll.ducklake          (DuckDB catalog file, data beside it)

After `ducklake:postgres:` comes a libpq connection string (key=value or URI), so
$PGPASSWORD, ~/.pgpass and `service=` work as for every PostgreSQL client; our one extra
key, `data_path`, is taken out before libpq sees it. A password written in the target
is accepted but never shown: every message goes through `lake_target.redact`.

DuckLake gives snapshot isolation, atomic multi-table commits and automatic retry of
commits that do not conflict. What it lacks (PRIMARY KEY/UNIQUE) we add: the DDL here
drops primary keys (the writers keep keys unique, as for file stores), `claim` makes
writers that must not interleave (push, host de-duplication) conflict on purpose, and
DuckLake's own conflict check then turns the loser into a retry.
"""

from __future__ import annotations

import random
import re
import sys
import time
from pathlib import Path
from typing import Any

from anemll_spec.errors import InputError, RunFailed
from anemll_spec.store.lake_target import ALIAS, LakeTarget, make_folder, redact

EXTRA = "anemll-spec[lake]"
# DuckLake's retries of non-conflicting concurrent commits (its defaults: 10 x 100 ms x 1.5):
# ~30 s in all, so 8 writers committing at once never give up.
RETRY_SETTINGS = {"ducklake_max_retry_count": 20, "ducklake_retry_wait_ms": 50}
RETRY_BACKOFF = 1.3


class StoreUnreachable(RunFailed):
    """The shared store's catalog did not answer within the timeout (exit status 1)."""


def failed(
    shown: str, exc: BaseException, doing: str = "", after: str = "", target=None
) -> StoreUnreachable:
    """The shared store's own failure under a command (its server went away): one
    redacted line, exit status 1 (not the user's input). `shown`: the target, redacted."""
    from anemll_spec.text import printable

    return StoreUnreachable(
        f"the shared store {shown} failed{doing}: {printable(_message(exc, target))}{after}"
    )


class ExtensionMissing(InputError):
    """A DuckDB extension the shared store needs cannot be loaded."""


# ---------------------------------------------------------------- extensions


def _pypi_file(name: str, version: str) -> tuple[Path | None, list[str]]:
    """The extension file the PyPI package ships for this DuckDB, and the versions it has."""
    import importlib.util

    spec = importlib.util.find_spec(f"duckdb_extension_{name}")
    if spec is None or not spec.submodule_search_locations:
        return None, []
    root = Path(next(iter(spec.submodule_search_locations))) / "extensions"
    found = sorted(p.parent.name for p in root.glob(f"v*/{name}.duckdb_extension"))
    path = root / f"v{version}" / f"{name}.duckdb_extension"
    return (path if path.is_file() else None), found


def load_extensions(con, names: tuple[str, ...]) -> None:
    """LOAD each extension: installed (DuckDB's folder), else the PyPI package's file, else
    INSTALL from DuckDB's repository. One clear line when none works."""
    import duckdb

    version = duckdb.__version__
    for name in names:
        try:
            con.execute(f"LOAD {name}")
            continue
        except duckdb.Error:
            pass
        path, versions = _pypi_file(name, version)
        if path is not None:
            con.execute(f"LOAD '{path}'")
            continue
        try:
            con.execute(f"INSTALL {name}")
            con.execute(f"LOAD {name}")
            continue
        except duckdb.Error as exc:
            reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        package = f"duckdb-extension-{name.replace('_', '-')}"
        if versions:
            raise ExtensionMissing(
                f"the DuckDB extension {name!r} from {package} is built for DuckDB "
                f"{', '.join(v[1:] for v in versions)}, but this is DuckDB {version}: "
                f"pip install 'duckdb=={versions[-1][1:]}' (or pip install '{EXTRA}')"
            )
        raise ExtensionMissing(
            f"the DuckDB extension {name!r} is not available ({reason}): "
            f"pip install '{EXTRA}' (Linux x86-64), or where DuckDB's extension repository "
            f"is reachable: python -c \"import duckdb; duckdb.sql('INSTALL {name}')\""
        )


# ---------------------------------------------------------------- connecting

# libpq/DuckLake errors that a later attempt may not see (server down, restarting, network)
_TRANSIENT = (
    "connection refused",
    "could not connect",
    "could not translate host name",
    "timeout expired",
    "timed out",
    "server closed the connection",
    "terminating connection",
    "the database system is starting up",
    "the database system is shutting down",
    "the database system is in recovery mode",
    "no connection to the server",
    "connection to server",
    "could not receive data",
    "could not send data",
    "ssl syscall error",
    "broken pipe",
    "connection reset",
    "conflicting lock is held",  # a DuckDB catalog file another process holds
    "could not set lock",
)
_FATAL = (
    "password authentication failed",
    "no password supplied",
    "does not exist",
    "permission denied",
    "no pg_hba.conf entry",
    "definition of service",
    "invalid connection option",
    "invalid uri",
)


def creating_at_once(exc: BaseException) -> bool:
    """Two writers attaching a new catalog at the same moment: both create DuckLake's
    own tables, and PostgreSQL refuses the second's (a retry finds them made)."""
    msg = str(exc).lower()
    made = ("duplicate key value", "already exists")
    return "failed to initialize ducklake" in msg and any(m in msg for m in made)


def transient(exc: BaseException) -> bool:
    """A catalog or network failure that may pass (retry), not a mistake in the target."""
    msg = str(exc).lower()
    if any(s in msg for s in _FATAL):
        return False
    return any(s in msg for s in _TRANSIENT)


def lost_catalog(con, exc: BaseException) -> BaseException | None:
    """Why a failed commit is the catalog's loss, not a write conflict to retry (None): the
    failure itself says so, or the catalog no longer answers (a commit cut off by the
    server's stop says only 'Failed to execute query "ROLLBACK": '). Call it after the
    rollback; push, pull and import all decide with it."""
    import duckdb

    if transient(exc):
        return exc
    try:
        con.execute("SELECT count(*) FROM meta").fetchone()
    except duckdb.Error as probe:
        return probe if transient(probe) else None
    return None


# (target text, read_only) -> a connection whose database has the lake attached. Loading
# the two extensions takes ~250 ms, four times an append; so a process loads them once
# and every open_store is a cursor of it (a PostgreSQL catalog holds no lock to release).
_POOL: dict[tuple[str, bool], Any] = {}  # duckdb connections (duckdb is imported lazily)


def connect(target: LakeTarget, *, read_only: bool, sandbox: bool, timeout: float):
    """A connection with the lake attached as `lake` and in USE; waits up to `timeout`
    seconds for an unreachable catalog, then raises StoreUnreachable."""
    import duckdb

    if not read_only:
        make_folder(target)
    deadline = time.monotonic() + timeout
    delay, warned = 0.05, False
    pooled = target.catalog == "postgres" and not sandbox
    key = (target.text, read_only)
    while True:
        con = None
        try:
            base = _POOL.pop(key, None) if pooled else None
            if base is None:
                base = _attach(target, read_only)
            if not pooled:
                con = base
                return _sandboxed(con) if sandbox else con
            con = base.cursor()
            con.execute(f"USE {ALIAS}")
            con.execute(f"FROM ducklake_current_snapshot('{ALIAS}')")  # is the catalog there?
            _POOL[key] = base
            return con
        except duckdb.Error as exc:
            if con is not None:
                con.close()
            if pooled and base is not None:
                base.close()
            if creating_at_once(exc) and time.monotonic() < deadline:
                time.sleep(0.05 * (1 + random.random()))
                continue
            msg = _message(exc, target)
            if "data_path is not set" in msg:
                raise InputError(
                    f"store {target.shown!r} holds no results store yet: add "
                    "data_path=<shared folder> to the target to create one"
                ) from None
            if not transient(exc):
                raise InputError(f"cannot open the store {target.shown}: {msg}") from None
            now = time.monotonic()
            if now >= deadline:
                raise StoreUnreachable(
                    f"the shared store {target.shown} did not answer for {timeout:g} s ({msg})"
                ) from None
            if not warned:
                print(
                    f"waiting for the store {target.shown} (unreachable: {msg})...",
                    file=sys.stderr,
                    flush=True,
                )
                warned = True
            time.sleep(min(delay, max(deadline - now, 0)))
            delay = min(delay * 2, 2.0)


def _attach(target: LakeTarget, read_only: bool):
    import duckdb

    con = duckdb.connect(config={"autoinstall_known_extensions": False})
    try:
        load_extensions(con, target.extensions)
        for key, value in RETRY_SETTINGS.items():
            con.execute(f"SET {key} = {value}")
        con.execute(f"SET ducklake_retry_backoff = {RETRY_BACKOFF}")
        con.execute(target.attach_sql(read_only))
        con.execute(f"USE {ALIAS}")
    except BaseException:
        con.close()
        raise
    return con


def forget(target: LakeTarget) -> None:
    """Drop this process's pooled connections to `target` (the next open reconnects)."""
    for key in [k for k in _POOL if k[0] == target.text]:
        _POOL.pop(key).close()


def _message(exc: BaseException, target: LakeTarget | None = None) -> str:
    """One redacted line of a DuckDB error (DuckLake repeats the connection string)."""
    text = redact(str(exc))
    if target is not None and target.catalog == "postgres" and target.conninfo.strip():
        text = text.replace(redact(target.conninfo), "<catalog>")  # (an empty one: PG* vars)
    text = re.sub(r'Failed to attach DuckLake MetaData "[^"]*" at path \+ "[^"]*"', "", text)
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return " ".join(lines)[:400] if lines else type(exc).__name__


def data_path(con) -> str | None:
    row = con.execute(
        f"SELECT value FROM ducklake_options('{ALIAS}') WHERE option_name = 'data_path'"
    ).fetchone()
    return None if row is None else str(row[0])


def _sandboxed(con):
    """Read-only SQL for users: no file access beyond the lake's own data files, and only
    statements that read (a data folder is writable by COPY, so COPY is refused)."""
    from anemll_spec.store.lake_sandbox import SandboxedConnection

    folder = data_path(con)
    if folder:  # a path or a URL (file://, s3://): DuckDB matches either as a prefix
        from anemll_spec.store.schema import sql_literal

        # (file:// is tested; object storage is not: no httpfs extension or bucket here)
        con.execute(f"SET allowed_directories = [{sql_literal(folder)}]")
    con.execute("SET enable_external_access = false")
    con.execute("SET lock_configuration = true")
    return SandboxedConnection(con)


# ---------------------------------------------------------------- DDL and claims


def create_table_sql(table) -> str:
    """schema.Table -> CREATE TABLE for DuckLake: NOT NULL kept, PRIMARY KEY dropped
    (DuckLake has none; the writers keep `meta.key` unique)."""
    cols = [f"    {c.name} {c.type}{' NOT NULL' if c.required else ''}" for c in table.columns]
    return f"CREATE TABLE {table.name} (\n" + ",\n".join(cols) + "\n)"


CLAIM_KEY = "writer_claim"


def claim(con) -> None:
    """Inside a transaction: make it conflict with every other claiming transaction.

    Both delete the same catalog row, which DuckLake refuses to commit twice; the loser
    fails at COMMIT and is retried by its caller, which then sees the winner's rows."""
    import uuid

    con.execute("DELETE FROM meta WHERE key = ?", [CLAIM_KEY])
    con.execute("INSERT INTO meta VALUES (?, ?)", [CLAIM_KEY, uuid.uuid4().hex])


def ensure_claim_row(con) -> None:
    """The row `claim` deletes must exist before two first claims race (else neither
    deletes anything and both commit). Duplicates of it are harmless."""
    if con.execute("SELECT 1 FROM meta WHERE key = ?", [CLAIM_KEY]).fetchone() is None:
        con.execute("INSERT INTO meta VALUES (?, '')", [CLAIM_KEY])


def dedupe_hosts(con, attempts: int = 20) -> int:
    """Two writers that start runs at once may both add the same (content-hashed) host
    row; keep one. Returns the rows removed."""
    import duckdb

    removed = 0
    for _ in range(attempts):
        dups = con.execute(
            "SELECT host_id, count(*) FROM hosts GROUP BY host_id HAVING count(*) > 1"
        ).fetchall()
        if not dups:
            return removed
        try:
            con.execute("BEGIN")
            claim(con)
            for host_id, n in dups:
                con.execute(
                    "CREATE OR REPLACE TEMP TABLE _one_host AS "
                    "SELECT * FROM hosts WHERE host_id = ? LIMIT 1",
                    [host_id],
                )
                con.execute("DELETE FROM hosts WHERE host_id = ?", [host_id])
                con.execute("INSERT INTO hosts SELECT * FROM _one_host")
                removed += n - 1
            con.execute("COMMIT")
        except duckdb.TransactionException:
            _rollback(con)
            removed = 0
            time.sleep(0.05)
    return removed


def tidy_hosts(con) -> str | None:
    """dedupe_hosts after a commit, which it can no longer undo: the rows are in, so a
    failure here is a warning (what to do), not "nothing written". Always run, not only
    when this writer added a host, so that running the command again finishes it."""
    import duckdb

    try:
        dedupe_hosts(con)
    except duckdb.Error as exc:
        return (
            f"written, but removing duplicate host rows failed ({_message(exc)}): "
            "run the command again to finish"
        )
    return None


def _rollback(con) -> None:
    import contextlib

    import duckdb

    with contextlib.suppress(duckdb.Error):  # a failed COMMIT already ended the transaction
        con.execute("ROLLBACK")
