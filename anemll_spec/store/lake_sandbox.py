"""Users' SQL on a shared store: read, never change.

A DuckDB file store is sandboxed by turning file access off. A DuckLake must read its
Parquet files, so its data folder stays reachable, and with it COPY ... TO that folder
and DuckLake's maintenance functions (which delete or rewrite data files; one of them,
set_option, crashes DuckDB on a read-only attach). So on a shared store `query` and the
charts run only statements that read (SELECT, and EXPLAIN without ANALYZE), and none
that calls a maintenance function. The catalog is attached READ_ONLY besides; but the
postgres extension's functions reach the catalog's server past that (postgres_execute
runs its text in a transaction that a leading COMMIT ends: writes, server files), and
table functions run SQL of their own (query, json_execute_serialized_sql) or read files.
So no function named postgres_* is allowed, and of the built-in table functions only
those that read nothing outside the query (READ_TABLE_FUNCTIONS); nor a built-in view
that calls another (duckdb_databases and pragma_database_list show the attach path, the
catalog's connection string with its password; pg_settings shows the settings), nor
current_setting() (the setting allowed_paths holds that connection string too).
"""

from __future__ import annotations

import functools
import json
import re

from anemll_spec.errors import InputError

READING = {"SELECT", "EXPLAIN"}
# DuckLake functions that write: they appear as ducklake_<name>(...) or lake.<name>(...)
WRITING_FUNCTIONS = (
    "set_option",
    "add_data_files",
    "cleanup_old_files",
    "delete_orphaned_files",
    "merge_adjacent_files",
    "rewrite_data_files",
    "flush_inlined_data",
    "expire_snapshots",
    "ducklake_commit",
    "set_commit_message",
)


# table functions that make rows from their arguments or describe the schema: nothing
# else (no file, no server, no SQL text of their own, no checkpoint)
READ_TABLE_FUNCTIONS = frozenset(
    {
        "range",
        "generate_series",
        "unnest",
        "repeat",
        "repeat_row",
        "json_each",
        "json_tree",
        "summary",
        "histogram",
        "histogram_values",
        "duckdb_columns",
        "duckdb_tables",
        "duckdb_views",
        "duckdb_schemas",
        "duckdb_constraints",
        "duckdb_indexes",
        "duckdb_sequences",
        "duckdb_dependencies",
        "duckdb_functions",
        "duckdb_types",
        "duckdb_keywords",
        "pragma_table_info",
    }
)


# scalar functions that read DuckDB's settings: allowed_paths holds the catalog's
# connection string, password and all (DuckDB 1.5.5)
SETTING_FUNCTIONS = frozenset({"current_setting"})


class SandboxedConnection:
    """A DuckDB connection whose execute/sql/query refuse statements that could write."""

    def __init__(self, con):
        self._con = con

    def execute(self, sql, parameters=None):
        check(self._con, sql)
        return (
            self._con.execute(sql, parameters) if parameters is not None else self._con.execute(sql)
        )

    def sql(self, sql, *args, **kwargs):
        check(self._con, sql)
        return self._con.sql(sql, *args, **kwargs)

    query = sql

    def cursor(self):
        return SandboxedConnection(self._con.cursor())

    def __getattr__(self, name):
        return getattr(self._con, name)

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self._con.close()


def check(con, sql: str) -> None:
    """InputError unless every statement of `sql` only reads."""
    import duckdb

    try:
        statements = con.extract_statements(sql)
    except duckdb.Error:
        return  # a syntax error: executing it reports the error, and runs nothing
    tables = _table_functions(con)  # once per check, not per statement
    for st in statements:
        kind = st.type.name
        text = st.query.strip()
        inner = _explained(con, text) if kind == "EXPLAIN" else text
        if kind not in READING or inner is None:
            raise InputError(
                f"the shared store is read-only here: {kind} statements are not allowed "
                "(only SELECT and EXPLAIN of a SELECT)"
            )
        functions, relations = _names(con, inner)
        for name in functions:
            low = name.lower()
            bare = low.rsplit(".", 1)[-1]
            if (
                any(w in low for w in WRITING_FUNCTIONS)
                or bare.startswith("postgres")
                or (bare in tables and bare not in READ_TABLE_FUNCTIONS)
            ):
                raise InputError(f"the shared store is read-only here: {name}() is not allowed")
            if bare in SETTING_FUNCTIONS:
                raise InputError(
                    f"on the shared store {name}() is not allowed: a setting holds the "
                    "catalog's connection string"
                )
        refused = relations & _refused_views()
        if refused:
            raise InputError(
                f"on the shared store the view {min(refused)} is not allowed: it shows "
                "DuckDB's attached databases, settings or logs (the catalog's connection string)"
            )


def _tokens(sql: str) -> list[tuple[int, str]]:
    """(offset, text) of each token as DuckDB's own tokenizer reads it: comments are not
    tokens (a text match was fooled by `EXPLAIN /**/ ANALYZE`); a quoted name is one.
    Offsets are in the UTF-8 bytes, as DuckDB counts (characters, they were fooled by
    multi-byte letters in a comment)."""
    import duckdb

    data = sql.encode()
    found = duckdb.tokenize(sql)
    out = []
    for i, (start, _) in enumerate(found):
        end = found[i + 1][0] if i + 1 < len(found) else len(data)
        piece = data[start:end].decode(errors="replace")
        m = re.match(r'"(?:[^"]|"")*"|\w+|\S', piece)
        out.append((start, m.group(0) if m else ""))
    return out


def _explained(con, text: str) -> str | None:
    """The SELECT an EXPLAIN shows, or None where it is not a plain EXPLAIN of one SELECT
    (EXPLAIN ANALYZE runs its statement; EXPLAIN (options) may ask for that too)."""
    import duckdb

    tokens = _tokens(text)
    if len(tokens) < 2 or tokens[1][1].upper() in ("ANALYZE", "ANALYSE", "("):
        return None
    inner = text.encode()[tokens[1][0] :].decode()
    try:
        statements = con.extract_statements(inner)
    except duckdb.Error:
        return None
    if len(statements) != 1 or statements[0].type.name != "SELECT":
        return None
    return inner


def _table_functions(con) -> set[str]:
    """The built-in table functions this connection has (its extensions' too)."""
    rows = con.execute(
        "SELECT DISTINCT lower(function_name) FROM duckdb_functions() "
        "WHERE function_type IN ('table', 'table_macro') AND internal"
    ).fetchall()
    return {r[0] for r in rows}


@functools.cache
def _refused_views() -> frozenset[str]:
    """DuckDB's own views (lower-case names) that call a table function refused here,
    directly or through another such view, judged from their SQL (so a view a later DuckDB
    adds is judged alike) once per process, on a bare connection (the built-in views are
    the same on every connection; listing them on the lake's lists its catalog too). In
    DuckDB 1.5.5: duckdb_databases, pragma_database_list, pg_database, pg_settings,
    duckdb_logs, pg_prepared_statements."""
    import duckdb

    con = duckdb.connect()
    try:
        rows = con.execute(
            "SELECT lower(view_name), lower(sql) FROM duckdb_views() WHERE internal"
        ).fetchall()
        refused_functions = _table_functions(con) - READ_TABLE_FUNCTIONS
    finally:
        con.close()
    calls = {v: set(re.findall(r"([a-z_]\w*)\s*\(", sql or "")) for v, sql in rows}
    words = {v: set(re.findall(r"[a-z_]\w*", sql or "")) for v, sql in rows}
    refused = {v for v, called in calls.items() if called & refused_functions}
    while True:  # a view of a refused view (as sqlite_schema reads sqlite_master)
        more = {v for v, w in words.items() if v not in refused and w & refused}
        if not more:
            return frozenset(refused)
        refused |= more


def _names(con, sql: str) -> tuple[set[str], set[str]]:
    """Every function name in a SELECT, and every table or view it names (lower-case,
    without catalog or schema), from DuckDB's own parse tree."""
    (tree,) = con.execute("SELECT json_serialize_sql(?)", [sql]).fetchone()
    doc = json.loads(tree)
    if doc.get("error"):  # no tree: look at the tokens instead (every name may be a table,
        # every name before a '(' a function, quoted or not, comments or not between)
        words = [t.strip('"').replace('""', '"') for _, t in _tokens(sql)]
        called = {w for w, after in zip(words, [*words[1:], ""], strict=True) if after == "("}
        return called, {w.lower() for w in words if w and (w[0].isalpha() or w[0] == "_")}
    names: set[str] = set()
    relations: set[str] = set()

    def walk(node) -> None:
        if isinstance(node, dict):
            if node.get("type") == "BASE_TABLE" and isinstance(node.get("table_name"), str):
                relations.add(node["table_name"].lower())
            for key, value in node.items():
                if key == "function_name" and isinstance(value, str):
                    names.add(value)
                else:
                    walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    walk(doc)
    return names, relations
