"""The machinery the schema is declared with: Column, Table, the shared vocabulary (allowed
sets, id forms, text limits) and the SQL derived from a declaration (DDL, comments).

The declarations themselves are data in schema.py (hosts, runs, samples, ...),
schema_cases.py (cases) and schema_energy.py (the energy and sustained-run tables of v4);
`anemll_spec.store.schema` is the one name the rest of the code imports them by.
"""

from __future__ import annotations

from dataclasses import dataclass

# SPEC_TEXT: a spec's text (shipped specs are ~2 KB); in vocab, as spec reading checks it
from anemll_spec.vocab import (  # noqa: F401
    COMPUTE_UNITS,
    DEVICES,
    INSTANCES,
    RESOLVED_BACKENDS,
    SPEC_TEXT,
)

RUN_STATUSES = ("running", "finished", "failed", "interrupted")
CASE_STATUSES = ("ok", "failed", "skipped")
VERIFY_STATUSES = ("pass", "fail", "skipped")
REFERENCE_METRICS = ("bandwidth_gbps", "latency_ms")
BACKENDS = RESOLVED_BACKENDS  # 'auto' is never stored
PLACEMENT_DEVICES = ("NeuralEngine", "GPU", "CPU")
ORIGINS = ("measured", "imported", "pushed")  # how a run entered this store
ENERGY_METHODS = ("ioreport", "powermetrics", "nvml", "rapl")  # anemll_spec.power readers
# anemll_spec.sustained.judge; "too few calls": a first or last window under 6 calls
SUSTAINED_VERDICTS = ("sustained", "degraded", "improved", "too few calls")

# The documented forms of ids and hashes (checked on import: the trust boundary).
HEX16 = r"[0-9a-f]{16}"
HEX64 = r"[0-9a-f]{64}"
RUN_ID = r"[0-9]{8}-[0-9]{6}-[0-9a-f]{8}"
CASE_ID = RUN_ID + r"-[0-9a-f]{8}"
RAIL = r"[a-z][a-z0-9_.-]*"  # a power rail: cpu, gpu, ane, dram, package, ...

# Text limits in characters (checked on write and on import). A single-line field
# refuses control characters; a multi-line one allows tab, newline and CR only.
NAME = 256  # names, versions, labels
LONG_NAME = 1024  # model names of sweeps, op names, where a bundle came from
TEXT = 16_384  # error messages, command lines, params
NOTES_TEXT = 65_536
MAX_CALL_NS = 3_600_000_000_000  # one hour: a longer "sample" is no real call
MAX_WATTS = 100_000.0  # no chip, board or rail a benchmark runs on draws 100 kW
MAX_SECONDS = 31 * 86_400.0  # a month: no interval, window or run of ours is longer


@dataclass(frozen=True)
class Column:
    name: str
    type: str  # DuckDB SQL type
    doc: str
    unit: str = ""
    required: bool = False  # NOT NULL
    choices: tuple[str, ...] = ()
    min: float | None = None  # inclusive bounds, checked on write and import
    max: float | None = None
    since: int = 1  # schema version that added it
    max_len: int | None = None  # characters (VARCHAR, JSON); None: the type's default
    pattern: str | None = None  # the documented form of an id (regex), checked on import
    multiline: bool = False  # free text: tab, newline and CR allowed
    # a file's text kept as written (a spec; its sha256 is stored): NEL (U+0085) allowed
    # too, a character the spec reader takes as YAML 1.2 does; multi-line text escaped it
    verbatim: bool = False

    @property
    def text_limit(self) -> int | None:
        """The length limit of a text column (every text column has one)."""
        if self.type not in ("VARCHAR", "JSON"):
            return None
        return self.max_len or (TEXT if self.type == "JSON" else NAME)


@dataclass(frozen=True)
class Table:
    name: str
    doc: str
    columns: tuple[Column, ...]
    primary_key: tuple[str, ...] = ()  # enforced by DuckDB (small tables only)
    unique: tuple[str, ...] = ()  # unique, enforced by the writer and import, not by an
    # index: DuckDB rewrites a table's whole index at every checkpoint, which would make
    # each append slower as the store grows
    since: int = 1  # schema version that added the table

    @property
    def names(self) -> list[str]:
        return [c.name for c in self.columns]

    def column(self, name: str) -> Column:
        for c in self.columns:
            if c.name == name:
                return c
        raise KeyError(name)


def ms(name: str, doc: str, since: int = 1) -> Column:
    """A latency in milliseconds (>= 0)."""
    return Column(name, "DOUBLE", doc, "ms", min=0.0, since=since)


def create_table_sql(table: Table) -> str:
    cols = [f"    {c.name} {c.type}{' NOT NULL' if c.required else ''}" for c in table.columns]
    if table.primary_key:
        cols.append(f"    PRIMARY KEY ({', '.join(table.primary_key)})")
    return f"CREATE TABLE {table.name} (\n" + ",\n".join(cols) + "\n)"


def comment_sql(table: Table) -> list[str]:
    """COMMENT ON statements, so `duckdb_columns()` documents the columns in the file."""
    out = [f"COMMENT ON TABLE {table.name} IS {sql_literal(table.doc)}"]
    for c in table.columns:
        text = c.doc + (f" [{c.unit}]" if c.unit else "")
        out.append(f"COMMENT ON COLUMN {table.name}.{c.name} IS {sql_literal(text)}")
    return out


def sql_literal(text: str) -> str:
    """A single-quoted SQL string literal (for the few places DuckDB takes no parameter)."""
    return "'" + text.replace("'", "''") + "'"
