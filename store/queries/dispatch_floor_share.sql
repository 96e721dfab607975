-- Dispatch-floor share of latency: how much of a case's median latency is the fixed
-- cost of one prediction on that backend / compute unit (the median latency of a tiny
-- model, dispatch_floor_ms). A share near 1 means the case measures overhead, not the
-- model; bandwidth and TFLOP/s figures of such cases understate the hardware.
SELECT
    chip,
    model_name,
    backend,
    compute_units,
    round(median_ms, 3) AS median_ms,
    round(dispatch_floor_ms, 3) AS dispatch_floor_ms,
    round(dispatch_floor_ms / median_ms, 3) AS floor_share,
    round(median_ms - dispatch_floor_ms, 3) AS above_floor_ms,
    run_id
FROM results
WHERE status = 'ok' AND dispatch_floor_ms IS NOT NULL AND median_ms > 0
ORDER BY floor_share DESC, model_name;
