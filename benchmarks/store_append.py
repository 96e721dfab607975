"""Appending one case with 10,000 samples through the write API (target: median <= 50 ms).

The whole call is timed: open the store, check the case, insert the case row and the
samples in one transaction, commit, close. In the same process, interleaved round by
round (each round runs the four in a rotating order, so load on the machine falls on
all of them alike):
- the write API with this version's settings (the figure);
- the write API with the write-ahead log checkpointed at 2 MB, the setting before
  (connection.WAL_CHECKPOINT_THRESHOLD): what the threshold buys;
- the same case with an energy reading (schema v4: 7 rails, 4 timeline points; the
  M1 Ultra IOReport delta of tests/fixtures/power, charged to synthetic calls): what
  writing and checking the energy rows adds;
- the baseline, the floor of any such write with DuckDB: connect to a bare file, insert
  the same 10,000 samples from numpy in one transaction, close (no schema checks, no
  case row). (duckdb's executemany, the naive path, takes ~40 s for 10,000 rows here.)
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
from fixtures.store.energy import m1_ultra_reading  # noqa: E402
from fixtures.store.synth import case, new_run  # noqa: E402

from anemll_spec.store import append_case, connection  # noqa: E402
from anemll_spec.store.energy import energy_rows  # noqa: E402

N_SAMPLES = 10_000
REPEATS = 40
TARGET_MS = 50.0
BEFORE_THRESHOLD = "2MB"


def main() -> None:
    rng = np.random.default_rng(0)
    now = connection.WAL_CHECKPOINT_THRESHOLD
    with tempfile.TemporaryDirectory() as d:
        stores = {now: Path(d) / "now.duckdb", BEFORE_THRESHOLD: Path(d) / "before.duckdb"}
        runs = {k: new_run(p) for k, p in stores.items()}
        energy_store = Path(d) / "energy.duckdb"
        energy_run = new_run(energy_store)
        bare = Path(d) / "bare.duckdb"
        con = duckdb.connect(str(bare))
        con.execute("CREATE TABLE samples (case_id VARCHAR, idx INTEGER, wall_ns BIGINT)")
        con.close()
        times: dict[str, list[float]] = {"now": [], "before": [], "bare": [], "energy": []}

        def api(key: str, threshold: str, row: dict, wall: np.ndarray) -> None:
            connection.WAL_CHECKPOINT_THRESHOLD = threshold
            t0 = time.perf_counter()
            append_case(stores[threshold], runs[threshold], row, wall)
            times[key].append(time.perf_counter() - t0)

        def energy(row: dict, wall: np.ndarray) -> None:
            connection.WAL_CHECKPOINT_THRESHOLD = now
            kw = energy_rows(m1_ultra_reading(0), N_SAMPLES, t0_ns=0)
            full = {**row, **kw.pop("case")}
            t0 = time.perf_counter()
            append_case(energy_store, energy_run, full, wall, **kw)
            times["energy"].append(time.perf_counter() - t0)

        def floor(i: int, wall: np.ndarray) -> None:
            t0 = time.perf_counter()
            con = duckdb.connect(str(bare))
            con.execute("BEGIN")
            con.register("s", {"idx": np.arange(N_SAMPLES, dtype=np.int32), "w": wall})
            con.execute("INSERT INTO samples SELECT ?, idx, w FROM s", [f"c{i}"])
            con.execute("COMMIT")
            con.close()
            times["bare"].append(time.perf_counter() - t0)

        for i in range(REPEATS):
            wall = rng.integers(7_000_000, 9_000_000, N_SAMPLES)
            row = case(f"k{i}", wall=wall)
            steps = [
                lambda row=row, wall=wall: api("now", now, row, wall),
                lambda row=row, wall=wall: api("before", BEFORE_THRESHOLD, row, wall),
                lambda row=row, wall=wall: energy(row, wall),
                lambda i=i, wall=wall: floor(i, wall),
            ]
            for step in steps[i % 4 :] + steps[: i % 4]:
                step()
        connection.WAL_CHECKPOINT_THRESHOLD = now

    def med(key: str) -> float:
        return float(np.median(times[key])) * 1e3

    print(
        json.dumps(
            {
                "benchmark": "store_append",
                "samples_per_case": N_SAMPLES,
                "repeats": REPEATS,
                "median_ms": round(med("now"), 2),
                "p90_ms": round(float(np.percentile(times["now"], 90)) * 1e3, 2),
                "mean_ms": round(float(np.mean(times["now"])) * 1e3, 2),
                "target_ms": TARGET_MS,
                "ok": med("now") <= TARGET_MS,
                "wal_checkpoint_threshold": now,
                "before_threshold": BEFORE_THRESHOLD,
                "before_median_ms": round(med("before"), 2),
                "before_mean_ms": round(float(np.mean(times["before"])) * 1e3, 2),
                "ratio_vs_before": round(med("now") / med("before"), 4),
                "energy_case_median_ms": round(med("energy"), 2),
                "energy_ratio_vs_plain": round(med("energy") / med("now"), 4),
                "baseline": "bare DuckDB: connect, insert the samples from numpy, commit, close",
                "baseline_median_ms": round(med("bare"), 2),
                "ratio_vs_baseline": round(med("now") / med("bare"), 4),
            }
        )
    )


if __name__ == "__main__":
    main()
