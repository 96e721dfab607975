"""anemll-spec query "SQL" | FILE.sql | NAME: run SQL on the results store, read-only."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from anemll_spec.cli._common import add_json, add_store, json_text
from anemll_spec.errors import InputError
from anemll_spec.text import printable, quoted

HELP = "run SQL on the results store (read-only)"
# What a query may read, for --help (a test keeps these in step with the store's schema)
TABLES = ("runs", "hosts", "cases", "samples", "placements", "reference", "case_energy_rails",
          "power_samples", "sustained_windows")  # fmt: skip
VIEWS = ("results", "chip_factors", "energy_factors")
MACROS = ("chip_factors_vs", "case_factors_vs", "energy_factors_vs")
DESCRIPTION = (
    "Run SQL on the results store. The store is opened read-only with file access "
    "disabled, so a query can never change it. SQL may be given inline, as a .sql file, "
    "or as the name of a query in store/queries/ (e.g. chip_factors). "
    f"Tables: {', '.join(TABLES)} (reference: the published results); views: "
    f"{', '.join(VIEWS)}; table macros: "
    + ", ".join(f"{m}('M4 Max')" for m in MACROS)
    + ". Text SQL longer than a file name is never read as a "
    "path; a single word is a query name, or SQL when no query has that name. See "
    "docs/store.md."
)
FORMATS = ("table", "csv", "json", "markdown")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("sql", metavar="SQL|FILE.sql|NAME", help="SQL text, a .sql file or a query name")
    p.add_argument(
        "--format",
        choices=FORMATS,
        default="table",
        help="output format (table); markdown: a GitHub table, ready to paste",
    )
    add_json(p)
    add_store(p)


def run(args: argparse.Namespace) -> int:
    import duckdb

    from anemll_spec.store import default_target, lake_target, open_store

    text = sql_text(args.sql)
    if args.json and args.format not in ("table", "json"):
        raise InputError(f"give --json or --format {args.format}, not both")
    fmt = "json" if args.json else args.format
    target = default_target(args.store)
    con = open_store(target, read_only=True, sandbox=True)
    try:
        try:
            statements = _statements(con, text)
            if statements == []:
                raise InputError("the query is empty (no SQL statement, only blanks or comments)")
            if _checkpoints(statements or []):
                raise InputError(
                    "query opens the store read-only, where CHECKPOINT does nothing; "
                    + (
                        "a shared store keeps no log of its own to fold in"
                        if lake_target.is_lake(target)
                        else "with no bench running: .venv/bin/duckdb STORE -c CHECKPOINT"
                    )
                )
            _one_result(statements or [])
            cur = con.execute(text)
            if cur.description is None:
                return 0
            columns = [d[0] for d in cur.description]
            rows = cur.fetchall()
        except duckdb.Error as exc:  # its text may quote store data: escaped
            raise _failed(target, exc) from None
    finally:
        con.close()
    sys.stdout.write(render(columns, rows, fmt))
    return 0


# statement types whose result is rows (DuckDB gives CALL and EXECUTE types of their own;
# PRAGMA, SHOW, DESCRIBE and SUMMARIZE parse as SELECT)
_ROWS = ("SELECT", "EXPLAIN", "CALL", "EXECUTE")
_CHANGES = ("INSERT", "UPDATE", "DELETE", "MERGE_INTO")  # rows only with RETURNING


def _one_result(statements: list) -> None:
    """DuckDB runs every statement and returns the last one's result alone: a result
    before another statement would vanish (`SELECT 42; CALL duckdb_tables()` printed the
    tables; `SELECT 42; SET VARIABLE v = 1` DuckDB's 'Success'). So the text may hold one
    statement that returns rows, and last (a SET VARIABLE or PREPARE before it)."""
    import re

    def rows(st) -> bool:
        kind = st.type.name
        return kind in _ROWS or (
            kind in _CHANGES and re.search(r"\bRETURNING\b", st.query, re.I) is not None
        )

    shown = [i for i, st in enumerate(statements) if rows(st)]
    if len(shown) > 1:
        raise InputError(
            f"give one statement that returns rows: this text has {len(shown)}, and "
            "only the last one's result would be shown; run each with its own query"
        )
    if shown and shown[0] != len(statements) - 1:
        after = statements[-1].type.name
        raise InputError(
            f"put the statement that returns rows last: DuckDB shows the last statement's "
            f"result alone, here the {after}'s, and the rows would vanish"
        )


def _failed(target: str, exc: BaseException) -> Exception:
    """The query's error: the shared store's server lost under it is the store's failure
    (exit 1); anything else is the query's (exit 2). Redacted either way: DuckDB may quote
    the catalog's connection string."""
    from anemll_spec.store import lake, lake_target

    if lake_target.is_lake(target) and lake.transient(exc):
        parsed = lake_target.parse_target(target)
        return lake.failed(parsed.shown, exc, " during the query", target=parsed)
    return InputError(f"query failed: {one_line(lake_target.redact(str(exc)))}")


def one_line(message: str) -> str:
    """DuckDB's error on one line: its `LINE n:` echo of the SQL and the caret under it
    point at a column only in a terminal's fixed layout (escaped, they printed as
    literal \\n and a stray ^); the rest (the error, 'Did you mean', 'Candidate
    bindings') is kept, joined with '; ', control characters escaped."""
    import re

    lines = [line.strip() for line in message.split("\n")]  # DuckDB indents with tabs
    kept = [ln for ln in lines if ln and ln != "^" and not re.match(r"LINE \d+:", ln)]
    return printable("; ".join(kept))


def _statements(con, text: str) -> list | None:
    """The statements of `text` as DuckDB parses them (None: it cannot; execute then
    reports the syntax error in its own words)."""
    import duckdb

    try:
        return con.extract_statements(text)
    except duckdb.Error:
        return None


def _checkpoints(statements: list) -> bool:
    """A CHECKPOINT said 'Success' on the read-only connection and folded nothing into
    the file: a copy made next then lacked the logged cases."""
    import re

    def bare(sql: str) -> str:  # comments off: a .sql file may start with one
        return re.sub(r"--[^\n]*|/\*.*?\*/", " ", sql, flags=re.S)

    form = re.compile(r"\s*(force\s+checkpoint|checkpoint|call\s+(force_)?checkpoint)\b", re.I)
    return any(form.match(bare(st.query)) for st in statements)


def sql_text(arg: str) -> str:
    """Inline SQL, a .sql file, or a query name from store/queries/.

    A file is an argument ending in .sql or naming an existing file (never a text too
    long or multi-line to be a path); a single word is a query name when store/queries/
    has it, else SQL when it parses as SQL, else an unknown query name."""
    from anemll_spec.store.published import QUERIES_DIR

    path = Path(arg)
    if arg.lower().endswith(".sql") or _is_file(path, arg):
        return read_sql(path, arg)
    _utf8(arg, "the SQL")
    if arg.replace("_", "").replace("-", "").isalnum():
        named = QUERIES_DIR / f"{arg}.sql"
        if named.is_file():
            return read_sql(named, str(named))
        if not _parses(arg):
            names = sorted(q.stem for q in QUERIES_DIR.glob("*.sql"))
            raise InputError(f"no query named {arg!r}; store/queries/ has: {', '.join(names)}")
    return arg


MAX_SQL_BYTES = 16 * 2**20  # a .sql file larger than this is no query


def read_sql(path: Path, shown: str) -> str:
    """A .sql file's text; one that cannot be read, or is not UTF-8, is bad input (a
    byte like 0xff raised UnicodeDecodeError, a traceback)."""
    from anemll_spec.paths import NOT_REGULAR, is_special

    try:
        st = path.stat()  # a FIFO hung the read, /dev/zero filled memory
        if is_special(mode=st.st_mode):
            raise InputError(f"cannot read {printable(shown)}: {NOT_REGULAR}")
        if st.st_size > MAX_SQL_BYTES:
            raise InputError(
                f"cannot read {printable(shown)}: {st.st_size:,} bytes, more than a query's "
                f"{MAX_SQL_BYTES:,}"
            )
        data = path.read_bytes()
    except OSError as exc:
        raise InputError(f"cannot read {printable(shown)}: {exc.strerror}") from None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InputError(
            f"cannot read {printable(shown)}: not UTF-8 text (byte {exc.start}); save it as UTF-8"
        ) from None


def _utf8(text: str, what: str) -> None:
    """SQL given inline must be UTF-8: bytes that are not arrive as surrogates, which
    DuckDB cannot take (UnicodeEncodeError, a traceback)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        at = len(text[: exc.start].encode("utf-8", "surrogateescape"))
        raise InputError(f"{what} is not UTF-8 text (byte {at})") from None


def _is_file(path: Path, arg: str) -> bool:
    """An existing file, asked only of text that can be a path (a name of at most 255
    bytes per component, one line); OS errors (name too long) mean 'not a file'."""
    import os

    if "\n" in arg or any(len(os.fsencode(p)) > 255 for p in path.parts):
        return False
    try:
        return path.is_file()
    except OSError:
        return False


def _parses(text: str) -> bool:
    import duckdb

    con = duckdb.connect()
    try:
        return bool(con.extract_statements(text))
    except duckdb.Error:
        return False
    finally:
        con.close()


def render(columns: list[str], rows: list[tuple], fmt: str) -> str:
    if fmt == "json":
        twice = next((c for i, c in enumerate(columns) if c in columns[:i]), None)
        if twice is not None:  # a JSON object keeps one of them: the other would vanish
            raise InputError(
                f"the result has two columns named {quoted(twice)}; a JSON row keeps one name "
                "once: give one of them another name (AS) for --format json"
            )
        data = [dict(zip(columns, r, strict=True)) for r in rows]
        return json_text(data) + "\n"
    rows = [tuple(map(_plain, r)) for r in rows]
    if fmt == "csv":
        import csv
        import io

        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        w.writerow([printable(c) for c in columns])
        w.writerows([["" if v is None else _csv_value(v) for v in r] for r in rows])
        return buf.getvalue()
    if fmt == "markdown":
        from anemll_spec.store import markdown

        return markdown.table(columns, rows)
    return render_table(columns, rows)


def _plain(v):
    """A list, struct or map as one line of JSON (--json's conversion: a CSV reader gets it
    back with json.loads; str() wrote Python's repr, datetime.datetime(2026, ...) and
    Decimal('0.3')), a BLOB as hex, as --json writes them; anything else as it is."""
    if isinstance(v, bytes):
        return v.hex()
    if not isinstance(v, list | tuple | dict):
        return v
    text = json_text(v, indent=None, ascii_only=False)
    return "".join(c if c.isprintable() else _u_escape(c) for c in text)


def _u_escape(c: str) -> str:
    """A character JSON keeps raw but a terminal should not get (DEL, U+2028, ...) as the
    JSON escape it reads back the same (two for one beyond U+FFFF)."""
    n = ord(c)
    if n <= 0xFFFF:
        return f"\\u{n:04x}"
    n -= 0x10000
    return f"\\u{0xD800 + (n >> 10):04x}\\u{0xDC00 + (n & 0x3FF):04x}"


CELL_WIDTH = 60  # characters of a text cell: a longer one is cut


def render_table(columns: list[str], rows: list[tuple], max_width: int = CELL_WIDTH) -> str:
    """Aligned columns: numbers right-aligned, NULL shown as NULL, long text cut."""
    from anemll_spec.text import aligned

    cells = [[_cell(v, max_width) for v in r] for r in rows]
    numeric = [
        bool(rows) and all(_is_num(r[i]) or r[i] is None for r in rows) for i in range(len(columns))
    ]
    out = aligned(columns, cells, numeric)
    out.append(f"({len(rows)} row{'s' * (len(rows) != 1)})")
    return "\n".join(out) + "\n"


def _is_num(v) -> bool:
    import decimal

    return isinstance(v, int | float | decimal.Decimal) and not isinstance(v, bool)


def _cell(v, max_width: int) -> str:
    if v is None:
        return "NULL"
    if isinstance(v, bool):
        return "true" if v else "false"
    text = _float(v) if isinstance(v, float) else printable(_decimal(v))
    return text if len(text) <= max_width else text[: max_width - 1] + "…"


def _decimal(v) -> str:
    """A DECIMAL with its digits, as DuckDB shows it (0.000000100; str() wrote 1.00E-7);
    any other value as str() writes it."""
    import decimal

    if isinstance(v, decimal.Decimal) and v.is_finite():
        return format(v, "f")
    return str(v)


def _float(v: float) -> str:
    if v != v or v in (float("inf"), float("-inf")):
        return str(v)
    if v == 0 or 1e-4 <= abs(v) < 1e15:
        text = f"{v:.6g}" if abs(v) < 1e6 else f"{v:.0f}"
        return text
    return f"{v:.4e}"


def _csv_value(v):
    """Floats exactly (repr); text with control characters escaped (a CSV is read in
    terminals too; a newline inside a field is kept quoted by csv, an ESC is not)."""
    if isinstance(v, float):
        return repr(v)
    if isinstance(v, str):
        return printable(v)
    import decimal

    return _decimal(v) if isinstance(v, decimal.Decimal) else v
