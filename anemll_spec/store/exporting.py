"""Export: the runs of a store written as one results bundle (the format, its checks and
staging are store/bundle.py; import is store/importing.py).

A store of an older schema (v2 and later) is exported as it is, in its own version's
layout, which import reads and upgrades: so runs can be pulled from, or exported out of,
a shared store that teammates on an older anemll-spec still use, without upgrading it
(which would lock them out). Reading never changes a store.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path

import duckdb
import numpy as np

from anemll_spec import __version__
from anemll_spec.errors import InputError
from anemll_spec.store import lake_target, schema
from anemll_spec.store.bundle import BUNDLE_KIND, KEY, MIN_VERSION, first_line
from anemll_spec.store.connection import default_target, describe_target, open_store
from anemll_spec.store.diagnose import cannot_open
from anemll_spec.store.lookup import resolve_run
from anemll_spec.store.prepare import StoreOutdated
from anemll_spec.store.schema import Table, sql_literal
from anemll_spec.text import printable

_WHERE = {
    "hosts": "WHERE host_id IN (SELECT host_id FROM runs WHERE run_id IN (SELECT run_id FROM _x))",
    "runs": "WHERE run_id IN (SELECT run_id FROM _x)",
    "cases": "WHERE run_id IN (SELECT run_id FROM _x)",
    "samples": "WHERE case_id IN (SELECT case_id FROM cases WHERE run_id IN (SELECT run_id FROM _x))",
}
for _t in schema.CASE_TABLES:
    _WHERE[_t.name] = _WHERE["samples"]


def _columns(table: Table, version: int) -> list[schema.Column]:
    return [c for c in table.columns if c.since <= version]


def _select(table: Table, version: int) -> str:
    names = ", ".join(c.name for c in _columns(table, version))
    return f"SELECT '{table.name}' AS \"table\", {names} FROM {table.name} {_WHERE[table.name]}"


def _open(target) -> tuple[duckdb.DuckDBPyConnection, int]:
    """The store, read-only, and the schema version of its tables: an older store that
    import can read (v2 and later) is opened as it is; a v1 store is refused with the
    upgrade hint, as every read-only command refuses it."""
    try:
        return open_store(target, read_only=True), schema.SCHEMA_VERSION
    except StoreOutdated as exc:
        if exc.version < MIN_VERSION:
            raise
        return open_store(target, read_only=True, check=False), exc.version


def _chosen(
    con, run_refs: Sequence[str], tables: Sequence[Table]
) -> tuple[list[str], dict[str, int]]:
    """The runs to export (as temp table _x) and the rows of each table they have."""
    if run_refs:
        run_ids = list(dict.fromkeys(resolve_run(con, r) for r in run_refs))
    else:
        run_ids = [r[0] for r in con.execute("SELECT run_id FROM runs").fetchall()]
    if not run_ids:
        raise InputError("the store holds no runs to export")
    con.register("_x_ids", {"run_id": np.array(run_ids, dtype=object)})
    con.execute("CREATE TEMP TABLE _x AS SELECT CAST(run_id AS VARCHAR) AS run_id FROM _x_ids")
    con.unregister("_x_ids")
    counts = {
        t.name: con.execute(f"SELECT count(*) FROM {t.name} {_WHERE[t.name]}").fetchone()[0]
        for t in tables
    }
    return run_ids, counts


def _damaged(exc: BaseException) -> bool:
    return "corrupt database file" in str(exc).lower()  # a block of the store


def _read_failed(target, exc: BaseException) -> Exception:
    """A failure while the store was read, named as the store's (never the output's): a
    shared store's server, a damaged block, or tables this version does not read."""
    if lake_target.is_lake(default_target(target)):
        from anemll_spec.store import lake

        shown = lake_target.redact(str(target))
        return lake.failed(shown, exc, " while exporting", "; nothing written")
    if _damaged(exc):
        return cannot_open(describe_target(target), exc)
    return InputError(
        f"cannot read the store {describe_target(target)}: {printable(first_line(exc))}; "
        "nothing written"
    )


def export_bundle(target, out: str | os.PathLike, run_refs: Sequence[str] = ()) -> dict:
    """Write the given runs (all when none given) to `out`; returns a summary, with the
    schema version the bundle was written in (the store's own)."""
    out = Path(out)
    con, version = _open(target)
    tables = schema.bundle_tables(version)
    try:
        try:
            # the counts and the rows from one snapshot: on a shared store another writer
            # may commit between two statements, and the bundle's counts must be its rows
            con.execute("BEGIN TRANSACTION")
            run_ids, counts = _chosen(con, run_refs, tables)
        except duckdb.Error as exc:
            raise _read_failed(target, exc) from None
        meta = {
            "bundle": BUNDLE_KIND,
            "schema_version": str(version),
            "tool_version": __version__,
            "created_at": dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "counts": json.dumps(counts, sort_keys=True),
            "columns": json.dumps(
                {t.name: [[c.name, c.type, c.unit] for c in _columns(t, version)] for t in tables}
            ),
        }
        kv = ", ".join(f"{sql_literal(KEY + k)}: {sql_literal(v)}" for k, v in meta.items())
        union = " UNION ALL BY NAME ".join(_select(t, version) for t in tables)
        out.parent.mkdir(parents=True, exist_ok=True)
        # a short name of its own beside `out` (os.replace stays in one file system): one
        # built from out's name went past 255 bytes for a legal name of 245 and more
        try:
            fd, tmp_name = tempfile.mkstemp(dir=out.parent, prefix=".anemll-export-", suffix=".tmp")
        except OSError as exc:  # a folder it may not write in, a full disk
            raise InputError(
                f"cannot write {printable(out)}: {exc.strerror or exc}; nothing written"
            ) from None
        os.close(fd)  # DuckDB's COPY writes it anew (with the umask's permissions)
        tmp = Path(tmp_name)
        try:
            con.execute(
                f"COPY ({union}) TO {sql_literal(str(tmp))} "
                f"(FORMAT parquet, COMPRESSION zstd, KV_METADATA {{{kv}}})"
            )
            os.replace(tmp, out)
        except duckdb.Error as exc:  # disk full, a path the system refuses (/proc/x)
            shared = lake_target.is_lake(default_target(target))
            if str(tmp) in str(exc) or (
                isinstance(exc, duckdb.IOException) and not shared and not _damaged(exc)
            ):
                raise InputError(
                    f"cannot write {out}: {printable(first_line(exc))}; nothing written"
                ) from None
            raise _read_failed(target, exc) from None
        finally:
            tmp.unlink(missing_ok=True)
    finally:
        with contextlib.suppress(duckdb.Error):
            con.execute("ROLLBACK")  # it only read
        con.close()
    return {"file": str(out), "runs": run_ids, "counts": counts, "schema_version": version}
