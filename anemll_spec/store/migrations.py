"""Schema versions of the store and the steps between them.

Frozen data: the v1 DDL exactly as v1 created it, and for every later version the
statements that upgrade the one before. Never edit a shipped entry; add a new version
(and declare its new columns at the end of their tables in schema.py with `since=`).
A test checks that v1 + every step gives the same tables as a fresh store.
"""

from __future__ import annotations

import contextlib

V1_DDL: tuple[str, ...] = (
    "CREATE TABLE meta (key VARCHAR NOT NULL, value VARCHAR, PRIMARY KEY (key))",
    """CREATE TABLE hosts (
    host_id VARCHAR NOT NULL, hostname VARCHAR, chip VARCHAR, model_identifier VARCHAR,
    os_name VARCHAR, os_version VARCHAR, os_build VARCHAR, kernel VARCHAR, cpu_model VARCHAR,
    cores_total INTEGER, cores_p INTEGER, cores_e INTEGER, memory_bytes BIGINT, gpu VARCHAR,
    power_source VARCHAR, low_power_mode BOOLEAN, thermal_state VARCHAR, translated BOOLEAN,
    python_version VARCHAR, coremltools_version VARCHAR, numpy_version VARCHAR,
    duckdb_version VARCHAR, torch_version VARCHAR)""",
    """CREATE TABLE runs (
    run_id VARCHAR NOT NULL, started_at TIMESTAMP NOT NULL, finished_at TIMESTAMP,
    status VARCHAR NOT NULL, spec_name VARCHAR, spec_sha256 VARCHAR, spec_yaml VARCHAR,
    tool_version VARCHAR, git_commit VARCHAR, git_dirty BOOLEAN, host_id VARCHAR,
    command VARCHAR)""",
    """CREATE TABLE cases (
    case_id VARCHAR NOT NULL, run_id VARCHAR NOT NULL, case_key VARCHAR NOT NULL,
    case_index INTEGER, model_name VARCHAR, params JSON, model_family VARCHAR,
    model_sha256 VARCHAR, weight_bytes BIGINT, flops BIGINT, backend VARCHAR, device VARCHAR,
    compute_units VARCHAR, concurrency INTEGER, status VARCHAR NOT NULL, error VARCHAR,
    n_samples INTEGER NOT NULL, median_ms DOUBLE, mean_ms DOUBLE, std_ms DOUBLE, min_ms DOUBLE,
    max_ms DOUBLE, p5_ms DOUBLE, p50_ms DOUBLE, p90_ms DOUBLE, p95_ms DOUBLE, p99_ms DOUBLE,
    iqr_ms DOUBLE, mad_ms DOUBLE, ci_low_ms DOUBLE, ci_high_ms DOUBLE, cv DOUBLE,
    outliers INTEGER, drift_slope_ms_per_s DOUBLE, throttled BOOLEAN, noisy BOOLEAN,
    bandwidth_gbps DOUBLE, tflops DOUBLE, throughput_ips DOUBLE, build_ms DOUBLE,
    build_cached BOOLEAN, compile_ms DOUBLE, load_ms DOUBLE, first_predict_ms DOUBLE,
    verify_status VARCHAR, verify_max_abs_error DOUBLE, verify_rel_l2_error DOUBLE,
    verify_cosine DOUBLE, verify_note VARCHAR, finished_at TIMESTAMP)""",
    "CREATE TABLE samples (case_id VARCHAR NOT NULL, idx INTEGER NOT NULL, wall_ns BIGINT NOT NULL)",
    """CREATE TABLE reference (
    chip VARCHAR NOT NULL, model VARCHAR NOT NULL, metric VARCHAR NOT NULL,
    value DOUBLE NOT NULL, unit VARCHAR, source VARCHAR NOT NULL, note VARCHAR)""",
    """CREATE VIEW results AS
    SELECT c.*, r.spec_name, r.started_at AS run_started_at, h.chip
    FROM cases c JOIN runs r USING (run_id) LEFT JOIN hosts h USING (host_id)""",
    "INSERT INTO meta VALUES ('schema_version', '1')",
)

# version -> statements that upgrade a store from version - 1 to it.
STEPS: dict[int, tuple[str, ...]] = {
    2: (
        # v2 adds stale-run detection, Core ML runtime samples, op placements,
        # dispatch floor, top-1 agreement and the derived flag of reference rows.
        "DROP VIEW IF EXISTS results",
        "ALTER TABLE hosts ADD COLUMN gpu_driver VARCHAR",
        "ALTER TABLE hosts ADD COLUMN cuda_version VARCHAR",
        "ALTER TABLE runs ADD COLUMN writer_pid INTEGER",
        "ALTER TABLE runs ADD COLUMN writer_hostname VARCHAR",
        "ALTER TABLE cases ADD COLUMN drift_ratio DOUBLE",
        "ALTER TABLE cases ADD COLUMN runtime_median_ms DOUBLE",
        "ALTER TABLE cases ADD COLUMN dispatch_floor_ms DOUBLE",
        "ALTER TABLE cases ADD COLUMN verify_top1_agreement DOUBLE",
        "ALTER TABLE cases ADD COLUMN variant_key VARCHAR",
        "ALTER TABLE cases ADD COLUMN build_key VARCHAR",
        "ALTER TABLE samples ADD COLUMN runtime_ns BIGINT",
        """CREATE TABLE placements (
        case_id VARCHAR NOT NULL, op_index INTEGER, op_name VARCHAR, op_type VARCHAR,
        preferred_device VARCHAR, estimated_cost DOUBLE, compute_units VARCHAR)""",
        # reference rows are tool data, reloaded after every upgrade
        "DROP TABLE reference",
        """CREATE TABLE reference (
        chip VARCHAR NOT NULL, model VARCHAR NOT NULL, metric VARCHAR NOT NULL,
        value DOUBLE NOT NULL, unit VARCHAR, source VARCHAR NOT NULL, note VARCHAR,
        derived BOOLEAN NOT NULL)""",
    ),
    3: (
        # v3 adds provenance (origin of each run), the GPU facts torch collects, the
        # runner's per-case notes and each sample's start time (drift, recomputed on
        # import). Views are re-created after every upgrade.
        "DROP VIEW IF EXISTS chip_factors",
        "DROP MACRO TABLE IF EXISTS chip_factors_vs",
        "DROP VIEW IF EXISTS results",
        "ALTER TABLE hosts ADD COLUMN triton_version VARCHAR",
        "ALTER TABLE hosts ADD COLUMN gpu_memory_bytes BIGINT",
        "ALTER TABLE hosts ADD COLUMN gpu_sm_count INTEGER",
        "ALTER TABLE hosts ADD COLUMN gpu_capability VARCHAR",
        "ALTER TABLE hosts ADD COLUMN cudnn_version INTEGER",
        "ALTER TABLE runs ADD COLUMN origin VARCHAR",
        "ALTER TABLE runs ADD COLUMN origin_ref VARCHAR",
        "ALTER TABLE runs ADD COLUMN origin_sha256 VARCHAR",
        "ALTER TABLE runs ADD COLUMN origin_at TIMESTAMP",
        "ALTER TABLE cases ADD COLUMN notes JSON",
        "ALTER TABLE samples ADD COLUMN start_ns BIGINT",
    ),
    4: (
        # v4 adds energy per inference (per rail, and a power timeline), sustained runs
        # (per window, with each sample's window), concurrent instances and the compile
        # cache flag (issue 18). Views are re-created after every upgrade.
        "DROP VIEW IF EXISTS chip_factors",
        "DROP MACRO TABLE IF EXISTS chip_factors_vs",
        "DROP MACRO TABLE IF EXISTS case_factors_vs",
        "DROP MACRO TABLE IF EXISTS factors_of",
        "DROP VIEW IF EXISTS results",
        "ALTER TABLE cases ADD COLUMN energy_method VARCHAR",
        "ALTER TABLE cases ADD COLUMN energy_note VARCHAR",
        "ALTER TABLE cases ADD COLUMN energy_interval_s DOUBLE",
        "ALTER TABLE cases ADD COLUMN energy_samples INTEGER",
        "ALTER TABLE cases ADD COLUMN energy_calls INTEGER",
        "ALTER TABLE cases ADD COLUMN energy_timed_only BOOLEAN",
        "ALTER TABLE cases ADD COLUMN energy_total_mj DOUBLE",
        "ALTER TABLE cases ADD COLUMN energy_mj_per_inference DOUBLE",
        "ALTER TABLE cases ADD COLUMN power_w_mean DOUBLE",
        "ALTER TABLE cases ADD COLUMN gpu_power_limit_w DOUBLE",
        "ALTER TABLE cases ADD COLUMN instances VARCHAR",
        "ALTER TABLE cases ADD COLUMN compile_cached BOOLEAN",
        "ALTER TABLE cases ADD COLUMN sustained_duration_s DOUBLE",
        "ALTER TABLE cases ADD COLUMN sustained_window_s DOUBLE",
        "ALTER TABLE cases ADD COLUMN sustained_windows INTEGER",
        "ALTER TABLE cases ADD COLUMN sustained_first_median_ms DOUBLE",
        "ALTER TABLE cases ADD COLUMN sustained_last_median_ms DOUBLE",
        "ALTER TABLE cases ADD COLUMN sustained_throughput_ratio DOUBLE",
        "ALTER TABLE cases ADD COLUMN sustained_ci_low DOUBLE",
        "ALTER TABLE cases ADD COLUMN sustained_ci_high DOUBLE",
        "ALTER TABLE cases ADD COLUMN sustained_verdict VARCHAR",
        "ALTER TABLE cases ADD COLUMN sustained_throttled BOOLEAN",
        "ALTER TABLE samples ADD COLUMN window_index INTEGER",
        """CREATE TABLE case_energy_rails (
        case_id VARCHAR NOT NULL, rail VARCHAR NOT NULL, part VARCHAR, energy_mj DOUBLE
        NOT NULL, mj_per_inference DOUBLE, mean_power_w DOUBLE, in_total BOOLEAN NOT
        NULL)""",
        """CREATE TABLE power_samples (
        case_id VARCHAR NOT NULL, idx INTEGER NOT NULL, t_s DOUBLE NOT NULL, rail
        VARCHAR NOT NULL, watts DOUBLE NOT NULL, window_index INTEGER, part VARCHAR)""",
        """CREATE TABLE sustained_windows (
        case_id VARCHAR NOT NULL, window_index INTEGER NOT NULL, start_s DOUBLE, wall_s
        DOUBLE NOT NULL, calls INTEGER NOT NULL, median_ms DOUBLE, throughput_ips
        DOUBLE, energy_total_mj DOUBLE, energy_mj_per_inference DOUBLE, power_w_mean
        DOUBLE, thermal_state VARCHAR, throttled BOOLEAN, temperature_c DOUBLE,
        clock_event_reasons VARCHAR, energy_interval_s DOUBLE)""",
    ),
    5: (
        # v5 tells apart writers that share a hostname (stale-run detection).
        # Views are re-created after every upgrade.
        "ALTER TABLE runs ADD COLUMN writer_machine_id VARCHAR",
    ),
    6: (
        # v6 keeps the Energy Mode of Macs with High Power Mode (pmset powermode).
        # Views are re-created after every upgrade.
        "ALTER TABLE hosts ADD COLUMN energy_mode VARCHAR",
    ),
}


def create_v1(con) -> None:
    """Create an empty v1 store, exactly as v1 of anemll-spec did (fixtures, tests)."""
    con.execute("BEGIN")
    for stmt in V1_DDL:
        con.execute(stmt)
    con.execute("COMMIT")


def upgrade(con, from_version: int) -> int:
    """Apply every step after `from_version`, each in its own transaction; returns the new
    version. The caller re-creates views and reloads reference data afterwards."""
    version = from_version
    for target in sorted(v for v in STEPS if v > from_version):
        con.execute("BEGIN")
        try:
            for stmt in STEPS[target]:
                con.execute(stmt)
            con.execute("UPDATE meta SET value = ? WHERE key = 'schema_version'", [str(target)])
            # the views are gone or stale until the caller re-installs them: a store left
            # here (a kill) says so to readers, and its next writing open re-installs them
            con.execute("DELETE FROM meta WHERE key = 'derived_sha256'")
            con.execute("COMMIT")
        except Exception:
            import duckdb

            with contextlib.suppress(duckdb.Error):  # a failed COMMIT has ended it already
                con.execute("ROLLBACK")
            raise
        version = target
    return version
