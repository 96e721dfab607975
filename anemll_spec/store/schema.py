"""The store's schema, declared once, as data (llama-bench style).

Everything else is derived from these declarations: the DDL of a fresh store, the
column comments inside the DuckDB file, the validation of the write API's dicts and
of imported bundles, and the column reference in docs/store.md. This module declares
hosts, runs, samples, placements, reference and meta, and gathers the tables declared
in schema_cases.py (cases) and schema_energy.py (energy and sustained runs, v4); the
machinery (Column, Table, DDL, the shared vocabulary) is in columns.py and re-exported.

Rules that keep migrations and bundles simple:
- a column added by a later schema version goes at the END of its table and carries
  `since=<version>` (ALTER TABLE ADD COLUMN appends, so a migrated store and a fresh
  one then have identical tables; tests check it); a table added later carries `since`;
- a column name has the same SQL type in every bundled table (export writes them into
  one parquet file whose columns are the union by name). Its meaning is the table's:
  `throttled` of a case is drift, of a sustained window the thermal state.
"""

from __future__ import annotations

from anemll_spec.store.columns import (
    BACKENDS,
    CASE_ID,
    CASE_STATUSES,
    COMPUTE_UNITS,
    DEVICES,
    ENERGY_METHODS,
    HEX16,
    HEX64,
    INSTANCES,
    LONG_NAME,
    MAX_CALL_NS,
    MAX_SECONDS,
    MAX_WATTS,
    NAME,
    NOTES_TEXT,
    ORIGINS,
    PLACEMENT_DEVICES,
    RAIL,
    REFERENCE_METRICS,
    RUN_ID,
    RUN_STATUSES,
    SPEC_TEXT,
    SUSTAINED_VERDICTS,
    TEXT,
    VERIFY_STATUSES,
    Column,
    Table,
    comment_sql,
    create_table_sql,
    sql_literal,
)
from anemll_spec.store.schema_cases import CASES
from anemll_spec.store.schema_energy import CASE_ENERGY_RAILS, POWER_SAMPLES, SUSTAINED_WINDOWS

# = max(migrations.STEPS): a test keeps the two in step
SCHEMA_VERSION = 6

__all__ = [  # the vocabulary of columns.py is re-exported: import it from here
    "BACKENDS",
    "BUNDLE_TABLES",
    "BY_NAME",
    "CASES",
    "CASE_ENERGY_RAILS",
    "CASE_ID",
    "CASE_STATUSES",
    "COMPUTE_UNITS",
    "Column",
    "DEVICES",
    "ENERGY_METHODS",
    "HEX16",
    "HEX64",
    "HOSTS",
    "INSTANCES",
    "LONG_NAME",
    "MAX_CALL_NS",
    "MAX_SECONDS",
    "MAX_WATTS",
    "META",
    "NAME",
    "NOTES_TEXT",
    "ORIGINS",
    "PLACEMENTS",
    "PLACEMENT_DEVICES",
    "POWER_SAMPLES",
    "RAIL",
    "REFERENCE",
    "REFERENCE_METRICS",
    "RUNS",
    "RUN_ID",
    "RUN_STATUSES",
    "SAMPLES",
    "SCHEMA_VERSION",
    "SPEC_TEXT",
    "SUSTAINED_VERDICTS",
    "SUSTAINED_WINDOWS",
    "TABLES",
    "TEXT",
    "Table",
    "VERIFY_STATUSES",
    "bundle_columns",
    "bundle_tables",
    "comment_sql",
    "create_table_sql",
    "sql_literal",
]

C = Column
COMMAND_DOC = "the command that started the run (`anemll-spec ...` or `python ...`; NULL: none)"


HOSTS = Table(
    "hosts",
    "One row per distinct host snapshot (hardware, OS, power state, library versions). "
    "host_id is a hash of all the other fields, so identical snapshots share a row.",
    (
        C(
            "host_id",
            "VARCHAR",
            "sha256 (first 16 hex) of the other fields",
            required=True,
            pattern=HEX16,
        ),
        C("hostname", "VARCHAR", "host name"),
        C("chip", "VARCHAR", "SoC as the OS names it, e.g. 'Apple M4 Max' (raw)"),
        C("model_identifier", "VARCHAR", "hardware model, e.g. 'Mac16,5'"),
        C("os_name", "VARCHAR", "e.g. 'macOS', 'Linux'"),
        C("os_version", "VARCHAR", "e.g. '15.3.1'"),
        C("os_build", "VARCHAR", "e.g. '24D70'"),
        C("kernel", "VARCHAR", "kernel release"),
        C("cpu_model", "VARCHAR", "CPU brand string"),
        C(
            "cores_total",
            "INTEGER",
            "physical CPU cores of the machine (Linux: /proc/cpuinfo, a VM's own; "
            "not a container's CPU quota or affinity)",
            "cores",
            min=0,
        ),
        C("cores_p", "INTEGER", "performance cores", "cores", min=0),
        C("cores_e", "INTEGER", "efficiency cores", "cores", min=0),
        C(
            "memory_bytes",
            "BIGINT",
            "physical memory of the machine (Linux: MemTotal, a VM's own; "
            "not a container's cgroup limit)",
            "bytes",
            min=0,
        ),
        C("gpu", "VARCHAR", "GPU name"),
        C("power_source", "VARCHAR", "'AC' or 'Battery' at the start of the run"),
        C(
            "low_power_mode",
            "BOOLEAN",
            "macOS Low Power Mode on (pmset lowpowermode; on a Mac with High Power Mode, "
            "energy_mode 'low power': NULL there before v6)",
        ),
        C("thermal_state", "VARCHAR", "thermal state at the start of the run"),
        C("translated", "BOOLEAN", "Python runs under Rosetta translation"),
        C("python_version", "VARCHAR", "Python version"),
        C("coremltools_version", "VARCHAR", "coremltools version"),
        C("numpy_version", "VARCHAR", "numpy version"),
        C("duckdb_version", "VARCHAR", "duckdb version"),
        C("torch_version", "VARCHAR", "PyTorch version (NULL when not installed)"),
        C("gpu_driver", "VARCHAR", "GPU driver version", since=2),
        C(
            "cuda_version",
            "VARCHAR",
            "CUDA version torch was built with (read only by runs on torch: NULL otherwise)",
            since=2,
        ),
        # added in v3: what torch learns about the GPU (part of host_id's hash)
        C(
            "triton_version",
            "VARCHAR",
            "Triton version (read only by runs on torch: NULL otherwise, or not installed; "
            "so one machine's numpy and torch runs have two host rows)",
            since=3,
        ),
        C("gpu_memory_bytes", "BIGINT", "GPU memory (torch/cuda)", "bytes", min=0, since=3),
        C("gpu_sm_count", "INTEGER", "streaming multiprocessors (torch/cuda)", min=0, since=3),
        C("gpu_capability", "VARCHAR", "CUDA compute capability, e.g. '9.0'", since=3),
        C(
            "cudnn_version",
            "INTEGER",
            "cuDNN version as torch reports it (e.g. 91002 = 9.10.2)",
            min=0,
            since=3,
        ),
        C(
            "energy_mode",
            "VARCHAR",
            "macOS Energy Mode of a Mac with High Power Mode (pmset powermode): 'automatic', "
            "'low power' or 'high power' ('pmset powermode N' for a value not known); NULL on "
            "other hosts and before v6",
            since=6,
        ),
    ),
    unique=("host_id",),
)

RUNS = Table(
    "runs",
    "One row per `anemll-spec bench` invocation (one spec).",
    (
        C(
            "run_id",
            "VARCHAR",
            "'YYYYmmdd-HHMMSS-<8 hex>' (UTC start time + random)",
            required=True,
            pattern=RUN_ID,
        ),
        C("started_at", "TIMESTAMP", "start time (UTC)", "UTC", required=True),
        C("finished_at", "TIMESTAMP", "end time (UTC); NULL while running", "UTC"),
        C(
            "status",
            "VARCHAR",
            "'running' until finish_run; 'interrupted' when its process died",
            required=True,
            choices=RUN_STATUSES,
        ),
        C("spec_name", "VARCHAR", "spec `name`"),
        C("spec_sha256", "VARCHAR", "sha256 of the spec file's text", pattern=HEX64),
        C(
            "spec_yaml",
            "VARCHAR",
            "full text of the spec file",
            max_len=SPEC_TEXT,
            multiline=True,
            verbatim=True,
        ),
        C("tool_version", "VARCHAR", "anemll-spec version"),
        C("git_commit", "VARCHAR", "commit of the anemll-spec checkout, if any"),
        C(
            "git_dirty",
            "BOOLEAN",
            "the checkout had uncommitted changes to tracked files (untracked files do not count)",
        ),
        C("host_id", "VARCHAR", "-> hosts.host_id", pattern=HEX16),
        C("command", "VARCHAR", COMMAND_DOC, max_len=TEXT, multiline=True),
        C("writer_pid", "INTEGER", "pid of the writing process (stale-run detection)", since=2),
        C("writer_hostname", "VARCHAR", "host of the writing process", since=2),
        # added in v3: provenance
        C(
            "origin",
            "VARCHAR",
            "how the run entered this store: measured (here), imported (a bundle), pushed "
            "(into a shared store); NULL: stored before v3",
            choices=ORIGINS,
            since=3,
        ),
        C(
            "origin_ref",
            "VARCHAR",
            "imported: the bundle's file name; pushed: the pushing host",
            max_len=LONG_NAME,
            since=3,
        ),
        C(
            "origin_sha256",
            "VARCHAR",
            "imported: sha256 of the bundle file",
            pattern=HEX64,
            since=3,
        ),
        C("origin_at", "TIMESTAMP", "when the run entered this store (UTC)", "UTC", since=3),
        # added in v5: two writers of one store may share a hostname
        C(
            "writer_machine_id",
            "VARCHAR",
            "hash (16 hex) of the writing machine's id (macOS hardware UUID, Linux machine-id); "
            "NULL: unknown or stored before v5",
            pattern=HEX16,
            since=5,
        ),
    ),
    unique=("run_id",),
)

SAMPLES = Table(
    "samples",
    "Every timed sample of every case, in the order they were taken.",
    (
        C("case_id", "VARCHAR", "-> cases.case_id", required=True, pattern=CASE_ID),
        C("idx", "INTEGER", "0-based position in the timed loop", min=0, required=True),
        C(
            "wall_ns",
            "BIGINT",
            "wall-clock latency of one prediction (at most an hour: no real call is longer)",
            "ns",
            min=0,
            max=MAX_CALL_NS,
            required=True,
        ),
        C(
            "runtime_ns",
            "BIGINT",
            "the runtime's own duration of the call: Core ML's predict, or CUDA events "
            "around it on torch/cuda (NULL if unknown)",
            "ns",
            min=0,
            max=MAX_CALL_NS,
            since=2,
        ),
        C(
            "start_ns",
            "BIGINT",
            "when the call started, after the case's earliest start (drift uses it; NULL "
            "before v3)",
            "ns",
            min=0,
            since=3,
        ),
        C(
            "window_index",
            "INTEGER",
            "the sustained window the call belongs to (sustained_windows; NULL: not a "
            "sustained run)",
            min=0,
            since=4,
        ),
    ),
    unique=("case_id", "idx"),
)

PLACEMENTS = Table(
    "placements",
    "Per-op device placement of a Core ML model (MLComputePlan), per case.",
    (
        C("case_id", "VARCHAR", "-> cases.case_id", required=True, since=2, pattern=CASE_ID),
        C("op_index", "INTEGER", "position of the op in the program", min=0, since=2),
        C("op_name", "VARCHAR", "op output name", since=2, max_len=LONG_NAME),
        C("op_type", "VARCHAR", "MIL op type, e.g. 'conv'", since=2),
        C(
            "preferred_device",
            "VARCHAR",
            "where Core ML prefers to run the op (NULL: unknown)",
            choices=PLACEMENT_DEVICES,
            since=2,
        ),
        C(
            "estimated_cost",
            "DOUBLE",
            "Core ML's estimated relative cost (nullable)",
            min=0.0,
            since=2,
        ),
        C(
            "compute_units",
            "VARCHAR",
            "compute units the plan was made for",
            choices=COMPUTE_UNITS,
            since=2,
        ),
    ),
)

REFERENCE = Table(
    "reference",
    "Published results with provenance, loaded from store/reference/ when the store is "
    "created or upgraded. Read the `note` and `derived` columns: the published tables' "
    "GB/s belong to llama_lm_head (fp16) and their ms to llama_lm_head_lut6.",
    (
        C("chip", "VARCHAR", "chip as published, e.g. 'M4 Max'", required=True),
        C("model", "VARCHAR", "published model name", required=True),
        C("metric", "VARCHAR", "what `value` is", required=True, choices=REFERENCE_METRICS),
        C("value", "DOUBLE", "the number", min=0.0, required=True),
        C("unit", "VARCHAR", "'GB/s' or 'ms'"),
        C("source", "VARCHAR", "where it was published", required=True),
        C("note", "VARCHAR", "provenance; for derived rows, how it was derived", max_len=TEXT),
        C("derived", "BOOLEAN", "computed by us from a published number", required=True, since=2),
    ),
)

META = Table(
    "meta",
    "Store metadata: schema_version, derived_sha256 (views, comments and reference data installed).",
    (
        C("key", "VARCHAR", "name", required=True),
        C("value", "VARCHAR", "value"),
    ),
    primary_key=("key",),
)

TABLES: tuple[Table, ...] = (
    META,
    HOSTS,
    RUNS,
    CASES,
    SAMPLES,
    PLACEMENTS,
    REFERENCE,
    CASE_ENERGY_RAILS,
    POWER_SAMPLES,
    SUSTAINED_WINDOWS,
)
BY_NAME = {t.name: t for t in TABLES}

# What a results bundle carries (export/import), in dependency order.
BUNDLE_TABLES: tuple[Table, ...] = (
    HOSTS,
    RUNS,
    CASES,
    SAMPLES,
    PLACEMENTS,
    CASE_ENERGY_RAILS,
    POWER_SAMPLES,
    SUSTAINED_WINDOWS,
)
# The bundled tables whose rows belong to a case (by case_id): exported, checked and
# merged with their case. A new such table needs no edit where these are handled.
CASE_TABLES: tuple[Table, ...] = tuple(
    t for t in BUNDLE_TABLES if t is not CASES and "case_id" in t.names
)


def bundle_tables(version: int = SCHEMA_VERSION) -> tuple[Table, ...]:
    """The tables a bundle of schema `version` carries."""
    return tuple(t for t in BUNDLE_TABLES if t.since <= version)


def bundle_columns(version: int = SCHEMA_VERSION) -> dict[str, str]:
    """Column name -> SQL type of the single parquet table of a bundle of `version`
    (the union by name of the bundled tables' columns of that version)."""
    out: dict[str, str] = {"table": "VARCHAR"}
    for t in bundle_tables(version):
        for c in t.columns:
            if c.since > version:
                continue
            if out.setdefault(c.name, c.type) != c.type:
                raise AssertionError(f"column {c.name} has two types in the schema")
    return out
