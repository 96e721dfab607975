"""A sustained run's timeline: latency and power on one time axis, windows shaded.

Per case (a run.duration_s run timed in windows): on top, every call's latency at the
time it started (samples.start_ns; thinned evenly for long runs) and each window's
median (sustained_windows); below, each rail's power at each sampling period (the
mean over it; NVML's own reading is a 1 s trailing average) (power_samples, a rail's parts summed) and each window's mean power. Both panels have
the same x domain, from the first timed call to the last window's end, so a step in
latency lines up with a step in power. The verdict (last/first throughput with its CI,
throttled or not, thermal state per window) is the case's subtitle.
"""

from __future__ import annotations

from typing import Any

from anemll_spec.chart import robust, style, sustained_draw
from anemll_spec.chart.source import NoData, Options, fetch, pick_run, selected_cases_sql
from anemll_spec.chart.sustained_draw import (  # noqa: F401 - the kind's title, words
    TITLE,
    thermal_runs,
    verdict_words,
)

KIND = "sustained"
NEEDS = "coalesce(sustained_windows, 0) > 0"
MAX_CASES = 4
POWER_POINTS = 600  # per case and rail, at most


def query(con, opts: Options, run_id: str) -> dict[str, Any]:
    """{cases, windows, samples, power, n_cases}: the rows drawn, by case label."""
    cases_sql, params = selected_cases_sql(opts, run_id, needs=NEEDS)
    picked = f"(SELECT * FROM ({cases_sql}) ORDER BY case_index, label LIMIT {MAX_CASES})"
    n_cases = fetch(con, f"SELECT count(*) AS n FROM ({cases_sql})", params)[0]["n"]
    cases = fetch(con, f"SELECT * FROM {picked} ORDER BY case_index, label", params)
    windows = fetch(
        con,
        f"""WITH sel AS {picked}
            SELECT sel.label, w.*, w.start_s + w.wall_s AS end_s
            FROM sustained_windows w JOIN sel ON w.case_id = sel.case_id
            ORDER BY sel.label, w.window_index""",
        params,
    )
    per_case = max(50, opts.max_points // max(1, len(cases)))
    # A sample stored without its start time (start_ns NULL) is placed inside its
    # window by the latency of the calls before it: window start + window wall time x
    # (the window's latency so far / its total latency), an estimate the chart names.
    samples = fetch(
        con,
        f"""WITH sel AS {picked},
            x AS (SELECT sel.label, sel.n_samples, x.idx, x.wall_ns, x.start_ns,
                         x.window_index, w.start_s, w.wall_s,
                         sum(x.wall_ns) OVER (PARTITION BY sel.label, x.window_index
                             ORDER BY x.idx ROWS UNBOUNDED PRECEDING) - x.wall_ns AS before_ns,
                         sum(x.wall_ns) OVER (PARTITION BY sel.label, x.window_index) AS all_ns
                  FROM samples x JOIN sel ON x.case_id = sel.case_id
                  LEFT JOIN sustained_windows w
                    ON w.case_id = x.case_id AND w.window_index = x.window_index)
            SELECT label, idx, wall_ns / 1e6 AS ms, window_index,
                   coalesce(start_ns / 1e9, start_s + wall_s * before_ns / all_ns) AS t_s,
                   start_ns IS NULL AS estimated
            FROM x
            WHERE (start_ns IS NOT NULL OR start_s IS NOT NULL)
              AND idx % greatest(1, CAST(ceil(n_samples / ?) AS INTEGER)) = 0
            ORDER BY label, idx""",
        [*params, float(per_case)],
    )
    power = fetch(
        con,
        f"""WITH sel AS {picked},
            p AS (SELECT sel.label, p.rail, p.t_s, sum(p.watts) AS watts,
                         any_value(p.window_index) AS window_index
                  FROM power_samples p JOIN sel ON p.case_id = sel.case_id
                  GROUP BY sel.label, p.rail, p.t_s),
            n AS (SELECT *, row_number() OVER (PARTITION BY label, rail ORDER BY t_s) - 1 AS k,
                         count(*) OVER (PARTITION BY label, rail) AS m FROM p)
            SELECT label, rail, t_s, watts, window_index FROM n
            WHERE k % greatest(1, CAST(ceil(m / {POWER_POINTS}) AS INTEGER)) = 0
            ORDER BY label, rail, t_s""",
        params,
    )
    spread = fetch(
        con,
        f"""WITH sel AS {picked}
            SELECT sel.label, quantile_cont(x.wall_ns / 1e6, 0.25) AS q1,
                   median(x.wall_ns / 1e6) AS median, quantile_cont(x.wall_ns / 1e6, 0.75) AS q3,
                   min(x.wall_ns) / 1e6 AS min_ms, max(x.wall_ns) / 1e6 AS max_ms,
                   count(*) FILTER (WHERE x.start_ns IS NULL) AS unstamped,
                   count(*) FILTER (WHERE x.start_ns IS NULL AND x.window_index IS NULL)
                       AS unplaced
            FROM samples x JOIN sel ON x.case_id = sel.case_id GROUP BY sel.label""",
        params,
    )
    return {"cases": cases, "windows": windows, "samples": samples, "power": power,
            "spread": {r["label"]: r for r in spread}, "n_cases": n_cases}  # fmt: skip


def build(con, opts: Options) -> dict[str, Any]:
    run_id = pick_run(
        con,
        opts,
        needs=NEEDS,
        lacking="no sustained run in the store ({filters}): give a spec run.duration_s "
        "(e.g. 600) to time it in windows",
    )
    data = query(con, opts, run_id)
    if not data["cases"]:
        raise NoData(f"run {run_id} has no sustained case ({opts.describe()})")
    for label, s in data["spread"].items():  # a few far outliers must not flatten a panel
        clip = robust.clip_range([s])
        medians = [w["median_ms"] for w in data["windows"] if w["label"] == label]
        if clip and medians:  # but every window's median is drawn at its own value
            clip = robust.Clip(min(clip.lo, *medians), max(clip.hi, *medians))
        s["clip"] = clip
    return style.drawn_runs(sustained_draw.chart(data, run_id, opts), run_id)
