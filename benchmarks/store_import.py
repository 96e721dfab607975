"""Import of results bundles of 25k / 50k / 100k cases: linear, not quadratic.

Each bundle holds 10 samples per case and 100 cases per run. The 25k import is the
baseline; a linear import gives time(100k) / time(25k) ~ 4 (quadratic: ~16), less with a
fixed cost, which can hide a quadratic term in that ratio; so the check is on the steps:
(t100k - t50k) / (t50k - t25k) is 2 for a linear import and 6 for a quadratic one. Each size
is imported ROUNDS times, interleaved with the others after an untimed warm-up; the
figures are medians. Prints one JSON line.
"""

from __future__ import annotations

import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from fixtures.store.synth import MODELS, bulk_store, spec_case  # noqa: E402

from anemll_spec.store.exporting import export_bundle  # noqa: E402
from anemll_spec.store.importing import import_bundles  # noqa: E402

SIZES = (25_000, 50_000, 100_000)
ROUNDS = 5


def fill_claims(path: Path) -> None:
    """The sweep point's params and the model family of each case, from its run's spec,
    as every writer stores them: bulk_store leaves them NULL, and an import refuses a
    case that leaves out what its run's spec gives (since d842c55)."""
    import duckdb

    con = duckdb.connect(str(path))
    try:
        for model in MODELS:
            _, c = spec_case(model)
            con.execute(
                "UPDATE cases SET params = ?, model_family = ? WHERE model_name = ?",
                [json.dumps(c.params, sort_keys=True), c.model.family, model],
            )
        con.execute("CHECKPOINT")
    finally:
        con.close()


def main() -> None:
    times: dict[int, list[float]] = {n: [] for n in SIZES}
    with tempfile.TemporaryDirectory() as d:
        bundles = {}
        for n in SIZES:
            src = Path(d) / f"src{n}.duckdb"
            bundles[n] = Path(d) / f"b{n}.parquet"
            bulk_store(src, n, samples_per_case=10, n_runs=n // 100)
            fill_claims(src)
            export_bundle(src, bundles[n])
        import_bundles(Path(d) / "warm.duckdb", [bundles[SIZES[0]]])  # first-call costs, untimed
        for r in range(ROUNDS):  # sizes interleaved, in a rotating order: drift hits all
            for n in SIZES[r % len(SIZES) :] + SIZES[: r % len(SIZES)]:
                dest = Path(d) / f"dest{n}_{r}.duckdb"
                t0 = time.perf_counter()
                (summary,) = import_bundles(dest, [bundles[n]])
                times[n].append(time.perf_counter() - t0)
                assert summary["rows"]["cases"] == n
                dest.unlink()
    seconds = {n: statistics.median(ts) for n, ts in times.items()}
    ratio = seconds[SIZES[-1]] / seconds[SIZES[0]]
    t25, t50, t100 = (seconds[n] for n in SIZES)
    steps = (t100 - t50) / (t50 - t25) if t50 > t25 else float("inf")
    print(
        json.dumps(
            {
                "benchmark": "store_import",
                "seconds": {str(k): round(v, 3) for k, v in seconds.items()},
                "us_per_case": {str(k): round(v / k * 1e6, 2) for k, v in seconds.items()},
                "measures": f"median of {ROUNDS} imports per size, sizes interleaved",
                "baseline": f"import of {SIZES[0]} cases (median)",
                "ratio_100k_vs_25k": round(ratio, 2),
                "linear_ratio": SIZES[-1] / SIZES[0],
                "step_ratio": round(steps, 2),
                "step_ratio_is": "(t100k - t50k) / (t50k - t25k): 2 linear, 6 quadratic",
                "ok": steps < 3.0,
            }
        )
    )


if __name__ == "__main__":
    main()
