"""Energy across chips: `energy_factors_vs(baseline)` and `energy_factors`, like the
bandwidth factors of chip_factors, in inferences per joule.

Every figure is the hardware's own estimate from its energy counters (the SoC's energy
model through IOReport or powermetrics, the GPU board's counter through NVML, the CPU
package's RAPL model), never wall power; powermetrics' own manual warns against comparing
its estimates across devices, so a factor between two chips is a rough guide. No energy
figures are published, so the baseline of a row is only ever the baseline chip's latest
row of the same model from the SAME source, backend, device, compute units,
concurrency, instances and power reader (the same OS version first); otherwise the
factor is NULL and `baseline_label` says why.
"""

from __future__ import annotations

from anemll_spec.store.sqlparts import DEFAULT_BASELINE, PROVENANCE, WHAT, factor_label

# The columns of energy_factors_vs / energy_factors, declared once: docs/store.md shows
# them (store.docs) and a test checks the view has exactly these.
COLUMNS: tuple[tuple[str, str], ...] = (
    ("source", "'own' (measured here), 'imported' or 'pushed'"),
    ("provenance", "where the run came from, in words"),
    ("chip", "chip, normalised like the published names ('M4 Max')"),
    ("os_name", "e.g. 'macOS'"),
    ("os_version", "OS version: each is its own row"),
    ("model", "model name (published name where identical)"),
    ("backend", "coreml | numpy | torch"),
    ("device", "torch device; NULL otherwise"),
    ("compute_units", "Core ML compute units; NULL for other backends"),
    ("concurrency", "instances run at once (energy and calls of all of them)"),
    ("instances", "shared | distinct compiled model (NULL at concurrency 1)"),
    ("energy_method", "the power reader: ioreport | powermetrics | nvml | rapl"),
    ("energy_timed_only", "the energy interval held the timed calls and nothing else"),
    ("energy_mj_per_inference", "mJ per inference: the interval's energy / its calls"),
    ("inferences_per_joule", "1000 / energy_mj_per_inference"),
    ("power_w_mean", "mean power over the interval, W"),
    ("gpu_power_limit_w", "the GPU's power limit (NVML), W, for scale"),
    ("energy_cpu_mj_per_inference", "CPU rail, mJ per inference"),
    ("energy_gpu_mj_per_inference", "GPU rail, mJ per inference"),
    ("energy_ane_mj_per_inference", "Neural Engine rail (an Ultra's two summed), mJ"),
    ("energy_dram_mj_per_inference", "DRAM rail, mJ per inference"),
    ("median_ms", "median latency of the case, ms"),
    ("energy_note", "the reader's caveats"),
    (
        "caveat",
        "what the figure is: the SoC's / GPU's / CPU package's own energy estimate, not "
        "wall power; powermetrics' manual warns against comparing its estimates across devices",
    ),
    ("baseline_chip", "the chip asked for"),
    ("baseline_source", "the baseline row's source (NULL: no baseline row)"),
    ("baseline_os_version", "the baseline row's OS version"),
    (
        "baseline_label",
        "the baseline in words, or why there is none (no published energy figures exist)",
    ),
    ("baseline_inferences_per_joule", "the baseline row's inferences per joule"),
    ("baseline_energy_mj_per_inference", "the baseline row's mJ per inference"),
    ("energy_factor", "inferences_per_joule / baseline_inferences_per_joule"),
    ("energy_factor_label", "'2.3x' from 1x up, two significant digits below (more near 1)"),
    ("run_id", "-> runs.run_id"),
    ("case_id", "-> cases.case_id"),
)

_CAVEAT = """CASE {p}energy_method
        WHEN 'nvml' THEN 'NVML: the GPU board''s own energy counter (the whole board, every '
            || 'process on it), not wall power'
        WHEN 'rapl' THEN 'RAPL: the CPU package''s own energy model (with its DRAM where '
            || 'exposed), not wall power'
        ELSE {p}energy_method || ': the SoC''s own energy estimate, not wall power; '
            || 'powermetrics'' manual warns against comparing its estimates across devices'
    END"""

# Same variant, same reader: what makes two energy rows comparable.
_SAME = (
    "source",
    "model",
    "backend",
    "device",
    "compute_units",
    "concurrency",
    "instances",
    "energy_method",
)

ENERGY_FACTORS_OF = rf"""
CREATE OR REPLACE MACRO energy_factors_of(baseline, run, latest_only) AS TABLE
WITH measured AS (
    SELECT
        source, origin, origin_ref, origin_sha256, chip, os_name, os_version,
        model_name AS model, backend, device, compute_units,
        coalesce(concurrency, 1) AS concurrency, instances, energy_method,
        energy_timed_only, energy_mj_per_inference, inferences_per_joule, power_w_mean,
        gpu_power_limit_w, energy_cpu_mj_per_inference, energy_gpu_mj_per_inference,
        energy_ane_mj_per_inference, energy_dram_mj_per_inference, median_ms, energy_note,
        run_id, case_id, run_started_at, finished_at
    FROM results
    WHERE status = 'ok' AND energy_mj_per_inference > 0 AND chip IS NOT NULL
        AND model_name IS NOT NULL
),
latest_ids AS (  -- the latest case of each source x chip x OS x model x variant x reader
    SELECT arg_max(case_id, (run_started_at, finished_at, case_id)) AS case_id
    FROM measured
    GROUP BY source, chip, os_name, os_version, {", ".join(_SAME[1:])}
),
points AS (
    SELECT m.*, m.case_id IN (SELECT case_id FROM latest_ids) AS latest FROM measured m
),
base AS (SELECT * FROM points WHERE chip = baseline AND latest),
picked AS (
    SELECT * FROM points WHERE (run IS NULL OR run_id = run) AND (NOT latest_only OR latest)
)
SELECT
    p.source,
    {PROVENANCE.format(r="p.")} AS provenance,
    p.chip, p.os_name, p.os_version, p.model, p.backend, p.device, p.compute_units,
    p.concurrency, p.instances, p.energy_method, p.energy_timed_only,
    p.energy_mj_per_inference, p.inferences_per_joule, p.power_w_mean, p.gpu_power_limit_w,
    p.energy_cpu_mj_per_inference, p.energy_gpu_mj_per_inference,
    p.energy_ane_mj_per_inference, p.energy_dram_mj_per_inference, p.median_ms,
    p.energy_note,
    {_CAVEAT.format(p="p.")} AS caveat,
    baseline AS baseline_chip,
    b.source AS baseline_source,
    b.os_version AS baseline_os_version,
    CASE WHEN b.case_id IS NOT NULL
        THEN baseline || ' (' || b.source || ', ' || {WHAT.format(p="b.")} || ', '
            || b.energy_method || ')'
        ELSE 'none: no ' || baseline || ' energy figure of this model from the same source, '
            || 'variant and reader (no energy figures are published)' END AS baseline_label,
    b.inferences_per_joule AS baseline_inferences_per_joule,
    b.energy_mj_per_inference AS baseline_energy_mj_per_inference,
    p.inferences_per_joule / b.inferences_per_joule AS energy_factor,
    {factor_label("p.inferences_per_joule / b.inferences_per_joule")} AS energy_factor_label,
    p.run_id,
    p.case_id,
    p.run_started_at,
    p.latest
FROM picked p
LEFT JOIN base b ON {" AND ".join(f"b.{c} IS NOT DISTINCT FROM p.{c}" for c in _SAME)}
QUALIFY row_number() OVER (
    PARTITION BY p.case_id
    ORDER BY (b.os_version IS NOT DISTINCT FROM p.os_version) DESC,
             b.run_started_at DESC NULLS LAST, b.case_id
) = 1
"""

ENERGY_FACTORS_VS = f"""
CREATE OR REPLACE MACRO energy_factors_vs(baseline) AS TABLE
SELECT {", ".join(name for name, _ in COLUMNS)}
FROM energy_factors_of(baseline, NULL::VARCHAR, true)
"""

ENERGY_FACTORS = f"""
CREATE OR REPLACE VIEW energy_factors AS
SELECT * FROM energy_factors_vs('{DEFAULT_BASELINE}')
"""

ALL: tuple[str, ...] = (ENERGY_FACTORS_OF, ENERGY_FACTORS_VS, ENERGY_FACTORS)
