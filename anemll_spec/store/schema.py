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
SCHEMA_VERSION = 2

RUN_STATUSES = ("running", "finished", "failed", "interrupted")
CASE_STATUSES = ("ok", "failed", "skipped")
VERIFY_STATUSES = ("pass", "fail", "skipped")
REFERENCE_METRICS = ("bandwidth_gbps", "latency_ms")


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
        C("host_id", "VARCHAR", "sha256 (first 16 hex) of the other fields", required=True),
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
        C("spec_sha256", "VARCHAR", "sha256 of the spec file's text"),
        C("spec_yaml", "VARCHAR", "full text of the spec file"),
        C("tool_version", "VARCHAR", "anemll-spec version"),
        C("git_commit", "VARCHAR", "commit of the anemll-spec checkout, if any"),
        C("git_dirty", "BOOLEAN", "the checkout had uncommitted changes"),
        C("host_id", "VARCHAR", "-> hosts.host_id"),
        C("command", "VARCHAR", "command line"),
        C("writer_pid", "INTEGER", "pid of the writing process (stale-run detection)", since=2),
        C("writer_hostname", "VARCHAR", "host of the writing process", since=2),
    ),
    unique=("run_id",),
)

CASES = Table(
    "cases",
    "One row per measured variant of a case (backend x compute units x device), "
    "with its statistics. Latency statistics are over the wall-clock samples.",
    (
        C("case_id", "VARCHAR", "'<run_id>-<8 hex>'", required=True),
        C("run_id", "VARCHAR", "-> runs.run_id", required=True),
        C("case_key", "VARCHAR", "stable key of what is measured (spec Case.key)", required=True),
        C("case_index", "INTEGER", "position in the spec's expansion", min=0),
        C(
            "model_name",
            "VARCHAR",
            "published name when the model is identical ('llama_lm_head', "
            "'llama_lm_head_lut6'), else '<spec>[<params>]'",
        ),
        C("params", "JSON", 'swept values of the case, e.g. {"model.vocab_size": 32000}'),
        C("model_family", "VARCHAR", "lm_head | ffn | attention | matmul | external"),
        C("model_sha256", "VARCHAR", "sha256 of the model's weights"),
        C("weight_bytes", "BIGINT", "bytes of weights on disk", "bytes", min=0),
        C("flops", "BIGINT", "analytic FLOPs per prediction (2 x MACs)", "FLOP", min=0),
        C("backend", "VARCHAR", "coreml | numpy | torch"),
        C("device", "VARCHAR", "torch device (cuda | mps | cpu); NULL otherwise"),
        C("compute_units", "VARCHAR", "Core ML compute units; NULL for other backends"),
        C("concurrency", "INTEGER", "concurrent predictions", min=1),
        C("status", "VARCHAR", "outcome of the case", required=True, choices=CASE_STATUSES),
        C("error", "VARCHAR", "error message when status is not 'ok'"),
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
        C("verify_note", "VARCHAR", "why verification was skipped or failed"),
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
        ),
        C("build_key", "VARCHAR", "key of the build-relevant model fields", since=2),
    ),
    unique=("case_id",),
)

SAMPLES = Table(
    "samples",
    "Every timed sample of every case, in the order they were taken.",
    (
        C("case_id", "VARCHAR", "-> cases.case_id", required=True),
        C("idx", "INTEGER", "0-based position in the timed loop", min=0, required=True),
        C("wall_ns", "BIGINT", "wall-clock latency of one prediction", "ns", min=0, required=True),
        C(
            "runtime_ns",
            "BIGINT",
            "the runtime's own duration of the call: Core ML's predict, or CUDA events "
            "around it on torch/cuda (NULL if unknown)",
            "ns",
            min=0,
            since=2,
        ),
    ),
    unique=("case_id", "idx"),
)

PLACEMENTS = Table(
    "placements",
    "Per-op device placement of a Core ML model (MLComputePlan), per case.",
    (
        C("case_id", "VARCHAR", "-> cases.case_id", required=True, since=2),
        C("op_index", "INTEGER", "position of the op in the program", min=0, since=2),
        C("op_name", "VARCHAR", "op output name", since=2),
        C("op_type", "VARCHAR", "MIL op type, e.g. 'conv'", since=2),
        C("preferred_device", "VARCHAR", "'NeuralEngine' | 'GPU' | 'CPU'", since=2),
        C(
            "estimated_cost",
            "DOUBLE",
            "Core ML's estimated relative cost (nullable)",
            min=0.0,
            since=2,
        ),
        C("compute_units", "VARCHAR", "compute units the plan was made for", since=2),
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
        C("note", "VARCHAR", "provenance; for derived rows, how it was derived"),
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


def bundle_columns() -> dict[str, str]:
    """Column name -> SQL type of the bundle's single parquet table (union by name)."""
    out: dict[str, str] = {"table": "VARCHAR"}
    for t in BUNDLE_TABLES:
        for c in t.columns:
            if out.setdefault(c.name, c.type) != c.type:
                raise AssertionError(f"column {c.name} has two types in the schema")
    return out
