"""Where a shared store is: a `ducklake:` target parsed into its catalog, its libpq
connection string and its data folder, and every password in such text redacted.

Pure text handling (no DuckDB, no network), so every command can tell a shared store from
a file and show its target safely without loading an extension. The forms are listed in
`anemll_spec.store.lake`'s docstring and docs/store.md ("A shared store").
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from anemll_spec.errors import InputError

PREFIX = "ducklake:"
ALIAS = "lake"  # the attached catalog; `USE lake` makes every unqualified name resolve there
SECRET_KEYS = ("password", "passfile", "sslpassword")


@dataclass(frozen=True)
class LakeTarget:
    text: str  # as given (may hold a password: never print it, print `shown`)
    catalog: str  # 'postgres' | 'duckdb'
    conninfo: str  # libpq connection string, or the catalog file's path
    data_path: str | None

    @property
    def shown(self) -> str:
        return redact(self.text)

    @property
    def extensions(self) -> tuple[str, ...]:
        return ("ducklake", "postgres_scanner") if self.catalog == "postgres" else ("ducklake",)

    def attach_sql(self, read_only: bool) -> str:
        from anemll_spec.store.schema import sql_literal

        where = f"postgres:{self.conninfo}" if self.catalog == "postgres" else self.conninfo
        opts = []
        if self.data_path:
            opts.append(f"DATA_PATH {sql_literal(self.data_path)}")
        if read_only:
            opts.append("READ_ONLY")
        tail = f" ({', '.join(opts)})" if opts else ""
        return f"ATTACH {sql_literal(PREFIX + where)} AS {ALIAS}{tail}"


def is_lake(text: str | os.PathLike | None) -> bool:
    return isinstance(text, str) and text.startswith(PREFIX)


def parse_target(text: str) -> LakeTarget:
    """A `ducklake:` target, checked (InputError with the redacted text if malformed)."""
    rest = text[len(PREFIX) :]
    if rest.startswith("postgres:") or rest.startswith("postgresql:"):
        info = rest.split(":", 1)[1]
        if info.startswith("//"):  # postgres://...: a URI, written with its scheme
            info = "postgresql:" + info
        conninfo, data_path = _split_data_path(info, text)
        return LakeTarget(text, "postgres", conninfo, _absolute(data_path))
    scheme = rest.split(":", 1)[0]
    if ":" in rest and scheme.isalpha() and len(scheme) > 1:
        raise InputError(
            f"store {redact(text)!r}: catalog {scheme!r} is not supported; use "
            "ducklake:postgres:<connection> data_path=<folder> or ducklake:<file>.ducklake"
        )
    if not rest.strip():
        raise InputError(f"store {text!r}: give a catalog after 'ducklake:'")
    return LakeTarget(text, "duckdb", str(Path(rest).expanduser().absolute()), None)


def make_folder(target: LakeTarget) -> None:
    """A DuckDB catalog file's folder, made for a writing open as a file store's is
    (DuckDB made neither: 'Cannot open file'). A catalog on a server has none."""
    if target.catalog != "duckdb":
        return
    catalog = Path(target.conninfo)
    above = next((p for p in catalog.parents if p.exists()), None)
    if above is not None and not above.is_dir():
        raise InputError(f"cannot make a store at {target.shown}: {above} is a file, not a folder")
    try:
        catalog.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(
            f"cannot make a store at {target.shown}: cannot make the folder "
            f"{catalog.parent} ({exc.strerror or exc})"
        ) from None


def _split_data_path(info: str, text: str) -> tuple[str, str | None]:
    """(libpq conninfo without data_path, data_path)."""
    if info.startswith("postgresql://"):
        try:
            parts = urlsplit(info)
            query = parse_qsl(parts.query, keep_blank_values=True)
        except ValueError as exc:  # 'Invalid IPv6 URL' (a lone '['): Python's words only
            raise InputError(
                f"store {redact(text)!r}: cannot read the connection URL ({exc})"
            ) from None
        data = [v for k, v in query if k == "data_path"]
        rest = urlencode([(k, v) for k, v in query if k != "data_path"])
        return urlunsplit(parts._replace(query=rest)), (data[-1] if data else None)
    try:
        pairs = _kv_pairs(info)
    except ValueError as exc:  # shown up to there: what follows may be a password
        at = len(text) - len(info) + int(exc.args[0])
        raise InputError(
            f"store {redact(text[:at]) + '...'!r}: cannot read the connection string at "
            f"character {at + 1} (the rest is not shown: it may hold a password); write "
            "key=value pairs, a value with a space or quote 'in quotes' with \\' and \\\\ escaped"
        ) from None
    data = [v for k, v in pairs if k == "data_path"]
    rest = " ".join(f"{k}={_kv_quote(v)}" for k, v in pairs if k != "data_path")
    return rest, (data[-1] if data else None)


# key=value as libpq reads it: a value that starts with a quote runs to its closing quote;
# any other runs to the next space, a quote in it being a character (password=it's), and
# in both a backslash takes the next character as it is
_KV = re.compile(r"\s*(\w+)\s*=\s*('(?:[^'\\]|\\.)*'|(?:[^\s'\\]|\\.)(?:[^\s\\]|\\.)*|)")


def _kv_pairs(info: str) -> list[tuple[str, str]]:
    """libpq key=value pairs (values may be 'quoted' with \\ escapes); ValueError(position)
    where they cannot be read (never the text there: it may be a password)."""
    out, pos = [], 0
    while info[pos:].strip():
        m = _KV.match(info, pos)
        if m is None:
            raise ValueError(pos + len(info[pos:]) - len(info[pos:].lstrip()))
        if info[m.end() : m.end() + 1].strip():  # a quote that never closes
            raise ValueError(m.end())
        value = m.group(2)
        value = re.sub(r"\\(.)", r"\1", value[1:-1] if value.startswith("'") else value)
        out.append((m.group(1), value))
        pos = m.end()
    return out


def _kv_quote(value: str) -> str:
    if value and not re.search(r"[\s'\\]", value):
        return value
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _absolute(path: str | None) -> str | None:
    if not path or "://" in path:  # object storage (s3://...) as given
        return path
    return str(Path(path).expanduser().absolute())


_KEYS = "|".join(SECRET_KEYS)
# key=value (libpq): a quoted value, or an unquoted one, which runs to the next space
# not escaped (libpq's `\ ` is part of the value, as _KV reads it: `password=pä\ ss`; a
# backslash before the quote closing an SQL string leaves that quote: `password=pw\' AS`)
# (a quote closing the SQL string around it is left: `ATTACH '...password=pw' AS`)
# (a quote that never closes runs to the end: `password='s3 cr3t` hid only `'s3`)
_SECRET_KV = re.compile(
    r"((?<![?&\w])(?:" + _KEYS + r")\s*=\s*)(?!(?:\*\*\*|\.\.\.|\*\*\*\.\.\.)(?:'|\s|$))"  # shown
    r"(''(?:[^']|'(?!'))*''|'(?:[^'\\]|\\.)*'|'(?:[^'\\]|\\.)*\\?$"
    r"|(?:[^\s'\\]|\\(?!'(?:\s|$)).|\\(?='(?:\s|$))|\\$)"
    r"(?:[^\s\\]|\\(?!'(?:\s|$)).|\\(?='(?:\s|$)))*?(?:\\$)?(?='?(?:\s|$)))",
    re.I | re.S,
)
# a URI's query parameter runs to the next '&'
_SECRET_QUERY = re.compile(r"([?&](?:" + _KEYS + r")=)(?!\*\*\*(?:&|\s|$))[^&\s]*", re.I)
# a URI's user:password@ runs to the last '@' of the URI (a raw '@' in it is common)
_SECRET_URI = re.compile(r"(\w+://[^:/@\s]*):\S*@(?=[^@\s]*(?:\s|$))")


def command_text(argv) -> str:
    """A command line as it is stored and shown: each word redacted, then quoted for a
    shell (quoting first turned a quoted password's own quotes into '"'"', which the
    pattern no longer saw as one value: `password='s3 cr3t'` was stored in clear). A word
    that is no UTF-8 (a file name's bytes, passed on as lone surrogates, which DuckDB
    cannot bind: bench crashed storing its run) shows those bytes as \\xNN."""
    import shlex

    from anemll_spec.text import undecodable_as_hex

    return undecodable_as_hex(shlex.join(redact(str(word)) for word in argv))


def redact(text: str) -> str:
    """`text` with every password of a connection string replaced by ***."""
    text = _SECRET_QUERY.sub(r"\1***", _SECRET_KV.sub(r"\1***", str(text)))
    return _SECRET_URI.sub(r"\1:***@", text)
