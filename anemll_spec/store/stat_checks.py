"""The statistics a staged case claims, checked against its samples (the trust
boundary's part that needs numpy: trust.check_staged calls it).

Every figure `anemll_spec.stats.summarize` stores (median, CI, percentiles, GB/s,
TFLOPS, drift slope, ...) is recomputed from the staged samples by `recompute` and
compared within its tolerance (the throughput of concurrent instances, calls over a
timed phase the samples do not record, is held to the most their calls allow:
concurrent_most); the runtime median and the presence of start times are
checked in SQL. A CI stored by a version that drew every resample (up to b03f3c6)
is checked against that draw. A drift slope cannot be recomputed without start times (older bundles):
it is dropped (set NULL) and counted, not refused.

A statistic left NULL where the samples define it is refused too (REQUIRED): NULL is
a claim that hides a figure (a median, a noisy flag), not an absence. Every writer of
an importable bundle (schema v2 on, bundle.MIN_VERSION) filled these columns (v2-v4:
stats.case_columns of e0d3d3c, eac1b97, 002326c), and all of them exist since v2
(drift_ratio came with v2, the rest with v1): no bundle version is exempt.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from anemll_spec.errors import InputError
from anemll_spec.store import recompute
from anemll_spec.text import quoted
from anemll_spec.vocab import MIN_SAMPLES

STAT_COLUMNS = recompute.FLOAT_COLUMNS + recompute.EXACT_COLUMNS
CI_COLUMNS = ("ci_low_ms", "ci_high_ms")
# never NULL where the samples define them (recompute gives a number): of one sample,
# std and CV may be NULL (undefined); under vocab.MIN_SAMPLES the CI may be NULL
# (stats.summarize stores none there since 2026-12-07; older runs stored one, still
# checked against the samples where given); the drift ratio is defined from DRIFT_MIN_N samples, the drift
# slope from SLOPE_MIN_N samples with start times. Not required: GB/s and TFLOPS (the
# views derive them where NULL) and throughput (not stored for instances measured apart).
REQUIRED = (
    *("median_ms", "mean_ms", "std_ms", "min_ms", "max_ms", "p5_ms", "p50_ms"),
    *("p90_ms", "p95_ms", "p99_ms", "iqr_ms", "mad_ms", *CI_COLUMNS, "cv"),
    *("drift_ratio", "drift_slope_ms_per_s", "outliers", "noisy", "throttled"),
)
FROM_TWO = ("std_ms", "cv")
# Core ML's and CUDA's own durations come from other clocks than the call's wall time
RUNTIME_SLACK, RUNTIME_SLACK_NS = 1.01, 5_000


def check_statistics(con, label: str, s: Mapping[str, str]) -> None:
    """Every statistic of the staged cases (s['cases']) against the one its samples
    (s['samples']) give; InputError (`label: what`) on the first that differs. A drift
    slope of samples without start times is not checked: drop_unprovable_drift drops it."""
    c, smp = s["cases"], s["samples"]
    checks = [
        (
            f"SELECT case_id FROM {c} WHERE n_samples = 0 AND ("
            + " OR ".join(f"{n} IS NOT NULL" for n in (*STAT_COLUMNS, "runtime_median_ms"))
            + ") ORDER BY 1 LIMIT 1",
            "statistics without samples",
        ),
        (
            f"SELECT case_id FROM {smp} GROUP BY case_id "
            f"HAVING count(start_ns) NOT IN (0, count(*)) ORDER BY 1 LIMIT 1",
            "start_ns is missing for some of its samples",
        ),
        (  # the runtime's own duration is a part of the call (slack: two clocks)
            f"SELECT case_id FROM {smp} WHERE runtime_ns > wall_ns * {RUNTIME_SLACK} "
            f"+ {RUNTIME_SLACK_NS} ORDER BY 1 LIMIT 1",
            "a sample's runtime_ns exceeds its wall_ns (the runtime is a part of the call)",
        ),
        (
            f"SELECT case_id FROM {c} WHERE backend = 'numpy' AND case_id IN "
            f"(SELECT case_id FROM {smp} WHERE runtime_ns IS NOT NULL) ORDER BY 1 LIMIT 1",
            "runtime_ns on a numpy case (the reference executor reports no runtime of its own)",
        ),
        (
            f"SELECT c.case_id FROM {c} c JOIN (SELECT case_id, median(runtime_ns) / 1e6 AS m "
            f"FROM {smp} GROUP BY case_id) k USING (case_id) "
            f"WHERE c.runtime_median_ms IS NOT NULL AND (k.m IS NULL OR abs(c.runtime_median_ms"
            f" - k.m) > greatest({recompute.REL_TOL} * abs(k.m), {recompute.ABS_TOL_MS})) ORDER BY 1 LIMIT 1",
            "runtime_median_ms is not the median of its runtime_ns",
        ),
    ]
    for sql, what in checks:
        row = con.execute(sql).fetchone()
        if row is not None:
            raise InputError(f"{label}: case {quoted(row[0])}: {what}")
    cases = con.execute(
        f"SELECT case_id, n_samples, weight_bytes::DOUBLE AS wb, flops::DOUBLE AS fl, "
        f"coalesce(concurrency, 1) AS conc, {', '.join(STAT_COLUMNS)} "
        f"FROM {c} WHERE n_samples > 0 ORDER BY case_id"
    ).fetchnumpy()
    if not len(cases["case_id"]):
        return
    smp_np = con.execute(f"SELECT wall_ns, start_ns FROM {smp} ORDER BY case_id, idx").fetchnumpy()
    wall = np.asarray(smp_np["wall_ns"], dtype=np.int64)
    start_col = smp_np["start_ns"]
    start_mask = np.ma.getmaskarray(start_col)
    starts = np.asarray(np.ma.filled(start_col, 0), dtype=np.int64)
    n = np.asarray(cases["n_samples"], dtype=np.int64)
    offsets = np.concatenate([[0], np.cumsum(n)])
    for k, idx in recompute.groups(n):
        rows = offsets[idx][:, None] + np.arange(k)[None, :]
        w = wall[rows]
        has_start = ~start_mask[rows].any(axis=1)
        got = recompute.recompute(
            w, starts[rows], _floats(cases["wb"], idx), _floats(cases["fl"], idx)
        )
        st = starts[rows]
        seconds = (st.max(axis=1) - st.min(axis=1)) / 1e9
        with np.errstate(divide="ignore", invalid="ignore"):
            scale = np.where(seconds > 0, (w.max(axis=1) - w.min(axis=1)) / 1e6 / seconds, 0.0)
        conc = np.asarray(cases["conc"])[idx]
        bad: dict[str, np.ndarray] = {}
        stored: dict[str, np.ndarray] = {}
        for col in STAT_COLUMNS:
            claimed = ~np.ma.getmaskarray(cases[col])[idx]
            if col == "drift_slope_ms_per_s":
                claimed &= has_start
            stored[col] = np.ma.filled(np.ma.asarray(cases[col])[idx].astype(np.float64), np.nan)
            bad[col] = claimed & ~recompute.agree(
                stored[col], got[col], col, scale if col == "drift_slope_ms_per_s" else None
            )
            if col == "throughput_ips":  # N instances: at most what their calls allow
                most = concurrent_most(w, st, has_start, conc, got["mean_ms"])
                got[col] = np.where(conc > 1, most, got[col])
                over = ~(stored[col] <= most * (1 + recompute.REL_TOL))
                bad[col] = np.where(conc > 1, claimed & over, bad[col])
        off = bad["ci_low_ms"] | bad["ci_high_ms"]
        if off.any():  # or both ends stored by a version that resampled (never one of each)
            older = recompute.median_ci(w / 1e6, resampled=True)
            off_old = np.zeros_like(off)
            for col, o in zip(CI_COLUMNS, older, strict=True):
                off_old |= ~np.isnan(stored[col]) & ~recompute.agree(stored[col], o, col)
            for col in CI_COLUMNS:
                bad[col] &= off_old
        for col in REQUIRED:  # NULL where the samples give a figure
            defined = ~np.isnan(np.asarray(got[col], dtype=np.float64))
            if col in FROM_TWO and k < 2 or col in CI_COLUMNS and k < MIN_SAMPLES:
                defined[:] = False
            if col == "drift_slope_ms_per_s":
                defined &= has_start
            bad[col] |= defined & np.ma.getmaskarray(cases[col])[idx]
        for col in STAT_COLUMNS:
            bad_col, stored_col = bad[col], stored[col]
            if bad_col.any():
                j = int(np.flatnonzero(bad_col)[0])
                i = idx[j]
                give = "allow at most" if col == "throughput_ips" and conc[j] > 1 else "give"
                raise InputError(
                    f"{label}: case {quoted(cases['case_id'][i])}: {col} = {_num(stored_col[j])} "
                    f"but its {k} samples {give} {_num(float(got[col][j]))}"
                )


def concurrent_most(
    wall: np.ndarray, starts: np.ndarray, has_start: np.ndarray, conc: np.ndarray, mean_ms
) -> np.ndarray:
    """Per case: the most inferences/s that `conc` instances' calls allow. The stored
    figure is calls / the timed phase (first start to last end, concurrency.py), and the
    phase holds every call: at most n / (last call's end - first call's start), and, as
    each instance's calls run one after another, at most conc x 1e3 / mean_ms (an
    instance ran at least 1/conc of the calls' total time)."""
    n = wall.shape[1]
    with np.errstate(divide="ignore", invalid="ignore"):
        most = conc * 1e3 / np.asarray(mean_ms, dtype=np.float64)
        span_s = ((starts + wall).max(axis=1) - starts.min(axis=1)) / 1e9
        by_span = np.where(has_start & (span_s > 0), n / span_s, np.inf)
    return np.minimum(most, by_span)


def _floats(col, idx: np.ndarray) -> np.ndarray:
    return np.ma.filled(np.ma.asarray(col, dtype=np.float64)[idx], np.nan)


def _num(v) -> str:
    if v is None or (isinstance(v, float) and np.isnan(v)):
        return "no value (NULL)"
    return f"{float(v)!r}"


def drop_unprovable_drift(con, s: Mapping[str, str]) -> int:
    """A drift slope of a case whose samples lack start times becomes NULL: it cannot be
    recomputed (check_statistics leaves it unchecked). Returns how many."""
    c, smp = s["cases"], s["samples"]
    missing = (
        f"SELECT case_id FROM {c} WHERE n_samples > 0 AND drift_slope_ms_per_s IS NOT NULL "
        f"AND case_id IN (SELECT case_id FROM {smp} GROUP BY case_id "
        "HAVING count(start_ns) < count(*))"
    )
    (n,) = con.execute(f"SELECT count(*) FROM ({missing})").fetchone()
    if n:
        con.execute(f"UPDATE {c} SET drift_slope_ms_per_s = NULL WHERE case_id IN ({missing})")
    return int(n)
