"""Loading the shared store's DuckDB extensions (ducklake, postgres_scanner) in a fresh
process: `store.lake.load_extensions` against the order it replaced, side by side.

Every shared-store command (push, pull, query, chart, bench --store ducklake:...) opens
a connection and loads both extensions. The old order tried `LOAD name` first; for an
extension DuckDB has not installed, that LOAD autoinstalls, i.e. tries to download it,
and on a machine with no route to DuckDB's repository (this one; CI) each failed try cost
~0.5 s before the PyPI package's file was loaded. Now `duckdb_extensions()` is asked
first. Each side runs in its own fresh process, interleaved (old, new, old, new ...).

Prints one JSON line: median seconds per side (import of the store module and connect
excluded), ratio new / old (< 1 is faster), and whether `LOAD` had the extensions
installed (where DuckDB has them, both orders load the same files and should tie).

    .venv/bin/python benchmarks/lake_connect.py [--rounds 7]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys

NAMES = ("ducklake", "postgres_scanner")

ONE = """
import json, sys, time
import duckdb
from anemll_spec.store import lake

def old_order(con, names):  # the order before: LOAD name first, the PyPI file after
    for name in names:
        try:
            con.execute(f"LOAD {name}")
            continue
        except duckdb.Error:
            pass
        path, _ = lake._pypi_file(name, duckdb.__version__)
        con.execute(f"LOAD '{path}'")

con = duckdb.connect()
installed = [lake._installed(con, n) for n in NAMES]
t = time.perf_counter()
(old_order if sys.argv[1] == "old" else lake.load_extensions)(con, NAMES)
s = time.perf_counter() - t
loaded = con.execute(
    "SELECT count(*) FROM duckdb_extensions() WHERE loaded AND extension_name IN ?",
    [list(NAMES)],
).fetchone()[0]
print(json.dumps({"s": s, "installed": installed, "loaded": loaded}))
""".replace("NAMES", repr(NAMES))


def _once(side: str) -> dict:
    out = subprocess.run(
        [sys.executable, "-c", ONE, side], capture_output=True, text=True, check=True
    )
    return json.loads(out.stdout)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=7)
    args = ap.parse_args()
    times: dict[str, list[float]] = {"old": [], "new": []}
    installed = None
    for _ in range(args.rounds):
        for side in ("old", "new"):
            r = _once(side)
            if r["loaded"] != len(NAMES):
                sys.exit(f"{side}: {r['loaded']} of {len(NAMES)} extensions loaded")
            times[side].append(r["s"])
            installed = r["installed"]
    old, new = statistics.median(times["old"]), statistics.median(times["new"])
    print(
        json.dumps(
            {
                "benchmark": "lake_connect",
                "figure": "seconds to load ducklake + postgres_scanner in a fresh process",
                "new_median_s": round(new, 4),
                "old_order_median_s": round(old, 4),
                "ratio": round(new / old, 3),
                "rounds": args.rounds,
                "installed_in_duckdb": installed,
            }
        )
    )


if __name__ == "__main__":
    main()
