"""Views and macros of the store: derived objects, re-created on create and upgrade.

- `results`: one row per case with its run and host; `chip` normalised like the
  published names ('Apple M4 Max' -> 'M4 Max'; the host's CPU model where the OS
  names no chip), `chip_raw` as captured, `source` = 'own'.
- `chip_factors_vs(baseline)`: table macro. Per source, chip, model (and backend and
  compute units): bandwidth and latency, and the factors against `baseline`:
  bandwidth_factor = GB/s / baseline GB/s; inference_factor = baseline ms / ms.
  Own rows are the latest ok case per chip x model x backend x compute units
  (latency = its median); published rows come from `reference` (latency = their mean),
  with `*_derived` telling which number was computed from the other. The baseline of a
  row is the baseline chip's row of the same model/backend/compute units from the same
  source when that source has one, otherwise from a published source (baseline_source
  says which).
- `chip_factors`: chip_factors_vs('M1 Max'), the published tables' baseline.
"""

from __future__ import annotations

DEFAULT_BASELINE = "M1 Max"

RESULTS = r"""
CREATE OR REPLACE VIEW results AS
SELECT
    c.*,
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
    regexp_replace(trim(coalesce(h.chip, h.cpu_model)), '^Apple\s+', '') AS chip,
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
    h.thermal_state,
    h.translated,
    h.python_version,
    h.coremltools_version,
    h.numpy_version,
    h.duckdb_version,
    h.torch_version,
    h.cuda_version,
    'own' AS source
FROM cases c
JOIN runs r ON r.run_id = c.run_id
LEFT JOIN hosts h ON h.host_id = r.host_id
"""

CHIP_FACTORS_VS = r"""
CREATE OR REPLACE MACRO chip_factors_vs(baseline) AS TABLE
WITH own AS (
    SELECT
        'own' AS source,
        chip,
        model_name AS model,
        backend,
        device,
        compute_units,
        coalesce(bandwidth_gbps, weight_bytes / (median_ms * 1e6)) AS bandwidth_gbps,
        median_ms AS latency_ms,
        bandwidth_gbps IS NULL AS bandwidth_derived,
        false AS latency_derived,
        'median' AS latency_stat,
        run_id
    FROM results
    -- one instance at a time: a concurrent run's median is per call while N run at once
    WHERE status = 'ok' AND median_ms > 0 AND chip IS NOT NULL AND model_name IS NOT NULL
        AND coalesce(concurrency, 1) = 1
    QUALIFY row_number() OVER (
        PARTITION BY chip, model_name, backend, device, compute_units
        ORDER BY run_started_at DESC, finished_at DESC NULLS LAST, case_id DESC
    ) = 1
),
published AS (
    SELECT
        'published: ' || source AS source,
        chip,
        model,
        'coreml' AS backend,
        NULL::VARCHAR AS device,
        'CPU_AND_NE' AS compute_units,
        max(value) FILTER (WHERE metric = 'bandwidth_gbps') AS bandwidth_gbps,
        max(value) FILTER (WHERE metric = 'latency_ms') AS latency_ms,
        bool_or(derived) FILTER (WHERE metric = 'bandwidth_gbps') AS bandwidth_derived,
        bool_or(derived) FILTER (WHERE metric = 'latency_ms') AS latency_derived,
        'mean' AS latency_stat,
        NULL::VARCHAR AS run_id
    FROM reference
    GROUP BY source, chip, model
),
points AS (
    SELECT * FROM own
    UNION ALL BY NAME
    SELECT * FROM published
),
base AS (
    SELECT * FROM points WHERE chip = baseline
)
SELECT
    p.source,
    p.chip,
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
    b.bandwidth_gbps AS baseline_bandwidth_gbps,
    b.latency_ms AS baseline_latency_ms,
    p.bandwidth_gbps / b.bandwidth_gbps AS bandwidth_factor,
    b.latency_ms / p.latency_ms AS inference_factor,
    printf('%.1fx', p.bandwidth_gbps / b.bandwidth_gbps) AS bandwidth_factor_label,
    printf('%.1fx', b.latency_ms / p.latency_ms) AS inference_factor_label,
    p.run_id
FROM points p
LEFT JOIN base b
    ON b.model = p.model
    AND b.backend IS NOT DISTINCT FROM p.backend
    AND b.device IS NOT DISTINCT FROM p.device
    AND b.compute_units IS NOT DISTINCT FROM p.compute_units
QUALIFY row_number() OVER (
    PARTITION BY p.source, p.chip, p.model, p.backend, p.device, p.compute_units
    ORDER BY (b.source = p.source) DESC NULLS LAST,
             starts_with(b.source, 'published: ') DESC NULLS LAST,
             b.source
) = 1
"""

CHIP_FACTORS = f"""
CREATE OR REPLACE VIEW chip_factors AS
SELECT * FROM chip_factors_vs('{DEFAULT_BASELINE}')
"""

# In creation order (chip_factors_vs reads results; chip_factors calls the macro).
ALL: tuple[str, ...] = (RESULTS, CHIP_FACTORS_VS, CHIP_FACTORS)


def install(con) -> None:
    """(Re-)create every view and macro, inside the caller's transaction."""
    for stmt in ALL:
        con.execute(stmt)
