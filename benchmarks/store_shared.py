"""The shared store (DuckLake, catalog in a private PostgreSQL cluster started here, data
in a temp folder) side by side with the DuckDB file store, in one run. Prints one JSON
line per figure:

- store_shared_append: median time of the write API's append_case of one case with
  10,000 samples (target <= 250 ms), against the same append to a DuckDB file;
- store_shared_chip_factors: median time of SELECT * FROM chip_factors over a
  100,000-case store (target <= 1 s), against the same query on a DuckDB file;
- store_shared_writers: 8 writer processes x 10 cases (the runner's calls through
  BenchStore) at once vs the same 80 cases by one process: wall time, and whether all 80
  are stored, none twice, none lost.

In the first two, after one untimed call on each store, the two stores take turns, the
one that goes first swapping every round, so drift favours neither.

Needs PostgreSQL (initdb/pg_ctl, as the tests) and the `lake` extra.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

TESTS = Path(__file__).resolve().parents[1] / "tests"
sys.path.insert(0, str(TESTS))
import pg  # noqa: E402
from fixtures.store.synth import bulk_store, case, host, run, samples_ns  # noqa: E402

from anemll_spec.store import append_case, begin_run, lake, lake_target, open_store  # noqa: E402

APPENDS = 15
REPEATS = 7
N_CASES = 100_000
WRITERS, CASES_EACH = 8, 10

WRITER = """
import sys
import numpy as np
from fixtures.store.synth import case, host, run, samples_ns
from anemll_spec.store.fallback import BenchStore

target, worker, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
store = BenchStore(target, local=sys.argv[4])
rng = np.random.default_rng(worker)
rid = store.begin_run(None, run(), host())
for i in range(n):
    wall = samples_ns(rng, 1000, 5.0)
    print("case", store.append_case(None, rid, case(wall=wall), wall), flush=True)
store.finish_run(None, rid, "finished")
assert store.fell_back is None, store.message
"""


def median_append_ms(targets: list) -> list[float]:
    """Median ms of append_case into each target: one untimed append each (the first
    open: schema check, attach), then the targets take turns, the one that goes first
    swapping every round, so drift on the machine favours none."""
    rng = np.random.default_rng(0)
    wall = samples_ns(rng, 10_000, 5.0)
    row = case(wall=wall)
    runs = [begin_run(t, run(), host()) for t in targets]
    for t, rid in zip(targets, runs, strict=True):
        append_case(t, rid, row, wall)
    times: list[list[float]] = [[] for _ in targets]
    order = list(range(len(targets)))
    for r in range(APPENDS):
        for i in order if r % 2 == 0 else order[::-1]:
            t0 = time.perf_counter()
            append_case(targets[i], runs[i], row, wall)
            times[i].append(time.perf_counter() - t0)
    return [float(np.median(t)) * 1e3 for t in times]


def median_query_ms(targets: list, sql: str) -> list[tuple[float, int]]:
    """(median ms, rows) of `sql` on each target: one untimed run each, then in turns as
    median_append_ms takes them."""
    cons = [open_store(t, read_only=True) for t in targets]
    try:
        rows = [len(con.execute(sql).fetchall()) for con in cons]
        times: list[list[float]] = [[] for _ in cons]
        order = list(range(len(cons)))
        for r in range(REPEATS):
            for i in order if r % 2 == 0 else order[::-1]:
                t0 = time.perf_counter()
                rows[i] = len(cons[i].execute(sql).fetchall())
                times[i].append(time.perf_counter() - t0)
    finally:
        for con in cons:
            con.close()
    return [(float(np.median(t)) * 1e3, n) for t, n in zip(times, rows, strict=True)]


def copy_into_lake(src: Path, target: str) -> None:
    """The bulk store's rows into the lake in one transaction (as a bulk push would)."""
    con = open_store(target)
    try:
        con.execute(f"ATTACH '{src}' AS src (READ_ONLY)")
        con.execute("BEGIN")
        for table in ("hosts", "runs", "cases", "samples"):
            con.execute(f"INSERT INTO {table} SELECT * FROM src.{table}")
        con.execute("COMMIT")
        con.execute("DETACH src")
    finally:
        con.close()


def writers(target: str, tmp: Path, n_procs: int, each: int) -> tuple[float, list[str]]:
    env = {**os.environ, "PGPASSWORD": pg.PASSWORD, "ANEMLL_SPEC_STORE_LOCK_TIMEOUT_S": "120"}
    t0 = time.perf_counter()
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", WRITER, target, str(w), str(each), str(tmp / f"l{w}.duckdb")],
            cwd=TESTS,
            env=env,
            stdout=subprocess.PIPE,
            text=True,
        )
        for w in range(n_procs)
    ]
    ids = []
    for p in procs:
        out, _ = p.communicate(timeout=600)
        if p.returncode:
            raise SystemExit(f"writer failed ({p.returncode})")
        for line in out.splitlines():  # anything else a library printed is not an id
            if line.startswith("case "):
                ids.append(line.split()[1])
            else:
                print(f"writer {p.args[3]} printed: {line[:200]}", file=sys.stderr)
    return time.perf_counter() - t0, ids


def stored_once(target: str, ids: list[str]) -> dict:
    con = open_store(target, read_only=True)
    try:
        got = [r[0] for r in con.execute("SELECT case_id FROM cases").fetchall()]
    finally:
        con.close()
    return {
        "stored": len(got),
        "twice": len(got) - len(set(got)),
        "lost": len(set(ids) - set(got)),
    }


def main() -> None:
    os.environ["PGPASSWORD"] = pg.PASSWORD
    cluster = pg.start_cluster()
    try:
        with tempfile.TemporaryDirectory() as d:
            tmp = Path(d)

            def target_named(name: str) -> str:
                return cluster.target(cluster.new_db(name), tmp / f"{name}-data")

            shared_ms, file_ms = median_append_ms([target_named("append"), tmp / "append.duckdb"])
            emit(
                "store_shared_append",
                "median append_case, one case of 10,000 samples",
                shared_ms,
                250.0,
                file_ms,
            )

            big = tmp / "big.duckdb"
            bulk_store(big, N_CASES, samples_per_case=10, n_runs=1000)
            target = target_named("big")
            open_store(target).close()
            copy_into_lake(big, target)
            sql = "SELECT * FROM chip_factors"
            (shared_q, rows), (file_q, file_rows) = median_query_ms([target, big], sql)
            assert rows == file_rows, (rows, file_rows)
            emit(
                "store_shared_chip_factors",
                f"median SELECT * FROM chip_factors, {N_CASES:,} cases ({rows} rows)",
                shared_q,
                1000.0,
                file_q,
            )

            many = target_named("writers")
            open_store(many).close()
            wall_many, ids_many = writers(many, tmp, WRITERS, CASES_EACH)
            one = target_named("one")
            open_store(one).close()
            wall_one, ids_one = writers(one, tmp, 1, WRITERS * CASES_EACH)
            check = stored_once(many, ids_many)
            print(
                json.dumps(
                    {
                        "benchmark": "store_shared_writers",
                        "measures": f"{WRITERS} writer processes x {CASES_EACH} cases at once "
                        "vs one process writing the same 80 (wall s, incl. process start)",
                        **check,
                        "ok": check == {"stored": 80, "twice": 0, "lost": 0}
                        and stored_once(one, ids_one)["stored"] == 80,
                        "wall_s": round(wall_many, 2),
                        "baseline": "1 process x 80 cases, same store kind",
                        "baseline_wall_s": round(wall_one, 2),
                        "ratio_vs_baseline": round(wall_many / wall_one, 2),
                    }
                )
            )
            for t in (many, one, target):
                lake.forget(lake_target.parse_target(t))
    finally:
        pg.remove(cluster)


def emit(name: str, what: str, ms: float, target_ms: float, file_ms: float) -> None:
    print(
        json.dumps(
            {
                "benchmark": name,
                "measures": what,
                "median_ms": round(ms, 2),
                "target_ms": target_ms,
                "ok": ms <= target_ms,
                "baseline": "the same on a DuckDB file store",
                "baseline_median_ms": round(file_ms, 2),
                "ratio_vs_baseline": round(ms / file_ms, 2),
            }
        ),
        flush=True,
    )


if __name__ == "__main__":
    main()
