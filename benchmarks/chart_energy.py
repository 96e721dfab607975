"""`chart energy` over a store of 100,000 cases with energy, and `chart sustained` of a
600 s sustained run of 1 ms calls, must each take at most 2 s; the report of that run
at most 5 s.

The stores are SYNTHETIC (made-up figures, not measurements): chart_factors.py's big
store (100,000 cases), then every case gets an IOReport-shaped energy reading (four
rails, 400,000 rail rows) and the last run's first case becomes a sustained run: 600 s
in 60 windows of 1 ms calls (600,000 samples with start times and window indices) with
power read 10 times a second on four rails (24,000 rows); all bulk-inserted with SQL.

Prints one JSON line: the median wall time of each (chart written as HTML, PNG, SVG
and JSON in-process; the report in-process; the energy chart's whole CLI command) over
the big store and, as the baseline measured in the same process, over a store of 100
cases whose sustained run is 60 s long (60,000 samples, 60 windows of 1 s).
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from chart_factors import CASES_PER_RUN, N_CASES, make_store

RAILS = (("ane", 2.0), ("cpu", 0.9), ("dram", 1.5), ("gpu", 0.05))  # watts (synthetic)
INTERVAL_S = 10.0
POWER_HZ = 10
WINDOWS = 60


def add_energy(path: Path, sustained_s: int) -> str:
    """Energy for every case, and a sustained run of `sustained_s` seconds as the last
    run's first case; returns that run's id."""
    import duckdb

    watts = sum(w for _, w in RAILS)
    con = duckdb.connect(str(path))
    try:
        con.execute("BEGIN")
        con.execute(
            f"""UPDATE cases SET energy_method = 'ioreport', energy_interval_s = {INTERVAL_S},
                   energy_samples = 102, energy_timed_only = true,
                   energy_calls = CAST({INTERVAL_S * 1000} / median_ms AS INTEGER),
                   energy_total_mj = {watts * INTERVAL_S * 1000},
                   power_w_mean = {watts}"""
        )
        con.execute("UPDATE cases SET energy_mj_per_inference = energy_total_mj / energy_calls")
        for rail, w in RAILS:
            con.execute(
                f"""INSERT INTO case_energy_rails (case_id, rail, part, energy_mj,
                        mj_per_inference, mean_power_w, in_total)
                    SELECT case_id, '{rail}', NULL, {w * INTERVAL_S * 1000},
                           {w * INTERVAL_S * 1000} / energy_calls, {w}, true FROM cases"""
            )
        run_id, case_id = con.execute(
            "SELECT run_id, min(case_id) FROM cases WHERE run_id = (SELECT max(run_id) "
            "FROM runs) GROUP BY run_id"
        ).fetchone()
        n = sustained_s * 1000  # 1 ms calls
        per_window = n // WINDOWS
        con.execute("DELETE FROM samples WHERE case_id = ?", [case_id])
        con.execute(
            """INSERT INTO samples (case_id, idx, wall_ns, start_ns, window_index)
               SELECT ?, i, CAST(1e6 * (1 + i / ? * 0.1 + (hash(i) % 100) / 2000.0) AS BIGINT),
                      i * 1000000, i // ? FROM range(?) t(i)""",
            [case_id, n, per_window, n],
        )
        con.execute(
            """INSERT INTO sustained_windows (case_id, window_index, start_s, wall_s, calls,
                   median_ms, throughput_ips, thermal_state, throttled)
               SELECT ?, window_index, min(start_ns) / 1e9, ? / 1000, count(*),
                      median(wall_ns) / 1e6, count(*) / (? / 1000), 'nominal', false
               FROM samples WHERE case_id = ? GROUP BY window_index""",
            [case_id, per_window, per_window, case_id],
        )
        con.execute(
            f"""INSERT INTO power_samples (case_id, idx, t_s, rail, watts, window_index)
                SELECT ?, i * {len(RAILS)} + r, (i + 1) / {POWER_HZ},
                       {[r for r, _ in RAILS]}[r + 1],
                       {[w for _, w in RAILS]}[r + 1] * (1 + (hash(i, r) % 100) / 1000.0),
                       least(i * {WINDOWS} // (? * {POWER_HZ}), {WINDOWS - 1})
                FROM range(?) t(i), range({len(RAILS)}) u(r)""",
            [case_id, sustained_s, sustained_s * POWER_HZ],
        )
        con.execute(
            """UPDATE cases SET n_samples = ?, sustained_duration_s = ?,
                   sustained_window_s = ?, sustained_windows = ?,
                   sustained_first_median_ms = 1.0, sustained_last_median_ms = 1.1,
                   sustained_throughput_ratio = 1 / 1.1, sustained_ci_low = 0.9,
                   sustained_ci_high = 0.92, sustained_verdict = 'degraded',
                   sustained_throttled = false WHERE case_id = ?""",
            [n, float(sustained_s), sustained_s / WINDOWS, WINDOWS, case_id],
        )
        con.execute("COMMIT")
    finally:
        con.close()
    return run_id


def timed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def chart(kind: str, target: Path, out: Path):
    from anemll_spec.chart import write_chart
    from anemll_spec.chart.source import Options

    return lambda: write_chart(kind, str(target), Options(), out)


def report(target: Path, run_id: str, out: Path):
    from anemll_spec.chart.report import write_report

    return lambda: write_report(str(target), run_id, out, force=True)


def cli(target: Path, out: Path):
    cmd = [sys.executable, "-m", "anemll_spec", "chart", "energy", "--store", str(target)]
    return lambda: subprocess.run([*cmd, "--out", str(out)], check=True, capture_output=True)


def main(repeats: int = 5, n_cases: int = N_CASES) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        big, small = tmp / "big.duckdb", tmp / "small.duckdb"
        t0 = time.perf_counter()
        make_store(big, n_cases)
        big_run = add_energy(big, 600)
        gen_s = time.perf_counter() - t0
        make_store(small, n_cases=CASES_PER_RUN)
        small_run = add_energy(small, 60)
        jobs = {
            "energy": (chart("energy", big, tmp / "e1"), chart("energy", small, tmp / "e2")),
            "sustained": (chart("sustained", big, tmp / "s1"), chart("sustained", small, tmp / "s2")),
            "report": (report(big, big_run, tmp / "r1.html"), report(small, small_run, tmp / "r2.html")),
            "energy_cli": (cli(big, tmp / "c1"), cli(small, tmp / "c2")),
        }  # fmt: skip
        for _a, b in jobs.values():  # imports, Vega bundle cache, renderer start-up
            b()
        times: dict[str, tuple[list, list]] = {k: ([], []) for k in jobs}
        for _ in range(repeats):  # interleaved, so drift hits both alike
            for k, (a, b) in jobs.items():
                times[k][0].append(timed(a))
                times[k][1].append(timed(b))
        targets = {"energy": 2.0, "sustained": 2.0, "report": 5.0, "energy_cli": 2.0}
        out: dict = {"benchmark": "chart_energy", "cases": n_cases}
        for k, (a, b) in times.items():
            big_s, small_s = statistics.median(a), statistics.median(b)
            out[f"{k}_median_s"] = round(big_s, 4)
            out[f"{k}_baseline_median_s"] = round(small_s, 4)
            out[f"{k}_ratio_vs_baseline"] = round(big_s / small_s, 2)
            out[f"{k}_target_s"] = targets[k]
        out["baseline"] = (
            f"same chart, store of {CASES_PER_RUN} cases with a 60 s sustained run "
            "(60,000 samples) vs 600 s (600,000 samples)"
        )
        out["report_bytes"] = (tmp / "r1.html").stat().st_size
        out["loadavg_1m"] = round(os.getloadavg()[0], 2)
        out["cpus"] = os.cpu_count()
        out["store_generation_s"] = round(gen_s, 2)
        out["ok"] = all(out[f"{k}_median_s"] <= t for k, t in targets.items())
        print(json.dumps(out))


if __name__ == "__main__":
    main()
