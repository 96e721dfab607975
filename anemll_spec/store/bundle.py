"""Results bundles: the contribution path between stores. Here: the format, the file's
checks and staging, which import and push/pull share (export is store/exporting.py,
import store/importing.py).

A bundle is ONE parquet file, readable with plain DuckDB SQL:

    SELECT * FROM 'bundle.parquet' WHERE "table" = 'cases';

Its columns are the union by name of the bundled tables (hosts, runs, cases, samples,
placements, case_energy_rails, power_samples, sustained_windows) plus a `table` column naming the table of each row; a row's columns of
other tables are NULL. Parquet key-value metadata makes it self-describing:
`anemll_spec.bundle` ('results'), `anemll_spec.schema_version`,
`anemll_spec.tool_version`, `anemll_spec.created_at`, `anemll_spec.counts` (rows per
table, JSON) and `anemll_spec.columns` (table -> [[name, type, unit], ...], JSON).
Read it with `SELECT decode(key), decode(value) FROM parquet_kv_metadata('bundle.parquet')`.

Import is the store's trust boundary: a bundle's size and text lengths are checked from
the file before anything is staged (`read_header`), then its rows are staged in temp
tables and held to `trust.check_staged` (ids, hashes and every statistic recomputed):
`stage`, the one way rows from elsewhere come in. Values only ever travel as data
(INSERT ... SELECT); nothing from a file is put into SQL text.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import duckdb

from anemll_spec.errors import InputError
from anemll_spec.paths import NOT_REGULAR, is_special
from anemll_spec.store import schema
from anemll_spec.store.schema import BUNDLE_TABLES, Table
from anemll_spec.store.trust import Origin, check_staged
from anemll_spec.text import quoted

BUNDLE_KIND = "results"
KEY = "anemll_spec."


_STATUS_RANK = "CASE {} WHEN 'running' THEN 0 WHEN 'interrupted' THEN 1 ELSE 2 END"
MIN_VERSION = 2  # bundles of schema v2 and later import (older columns upgraded)
# Limits checked from the file's own metadata before any of its data is read.
MAX_BUNDLE_BYTES = 512 * 2**20  # uncompressed (sum of the parquet column chunks)
MAX_BUNDLE_ROWS = MAX_BUNDLE_BYTES // 8  # a real row holds at least an 8-byte value
STAGED_ROW_BYTES = 80  # measured: 300 M staged sample rows took 20 GB
MAX_FILE_BYTES = MAX_BUNDLE_BYTES  # on disk


def read_header(path: Path, name: str | None = None) -> dict:
    """The bundle's key-value metadata and columns, checked; InputError if it is no bundle
    or over the size limits. Reads the parquet footer only (no row data). `name`: what
    messages call the file (push/pull: the store its runs came from, not a temp file);
    kept in the header for `stage`."""
    from anemll_spec.store.connection import utf8_name

    where = name or str(path)
    utf8_name(str(path), "bundle")  # DuckDB reads it by name
    _check_file(path, where)
    con = duckdb.connect()
    try:
        try:
            kv_rows = con.execute(
                "SELECT key, value FROM parquet_kv_metadata(?)", [str(path)]
            ).fetchall()
            described = con.execute(
                "DESCRIBE SELECT * FROM read_parquet(?)", [str(path)]
            ).fetchall()
            (uncompressed,) = con.execute(
                "SELECT coalesce(sum(total_uncompressed_size), 0) FROM parquet_metadata(?)",
                [str(path)],
            ).fetchone()  # type: ignore[misc]
            (rows,) = con.execute(
                "SELECT coalesce(sum(num_rows), 0) FROM parquet_file_metadata(?)", [str(path)]
            ).fetchone()  # type: ignore[misc]
        except duckdb.Error as exc:
            raise InputError(
                f"{where}: not a readable parquet file ({_first_line(exc, path, where)})"
            ) from None
    finally:
        con.close()
    if uncompressed > MAX_BUNDLE_BYTES:
        raise InputError(
            f"{where}: {uncompressed:,} bytes uncompressed, over the limit of "
            f"{MAX_BUNDLE_BYTES:,} for one bundle (export fewer runs per bundle)"
        )
    kv = {}
    for k, v in kv_rows:
        k = bytes(k).decode("utf-8", "replace")
        if k.startswith(KEY):
            kv[k[len(KEY) :]] = bytes(v).decode("utf-8", "replace")
    if kv.get("bundle") != BUNDLE_KIND:
        raise InputError(f"{where}: not an anemll-spec results bundle (no {KEY}bundle metadata)")
    try:
        version = int(kv.get("schema_version", ""))
    except ValueError:
        raise InputError(
            f"{where}: unreadable schema_version {quoted(kv.get('schema_version'))}"
        ) from None
    if version > schema.SCHEMA_VERSION:
        raise InputError(
            f"{where}: bundle of schema v{version}, written by a newer anemll-spec "
            f"(this one reads v{schema.SCHEMA_VERSION}): upgrade anemll-spec"
        )
    if version < MIN_VERSION:
        raise InputError(
            f"{where}: bundle of schema v{version}; this anemll-spec imports bundles of "
            f"v{MIN_VERSION} to v{schema.SCHEMA_VERSION}"
        )
    try:
        counts = json.loads(kv["counts"])
        if set(counts) != {t.name for t in schema.bundle_tables(version)} or not all(
            isinstance(n, int) and n >= 0 for n in counts.values()
        ):
            raise ValueError
    except (KeyError, ValueError, TypeError, AttributeError):
        raise InputError(f"{where}: missing or malformed {KEY}counts metadata") from None
    _check_rows(where, int(rows), counts)
    expected = schema.bundle_columns(version)
    found = {str(r[0]): str(r[1]) for r in described}
    missing = sorted(set(expected) - set(found))
    extra = sorted(set(found) - set(expected))
    if missing or extra:
        parts = []
        if missing:
            parts.append(f"missing columns {', '.join(missing)}")
        if extra:
            parts.append(f"unknown columns {', '.join(quoted(e) for e in extra[:10])}")
        raise InputError(f"{where}: {'; '.join(parts)}")
    wrong = [f"{n} is {found[n]}, expected {t}" for n, t in expected.items() if found[n] != t]
    if wrong:
        raise InputError(f"{where}: wrong column types: {'; '.join(wrong)}")
    return {
        "version": version,
        "counts": counts,
        "meta": kv,
        "columns": set(expected),
        "name": where,
    }


def _check_rows(where: str, rows: int, counts: dict[str, int]) -> None:
    """The footer's row count, before a row is read: it must be what the counts say, and
    staging it must fit. Constant columns compress to nothing, so a file of a few hundred
    KB (and few uncompressed bytes by the footer's reckoning) can hold 300 million rows."""
    from anemll_spec.mlmodel.limits import check_alloc

    if rows != sum(counts.values()):
        raise InputError(
            f"{where}: the file holds {rows:,} rows, its counts say {sum(counts.values()):,}"
        )
    if rows > MAX_BUNDLE_ROWS:
        raise InputError(
            f"{where}: {rows:,} rows, over the limit of {MAX_BUNDLE_ROWS:,} for one bundle "
            "(export fewer runs per bundle)"
        )
    check_alloc(rows * STAGED_ROW_BYTES, where, f"staging its {rows:,} rows needs about")


def _check_file(path: Path, where: str) -> None:
    """A bundle is a regular file of bounded size (never opened otherwise: a FIFO
    would block, a folder is no bundle)."""
    import stat

    try:
        st = path.stat()
    except FileNotFoundError:
        raise InputError(f"{where}: no such file") from None
    except OSError as exc:
        raise InputError(f"{where}: cannot read it ({exc.strerror})") from None
    if stat.S_ISDIR(st.st_mode):
        raise InputError(f"{where}: is a folder, not a bundle file")
    if is_special(mode=st.st_mode):
        raise InputError(f"{where}: is {NOT_REGULAR}, not a bundle")
    if st.st_size > MAX_FILE_BYTES:
        raise InputError(f"{where}: {st.st_size:,} bytes, over the limit of {MAX_FILE_BYTES:,}")


def _check_text_lengths(con, path: Path, where: str, columns: set[str]) -> None:
    """Every text column within its table's limit, measured on the file per table
    (streamed, nothing kept) before anything is staged."""
    limits = {
        t.name: {c.name: c.text_limit for c in t.columns if c.name in columns and c.text_limit}
        for t in BUNDLE_TABLES
    }
    names = sorted({n for table in limits.values() for n in table})
    sql = ", ".join(f"max(length({n}))" for n in names)
    try:
        longest = con.execute(
            f'SELECT "table", {sql} FROM read_parquet(?) GROUP BY "table"', [str(path)]
        ).fetchall()
    except duckdb.Error as exc:
        raise InputError(f"{where}: unreadable bundle ({_first_line(exc, path, where)})") from None
    for table, *lengths in sorted(longest, key=lambda r: str(r[0])):
        for n, got in zip(names, lengths, strict=True):
            limit = limits.get(table, {}).get(n)  # (rows of unknown tables: stage refuses)
            if limit is not None and got is not None and got > limit:
                raise InputError(
                    f"{where}: a value of {table}.{n} is {got:,} characters long; "
                    f"the limit is {limit:,}"
                )


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def stage(
    con,
    prefix: str,
    path: Path,
    header: dict,
    *,
    label: str,
    origin: Origin,
    recomputed: bool = False,
) -> dict:
    """Load one bundle into temp tables `<prefix>_<table>` (upgraded to the current
    columns: a column or table the bundle's version lacks is NULL or empty) and hold
    them to the trust boundary, `trust.check_staged`; InputError on any problem.
    The one way rows from elsewhere are staged: import and push/pull both call it.
    Returns check_staged's counts and `staged` (table -> temp table); `recomputed`: see
    check_staged."""
    where = header.get("name") or str(path)
    _check_text_lengths(con, path, where, header["columns"])
    try:
        kinds = con.execute('SELECT DISTINCT "table" FROM read_parquet(?)', [str(path)]).fetchall()
    except duckdb.Error as exc:
        raise InputError(f"{where}: unreadable bundle ({_first_line(exc, path, where)})") from None
    carried = {t.name for t in schema.bundle_tables(header["version"])}
    bad = sorted(str(k[0]) for k in kinds if k[0] not in carried)
    if bad:
        raise InputError(
            f"{where}: rows of unknown tables: {', '.join(quoted(b) for b in bad[:5])}"
        )
    staged = {t.name: f"{prefix}_{t.name}" for t in BUNDLE_TABLES}
    for t in BUNDLE_TABLES:
        cols = ", ".join(
            c.name if c.name in header["columns"] else f"NULL::{c.type} AS {c.name}"
            for c in t.columns
        )
        try:
            con.execute(
                f"CREATE TEMP TABLE {staged[t.name]} AS "
                f'SELECT {cols} FROM read_parquet(?) WHERE "table" = ?',
                [str(path), t.name],
            )
        except duckdb.Error as exc:
            raise InputError(
                f"{where}: unreadable bundle ({_first_line(exc, path, where)})"
            ) from None
        (n,) = con.execute(f"SELECT count(*) FROM {staged[t.name]}").fetchone()
        if n != header["counts"].get(t.name, 0):
            raise InputError(
                f"{where}: {t.name} has {n} rows but the bundle says "
                f"{header['counts'].get(t.name, 0)}"
            )
    checked = check_staged(con, staged, label=label, origin=origin, recomputed=recomputed)
    return {**checked, "staged": staged}


def first_line(exc: BaseException) -> str:
    """An error's first line (DuckDB's messages run on with context), or its type."""
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def _first_line(exc: BaseException, path: Path, where: str) -> str:
    """first_line, the file named as the messages name it."""
    return first_line(exc).replace(str(path), where)


def advance_status(con, runs: str) -> int:
    """Runs the store holds take the status (and finish time) of staged `runs` where it is
    later: a status only moves forward when runs merge (import, push, pull): running ->
    interrupted -> finished or failed; with the same status, a later finish time (a run
    marked interrupted here, then interrupted in the store it went on in, ended after its
    last case there, not before it). Returns how many runs changed."""
    new, old = _STATUS_RANK.format("x.status"), _STATUS_RANK.format("runs.status")
    (n,) = con.execute(
        f"UPDATE runs SET status = x.status, finished_at = x.finished_at FROM {runs} x "
        f"WHERE runs.run_id = x.run_id AND ({new} > {old} OR ({new} = {old} AND "
        "x.status = runs.status AND x.finished_at > runs.finished_at))"
    ).fetchone()
    return int(n)


def copy_rows(con, table: Table, src: str, where: str) -> int:
    """INSERT the rows of staged `src` that `where` selects into `table`, by the table's
    column names; returns how many (import and push/pull merge staged bundles so)."""
    cols = ", ".join(table.names)
    (n,) = con.execute(
        f"INSERT INTO {table.name} ({cols}) SELECT {cols} FROM {src} {where}"
    ).fetchone()
    return int(n)
