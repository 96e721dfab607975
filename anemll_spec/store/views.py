"""Views and macros of the store: derived objects, re-created on create and upgrade.

- `results`: one row per measured variant (a row of `cases`) with its run and host;
  `chip` normalised like the published names ('Apple M4 Max' -> 'M4 Max'; the host's
  CPU model where the OS names no chip; a CUDA case's GPU, 'NVIDIA H100 80GB HBM3' ->
  'H100 80GB HBM3'), `chip_raw` the host's chip as captured (on a CUDA case the host's,
  not the GPU); provenance: `source` ('own' for runs
  measured here, 'imported', 'pushed') and `provenance` (in words, with the bundle's
  file and sha256 or the pushing host); Core ML's own runtime as GB/s and the binding
  overhead (wall - runtime); energy: inferences_per_joule (1000 / mJ per inference) and
  energy_{cpu,gpu,ane,dram}_mj_per_inference (case_energy_rails, each rail's parts summed);
  the CI of the median NULL under vocab.MIN_SAMPLES samples, where a bootstrap CI
  covers far less than 95% (`cases` keeps what older versions stored there).
- `factors_of(baseline, run, latest_only)` / `case_factors_vs(baseline)`: table
  macros, THE factor rule, for every measured case
  (ok, one instance at a time) and every published row: bandwidth_factor = GB/s /
  baseline GB/s, inference_factor = baseline ms / ms. The baseline of a row is the
  baseline chip's latest row of the same model from the same source with the same
  backend, device and compute units (preferring the same OS version) when there is
  one, otherwise the baseline chip's PUBLISHED figure of that model (published rows
  are Core ML / CPU_AND_NE): `baseline_source` and `baseline_label` say which.
  `anemll_spec.store.factors.for_run` reads it for one run (the bench summary).
- `chip_factors_vs(baseline)`: the same rows, only the latest of each source x chip x
  OS version x model x backend x device x compute units (two macOS versions of one
  chip are two rows), plus the published rows.
- `chip_factors`: chip_factors_vs('M1 Max'), the published tables' baseline.
- `energy_factors_vs(baseline)` / `energy_factors`: inferences per joule against the
  baseline chip's same-source row (views_energy.py).
"""

from __future__ import annotations

from anemll_spec.store import views_energy
from anemll_spec.store.sqlparts import (
    DEFAULT_BASELINE,
    PROVENANCE,
    SOURCE,
    WHAT,
    derived_suffix,
    factor_label,
)
from anemll_spec.vocab import MIN_SAMPLES

__all__ = ["ALL", "DEFAULT_BASELINE", "install"]

RESULTS = rf"""
CREATE OR REPLACE VIEW results AS
SELECT
    c.* REPLACE (  -- no CI under MIN_SAMPLES (runs stored before 2026-12-07 have one)
        CASE WHEN c.n_samples >= {MIN_SAMPLES} THEN c.ci_low_ms END AS ci_low_ms,
        CASE WHEN c.n_samples >= {MIN_SAMPLES} THEN c.ci_high_ms END AS ci_high_ms
    ),
    r.status AS run_status,
    r.started_at AS run_started_at,
    r.finished_at AS run_finished_at,
    r.spec_name,
    r.spec_sha256,
    r.tool_version,
    r.git_commit,
    r.git_dirty,
    r.command,
    r.host_id,
    h.hostname,
    CASE WHEN c.device = 'cuda' AND h.gpu_name IS NOT NULL THEN h.gpu_name
        ELSE h.chip_name END AS chip,
    h.chip AS chip_raw,
    h.model_identifier,
    h.os_name,
    h.os_version,
    h.os_build,
    h.kernel,
    h.cpu_model,
    h.cores_total,
    h.cores_p,
    h.cores_e,
    h.memory_bytes,
    h.gpu,
    h.gpu_driver,
    h.power_source,
    h.low_power_mode,
    h.energy_mode,
    h.thermal_state,
    h.translated,
    h.python_version,
    h.coremltools_version,
    h.numpy_version,
    h.duckdb_version,
    h.torch_version,
    h.cuda_version,
    h.triton_version,
    h.gpu_memory_bytes,
    h.gpu_sm_count,
    h.gpu_capability,
    h.cudnn_version,
    {SOURCE.format(r="r.")} AS source,
    {PROVENANCE.format(r="r.")} AS provenance,
    r.origin,
    r.origin_ref,
    r.origin_sha256,
    r.origin_at,
    c.weight_bytes / (c.runtime_median_ms * 1e6) AS runtime_bandwidth_gbps,
    c.median_ms - c.runtime_median_ms AS binding_overhead_ms,
    1000 / nullif(c.energy_mj_per_inference, 0) AS inferences_per_joule,
    e.energy_cpu_mj_per_inference,
    e.energy_gpu_mj_per_inference,
    e.energy_ane_mj_per_inference,
    e.energy_dram_mj_per_inference
FROM cases c
JOIN runs r ON r.run_id = c.run_id
LEFT JOIN (  -- per-rail energy per inference, each rail's parts summed
    SELECT
        case_id,
        sum(mj_per_inference) FILTER (WHERE rail = 'cpu') AS energy_cpu_mj_per_inference,
        sum(mj_per_inference) FILTER (WHERE rail = 'gpu') AS energy_gpu_mj_per_inference,
        sum(mj_per_inference) FILTER (WHERE rail = 'ane') AS energy_ane_mj_per_inference,
        sum(mj_per_inference) FILTER (WHERE rail = 'dram') AS energy_dram_mj_per_inference
    FROM case_energy_rails
    GROUP BY case_id
) e ON e.case_id = c.case_id
LEFT JOIN (  -- the chip's name computed once per host, not once per case
    SELECT *, regexp_replace(trim(coalesce(chip, cpu_model)), '^Apple\s+', '') AS chip_name,
        nullif(regexp_replace(trim(gpu), '^NVIDIA\s+', ''), '') AS gpu_name
    FROM hosts
) h ON h.host_id = r.host_id
"""

FACTORS_OF = rf"""
CREATE OR REPLACE MACRO factors_of(baseline, run, latest_only) AS TABLE
WITH measured AS (
    SELECT
        source,
        origin,
        origin_ref,
        origin_sha256,
        chip,
        os_name,
        os_version,
        model_name AS model,
        backend,
        device,
        compute_units,
        coalesce(bandwidth_gbps, weight_bytes / (median_ms * 1e6)) AS bandwidth_gbps,
        median_ms AS latency_ms,
        bandwidth_gbps IS NULL AS bandwidth_derived,
        false AS latency_derived,
        'median' AS latency_stat,
        run_id,
        case_id,
        run_started_at,
        finished_at
    FROM results
    -- one instance at a time: a concurrent run's median is per call while N run at once
    WHERE status = 'ok' AND median_ms > 0 AND chip IS NOT NULL AND model_name IS NOT NULL
        AND coalesce(concurrency, 1) = 1
),
latest_ids AS (  -- the latest case of each source x chip x OS x model x variant
    SELECT arg_max(case_id, (run_started_at, finished_at, case_id)) AS case_id
    FROM measured
    GROUP BY source, chip, os_name, os_version, model, backend, device, compute_units
),
published AS (
    SELECT
        'published: ' || source AS source,
        chip,
        model,
        'coreml' AS backend,
        'CPU_AND_NE' AS compute_units,
        max(value) FILTER (WHERE metric = 'bandwidth_gbps') AS bandwidth_gbps,
        max(value) FILTER (WHERE metric = 'latency_ms') AS latency_ms,
        bool_or(derived) FILTER (WHERE metric = 'bandwidth_gbps') AS bandwidth_derived,
        bool_or(derived) FILTER (WHERE metric = 'latency_ms') AS latency_derived,
        'mean' AS latency_stat,
        true AS latest
    FROM reference
    GROUP BY source, chip, model
),
points AS (
    SELECT m.*, m.case_id IN (SELECT case_id FROM latest_ids) AS latest FROM measured m
    UNION ALL BY NAME
    SELECT * FROM published
),
base AS (  -- n_os: on how many OS versions the baseline chip has this row
    SELECT *, count(DISTINCT os_version) OVER (
        PARTITION BY source, model, backend, device, compute_units) AS n_os
    FROM points WHERE chip = baseline AND latest
),
picked AS (  -- the rows asked for: one run's, or each chip's latest (chip_factors)
    SELECT * FROM points
    WHERE (run IS NULL OR run_id = run) AND (NOT latest_only OR latest)
)
SELECT
    p.source,
    CASE WHEN starts_with(p.source, 'published: ') THEN p.source
        ELSE {PROVENANCE.format(r="p.")} END AS provenance,
    p.chip,
    p.os_name,
    p.os_version,
    p.model,
    p.backend,
    p.device,
    p.compute_units,
    p.bandwidth_gbps,
    p.latency_ms,
    p.latency_stat,
    p.bandwidth_derived,
    p.latency_derived,
    baseline AS baseline_chip,
    b.source AS baseline_source,
    b.os_version AS baseline_os_version,
    -- a baseline chip measured on two OS versions names the one (each is its own row)
    CASE WHEN b.source IS NOT NULL THEN baseline
        || CASE WHEN b.n_os > 1 THEN ' ' || coalesce(b.os_name || ' ', '') || b.os_version
                ELSE '' END
        || ' ('
        || CASE WHEN starts_with(b.source, 'published: ') THEN 'published' ELSE b.source END
        || ', ' || {WHAT.format(p="b.")} || ')' END AS baseline_label,
    b.bandwidth_gbps AS baseline_bandwidth_gbps,
    b.latency_ms AS baseline_latency_ms,
    p.bandwidth_gbps / b.bandwidth_gbps AS bandwidth_factor,
    b.latency_ms / p.latency_ms AS inference_factor,
    -- a baseline figure derived from the other published one (M1 Max's fp16-head ms is
    -- its GB/s turned into time) says so beside the factor
    {factor_label("p.bandwidth_gbps / b.bandwidth_gbps")}
        || {derived_suffix("b.bandwidth_derived")} AS bandwidth_factor_label,
    {factor_label("b.latency_ms / p.latency_ms")}
        || {derived_suffix("b.latency_derived")} AS inference_factor_label,
    b.bandwidth_derived AS baseline_bandwidth_derived,
    b.latency_derived AS baseline_latency_derived,
    p.run_id,
    p.case_id,
    p.run_started_at,
    p.latest
FROM picked p
LEFT JOIN base b
    ON b.model = p.model
    AND (
        (b.source = p.source
            AND b.backend IS NOT DISTINCT FROM p.backend
            AND b.device IS NOT DISTINCT FROM p.device
            AND b.compute_units IS NOT DISTINCT FROM p.compute_units)
        OR starts_with(b.source, 'published: ')
    )
QUALIFY row_number() OVER (
    PARTITION BY p.source, p.chip, p.model, p.case_id
    ORDER BY (b.source = p.source) DESC NULLS LAST,
             (b.os_version IS NOT DISTINCT FROM p.os_version) DESC,
             b.run_started_at DESC NULLS LAST,
             -- of several published sources: the one with the most figures as measured
             -- (a derived or missing one counts against it), then by name
             (b.bandwidth_gbps IS NULL OR coalesce(b.bandwidth_derived, false))::INT
                 + (b.latency_ms IS NULL OR coalesce(b.latency_derived, false))::INT,
             b.source
) = 1
"""

# The public macros are one-argument calls of factors_of (no default parameters: a
# DuckLake catalog does not keep them).
CASE_FACTORS = r"""
CREATE OR REPLACE MACRO case_factors_vs(baseline) AS TABLE
SELECT * FROM factors_of(baseline, NULL::VARCHAR, false)
"""

CHIP_FACTORS_VS = r"""
CREATE OR REPLACE MACRO chip_factors_vs(baseline) AS TABLE
SELECT * EXCLUDE (latest, case_id, run_started_at), case_id
FROM factors_of(baseline, NULL::VARCHAR, true)
"""

CHIP_FACTORS = f"""
CREATE OR REPLACE VIEW chip_factors AS
SELECT * FROM chip_factors_vs('{DEFAULT_BASELINE}')
"""

# In creation order (the macros read results; chip_factors calls chip_factors_vs).
ALL: tuple[str, ...] = (
    RESULTS,
    FACTORS_OF,
    CASE_FACTORS,
    CHIP_FACTORS_VS,
    CHIP_FACTORS,
    *views_energy.ALL,
)


def install(con) -> None:
    """(Re-)create every view and macro, inside the caller's transaction."""
    for stmt in ALL:
        con.execute(stmt)
