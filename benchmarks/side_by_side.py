"""The benchmarks issue 13 must not make worse, run on the code before it and on this
tree, side by side on this machine.

    .venv/bin/python benchmarks/side_by_side.py [--before c749b53] [--rounds 5] [NAME ...]

Each NAME is a benchmark script (harness_overhead, store_append, executor_lm_head by
default). The older commit is checked out into a temporary worktree; each round runs the
script of each tree in a fresh process, the trees alternating and the one that goes
first swapping every round (before, now, now, before, ...), so load on the machine falls
on both alike. Each tree runs its own copy of the
script against its own package (PYTHONPATH = that tree), so the script measures the code
of its time. Prints one JSON line per benchmark: the medians over rounds of its figure,
and now / before (lower is better for every figure here: > 1 is worse).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _worktree import BEFORE, ROOT, checkout  # noqa: E402

# benchmark -> (the figure compared, what it measures, extra arguments)
FIGURES = {
    "harness_overhead": (
        "overhead_ns_per_iter",
        "ns per timed call that harness.time_one adds over a bare perf_counter_ns loop",
        [],
    ),
    "store_append": (
        "median_ms",
        "ms to open the store, append one case with 10,000 samples, commit and close",
        [],
    ),
    "executor_lm_head": (
        "ratio",
        "reference executor / W @ x on the fp16 LLaMA lm_head (median latency ratio)",
        ["--iters", "9"],
    ),
}


def _run(tree: Path, name: str, cache: Path) -> dict:
    env = {**os.environ, "PYTHONPATH": str(tree), "ANEMLL_SPEC_CACHE": str(cache)}
    _, _, extra = FIGURES[name]
    args = [*extra, "--cache", str(cache / "bench")] if name == "executor_lm_head" else extra
    out = subprocess.run(
        [sys.executable, str(tree / "benchmarks" / f"{name}.py"), *args],
        capture_output=True,
        text=True,
        cwd=tree,
        env=env,
        check=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def _package(tree: Path) -> str:
    """Where `import anemll_spec` resolves with PYTHONPATH = tree (guards the comparison)."""
    code = "import anemll_spec; print(anemll_spec.__file__)"
    env = {**os.environ, "PYTHONPATH": str(tree)}
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=tree, check=True
    ).stdout.strip()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("names", nargs="*", help=f"any of {', '.join(FIGURES)} (default: all)")
    ap.add_argument("--before", default=BEFORE, help="the older commit")
    ap.add_argument("--rounds", type=int, default=5)
    a = ap.parse_args()
    unknown = [n for n in a.names if n not in FIGURES]
    if unknown:
        ap.error(f"unknown benchmark {unknown[0]!r}; choose from {', '.join(FIGURES)}")
    a.names = a.names or list(FIGURES)
    with checkout(a.before) as old:
        trees = {"before": old, "now": ROOT}
        for label, tree in trees.items():
            if not _package(tree).startswith(str(tree)):
                raise SystemExit(f"{label}: anemll_spec does not import from {tree}")
        cache = old.parent / "cache"
        for name in a.names:
            key, measures, _ = FIGURES[name]
            got: dict[str, list[float]] = {"before": [], "now": []}
            order = list(trees.items())
            for r in range(a.rounds):  # who goes first alternates: drift favours neither
                for label, tree in order if r % 2 == 0 else order[::-1]:
                    got[label].append(float(_run(tree, name, cache / label)[key]))
            before, now = (statistics.median(got[k]) for k in ("before", "now"))
            print(
                json.dumps(
                    {
                        "benchmark": f"side_by_side.{name}",
                        "measures": measures,
                        "figure": key,
                        "before": a.before,
                        "rounds": a.rounds,
                        "before_median": round(before, 4),
                        "now_median": round(now, 4),
                        "ratio_now_vs_before": round(now / before, 3) if before else None,
                        "before_values": [round(v, 4) for v in got["before"]],
                        "now_values": [round(v, 4) for v in got["now"]],
                    }
                ),
                flush=True,
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
