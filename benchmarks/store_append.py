"""Appending one case with 10,000 samples through the write API (target: median <= 50 ms).

The whole call is timed: open the store, check the case, insert the case row and the
samples in one transaction, commit, close. Baseline, in the same process: the floor
of any such write with DuckDB -- connect to a bare file, insert the same 10,000
samples from numpy in one transaction, close (no schema checks, no case row).
(duckdb's executemany, the naive path, takes ~40 s for 10,000 rows here.)
Prints one JSON line.
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path

import duckdb
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from fixtures.store.synth import case, new_run  # noqa: E402

from anemll_spec.store import append_case  # noqa: E402

N_SAMPLES = 10_000
REPEATS = 40
TARGET_MS = 50.0


def main() -> None:
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as d:
        store = Path(d) / "bench.duckdb"
        run_id = new_run(store)
        times = []
        for i in range(REPEATS):
            wall = rng.integers(7_000_000, 9_000_000, N_SAMPLES)
            row = case(f"k{i}", wall=wall)
            t0 = time.perf_counter()
            append_case(store, run_id, row, wall)
            times.append(time.perf_counter() - t0)
        median_ms = float(np.median(times)) * 1e3

        bare = Path(d) / "bare.duckdb"
        con = duckdb.connect(str(bare))
        con.execute("CREATE TABLE samples (case_id VARCHAR, idx INTEGER, wall_ns BIGINT)")
        con.close()
        base = []
        for i in range(REPEATS):
            wall = rng.integers(7_000_000, 9_000_000, N_SAMPLES)
            t0 = time.perf_counter()
            con = duckdb.connect(str(bare))
            con.execute("BEGIN")
            con.register("s", {"idx": np.arange(N_SAMPLES, dtype=np.int32), "w": wall})
            con.execute("INSERT INTO samples SELECT ?, idx, w FROM s", [f"c{i}"])
            con.execute("COMMIT")
            con.close()
            base.append(time.perf_counter() - t0)
        base_ms = float(np.median(base)) * 1e3

    print(
        json.dumps(
            {
                "benchmark": "store_append",
                "samples_per_case": N_SAMPLES,
                "repeats": REPEATS,
                "median_ms": round(median_ms, 2),
                "p90_ms": round(float(np.percentile(times, 90)) * 1e3, 2),
                "target_ms": TARGET_MS,
                "ok": median_ms <= TARGET_MS,
                "baseline": "bare DuckDB: connect, insert the samples from numpy, commit, close",
                "baseline_median_ms": round(base_ms, 2),
                "ratio_vs_baseline": round(median_ms / base_ms, 4),
            }
        )
    )


if __name__ == "__main__":
    main()
