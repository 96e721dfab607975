-- The factor table, as published: per chip, bandwidth (GB/s) and inference time (ms)
-- and the factors against M1 Max (bandwidth factor = chip GB/s / M1 Max GB/s;
-- inference factor = M1 Max ms / chip ms), own runs and published rows side by side.
-- Mind the published tables' quirk: their GB/s column is the fp16 head
-- (llama_lm_head) and their ms column the LUT6 head (llama_lm_head_lut6); so is ours
-- here. For another baseline: SELECT * FROM chip_factors_vs('M4 Max').
WITH bw AS (
    SELECT * FROM chip_factors WHERE model = 'llama_lm_head'
),
ms AS (
    SELECT * FROM chip_factors WHERE model = 'llama_lm_head_lut6'
)
SELECT * EXCLUDE (sort_factor) FROM (
SELECT
    coalesce(bw.source, ms.source) AS source,
    coalesce(bw.chip, ms.chip) AS chip,
    coalesce(bw.os_name, ms.os_name) AS os_name,
    coalesce(bw.os_version, ms.os_version) AS os_version,
    coalesce(bw.backend, ms.backend) AS backend,
    coalesce(bw.device, ms.device) AS device,
    coalesce(bw.compute_units, ms.compute_units) AS compute_units,
    round(bw.bandwidth_gbps, 2) AS fp16_bandwidth_gbps,
    round(ms.latency_ms, 2) AS lut6_inference_ms,
    bw.bandwidth_factor_label AS bandwidth_factor,
    ms.inference_factor_label AS inference_factor,
    coalesce(bw.baseline_source, ms.baseline_source) AS baseline_source,
    bw.bandwidth_factor AS sort_factor
FROM bw
FULL OUTER JOIN ms
    ON bw.source = ms.source AND bw.chip = ms.chip
    -- one chip on two OS versions (or a GPU and its host's CPU) is two rows, never mixed
    AND bw.os_name IS NOT DISTINCT FROM ms.os_name
    AND bw.os_version IS NOT DISTINCT FROM ms.os_version
    AND bw.backend IS NOT DISTINCT FROM ms.backend
    AND bw.device IS NOT DISTINCT FROM ms.device
    AND bw.compute_units IS NOT DISTINCT FROM ms.compute_units
)
ORDER BY source <> 'own', source, sort_factor NULLS LAST, chip, os_version;
