-- Latest result per chip and model: for every source x chip x model x backend x compute
-- units, the most recent ok case (median latency, its 95% CI, bandwidth), next to the
-- range of published figures for the same chip and model (published latency is a mean;
-- values derived from the other metric are left out). source says whose it is: 'own'
-- (measured in this store), 'imported' (a bundle) or 'pushed' (a shared store's writers),
-- so a run from another machine never passes for one measured here.
WITH latest AS (
    SELECT *
    FROM results
    WHERE status = 'ok' AND coalesce(concurrency, 1) = 1  -- concurrent medians are per call under load
    QUALIFY row_number() OVER (
        PARTITION BY source, chip, model_name, backend, device, compute_units
        ORDER BY run_started_at DESC, finished_at DESC NULLS LAST
    ) = 1
),
published AS (
    SELECT chip, model,
           min(value) FILTER (WHERE metric = 'latency_ms') AS published_ms_min,
           max(value) FILTER (WHERE metric = 'latency_ms') AS published_ms_max,
           min(value) FILTER (WHERE metric = 'bandwidth_gbps') AS published_gbps_min,
           max(value) FILTER (WHERE metric = 'bandwidth_gbps') AS published_gbps_max
    FROM reference
    WHERE NOT derived
    GROUP BY chip, model
)
SELECT
    l.source,
    l.chip,
    l.model_name,
    l.backend,
    l.compute_units,
    round(l.median_ms, 3) AS median_ms,
    round(l.ci_low_ms, 3) AS ci_low_ms,
    round(l.ci_high_ms, 3) AS ci_high_ms,
    round(l.bandwidth_gbps, 2) AS bandwidth_gbps,
    p.published_ms_min,
    p.published_ms_max,
    p.published_gbps_min,
    p.published_gbps_max,
    l.n_samples,
    l.run_id,
    l.run_started_at
FROM latest l
LEFT JOIN published p ON p.chip = l.chip AND p.model = l.model_name
ORDER BY l.model_name, l.chip, l.source, l.backend, l.compute_units;
