-- Throttling check: did latency drift up during the timed loop? drift_ratio is the
-- median of the last tenth of the samples over the median of the first tenth
-- (> 1.05: the end was 5% slower), drift_slope_ms_per_s the fitted slope. Cases with
-- the throttled flag (drift_ratio > 1.10: a sign, not a thermal reading), or a drift
-- ratio above 1.05, first; with the host's thermal state and power source at the start
-- of the run (sustained runs read the thermal state per window: sustained_windows).
SELECT
    chip,
    model_name,
    backend,
    compute_units,
    round(median_ms, 3) AS median_ms,
    round(drift_ratio, 3) AS drift_ratio,
    round(drift_slope_ms_per_s, 5) AS drift_slope_ms_per_s,
    throttled,
    noisy,
    round(cv, 4) AS cv,
    thermal_state,
    power_source,
    low_power_mode,
    run_id,
    case_id
FROM results
WHERE status = 'ok'
ORDER BY coalesce(throttled, false) OR coalesce(drift_ratio, 1) > 1.05 DESC,
         drift_ratio DESC NULLS LAST, run_started_at DESC;
