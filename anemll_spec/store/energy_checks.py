"""The derived figures of energy and sustained runs, checked: ONE definition for the
writer (a case's rows, inside its transaction) and the trust boundary (staged bundles).

A stored figure that is computed from others must be what they give:
- cases: energy_mj_per_inference = energy_total_mj / energy_calls, power_w_mean =
  energy_total_mj / 1000 / energy_interval_s; the energy fields come together (method,
  interval > 0, calls) or not at all; `instances` only with concurrency > 1;
- case_energy_rails: mj_per_inference and mean_power_w from the case's calls and
  interval; the rows counted in the total add up to energy_total_mj; a rail is one row
  (part NULL) or its parts, never both;
- sustained_windows: calls and median_ms are those of the samples carrying the window's
  index; throughput_ips = calls / wall_s; per-inference energy and mean power as above;
  windows 0..n-1 with n = cases.sustained_windows;
- cases' sustained figures: first/last medians of windows 0 and n-1, their ratio, the
  throttled flag (any window throttled), and the CI and verdict of
  `anemll_spec.sustained.judge` (seed 0, 95%, 2,000 resamples) on the two windows'
  samples, recomputed in numpy (the one check not in SQL).
Every relation is given by name (a table, a temp table, or a parenthesised subquery).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import numpy as np

from anemll_spec.store.recompute import ABS_TOL_MS, REL_TOL

GROUPS = ("case", "rails", "windows")
# the cases columns that exist only with a measured energy (energy_total_mj)
ENERGY_WITH_TOTAL = ("energy_interval_s", "energy_samples", "energy_calls", "energy_timed_only")
SUSTAINED_FIELDS = (
    "sustained_duration_s",
    "sustained_window_s",
    "sustained_first_median_ms",
    "sustained_last_median_ms",
    "sustained_throughput_ratio",
    "sustained_ci_low",
    "sustained_ci_high",
    "sustained_verdict",
    "sustained_throttled",
)


def differs(stored: str, expected: str) -> str:
    """SQL: the stored figure is not the expected one (NULL only matches NULL)."""
    return (
        f"(({stored}) IS NULL) <> (({expected}) IS NULL) OR abs(({stored}) - ({expected})) > "
        f"greatest({REL_TOL} * greatest(abs({stored}), abs({expected})), {ABS_TOL_MS})"
    )


def _checks(r: Mapping[str, str]) -> dict[str, list[tuple[str, str]]]:
    """group -> [(SQL returning (case_id, detail...) of the first offending row, message)].
    Groups: 'case' (a case's own energy columns), 'rails', 'windows' (sustained windows,
    the samples and power samples that name them, and the verdict's inputs)."""
    c, s, rails, ps, w = (
        r[k]
        for k in ("cases", "samples", "case_energy_rails", "power_samples", "sustained_windows")
    )
    per_inf = "energy_total_mj / energy_calls"
    mean_w = "energy_total_mj / 1000 / energy_interval_s"
    no_total = " OR ".join(f"{n} IS NOT NULL" for n in ENERGY_WITH_TOTAL)
    no_sustained = " OR ".join(f"{n} IS NOT NULL" for n in SUSTAINED_FIELDS)
    ratio = "sustained_first_median_ms / nullif(sustained_last_median_ms, 0)"
    return {
        "case": [
            (
                f"SELECT case_id FROM {c} WHERE (energy_method IS NULL) <> (energy_total_mj IS NULL)",
                "case {}: energy_method and energy_total_mj go together (NULL: no energy)",
            ),
            (
                f"SELECT case_id FROM {c} WHERE energy_total_mj IS NOT NULL AND NOT coalesce("
                f"energy_interval_s > 0 AND energy_calls >= 1, false)",
                "case {}: an energy figure needs its interval (> 0 s) and its calls",
            ),
            (
                f"SELECT case_id FROM {c} WHERE energy_total_mj IS NULL AND ({no_total})",
                "case {}: energy interval, samples, calls or timed_only without an energy figure",
            ),
            (
                f"SELECT case_id, energy_mj_per_inference, {per_inf} FROM {c} "
                f"WHERE {differs('energy_mj_per_inference', per_inf)}",
                "case {}: energy_mj_per_inference = {} but energy_total_mj / energy_calls = {}",
            ),
            (
                f"SELECT case_id, power_w_mean, {mean_w} FROM {c} WHERE {differs('power_w_mean', mean_w)}",
                "case {}: power_w_mean = {} but energy_total_mj / 1000 / energy_interval_s = {}",
            ),
            (
                f"SELECT case_id, concurrency FROM {c} "
                f"WHERE instances IS NOT NULL AND coalesce(concurrency, 1) = 1",
                "case {}: instances ('shared' | 'distinct') is for concurrency > 1, not {}",
            ),
        ],
        "rails": [
            # ---- rails
            (
                f"SELECT x.case_id FROM {rails} x JOIN {c} k USING (case_id) "
                f"WHERE k.energy_total_mj IS NULL",
                "case {}: energy rails without the case's energy figure",
            ),
            (
                f"SELECT case_id, rail, part FROM {rails} GROUP BY case_id, rail, part "
                f"HAVING count(*) > 1",
                "case {}: rail {} part {} is stored twice",
            ),
            (
                f"SELECT case_id, rail FROM {rails} GROUP BY case_id, rail "
                f"HAVING count(*) FILTER (WHERE part IS NULL) > 0 AND count(*) > 1",
                "case {}: rail {} is stored both whole (part NULL) and in parts",
            ),
            (
                f"SELECT x.case_id, x.rail, x.mj_per_inference, x.energy_mj / k.energy_calls "
                f"FROM {rails} x JOIN {c} k USING (case_id) "
                f"WHERE {differs('x.mj_per_inference', 'x.energy_mj / k.energy_calls')}",
                "case {}: rail {} mj_per_inference = {} but energy_mj / energy_calls = {}",
            ),
            (
                f"SELECT x.case_id, x.rail, x.mean_power_w, x.energy_mj / 1000 / k.energy_interval_s "
                f"FROM {rails} x JOIN {c} k USING (case_id) "
                f"WHERE {differs('x.mean_power_w', 'x.energy_mj / 1000 / k.energy_interval_s')}",
                "case {}: rail {} mean_power_w = {} but energy_mj / 1000 / energy_interval_s = {}",
            ),
            (
                f"SELECT k.case_id, k.energy_total_mj, x.total FROM {c} k JOIN (SELECT case_id, "
                f"sum(energy_mj) FILTER (WHERE in_total) AS total FROM {rails} GROUP BY case_id) x "
                f"USING (case_id) WHERE {differs('k.energy_total_mj', 'x.total')}",
                "case {}: energy_total_mj = {} but its rails counted in the total add up to {}",
            ),
        ],
        "windows": [
            # ---- windows and the samples / power samples that name them
            (
                f"SELECT case_id FROM {s} GROUP BY case_id "
                f"HAVING count(window_index) NOT IN (0, count(*))",
                "case {}: window_index is missing for some of its samples",
            ),
            (
                f"SELECT case_id, window_index FROM (SELECT DISTINCT case_id, window_index FROM {s} "
                f"WHERE window_index IS NOT NULL UNION SELECT DISTINCT case_id, window_index "
                f"FROM {ps} WHERE window_index IS NOT NULL) "
                f"EXCEPT SELECT case_id, window_index FROM {w}",
                "case {}: a sample or power sample names window {}, which the case does not have",
            ),
            (
                f"SELECT k.case_id, k.sustained_windows, coalesce(x.n, 0) FROM {c} k "
                f"LEFT JOIN (SELECT case_id, count(*) AS n, count(DISTINCT window_index) AS d, "
                f"min(window_index) AS lo, max(window_index) AS hi FROM {w} GROUP BY case_id) x "
                f"USING (case_id) WHERE coalesce(x.n, 0) <> coalesce(k.sustained_windows, 0) "
                f"OR x.d <> x.n OR x.lo <> 0 OR x.hi <> x.n - 1",
                "case {}: sustained_windows = {} but it has {} windows (each once, 0..n-1)",
            ),
            (
                f"SELECT case_id FROM {c} WHERE sustained_windows IS NULL AND ({no_sustained})",
                "case {}: sustained figures without sustained windows",
            ),
            (
                f"SELECT x.case_id, x.window_index, x.calls, coalesce(k.n, 0) FROM {w} x "
                f"LEFT JOIN (SELECT case_id, window_index, count(*) AS n FROM {s} "
                f"WHERE window_index IS NOT NULL GROUP BY case_id, window_index) k "
                f"USING (case_id, window_index) WHERE x.calls <> coalesce(k.n, 0)",
                "case {}: window {} has calls = {} but {} samples",
            ),
            (
                f"SELECT x.case_id, x.window_index, x.median_ms, k.m FROM {w} x "
                f"JOIN (SELECT case_id, window_index, median(wall_ns) / 1e6 AS m FROM {s} "
                f"WHERE window_index IS NOT NULL GROUP BY case_id, window_index) k "
                f"USING (case_id, window_index) WHERE {differs('x.median_ms', 'k.m')}",
                "case {}: window {} median_ms = {} but its samples give {}",
            ),
            (
                f"SELECT case_id, window_index, throughput_ips, calls / wall_s FROM {w} "
                f"WHERE {differs('throughput_ips', 'CASE WHEN wall_s > 0 THEN calls / wall_s END')}",
                "case {}: window {} throughput_ips = {} but calls / wall_s = {}",
            ),
            (
                f"SELECT case_id, window_index FROM {w} WHERE (energy_total_mj IS NOT NULL "
                f"AND NOT coalesce(energy_interval_s > 0, false)) OR (energy_total_mj IS NULL "
                f"AND energy_interval_s IS NOT NULL)",
                "case {}: window {} energy needs its interval (> 0 s), and an interval its energy",
            ),
            (
                f"SELECT case_id, window_index, energy_mj_per_inference, energy_total_mj / calls "
                f"FROM {w} WHERE {differs('energy_mj_per_inference', 'energy_total_mj / calls')}",
                "case {}: window {} energy_mj_per_inference = {} but energy_total_mj / calls = {}",
            ),
            (
                f"SELECT case_id, window_index, power_w_mean, {mean_w} FROM {w} "
                f"WHERE {differs('power_w_mean', mean_w)}",
                "case {}: window {} power_w_mean = {} but energy_total_mj / 1000 / "
                "energy_interval_s = {}",
            ),
            # ---- the sustained verdict's inputs (the CI: sustained_problem)
            (
                f"SELECT k.case_id, k.sustained_first_median_ms, f.median_ms FROM {c} k "
                f"JOIN {w} f ON f.case_id = k.case_id AND f.window_index = 0 "
                f"WHERE {differs('k.sustained_first_median_ms', 'f.median_ms')}",
                "case {}: sustained_first_median_ms = {} but window 0's median is {}",
            ),
            (
                f"SELECT k.case_id, k.sustained_last_median_ms, f.median_ms FROM {c} k "
                f"JOIN {w} f ON f.case_id = k.case_id AND f.window_index = k.sustained_windows - 1 "
                f"WHERE {differs('k.sustained_last_median_ms', 'f.median_ms')}",
                "case {}: sustained_last_median_ms = {} but the last window's median is {}",
            ),
            (
                f"SELECT case_id, sustained_throughput_ratio, {ratio} FROM {c} "
                f"WHERE sustained_windows IS NOT NULL AND {differs('sustained_throughput_ratio', ratio)}",
                "case {}: sustained_throughput_ratio = {} but first / last window median = {}",
            ),
            (
                f"SELECT k.case_id, k.sustained_throttled, x.t FROM {c} k JOIN (SELECT case_id, "
                f"bool_or(throttled) AS t FROM {w} GROUP BY case_id) x USING (case_id) "
                f"WHERE k.sustained_throttled IS DISTINCT FROM x.t",
                "case {}: sustained_throttled = {} but its windows say {}",
            ),
        ],
    }


def problem(con, rels: Mapping[str, str], groups: Iterable[str] = GROUPS) -> str | None:
    """The first derived figure that is not what its inputs give, in words, or None.

    rels: 'cases', 'samples', 'case_energy_rails', 'power_samples', 'sustained_windows'
    -> relation names; their columns are the current schema's. groups: which checks
    (a write asks only those its rows can fail). The SQL checks run as one query (one
    round trip: a write pays it once per case); each names its least offender (ORDER BY
    ALL), the same one every time."""
    groups = set(groups)
    by_group = _checks(rels)
    checks = [c for g in GROUPS if g in groups for c in by_group[g]]
    branches = []
    for k, (sql, message) in enumerate(checks):
        n = message.count("{}")
        cols = ", ".join(f"CAST(x.column{i} AS VARCHAR)" for i in range(n))
        pad = ", ".join(["NULL::VARCHAR"] * (MAX_DETAILS - n))
        branches.append(
            f"(SELECT {k} AS k, {', '.join(p for p in (cols, pad) if p)} "
            f"FROM (SELECT * FROM ({sql}) ORDER BY ALL LIMIT 1) x("
            + ", ".join(f"column{i}" for i in range(n))
            + "))"
        )
    if branches:
        row = con.execute(" UNION ALL ".join(branches) + " ORDER BY k LIMIT 1").fetchone()
        if row is not None:
            message = checks[row[0]][1]
            return message.format(*(_show(v) for v in row[1 : 1 + message.count("{}")]))
    return sustained_problem(con, rels) if "windows" in groups else None


MAX_DETAILS = 4


def sustained_problem(con, rels: Mapping[str, str]) -> str | None:
    """The sustained CI and verdict against `judge` on the first and last windows'
    samples (in the order taken), per sustained case."""
    from anemll_spec.sustained import ci_verdict, judge

    c, s = rels["cases"], rels["samples"]
    cases = con.execute(
        f"SELECT case_id, sustained_windows, sustained_ci_low, sustained_ci_high, "
        f"sustained_verdict FROM {c} WHERE sustained_windows IS NOT NULL ORDER BY case_id"
    ).fetchall()
    for case_id, n, low, high, verdict in cases:
        first, last = (
            con.execute(
                f"SELECT wall_ns FROM {s} WHERE case_id = ? AND window_index = ? ORDER BY idx",
                [case_id, i],
            ).fetchnumpy()["wall_ns"]
            for i in (0, n - 1)
        )
        if not len(first) or not len(last) or np.median(first) <= 0:
            return f"case {_show(case_id)}: a sustained window without samples to judge"
        v = judge(np.asarray(first), np.asarray(last))
        problem = _ci_problem(case_id, low, high, v)
        if problem and not _ci_problem(  # or stored by a version that resampled
            case_id, low, high, resampled := judge(first, last, resampled=True)
        ):
            problem, v = None, resampled
        if problem:
            return problem
        # "too few calls" is newer than some stored runs: one with a short first or last
        # window may hold the verdict the older judge gave from its CI (checked above)
        older = v.verdict == "too few calls" and verdict == ci_verdict(
            v.throughput_ratio, v.ci_low, v.ci_high
        )
        if verdict != v.verdict and not older:
            return (
                f"case {_show(case_id)}: sustained_verdict = {_show(verdict)} but the windows' "
                f"samples give {v.verdict!r} (ratio {v.throughput_ratio:.4g}, CI "
                f"{v.ci_low:.4g} to {v.ci_high:.4g})"
            )
    return None


def _ci_problem(case_id, low, high, v) -> str | None:
    from anemll_spec.store.recompute import agree

    for name, stored, got in (
        ("sustained_ci_low", low, v.ci_low),
        ("sustained_ci_high", high, v.ci_high),
    ):
        if stored is None or not agree(np.array([stored]), np.array([got]), name)[0]:
            return (
                f"case {_show(case_id)}: {name} = {_show(stored)} but the windows' "
                f"samples give {got!r} (sustained.judge, seed 0)"
            )
    return None


def _show(value) -> str:
    from anemll_spec.text import printable

    if value is None:
        return "NULL"
    if isinstance(value, float):
        return f"{value!r}"
    text = printable(str(value))
    return text if len(text) <= 60 else text[:59] + "…"
