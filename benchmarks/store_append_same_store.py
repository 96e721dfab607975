"""The case append of the code before issues 12 and 13 and of this tree, on one store.

    .venv/bin/python benchmarks/store_append_same_store.py [--before c749b53] [--rounds 6]

`side_by_side.py store_append` compares each tree appending to a store of its own
schema, so it also measures what the schema gained since (two sample columns, 23 case
columns, three energy tables: issues 14 and 18). This one holds the data fixed: this
tree makes one store (its schema, one run), and each round each tree appends the same
60 cases (10,000 samples each, its own `append_case` and test fixtures, its own
checkpoint threshold) to a fresh copy of it, in a fresh process, the trees alternating.
The older code is told the store is of its schema version (the columns it writes all
exist; those it does not know stay NULL, as its own store would not have them).

An append is bimodal: most only log to the write-ahead log, and every few one also
checkpoints (~40 ms more), so the median of one round depends on where the checkpoints
fall; the mean is the cost per case over a run. Both are reported. Prints one JSON line.
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
con.execute("UPDATE meta SET value = ? WHERE key = 'derived_sha256'", [connection._derived_fingerprint()])
con.execute("CHECKPOINT")
con.close()
rng = np.random.default_rng(0)
times = []
for i in range(int(sys.argv[4])):
    wall = rng.integers(7_000_000, 9_000_000, 10_000)
    row = case(f"k{i}", wall=wall)
    t0 = time.perf_counter()
    append_case(store, run_id, row, wall)
    times.append(time.perf_counter() - t0)
print(json.dumps(times))
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


def _round(tree: Path, store: Path, run_id: str) -> list[float]:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    out = subprocess.run(
        [sys.executable, "-c", WORKER, str(tree), str(store), run_id, str(REPEATS)],
        capture_output=True,
        text=True,
        cwd=tree,
        env=env,
        check=True,
    )
    return [t * 1e3 for t in json.loads(out.stdout.strip().splitlines()[-1])]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--before", default=BEFORE, help="the older commit")
    ap.add_argument("--rounds", type=int, default=6)
    a = ap.parse_args()
    medians: dict[str, list[float]] = {"before": [], "now": []}
    means: dict[str, list[float]] = {"before": [], "now": []}
    with checkout(a.before) as old, tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp) / "base.duckdb"
        run_id = _base_store(base)
        trees = [("before", old), ("now", ROOT)]
        for r in range(a.rounds):
            for label, tree in trees if r % 2 == 0 else trees[::-1]:
                store = Path(tmp) / f"{label}-{r}.duckdb"
                shutil.copy(base, store)
                times = _round(tree, store, run_id)
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
                "before_median_ms": mid(medians["before"]),
                "now_median_ms": mid(medians["now"]),
                "ratio_median": round(mid(medians["now"]) / mid(medians["before"]), 3),
                "before_mean_ms": mid(means["before"]),
                "now_mean_ms": mid(means["now"]),
                "ratio_mean": round(mid(means["now"]) / mid(means["before"]), 3),
                "before_round_medians": [round(v, 1) for v in medians["before"]],
                "now_round_medians": [round(v, 1) for v in medians["now"]],
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
