"""The chip_factors view on a store of 100,000 cases (target: median <= 200 ms).

Baseline, in the same process and store: a plain scan-and-aggregate of the cases table.
Prints one JSON line.
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from fixtures.store.synth import bulk_store  # noqa: E402

from anemll_spec.store import open_store  # noqa: E402

N_CASES = 100_000
REPEATS = 15
TARGET_MS = 200.0


def timed(con, sql: str) -> tuple[float, int]:
    times, n = [], 0
    for _ in range(REPEATS):
        t0 = time.perf_counter()
        n = len(con.execute(sql).fetchall())
        times.append(time.perf_counter() - t0)
    return float(np.median(times)) * 1e3, n


def main() -> None:
    with tempfile.TemporaryDirectory() as d:
        store = Path(d) / "big.duckdb"
        bulk_store(store, N_CASES, samples_per_case=10, n_runs=1000)
        con = open_store(store, read_only=True)
        try:
            (n_cases,) = con.execute("SELECT count(*) FROM cases").fetchone()
            ms, rows = timed(con, "SELECT * FROM chip_factors")
            base_ms, _ = timed(
                con, "SELECT model_name, avg(median_ms), max(finished_at) FROM cases GROUP BY 1"
            )
        finally:
            con.close()
    print(
        json.dumps(
            {
                "benchmark": "store_chip_factors",
                "cases": n_cases,
                "rows": rows,
                "median_ms": round(ms, 2),
                "target_ms": TARGET_MS,
                "ok": ms <= TARGET_MS,
                "baseline": "scan + group-by of the cases table",
                "baseline_median_ms": round(base_ms, 2),
                "ratio_vs_baseline": round(ms / base_ms, 2),
            }
        )
    )


if __name__ == "__main__":
    main()
