"""Why the LUT6 head build is slow on a loaded machine (issue 14.3): k-means per group.

The LUT6 head (specs/lm_head_lut6.yaml) is 16,032 groups of 8 rows x 4096 fp16 weights,
each through the exact 1-D k-means (build/palettize.py). This times a sample of those
groups, the first rows of the head's first chunk drawn exactly as the builder draws them,
and reports per group:

- cpu_ms: CPU time (every thread of this process) per group: the work, whatever the load;
- the split of one thread's time between the numpy steps (histogram, keys: they hold the
  GIL) and the compiled DP (releases it);
- wall_ms with 1 and with 2 worker threads, on the machine as it is, then with one and
  with two extra processes spinning on a core each (`busy`): how the wall time follows
  the CPU share the build gets;
- numba: the first call's time with an empty cache (compile) and with a filled one.

Each figure is projected to the whole head (x 16,032). Prints one JSON line; ratios are
against the 2-worker run on the machine as it is, measured in the same process.

    .venv/bin/python benchmarks/build_lut6_load.py [--groups 256]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import subprocess
import sys
import tempfile
import time

import numpy as np

GROUPS_FULL = 128256 // 8
COMPILE = """
import time, numpy as np
t = time.perf_counter()
from anemll_spec.build import kmeans1d
x = np.linspace(-1, 1, 200); w = np.ones(200)
kmeans1d.cluster(x, w, 64)
first = time.perf_counter() - t
t = time.perf_counter()
kmeans1d.cluster(x, w, 64)
print(first, time.perf_counter() - t)
"""


def sample(groups: int) -> np.ndarray:
    """The first `groups` x 8 rows of lm_head8_1.weight, as graph.Ctx.streamed draws them."""
    from anemll_spec.build import weights as wgen

    rows, row = groups * 8, 4096
    buf = np.empty(rows * row, dtype=np.float32)
    wgen.stream(0, "lm_head8_1.weight").standard_normal(out=buf, dtype=np.float32)
    buf *= np.float32(0.02)
    return buf.astype(np.float16).reshape(rows, row, 1, 1)


def timed(weight: np.ndarray, workers: int) -> dict:
    from anemll_spec.build.palettize import grouped_kmeans

    n = weight.shape[0] // 8
    c0, t0 = time.process_time(), time.perf_counter()
    grouped_kmeans(weight, 6, 0, 8, n_workers=workers)
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    return {"wall_ms": round(1e3 * wall / n, 2), "cpu_ms": round(1e3 * cpu / n, 2)}


def split(weight: np.ndarray, groups: int) -> dict:
    """One thread: numpy steps vs the DP, per group (kmeans_group's steps, timed apart)."""
    from anemll_spec.build import kmeans1d
    from anemll_spec.build.palettize import _keys_to_fp16, fp16_keys

    numpy_s = dp_s = 0.0
    for g in range(groups):
        part = np.ascontiguousarray(weight[g * 8 : (g + 1) * 8])
        t = time.perf_counter()
        keys = fp16_keys(part)
        hist = np.bincount(keys, minlength=1 << 16)
        uniq = np.flatnonzero(hist)
        values = _keys_to_fp16(uniq).astype(np.float64)
        t1 = time.perf_counter()
        clusters, _ = kmeans1d.cluster(values, hist[uniq], 64)
        t2 = time.perf_counter()
        table = np.zeros(1 << 16, dtype=np.uint8)
        table[uniq] = clusters
        table[keys]
        t3 = time.perf_counter()
        numpy_s += (t1 - t) + (t3 - t2)
        dp_s += t2 - t1
    return {
        "numpy_ms": round(1e3 * numpy_s / groups, 2),
        "dp_ms": round(1e3 * dp_s / groups, 2),
        "gil_share": round(numpy_s / (numpy_s + dp_s), 3),
    }


def _spin() -> None:
    while True:
        pass


def with_busy(n: int, weight: np.ndarray, workers: int) -> dict:
    procs = [mp.Process(target=_spin, daemon=True) for _ in range(n)]
    for p in procs:
        p.start()
    try:
        time.sleep(0.5)
        return timed(weight, workers)
    finally:
        for p in procs:
            p.terminate()
            p.join()


def numba_first_call() -> dict:
    """First call with an empty numba cache (compiles) and then with it filled."""
    with tempfile.TemporaryDirectory() as d:
        env = {**os.environ, "NUMBA_CACHE_DIR": d}
        out = []
        for _ in range(2):
            r = subprocess.run(
                [sys.executable, "-c", COMPILE], env=env, capture_output=True, text=True
            )
            out.append([float(v) for v in r.stdout.split()])
    return {"cold_first_call_s": round(out[0][0], 2), "warm_first_call_s": round(out[1][0], 2)}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--groups", type=int, default=256, help="groups in the sample")
    args = ap.parse_args()
    from anemll_spec.build.palettize import grouped_kmeans

    weight = sample(args.groups)
    grouped_kmeans(weight[:16], 6, 0, 8, n_workers=1)  # compile (or load) before timing
    load0 = os.getloadavg()[0]
    w2 = timed(weight, 2)
    out = {
        "benchmark": "build_lut6_load",
        "cpus": os.cpu_count(),
        "usable_cpus": len(os.sched_getaffinity(0)),
        "loadavg_1min_at_start": round(load0, 2),
        "groups": args.groups,
        "split_one_thread": split(weight, min(args.groups, 64)),
        "workers1": timed(weight, 1),
        "workers2": w2,
        "workers2_busy1": with_busy(1, weight, 2),
        "workers2_busy2": with_busy(2, weight, 2),
        "workers1_busy2": with_busy(2, weight, 1),
        "numba": numba_first_call(),
        "loadavg_1min_at_end": round(os.getloadavg()[0], 2),
    }
    base = w2["wall_ms"]
    for k in ("workers1", "workers2_busy1", "workers2_busy2", "workers1_busy2"):
        out[k]["wall_vs_workers2"] = round(out[k]["wall_ms"] / base, 2)
    out["full_head_s"] = {
        k: round(out[k]["wall_ms"] * GROUPS_FULL / 1e3)
        for k in ("workers1", "workers2", "workers2_busy1", "workers2_busy2", "workers1_busy2")
    }
    out["full_head_cpu_s"] = round(w2["cpu_ms"] * GROUPS_FULL / 1e3)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
