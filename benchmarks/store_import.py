"""Import of results bundles of 25k / 50k / 100k cases: linear, not quadratic.

Each bundle holds 10 samples per case and 100 cases per run. The 25k import is the
baseline; a linear import gives time(100k) / time(25k) ~ 4 (quadratic: ~16).
Prints one JSON line.
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from fixtures.store.synth import bulk_store  # noqa: E402

from anemll_spec.store.bundle import export_bundle
from anemll_spec.store.importing import import_bundles  # noqa: E402

SIZES = (25_000, 50_000, 100_000)
REPEATS = 2


def main() -> None:
    seconds = {}
    with tempfile.TemporaryDirectory() as d:
        for n in SIZES:
            src = Path(d) / f"src{n}.duckdb"
            bundle = Path(d) / f"b{n}.parquet"
            bulk_store(src, n, samples_per_case=10, n_runs=n // 100)
            export_bundle(src, bundle)
            best = None
            for r in range(REPEATS):
                dest = Path(d) / f"dest{n}_{r}.duckdb"
                t0 = time.perf_counter()
                (summary,) = import_bundles(dest, [bundle])
                dt = time.perf_counter() - t0
                assert summary["rows"]["cases"] == n
                best = dt if best is None else min(best, dt)
            seconds[n] = best
    ratio = seconds[SIZES[-1]] / seconds[SIZES[0]]
    print(
        json.dumps(
            {
                "benchmark": "store_import",
                "seconds": {str(k): round(v, 3) for k, v in seconds.items()},
                "us_per_case": {str(k): round(v / k * 1e6, 2) for k, v in seconds.items()},
                "baseline": f"import of {SIZES[0]} cases",
                "ratio_100k_vs_25k": round(ratio, 2),
                "linear_ratio": SIZES[-1] / SIZES[0],
                "ok": ratio < 6.0,
            }
        )
    )


if __name__ == "__main__":
    main()
