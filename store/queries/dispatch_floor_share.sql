-- Dispatch-floor share of latency: how much of a case's median latency is the fixed
-- cost of one prediction on that backend / compute unit (the median latency of a tiny
-- model, dispatch_floor_ms). A share near 1 means the case measures overhead, not the
-- model; bandwidth and TFLOP/s figures of such cases understate the hardware.
-- The floor is timed once per run and kind of tiny model, after the first case that
-- needs it, and reused by later ones: where it came out at or above the case's median
-- (a model as fast as the tiny one, or conditions that changed between the two), no
-- share is claimed: floor_share and above_floor_ms are NULL and
-- floor_at_or_above_median is true (those rows first).
SELECT
    chip,
    model_name,
    backend,
    compute_units,
    round(median_ms, 3) AS median_ms,
    round(dispatch_floor_ms, 3) AS dispatch_floor_ms,
    CASE WHEN dispatch_floor_ms < median_ms
        THEN round(dispatch_floor_ms / median_ms, 3) END AS floor_share,
    CASE WHEN dispatch_floor_ms < median_ms
        THEN round(median_ms - dispatch_floor_ms, 3) END AS above_floor_ms,
    dispatch_floor_ms >= median_ms AS floor_at_or_above_median,
    run_id
FROM results
WHERE status = 'ok' AND dispatch_floor_ms IS NOT NULL AND median_ms > 0
ORDER BY floor_at_or_above_median DESC, floor_share DESC, model_name;
