"""Results bundles: the contribution path between stores (export, import).

A bundle is ONE parquet file, readable with plain DuckDB SQL:

    SELECT * FROM 'bundle.parquet' WHERE "table" = 'cases';

Its columns are the union by name of the bundled tables (hosts, runs, cases, samples,
placements) plus a `table` column naming the table of each row; a row's columns of
other tables are NULL. Parquet key-value metadata makes it self-describing:
`anemll_spec.bundle` ('results'), `anemll_spec.schema_version`,
`anemll_spec.tool_version`, `anemll_spec.created_at`, `anemll_spec.counts` (rows per
table, JSON) and `anemll_spec.columns` (table -> [[name, type, unit], ...], JSON).
Read it with `SELECT decode(key), decode(value) FROM parquet_kv_metadata('bundle.parquet')`.

Import validates every bundle completely (header, columns, types, values, references,
sample counts) before writing anything, and writes all of them in one transaction.
Runs already in the store are skipped, so importing twice changes nothing. Values only
ever travel as data (INSERT ... SELECT); nothing from a file is put into SQL text.
"""

from __future__ import annotations

import datetime as dt
import json
import os
from collections.abc import Sequence
from pathlib import Path

import duckdb
import numpy as np

from anemll_spec import __version__
from anemll_spec.errors import InputError
from anemll_spec.store import schema
from anemll_spec.store.connection import open_store
from anemll_spec.store.lookup import resolve_run
from anemll_spec.store.schema import BUNDLE_TABLES, Table, sql_literal

BUNDLE_KIND = "results"
KEY = "anemll_spec."


# ---------------------------------------------------------------- export


def _select(table: Table, where: str) -> str:
    return f"SELECT '{table.name}' AS \"table\", {', '.join(table.names)} FROM {table.name} {where}"


_WHERE = {
    "hosts": "WHERE host_id IN (SELECT host_id FROM runs WHERE run_id IN (SELECT run_id FROM _x))",
    "runs": "WHERE run_id IN (SELECT run_id FROM _x)",
    "cases": "WHERE run_id IN (SELECT run_id FROM _x)",
    "samples": "WHERE case_id IN (SELECT case_id FROM cases WHERE run_id IN (SELECT run_id FROM _x))",
    "placements": (
        "WHERE case_id IN (SELECT case_id FROM cases WHERE run_id IN (SELECT run_id FROM _x))"
    ),
}


def export_bundle(target, out: str | os.PathLike, run_refs: Sequence[str] = ()) -> dict:
    """Write the given runs (all when none given) to `out`; returns a summary."""
    out = Path(out)
    con = open_store(target, read_only=True)
    try:
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
            t.name: con.execute(f"SELECT count(*) FROM {t.name} {_WHERE[t.name]}").fetchone()[0]  # type: ignore[index]
            for t in BUNDLE_TABLES
        }
        meta = {
            "bundle": BUNDLE_KIND,
            "schema_version": str(schema.SCHEMA_VERSION),
            "tool_version": __version__,
            "created_at": dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "counts": json.dumps(counts, sort_keys=True),
            "columns": json.dumps(
                {t.name: [[c.name, c.type, c.unit] for c in t.columns] for t in BUNDLE_TABLES}
            ),
        }
        kv = ", ".join(f"{sql_literal(KEY + k)}: {sql_literal(v)}" for k, v in meta.items())
        union = " UNION ALL BY NAME ".join(_select(t, _WHERE[t.name]) for t in BUNDLE_TABLES)
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
        try:
            con.execute(
                f"COPY ({union}) TO {sql_literal(str(tmp))} "
                f"(FORMAT parquet, COMPRESSION zstd, KV_METADATA {{{kv}}})"
            )
            os.replace(tmp, out)
        finally:
            tmp.unlink(missing_ok=True)
    finally:
        con.close()
    return {"file": str(out), "runs": run_ids, "counts": counts}


# ---------------------------------------------------------------- import


def read_header(path: Path) -> dict:
    """The bundle's key-value metadata and columns, checked; InputError if it is no bundle."""
    if not path.is_file():
        raise InputError(f"{path}: no such file")
    con = duckdb.connect()
    try:
        try:
            kv_rows = con.execute(
                "SELECT key, value FROM parquet_kv_metadata(?)", [str(path)]
            ).fetchall()
            described = con.execute(
                "DESCRIBE SELECT * FROM read_parquet(?)", [str(path)]
            ).fetchall()
        except duckdb.Error as exc:
            raise InputError(f"{path}: not a readable parquet file ({_first_line(exc)})") from None
    finally:
        con.close()
    kv = {}
    for k, v in kv_rows:
        k = bytes(k).decode("utf-8", "replace")
        if k.startswith(KEY):
            kv[k[len(KEY) :]] = bytes(v).decode("utf-8", "replace")
    if kv.get("bundle") != BUNDLE_KIND:
        raise InputError(f"{path}: not an anemll-spec results bundle (no {KEY}bundle metadata)")
    try:
        version = int(kv.get("schema_version", ""))
    except ValueError:
        raise InputError(
            f"{path}: unreadable schema_version {kv.get('schema_version')!r}"
        ) from None
    if version > schema.SCHEMA_VERSION:
        raise InputError(
            f"{path}: bundle of schema v{version}, written by a newer anemll-spec "
            f"(this one reads v{schema.SCHEMA_VERSION}): upgrade anemll-spec"
        )
    if version != schema.SCHEMA_VERSION:
        raise InputError(
            f"{path}: bundle of schema v{version}; this anemll-spec imports "
            f"v{schema.SCHEMA_VERSION} bundles"
        )
    try:
        counts = json.loads(kv["counts"])
        if set(counts) != {t.name for t in BUNDLE_TABLES} or not all(
            isinstance(n, int) and n >= 0 for n in counts.values()
        ):
            raise ValueError
    except (KeyError, ValueError, TypeError, AttributeError):
        raise InputError(f"{path}: missing or malformed {KEY}counts metadata") from None
    expected = schema.bundle_columns()
    found = {str(r[0]): str(r[1]) for r in described}
    missing = sorted(set(expected) - set(found))
    extra = sorted(set(found) - set(expected))
    if missing or extra:
        parts = []
        if missing:
            parts.append(f"missing columns {', '.join(missing)}")
        if extra:
            parts.append(f"unknown columns {', '.join(map(repr, extra[:10]))}")
        raise InputError(f"{path}: {'; '.join(parts)}")
    wrong = [f"{n} is {found[n]}, expected {t}" for n, t in expected.items() if found[n] != t]
    if wrong:
        raise InputError(f"{path}: wrong column types: {'; '.join(wrong)}")
    return {"version": version, "counts": counts, "meta": kv}


def import_bundles(target, paths: Sequence[str | os.PathLike]) -> list[dict]:
    """Import bundles (all or nothing); returns per-file summaries."""
    files = [Path(p) for p in paths]
    headers = [read_header(p) for p in files]  # every file, before the store is touched
    from anemll_spec.store.connection import store_path

    path = store_path(target)
    created = not path.exists()
    con = open_store(target)
    try:
        con.execute("BEGIN")
        try:
            staged = [
                _stage(con, i, p, h) for i, (p, h) in enumerate(zip(files, headers, strict=True))
            ]
            summaries = [
                _insert(con, i, p, s) for i, (p, s) in enumerate(zip(files, staged, strict=True))
            ]
            con.execute("COMMIT")
        except BaseException as exc:
            con.execute("ROLLBACK")
            if created:  # a store made only for this import goes with it: nothing written
                con.close()
                for f in (path, path.with_name(path.name + ".wal")):
                    f.unlink(missing_ok=True)
            if isinstance(exc, duckdb.Error):
                raise InputError(f"import failed, nothing written: {_first_line(exc)}") from None
            raise
    finally:
        con.close()
    return summaries


def _tmp(i: int, table: str) -> str:
    return f"_imp{i}_{table}"


def _stage(con, i: int, path: Path, header: dict) -> dict:
    """Load one bundle into temp tables and check all of it; InputError on any problem."""
    try:
        kinds = con.execute('SELECT DISTINCT "table" FROM read_parquet(?)', [str(path)]).fetchall()
    except duckdb.Error as exc:
        raise InputError(f"{path}: unreadable bundle ({_first_line(exc)})") from None
    bad = sorted(str(k[0]) for k in kinds if k[0] not in {t.name for t in BUNDLE_TABLES})
    if bad:
        raise InputError(f"{path}: rows of unknown tables: {', '.join(map(repr, bad[:5]))}")
    for t in BUNDLE_TABLES:
        try:
            con.execute(
                f"CREATE TEMP TABLE {_tmp(i, t.name)} AS "
                f'SELECT {", ".join(t.names)} FROM read_parquet(?) WHERE "table" = ?',
                [str(path), t.name],
            )
        except duckdb.Error as exc:
            raise InputError(f"{path}: unreadable bundle ({_first_line(exc)})") from None
        (n,) = con.execute(f"SELECT count(*) FROM {_tmp(i, t.name)}").fetchone()  # type: ignore[misc]
        if n != header["counts"][t.name]:
            raise InputError(
                f"{path}: {t.name} has {n} rows but the bundle says {header['counts'][t.name]}"
            )
        _check_values(con, path, t, _tmp(i, t.name))
        _check_unique(con, path, t, _tmp(i, t.name))
    _check_references(con, path, i)
    return {"counts": header["counts"]}


def _check_values(con, path: Path, t: Table, tmp: str) -> None:
    checks: list[tuple[str, str]] = []
    for c in t.columns:
        if c.required:
            checks.append((f"{c.name} IS NULL", f"{c.name} is NULL"))
        if c.choices:
            allowed = ", ".join(sql_literal(v) for v in c.choices)
            checks.append(
                (f"{c.name} NOT IN ({allowed})", f"{c.name} not in {{{', '.join(c.choices)}}}")
            )
        if c.type == "DOUBLE":
            checks.append((f"NOT isfinite({c.name})", f"{c.name} is not finite"))
        if c.type == "JSON":
            checks.append((f"NOT json_valid({c.name})", f"{c.name} is not valid JSON"))
        if c.min is not None:
            checks.append((f"{c.name} < {c.min!r}", f"{c.name} below {c.min:g}"))
        if c.max is not None:
            checks.append((f"{c.name} > {c.max!r}", f"{c.name} above {c.max:g}"))
    if not checks:
        return
    sql = ", ".join(f"count(*) FILTER (WHERE {cond})" for cond, _ in checks)
    counts = con.execute(f"SELECT {sql} FROM {tmp}").fetchone()
    problems = [f"{n} row(s) with {what}" for (_, what), n in zip(checks, counts, strict=True) if n]
    if problems:
        raise InputError(f"{path}: bad values in {t.name}: {'; '.join(problems[:8])}")


def _check_unique(con, path: Path, t: Table, tmp: str) -> None:
    key = t.unique or t.primary_key
    if not key:
        return
    cols = ", ".join(key)
    row = con.execute(
        f"SELECT {cols}, count(*) FROM {tmp} GROUP BY {cols} HAVING count(*) > 1 LIMIT 1"
    ).fetchone()
    if row is not None:
        raise InputError(f"{path}: duplicate {t.name} key ({cols}) = {row[:-1]!r}")


def _check_references(con, path: Path, i: int) -> None:
    h, r, c, s, p = (_tmp(i, n) for n in ("hosts", "runs", "cases", "samples", "placements"))
    checks = [
        (
            f"SELECT host_id FROM {r} WHERE host_id IS NOT NULL "
            f"AND host_id NOT IN (SELECT host_id FROM {h}) LIMIT 1",
            "a run refers to host {!r}, which is not in the bundle",
        ),
        (
            f"SELECT run_id FROM {c} WHERE run_id NOT IN (SELECT run_id FROM {r}) LIMIT 1",
            "a case refers to run {!r}, which is not in the bundle",
        ),
        (
            f"SELECT case_id FROM {s} WHERE case_id NOT IN (SELECT case_id FROM {c}) LIMIT 1",
            "a sample refers to case {!r}, which is not in the bundle",
        ),
        (
            f"SELECT case_id FROM {p} WHERE case_id NOT IN (SELECT case_id FROM {c}) LIMIT 1",
            "a placement refers to case {!r}, which is not in the bundle",
        ),
        (
            f"SELECT c.case_id FROM {c} c LEFT JOIN (SELECT case_id, count(*) AS n, "
            f"max(idx) AS hi FROM {s} GROUP BY case_id) k USING (case_id) "
            f"WHERE coalesce(k.n, 0) <> c.n_samples OR coalesce(k.hi, -1) <> c.n_samples - 1 "
            f"LIMIT 1",
            "case {!r}: n_samples does not match its samples (count or idx 0..n-1)",
        ),
        (
            f"SELECT case_id FROM {c} WHERE case_id IN (SELECT case_id FROM cases) "
            f"AND run_id NOT IN (SELECT run_id FROM runs) LIMIT 1",
            "case {!r} is already in the store under another run",
        ),
    ]
    for sql, message in checks:
        row = con.execute(sql).fetchone()
        if row is not None:
            raise InputError(f"{path}: {message.format(row[0])}")


def _insert(con, i: int, path: Path, staged: dict) -> dict:
    h, r, c, s, p = (_tmp(i, n) for n in ("hosts", "runs", "cases", "samples", "placements"))
    new = f"_imp{i}_new"
    con.execute(
        f"CREATE TEMP TABLE {new} AS SELECT run_id FROM {r} "
        f"WHERE run_id NOT IN (SELECT run_id FROM runs)"
    )
    (added,) = con.execute(f"SELECT count(*) FROM {new}").fetchone()  # type: ignore[misc]
    (total,) = con.execute(f"SELECT count(*) FROM {r}").fetchone()  # type: ignore[misc]

    def copy(table: Table, src: str, where: str) -> int:
        cols = ", ".join(table.names)
        (n,) = con.execute(
            f"INSERT INTO {table.name} ({cols}) SELECT {cols} FROM {src} {where}"
        ).fetchone()  # type: ignore[misc]
        return int(n)

    case_filter = (
        f"WHERE case_id IN (SELECT case_id FROM {c} WHERE run_id IN (SELECT run_id FROM {new}))"
    )
    # _stage checked against the store as it was; an earlier bundle of this same import
    # may have added a case id since (the schema's uniqueness is the writers' to keep)
    clash = con.execute(
        f"SELECT case_id FROM {c} WHERE run_id IN (SELECT run_id FROM {new}) "
        f"AND case_id IN (SELECT case_id FROM cases) LIMIT 1"
    ).fetchone()
    if clash is not None:
        raise InputError(f"{path}: case {clash[0]!r} is already in another bundle of this import")
    counts = {
        "hosts": copy(
            schema.HOSTS,
            h,
            f"WHERE host_id NOT IN (SELECT host_id FROM hosts) AND host_id IN "
            f"(SELECT host_id FROM {r} WHERE run_id IN (SELECT run_id FROM {new}))",
        ),
        "runs": copy(schema.RUNS, r, f"WHERE run_id IN (SELECT run_id FROM {new})"),
        "cases": copy(schema.CASES, c, f"WHERE run_id IN (SELECT run_id FROM {new})"),
        "samples": copy(schema.SAMPLES, s, case_filter),
        "placements": copy(schema.PLACEMENTS, p, case_filter),
    }
    return {
        "file": str(path),
        "runs_added": int(added),
        "runs_skipped": int(total - added),
        "rows": counts,
    }


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__
