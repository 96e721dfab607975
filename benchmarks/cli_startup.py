"""How long everyday commands take to start, with and without torch importable (issue 20).

Prints one JSON line. Each command runs in a fresh process, interleaved with a bare
`python -c pass` (the interpreter's own start-up, the baseline of every ratio), several
times; figures are medians of wall time (seconds). Commands:

- help:          anemll-spec --help                                  target < 0.5 s
- build_hit:     anemll-spec build specs/lm_head.yaml, a cache hit  target <= 0.8 s
- inspect_1gb:   anemll-spec inspect <the 1 GB LM head> (hashes it)  target <= 2.0 s
- predict_smoke: anemll-spec predict <the smoke model>              target <= 1.5 s
- cache_list:    anemll-spec cache list
- bench_numpy:   anemll-spec bench <a 3-iteration smoke spec> --backend numpy, every model
                 (the dispatch floor's too) a cache hit; timed once per mode: it runs a
                 benchmark, so it is listed for its imports
- build_miss:    anemll-spec build <that smoke spec> into an empty cache: it must import
                 coremltools, and must not import torch (lean_coremltools), so "with torch"
                 should take what "without torch" takes

"without torch" runs the same command with `import torch` made to fail (as on a machine
without it). Each command also records whether coremltools or torch got imported (they
must not be, except torch where torch is asked for). `import coremltools` alone is timed
too, as the cost every command paid before, and with torch hidden from it as the CLI
imports it (`import_coremltools_lean_s`; `lean_ratio` is lean / plain). With --before DIR (a checkout of an older
commit), the same commands run on that tree in the same loop: ratio_vs_before < 1 is
faster now.

    .venv/bin/python benchmarks/cli_startup.py [--repeats 5] [--cache-dir D] [--before DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TARGETS = {"help": 0.5, "build_hit": 0.8, "inspect_1gb": 2.0, "predict_smoke": 1.5}
# the command runs in-process after the optional torch block; at exit it reports what
# heavy packages were imported
WRAPPER = """
import atexit, json, sys
if {block}:
    sys.modules["torch"] = None  # `import torch` fails, find_spec says absent
def _report():
    mods = {{m.split(".")[0] for m in sys.modules if sys.modules[m] is not None}}
    print("@@IMPORTS " + json.dumps(sorted(mods & {{"coremltools", "torch"}})), file=sys.stderr)
atexit.register(_report)
from anemll_spec.cli import main
raise SystemExit(main(sys.argv[1:]))
"""


def _run(args: list[str], env: dict, block_torch: bool, tree: Path) -> tuple[float, list[str]]:
    code = WRAPPER.format(block=block_torch)
    t0 = time.perf_counter()
    r = subprocess.run(
        [sys.executable, "-c", code, *args],
        capture_output=True,
        text=True,
        env={**env, "PYTHONPATH": str(tree)},
        cwd=tree,
    )
    wall = time.perf_counter() - t0
    if r.returncode != 0:
        raise SystemExit(f"{' '.join(args)} failed ({r.returncode}): {r.stderr[-2000:]}")
    line = [x for x in r.stderr.splitlines() if x.startswith("@@IMPORTS ")][-1]
    return wall, json.loads(line.split(" ", 1)[1])


def _bare() -> float:
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-c", "pass"], check=True)
    return time.perf_counter() - t0


def _package(tree: Path, env: dict, spec: str) -> Path:
    """Build (or find in the cache) the spec's first case; its package path."""
    r = subprocess.run(
        [sys.executable, "-m", "anemll_spec", "build", spec, "--json"],
        capture_output=True,
        text=True,
        env={**env, "PYTHONPATH": str(tree)},
        cwd=tree,
        check=True,
    )
    doc = json.loads(r.stdout)
    cases = doc["cases"] if isinstance(doc, dict) else doc
    return Path(cases[0]["path"])


def _tiny_spec(folder: Path) -> Path:
    spec = folder / "startup_bench.yaml"
    text = (ROOT / "specs" / "smoke.yaml").read_text()
    text = text.replace("warmup: 5", "warmup: 0").replace("iterations: 50", "iterations: 3")
    text = text.replace("max_time_s: 5", "max_time_s: 1")
    spec.write_text(text.replace("name: smoke", "name: startup_bench"))
    return spec


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--cache-dir", type=Path, help="build cache to use (default: a temp dir)")
    ap.add_argument("--before", type=Path, help="an older checkout, run side by side")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="cli-startup-"))
    cache = args.cache_dir or tmp / "cache"
    trees = {"now": ROOT} | ({"before": args.before.resolve()} if args.before else {})
    envs = {
        name: {**os.environ, "ANEMLL_SPEC_CACHE": str(cache if name == "now" else cache / "before")}
        for name in trees
    }
    spec = _tiny_spec(tmp)
    commands: dict[str, dict[str, list[str]]] = {}
    for name, tree in trees.items():
        head = _package(tree, envs[name], "specs/lm_head.yaml")  # builds once (~1 GB)
        smoke = _package(tree, envs[name], "specs/smoke.yaml")
        commands[name] = {
            "help": ["--help"],
            "build_hit": ["build", "specs/lm_head.yaml"],
            "inspect_1gb": ["inspect", str(head)],
            "predict_smoke": ["predict", str(smoke)],
            "cache_list": ["cache", "list"],
        }
    once = {
        "bench_numpy": ["bench", str(spec), "--backend", "numpy", "--store", str(tmp / "s.duckdb")]
    }

    samples: dict[tuple, list[float]] = {}
    imports: dict[tuple, list[str]] = {}
    bares: list[float] = []
    for _ in range(args.repeats):  # interleaved, so drift and load hit every command alike
        bares.append(_bare())
        for name, tree in trees.items():
            for cmd, argv in commands[name].items():
                for block in (False, True):
                    wall, mods = _run(argv, envs[name], block, tree)
                    samples.setdefault((name, cmd, block), []).append(wall)
                    imports[(name, cmd, block)] = mods
    for k in range(args.repeats):
        for block in (False, True):
            fresh = ["--cache-dir", str(tmp / f"miss-{k}-{block}")]
            wall, mods = _run(["build", str(spec), *fresh], envs["now"], block, ROOT)
            samples.setdefault(("now", "build_miss", block), []).append(wall)
            imports[("now", "build_miss", block)] = mods
    for cmd, argv in once.items():
        _run(argv, envs["now"], False, ROOT)  # builds the dispatch-floor model: a hit after
        for block in (False, True):
            wall, mods = _run(argv, envs["now"], block, ROOT)
            samples[("now", cmd, block)] = [wall]
            imports[("now", cmd, block)] = mods
    plain, lean = [], []
    lean_code = "from anemll_spec import lean_coremltools as L; L.install(); import coremltools"
    for _ in range(args.repeats):
        for code, walls in (("import coremltools", plain), (lean_code, lean)):
            t0 = time.perf_counter()
            subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, cwd=ROOT)
            walls.append(time.perf_counter() - t0)
    import_ct, import_lean = statistics.median(plain), statistics.median(lean)
    bare = statistics.median(bares)

    result: dict = {
        "benchmark": "cli_startup",
        "unit": "s (median wall time of a fresh process)",
        "repeats": args.repeats,
        "python_bare_median_s": round(bare, 4),
        "import_coremltools_s": round(import_ct, 3),
        "import_coremltools_lean_s": round(import_lean, 3),
        "lean_ratio": round(import_lean / import_ct, 3),
        "load_average_1m": round(os.getloadavg()[0], 2),
        "commands": {},
    }
    ok = True
    for (name, cmd, block), walls in sorted(samples.items()):
        if name != "now":
            continue
        med = statistics.median(walls)
        entry = {
            "median_s": round(med, 3),
            "n": len(walls),  # bench_numpy: one timing per mode, not a median of several
            "ratio_vs_bare": round(med / bare, 2),
            "imports": imports[(name, cmd, block)],
        }
        before = samples.get(("before", cmd, block))
        if before:
            entry["before_median_s"] = round(statistics.median(before), 3)
            entry["ratio_vs_before"] = round(med / statistics.median(before), 3)
        if cmd in TARGETS:
            entry["target_s"] = TARGETS[cmd]
            entry["ok"] = med <= TARGETS[cmd]
            ok &= entry["ok"]
        if cmd == "build_miss":  # builds need coremltools; none needs torch
            ok &= "torch" not in entry["imports"]
        elif "coremltools" in entry["imports"]:
            ok = False
        result["commands"].setdefault(cmd, {})["no_torch" if block else "with_torch"] = entry
    result["ok"] = ok
    print(json.dumps(result))


if __name__ == "__main__":
    main()
