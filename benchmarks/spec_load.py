"""Loading and validating every shipped spec: the typed (pydantic) spec against the
dict-based one it replaced (issue 12), side by side in one run.

    .venv/bin/python benchmarks/spec_load.py [--before c749b53] [--rounds 7]

The old code is checked out from git (`--before`, default the last commit before the
typed spec) into a temporary worktree; each side runs in its own fresh process, the
rounds interleaved, and each process loads all shipped specs
`--repeat` times in-process after one untimed warm-up load (imports and pydantic's model
building are start-up, which `--help`'s own figure covers); which tree goes first
alternates from round to round (old, new, new, old, ...). Prints one JSON line: medians
per load of all specs, their ratio (target <= 1.2), `--help`'s wall time (target < 0.5 s),
and the line counts of the old schema.py + validate.py against the new spec package's
validation modules.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _worktree import BEFORE, ROOT, checkout  # noqa: E402

LOAD = """
import json, sys, time
from pathlib import Path
sys.path.insert(0, sys.argv[1])
from anemll_spec.spec import expand, load_spec
specs = sorted(Path(sys.argv[2]).glob("*.yaml"))
for p in specs:
    expand(load_spec(p))
t = time.perf_counter()
for _ in range(int(sys.argv[3])):
    for p in specs:
        expand(load_spec(p))
print(json.dumps({"s": (time.perf_counter() - t) / int(sys.argv[3])}))
"""
NEW_VALIDATION = (
    "base.py",
    "compression.py",
    "families.py",
    "run_section.py",
    "document.py",
    "problems.py",
    "sweep.py",
)


def _load(tree: Path, specs: Path, repeat: int) -> float:
    out = subprocess.run(
        [sys.executable, "-c", LOAD, str(tree), str(specs), str(repeat)],
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])["s"]


def _lines(paths: list[Path]) -> int:
    return sum(len(p.read_text().splitlines()) for p in paths)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--before", default=BEFORE, help="commit of the dict-based spec")
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--repeat", type=int, default=20)
    a = ap.parse_args()
    with checkout(a.before) as old:
        # both load the same spec files: the baseline's own (today's use fields it never
        # knew, such as run.energy_s, which it refuses); the typed spec reads them as is
        specs = old / "specs"
        n_specs = len(list(specs.glob("*.yaml")))
        got: dict[Path, list[float]] = {old: [], ROOT: []}
        for r in range(a.rounds):  # who goes first alternates: drift favours neither
            for tree in (old, ROOT) if r % 2 == 0 else (ROOT, old):
                got[tree].append(_load(tree, specs, a.repeat))
        old_s, new_s = got[old], got[ROOT]
        old_lines = _lines(
            [old / "anemll_spec/spec/schema.py", old / "anemll_spec/spec/validate.py"]
        )
        old_package = _lines(sorted((old / "anemll_spec/spec").glob("*.py")))
    helps = []
    for _ in range(5):
        t = time.perf_counter()
        subprocess.run([sys.executable, "-m", "anemll_spec", "--help"], capture_output=True)
        helps.append(time.perf_counter() - t)
    new_dir = ROOT / "anemll_spec/spec"
    old_med, new_med = statistics.median(old_s), statistics.median(new_s)
    result = {
        "benchmark": "spec_load",
        "measures": "load + validate + expand all shipped specs, in-process, per round",
        "specs": f"the {n_specs} shipped at {a.before}",
        "new_median_ms": round(new_med * 1e3, 3),
        "baseline_median_ms": round(old_med * 1e3, 3),
        "baseline": f"dict-based spec at {a.before}",
        "ratio_vs_baseline": round(new_med / old_med, 3),
        "target_ratio": 1.2,
        "help_median_s": round(statistics.median(helps), 3),
        "help_target_s": 0.5,
        "lines_old_schema_plus_validate": old_lines,
        "lines_new_validation_modules": _lines([new_dir / n for n in NEW_VALIDATION]),
        "lines_old_spec_package": old_package,
        "lines_new_spec_package": _lines(sorted(new_dir.glob("*.py"))),
    }
    result["ok"] = result["ratio_vs_baseline"] <= 1.2 and result["help_median_s"] < 0.5
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
