-- Compute-unit comparison: for every run and case measured on several Core ML
-- compute units, the median latency on each unit and its speed-up against CPU_ONLY
-- (CPU_ONLY ms / unit ms; NULL when CPU_ONLY was not measured) and against the
-- fastest unit of the case (1.0 = the fastest).
WITH per_unit AS (
    SELECT run_id, chip, case_key, model_name, backend, compute_units,
           median(median_ms) AS median_ms
    FROM results
    WHERE status = 'ok' AND compute_units IS NOT NULL
    GROUP BY ALL
)
SELECT
    chip,
    model_name,
    compute_units,
    round(median_ms, 3) AS median_ms,
    round(max(median_ms) FILTER (WHERE compute_units = 'CPU_ONLY')
          OVER (PARTITION BY run_id, case_key, backend) / median_ms, 2) AS speedup_vs_cpu_only,
    round(min(median_ms) OVER (PARTITION BY run_id, case_key, backend) / median_ms, 3)
        AS relative_to_fastest,
    run_id
FROM per_unit
ORDER BY run_id, model_name, median_ms;
