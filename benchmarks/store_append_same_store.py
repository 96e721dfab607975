"""The case append of the code before issues 12 and 13 and of this tree, on one store.

    .venv/bin/python benchmarks/store_append_same_store.py [--before c749b53] [--rounds 6]
        [--threshold 1.5MB]

`side_by_side.py store_append` compares each tree appending to a store of its own
making, so it also measures what the schema gained since (two sample columns, 23 case
columns, three energy tables: issues 14 and 18) and the block size of a new store. This
one holds the store fixed: this tree makes one store (its schema, its block size, one
run), and each round each tree appends 60 cases with the same samples (10,000 each;
each tree's own `append_case` and case-row fixture) to a fresh copy of it, in a fresh
process, the trees alternating. The older code is told the store is of its schema
version (the columns it writes all exist; those it does not know stay NULL, as its own
store would not have them). Each tree keeps its own checkpoint threshold (part of its
code: 1 MB before, 1.5 MB now) unless --threshold gives both the same one, which leaves
only the rest of the code to differ.

An append is bimodal: most only log to the write-ahead log, and every few one also
checkpoints (~20 ms more with 64 KiB blocks), so the median of a round depends on where
the checkpoints fall; the mean is the cost per case over a run, and comes first. Prints
one JSON line.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _worktree import BEFORE, ROOT, checkout  # noqa: E402

REPEATS = 60

# Run in a tree's own interpreter path: argv = tree, store, run_id, repeats.
WORKER = """
import json, sys, time
from pathlib import Path
tree = Path(sys.argv[1])
sys.path[:0] = [str(tree), str(tree / "tests")]
import duckdb, numpy as np
from fixtures.store.synth import case
from anemll_spec.store import append_case, connection, schema
assert Path(connection.__file__).is_relative_to(tree), connection.__file__
store, run_id = sys.argv[2], sys.argv[3]
con = duckdb.connect(store)
con.execute("UPDATE meta SET value = ? WHERE key = 'schema_version'", [str(schema.SCHEMA_VERSION)])
try:  # the fingerprint moved to store/prepare.py; older trees keep it in connection.py
    from anemll_spec.store.prepare import derived_fingerprint
except ImportError:
    derived_fingerprint = connection._derived_fingerprint
con.execute("UPDATE meta SET value = ? WHERE key = 'derived_sha256'", [derived_fingerprint()])
con.execute("CHECKPOINT")
con.close()
if sys.argv[5]:
    connection.WAL_CHECKPOINT_THRESHOLD = sys.argv[5]
rng = np.random.default_rng(0)
times = []
for i in range(int(sys.argv[4])):
    wall = rng.integers(7_000_000, 9_000_000, 10_000)
    row = case(f"k{i}", wall=wall)
    t0 = time.perf_counter()
    append_case(store, run_id, row, wall)
    times.append(time.perf_counter() - t0)
print(json.dumps({"times": times, "threshold": connection.WAL_CHECKPOINT_THRESHOLD}))
"""


def _base_store(path: Path) -> str:
    """A store of this tree's schema with one run, checkpointed (a file copy is whole)."""
    sys.path[:0] = [str(ROOT), str(ROOT / "tests")]
    import duckdb
    from fixtures.store.synth import new_run

    run_id = new_run(path)
    con = duckdb.connect(str(path))
    con.execute("CHECKPOINT")
    con.close()
    return run_id


def _block_size(path: Path) -> int:
    import duckdb

    con = duckdb.connect(str(path), read_only=True)
    try:
        return int(con.execute("SELECT block_size FROM pragma_database_size()").fetchone()[0])
    finally:
        con.close()


def _round(tree: Path, store: Path, run_id: str, threshold: str) -> tuple[list[float], str]:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    out = subprocess.run(
        [sys.executable, "-c", WORKER, str(tree), str(store), run_id, str(REPEATS), threshold],
        capture_output=True,
        text=True,
        cwd=tree,
        env=env,
        check=True,
    )
    got = json.loads(out.stdout.strip().splitlines()[-1])
    return [t * 1e3 for t in got["times"]], got["threshold"]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--before", default=BEFORE, help="the older commit")
    ap.add_argument("--rounds", type=int, default=6)
    ap.add_argument("--threshold", default="", help="one checkpoint threshold for both")
    a = ap.parse_args()
    thresholds: dict[str, str] = {}
    medians: dict[str, list[float]] = {"before": [], "now": []}
    means: dict[str, list[float]] = {"before": [], "now": []}
    with checkout(a.before) as old, tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp) / "base.duckdb"
        run_id = _base_store(base)
        block_size = _block_size(base)
        trees = [("before", old), ("now", ROOT)]
        for r in range(a.rounds):
            for label, tree in trees if r % 2 == 0 else trees[::-1]:
                store = Path(tmp) / f"{label}-{r}.duckdb"
                shutil.copy(base, store)
                times, thresholds[label] = _round(tree, store, run_id, a.threshold)
                medians[label].append(statistics.median(times))
                means[label].append(statistics.fmean(times))
                store.unlink()
                Path(f"{store}.wal").unlink(missing_ok=True)

    def mid(values: list[float]) -> float:
        return round(statistics.median(values), 2)

    print(
        json.dumps(
            {
                "benchmark": "store_append_same_store",
                "measures": "ms per append of one 10,000-sample case (open, check, insert, "
                "commit, close) into copies of one store, by the code before and now",
                "before": a.before,
                "rounds": a.rounds,
                "appends_per_round": REPEATS,
                "store_block_size": block_size,
                "checkpoint_thresholds": thresholds,
                "before_mean_ms": mid(means["before"]),
                "now_mean_ms": mid(means["now"]),
                "ratio_mean": round(mid(means["now"]) / mid(means["before"]), 3),
                "before_median_ms": mid(medians["before"]),
                "now_median_ms": mid(medians["now"]),
                "ratio_median": round(mid(medians["now"]) / mid(medians["before"]), 3),
                "before_round_medians": [round(v, 1) for v in medians["before"]],
                "now_round_medians": [round(v, 1) for v in medians["now"]],
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
