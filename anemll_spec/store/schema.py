"""The store's schema, declared once, as data (llama-bench style).

Everything else is derived from these declarations: the DDL of a fresh store, the
column comments inside the DuckDB file, the validation of the write API's dicts and
of imported bundles, and the column reference in docs/store.md.

Rules that keep migrations and bundles simple:
- a column added by a later schema version goes at the END of its table and carries
  `since=<version>` (ALTER TABLE ADD COLUMN appends, so a migrated store and a fresh
  one then have identical tables; tests check it);
- a column name means the same thing with the same SQL type in every table (export
  writes all tables into one parquet file whose columns are the union by name).
"""

from __future__ import annotations

from dataclasses import dataclass

# = max(migrations.STEPS): a test keeps the two in step
SCHEMA_VERSION = 3

RUN_STATUSES = ("running", "finished", "failed", "interrupted")
CASE_STATUSES = ("ok", "failed", "skipped")
VERIFY_STATUSES = ("pass", "fail", "skipped")
REFERENCE_METRICS = ("bandwidth_gbps", "latency_ms")
BACKENDS = ("coreml", "numpy", "torch")  # resolved backends ('auto' is never stored)
DEVICES = ("cuda", "mps", "cpu")
COMPUTE_UNITS = ("CPU_ONLY", "CPU_AND_GPU", "CPU_AND_NE", "ALL")
PLACEMENT_DEVICES = ("NeuralEngine", "GPU", "CPU")
ORIGINS = ("measured", "imported", "pushed")  # how a run entered this store

# The documented forms of ids and hashes (checked on import: the trust boundary).
HEX16 = r"[0-9a-f]{16}"
HEX64 = r"[0-9a-f]{64}"
RUN_ID = r"[0-9]{8}-[0-9]{6}-[0-9a-f]{8}"
CASE_ID = RUN_ID + r"-[0-9a-f]{8}"

# Text limits in characters (checked on write and on import). A single-line field
# refuses control characters; a multi-line one allows tab, newline and CR only.
NAME = 256  # names, versions, labels
LONG_NAME = 1024  # model names of sweeps, op names, where a bundle came from
TEXT = 16_384  # error messages, command lines, params
SPEC_TEXT = 262_144  # a spec file (shipped specs are ~2 KB)
NOTES_TEXT = 65_536
MAX_CALL_NS = 3_600_000_000_000  # one hour: a longer "sample" is no real call


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

    @property
    def names(self) -> list[str]:
        return [c.name for c in self.columns]

    def column(self, name: str) -> Column:
        for c in self.columns:
            if c.name == name:
                return c
        raise KeyError(name)


C = Column


def _ms(name: str, doc: str, since: int = 1) -> Column:
    return C(name, "DOUBLE", doc, "ms", min=0.0, since=since)


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
        C("cores_total", "INTEGER", "CPU cores", "cores", min=0),
        C("cores_p", "INTEGER", "performance cores", "cores", min=0),
        C("cores_e", "INTEGER", "efficiency cores", "cores", min=0),
        C("memory_bytes", "BIGINT", "physical memory", "bytes", min=0),
        C("gpu", "VARCHAR", "GPU name"),
        C("power_source", "VARCHAR", "'AC' or 'Battery' at the start of the run"),
        C("low_power_mode", "BOOLEAN", "macOS Low Power Mode on"),
        C("thermal_state", "VARCHAR", "thermal state at the start of the run"),
        C("translated", "BOOLEAN", "Python runs under Rosetta translation"),
        C("python_version", "VARCHAR", "Python version"),
        C("coremltools_version", "VARCHAR", "coremltools version"),
        C("numpy_version", "VARCHAR", "numpy version"),
        C("duckdb_version", "VARCHAR", "duckdb version"),
        C("torch_version", "VARCHAR", "PyTorch version (NULL when not installed)"),
        C("gpu_driver", "VARCHAR", "GPU driver version", since=2),
        C("cuda_version", "VARCHAR", "CUDA version torch was built with", since=2),
        # added in v3: what torch learns about the GPU (part of host_id's hash)
        C("triton_version", "VARCHAR", "Triton version (NULL when not installed)", since=3),
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
        C("spec_yaml", "VARCHAR", "full text of the spec file", max_len=SPEC_TEXT, multiline=True),
        C("tool_version", "VARCHAR", "anemll-spec version"),
        C("git_commit", "VARCHAR", "commit of the anemll-spec checkout, if any"),
        C("git_dirty", "BOOLEAN", "the checkout had uncommitted changes"),
        C("host_id", "VARCHAR", "-> hosts.host_id", pattern=HEX16),
        C("command", "VARCHAR", "command line", max_len=TEXT, multiline=True),
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
    ),
    unique=("run_id",),
)

CASES = Table(
    "cases",
    "One row per measured variant of a case (backend x compute units x device), "
    "with its statistics. Latency statistics are over the wall-clock samples.",
    (
        C("case_id", "VARCHAR", "'<run_id>-<8 hex>'", required=True, pattern=CASE_ID),
        C("run_id", "VARCHAR", "-> runs.run_id", required=True, pattern=RUN_ID),
        C(
            "case_key",
            "VARCHAR",
            "stable key of what is measured (spec Case.key)",
            required=True,
            pattern=HEX16,
        ),
        C("case_index", "INTEGER", "position in the spec's expansion", min=0),
        C(
            "model_name",
            "VARCHAR",
            "published name when the model is identical ('llama_lm_head', "
            "'llama_lm_head_lut6'), else '<spec>[<params>]'",
            max_len=LONG_NAME,
        ),
        C("params", "JSON", 'swept values of the case, e.g. {"model.vocab_size": 32000}'),
        C(
            "model_family",
            "VARCHAR",
            "lm_head | ffn | attention | matmul | external",
            pattern=r"[a-z][a-z0-9_]*",
        ),
        C("model_sha256", "VARCHAR", "sha256 of the model's weights", pattern=HEX64),
        C("weight_bytes", "BIGINT", "bytes of weights on disk", "bytes", min=0),
        C("flops", "BIGINT", "analytic FLOPs per prediction (2 x MACs)", "FLOP", min=0),
        C("backend", "VARCHAR", "where it ran", choices=BACKENDS),
        C("device", "VARCHAR", "torch device; NULL otherwise", choices=DEVICES),
        C(
            "compute_units",
            "VARCHAR",
            "Core ML compute units; NULL for other backends",
            choices=COMPUTE_UNITS,
        ),
        C("concurrency", "INTEGER", "concurrent predictions", min=1),
        C("status", "VARCHAR", "outcome of the case", required=True, choices=CASE_STATUSES),
        C(
            "error",
            "VARCHAR",
            "error message when status is not 'ok'",
            max_len=TEXT,
            multiline=True,
        ),
        C("n_samples", "INTEGER", "timed samples stored in `samples`", min=0, required=True),
        _ms("median_ms", "median wall-clock latency (the headline figure)"),
        _ms("mean_ms", "mean latency"),
        C("std_ms", "DOUBLE", "standard deviation of latency", "ms", min=0.0),
        _ms("min_ms", "fastest sample"),
        _ms("max_ms", "slowest sample"),
        _ms("p5_ms", "5th percentile"),
        _ms("p50_ms", "50th percentile"),
        _ms("p90_ms", "90th percentile"),
        _ms("p95_ms", "95th percentile"),
        _ms("p99_ms", "99th percentile"),
        C("iqr_ms", "DOUBLE", "interquartile range", "ms", min=0.0),
        C("mad_ms", "DOUBLE", "median absolute deviation", "ms", min=0.0),
        _ms("ci_low_ms", "low end of the 95% bootstrap CI of the median"),
        _ms("ci_high_ms", "high end of the 95% bootstrap CI of the median"),
        C("cv", "DOUBLE", "coefficient of variation (std / mean)", "ratio", min=0.0),
        C("outliers", "INTEGER", "samples flagged as outliers", "samples", min=0),
        C(
            "drift_slope_ms_per_s",
            "DOUBLE",
            "slope of latency against elapsed time of the timed loop",
            "ms/s",
        ),
        C("throttled", "BOOLEAN", "latency drifted up during the run (thermal throttling)"),
        C("noisy", "BOOLEAN", "dispersion above the noise threshold"),
        C("bandwidth_gbps", "DOUBLE", "weight_bytes / median latency", "GB/s (1e9)", min=0.0),
        C("tflops", "DOUBLE", "flops / median latency", "TFLOP/s", min=0.0),
        C("throughput_ips", "DOUBLE", "predictions per second", "1/s", min=0.0),
        C("build_ms", "DOUBLE", "time to build the model (0 when cached)", "ms", min=0.0),
        C("build_cached", "BOOLEAN", "the model came from the build cache"),
        C("compile_ms", "DOUBLE", "Core ML compile time", "ms", min=0.0),
        C("load_ms", "DOUBLE", "model load time", "ms", min=0.0),
        C("first_predict_ms", "DOUBLE", "first (cold) prediction", "ms", min=0.0),
        C(
            "verify_status",
            "VARCHAR",
            "outputs checked against the reference executor",
            choices=VERIFY_STATUSES,
        ),
        C("verify_max_abs_error", "DOUBLE", "max |out - ref|", min=0.0),
        C("verify_rel_l2_error", "DOUBLE", "||out - ref|| / ||ref||", min=0.0),
        C(
            "verify_cosine",
            "DOUBLE",
            "cosine similarity of out and ref",
            min=-1.000001,
            max=1.000001,
        ),
        C(
            "verify_note",
            "VARCHAR",
            "why verification was skipped or failed",
            max_len=TEXT,
            multiline=True,
        ),
        C("finished_at", "TIMESTAMP", "when the case was written (UTC)", "UTC"),
        # added in v2
        C(
            "drift_ratio",
            "DOUBLE",
            "median of the last decile of samples / median of the first decile",
            "ratio",
            min=0.0,
            since=2,
        ),
        _ms(
            "runtime_median_ms",
            "median of the runtime's own duration (Core ML predict; CUDA events on torch/cuda)",
            since=2,
        ),
        _ms("dispatch_floor_ms", "median latency of a tiny model on the same backend/unit", 2),
        C(
            "verify_top1_agreement",
            "DOUBLE",
            "share of positions whose argmax matches the reference",
            "ratio",
            min=0.0,
            max=1.0,
            since=2,
        ),
        C(
            "variant_key",
            "VARCHAR",
            "key of what was measured: model x resolved backend, compute units, device, "
            "concurrency (compare pairs runs on it)",
            since=2,
            pattern=HEX16,
        ),
        C(
            "build_key",
            "VARCHAR",
            "key of the build-relevant model fields",
            since=2,
            pattern=HEX16,
        ),
        # added in v3
        C(
            "notes",
            "JSON",
            "what the runner noted about the case (a list of strings), e.g. noisy, "
            "throttling, weights decoded at load",
            max_len=NOTES_TEXT,
            since=3,
        ),
    ),
    unique=("case_id",),
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
        C(
            "note",
            "VARCHAR",
            "provenance; for derived rows, how it was derived",
            max_len=TEXT,
        ),
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

TABLES: tuple[Table, ...] = (META, HOSTS, RUNS, CASES, SAMPLES, PLACEMENTS, REFERENCE)
BY_NAME = {t.name: t for t in TABLES}

# What a results bundle carries (export/import), in dependency order.
BUNDLE_TABLES: tuple[Table, ...] = (HOSTS, RUNS, CASES, SAMPLES, PLACEMENTS)


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


def bundle_columns(version: int = SCHEMA_VERSION) -> dict[str, str]:
    """Column name -> SQL type of the single parquet table of a bundle of `version`
    (the union by name of the bundled tables' columns of that version)."""
    out: dict[str, str] = {"table": "VARCHAR"}
    for t in BUNDLE_TABLES:
        for c in t.columns:
            if c.since > version:
                continue
            if out.setdefault(c.name, c.type) != c.type:
                raise AssertionError(f"column {c.name} has two types in the schema")
    return out
