"""What a store holds besides its rows: its schema version and its derived objects
(views, macros, column comments, the published reference rows). A writing open creates,
upgrades or refreshes them (`prepare`); a read-only open only checks them
(`check_readable`), so that reading never changes a store.

Kept apart from connection.py, which only makes connections (file or DuckLake) and
waits out locks.
"""

from __future__ import annotations

import hashlib
import sys
from dataclasses import dataclass

import duckdb

from anemll_spec.errors import InputError
from anemll_spec.store import lake, migrations, published, schema, views
from anemll_spec.store.diagnose import cannot_open


class StoreOutdated(InputError):
    """A store that read-only commands will not read until a writing open upgrades it.

    version: its schema version (the current one when an upgrade stopped before its views
    were installed). `anemll-spec upgrade` catches it to report what it upgraded from."""

    def __init__(self, message: str, version: int) -> None:
        super().__init__(message)
        self.version = version


def _upgrade_hint(where, done: str = "upgrades it in place") -> str:
    """What upgrades the store `where` (as shown: a shared store's password redacted)."""
    import shlex

    from anemll_spec.text import path_word

    secret = " (with the password for ***)" if "***" in str(where) else ""
    return (
        f"`anemll-spec upgrade --store {shlex.quote(path_word(where))}`{secret} {done}, as "
        "does the next bench, import or push into it"
    )


def check_readable(con, where, *, shared: bool = False) -> None:
    """The store at `where` is at the current version (read-only opens change nothing)."""
    try:
        version = read_version(con, where)
    except duckdb.Error as exc:
        if shared:  # a catalog error, not a damaged file: _open_lake words it
            raise
        raise cannot_open(where, exc) from None
    if version is None:
        raise InputError(f"{where} is an empty database, not a results store yet")
    check_not_newer(version, where)
    if version < schema.SCHEMA_VERSION:
        raise StoreOutdated(
            f"the store {where} has schema v{version}, older than this anemll-spec's "
            f"v{schema.SCHEMA_VERSION}; read-only commands never change a store: "
            + _upgrade_hint(where)
            + (
                " (after that, older anemll-spec versions can no longer read or write it)"
                if shared
                else ""
            ),  # fmt: skip
            version,
        )
    if con.execute("SELECT 1 FROM meta WHERE key = 'derived_sha256'").fetchone() is None:
        raise StoreOutdated(  # an upgrade stopped between its steps and the views' re-install
            f"the store {where} lacks its views (an upgrade of it was stopped before it "
            "finished); " + _upgrade_hint(where, "completes it"),
            version,
        )


def read_version(con, path) -> int | None:
    """Schema version; None for an empty file; InputError for a foreign database."""
    sql = "SELECT value FROM meta WHERE key = 'schema_version'"
    try:
        row = con.execute(sql).fetchone()
    except duckdb.CatalogException:
        (n,) = con.execute(
            "SELECT count(*) FROM duckdb_tables() WHERE database_name = current_database()"
        ).fetchone()
        if n == 0:
            return None
        try:  # another writer may have created the store between the two reads (shared)
            row = con.execute(sql).fetchone()
        except duckdb.CatalogException:
            raise InputError(
                f"{path} is a DuckDB database but not an anemll-spec results store"
            ) from None
    try:
        return int(row[0])
    except (TypeError, ValueError):
        raise InputError(f"{path}: the store's schema_version is missing or unreadable") from None


def check_not_newer(version: int, path) -> None:
    if version > schema.SCHEMA_VERSION:
        raise InputError(
            f"the store {path} has schema v{version}, written by a newer anemll-spec; "
            f"this one reads up to v{schema.SCHEMA_VERSION}: upgrade anemll-spec"
        )


def views_stale(con, fingerprint: str | None = None) -> bool:
    """Whether the store's views, comments and reference rows are not this anemll-spec's
    (or were never installed: an upgrade stopped before them)."""
    row = con.execute("SELECT value FROM meta WHERE key = 'derived_sha256'").fetchone()
    return row is None or row[0] != (fingerprint or derived_fingerprint())


def derived_fingerprint() -> str:
    """Views, comments and reference data: re-installed whenever this changes."""
    parts = [*views.ALL, *(s for t in schema.TABLES for s in schema.comment_sql(t))]
    parts.append(published.fingerprint())
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()


@dataclass(frozen=True)
class StorePrepared:
    """What a writing open did to the store: its version as found (None: it created the
    store) and whether it changed anything (created, upgraded, views re-installed)."""

    version: int | None
    changed: bool


def prepare(con, path, *, shared: bool = False) -> StorePrepared:
    """Create, upgrade, or refresh the derived objects of a writable store.

    shared: a DuckLake (no primary keys; the row that `lake.claim` deletes is made)."""
    version = read_version(con, path)
    fingerprint = derived_fingerprint()
    if version is None:
        con.execute("BEGIN")
        for table in schema.TABLES:
            con.execute(lake.create_table_sql(table) if shared else schema.create_table_sql(table))
        con.execute("INSERT INTO meta VALUES ('schema_version', ?)", [str(schema.SCHEMA_VERSION)])
        if shared:
            lake.ensure_claim_row(con)
        _install_derived(con, fingerprint)
        con.execute("COMMIT")
        return StorePrepared(None, True)
    check_not_newer(version, path)
    upgraded = version < schema.SCHEMA_VERSION
    if upgraded:  # steps may drop views and reference data: install them whatever the hash
        migrations.upgrade(con, version)
    if (
        shared
        and con.execute("SELECT 1 FROM meta WHERE key = ?", [lake.CLAIM_KEY]).fetchone() is None
    ):
        con.execute("BEGIN")
        lake.ensure_claim_row(con)
        con.execute("COMMIT")
    stale = upgraded or views_stale(con, fingerprint)
    if stale:
        con.execute("BEGIN")
        _install_derived(con, fingerprint)
        con.execute("COMMIT")
    return StorePrepared(version, stale)


def _install_derived(con, fingerprint: str) -> None:
    views.install(con)
    for table in schema.TABLES:
        for stmt in schema.comment_sql(table):
            con.execute(stmt)
    if published.PUBLISHED_CSV.is_file():
        published.reload(con)
    else:
        print(
            f"warning: {published.PUBLISHED_CSV} not found; the reference table stays empty",
            file=sys.stderr,
        )
    # DELETE + INSERT, not INSERT OR REPLACE: a DuckLake table has no primary key
    con.execute("DELETE FROM meta WHERE key = 'derived_sha256'")
    con.execute("INSERT INTO meta VALUES ('derived_sha256', ?)", [fingerprint])
