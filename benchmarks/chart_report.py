"""`anemll-spec report` of one run in a store of 100,000 cases must take at most 5 s.

The SYNTHETIC big store is the one benchmarks/chart_factors.py builds (bulk SQL
inserts; made-up figures, not measurements); the report is of its last run (100 cases
of 300 samples each, with the previous run of the same spec to compare against).

Prints one JSON line: the median wall time of write_report in-process over the big
store and, as the baseline measured in the same process, over a store holding only
that one run's worth of cases; plus the median of the CLI command (a fresh process).
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


def time_report(target: Path, out: Path) -> float:
    from anemll_spec.chart.report import write_report

    t0 = time.perf_counter()
    write_report(str(target), None, out)
    return time.perf_counter() - t0


def time_cli(target: Path, out: Path) -> float:
    t0 = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "anemll_spec", "report", "--store", str(target), "--out", str(out)],
        check=True,
        capture_output=True,
    )
    return time.perf_counter() - t0


def main(repeats: int = 5, n_cases: int = N_CASES) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        big, small = tmp / "big.duckdb", tmp / "small.duckdb"
        make_store(big, n_cases)
        make_store(small, n_cases=2 * CASES_PER_RUN)  # two runs: compare applies too
        time_report(small, tmp / "warm.html")  # imports, Vega bundle cache
        bigs, smalls, clis = [], [], []
        for _ in range(repeats):  # interleaved, so drift hits both alike
            bigs.append(time_report(big, tmp / "big.html"))
            smalls.append(time_report(small, tmp / "small.html"))
            clis.append(time_cli(big, tmp / "cli.html"))
        big_s, small_s, cli_s = (statistics.median(x) for x in (bigs, smalls, clis))
        print(
            json.dumps(
                {
                    "benchmark": "chart_report",
                    "cases": n_cases,
                    "median_s": round(big_s, 4),
                    "baseline_median_s": round(small_s, 4),
                    "baseline": f"same report, store of {2 * CASES_PER_RUN} cases",
                    "ratio_vs_baseline": round(big_s / small_s, 2),
                    "cli_median_s": round(cli_s, 4),
                    "report_bytes": (tmp / "big.html").stat().st_size,
                    "loadavg_1m": round(os.getloadavg()[0], 2),
                    "cpus": os.cpu_count(),
                    "target_s": 5.0,
                    "ok": big_s <= 5.0 and cli_s <= 5.0,
                }
            )
        )


if __name__ == "__main__":
    main()
