"""The summary of a sustained run's samples: `stats.summarize` (the bootstrap CI of the
median by two Beta draws per replicate) against the same summary with the draw it
replaced (every resample's n indices drawn and partitioned), in one process.

Figures: seconds to summarise N latencies (median of REPEATS, alternating), and their
ratio; the import's check of the same samples (`store.recompute`) too. Prints one JSON
line. Usage: python benchmarks/bootstrap_ci.py [N]  (default 1,000,000)
"""

from __future__ import annotations

import json
import statistics
import sys
import time

import numpy as np

from anemll_spec import bootstrap, stats
from anemll_spec.store import recompute

REPEATS = 3


def _seconds(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000
    wall = np.random.default_rng(0).lognormal(np.log(2e5), 0.2, n).astype(np.int64)
    ms = wall[None, :] / 1e6
    new, old, check = [], [], []
    drawn = bootstrap.bootstrap_medians

    def resampled(x, n_boot, rng, **_):
        return drawn(x, n_boot, rng, resampled=True)

    for _ in range(REPEATS):  # alternate, so drift hits both alike
        new.append(_seconds(lambda: stats.summarize(wall)))
        bootstrap.bootstrap_medians = resampled  # the same summary, with the old draw
        try:
            old.append(_seconds(lambda: stats.summarize(wall)))
        finally:
            bootstrap.bootstrap_medians = drawn
        check.append(_seconds(lambda: recompute.median_ci(ms)))
    a, b = statistics.median(new), statistics.median(old)
    print(
        json.dumps(
            {
                "benchmark": "bootstrap_ci",
                "samples": n,
                "summarize_s": round(a, 4),
                "summarize_resampled_s": round(b, 3),
                "speedup": round(b / a, 1),
                "import_check_ci_s": round(statistics.median(check), 4),
                "what": "seconds to summarise n latencies (median of 3): the CI by two Beta "
                "draws per replicate vs every index drawn (the draw up to b03f3c6)",
            }
        )
    )


if __name__ == "__main__":
    main()
