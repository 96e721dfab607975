"""Reference executor vs hand-written `W @ x` on the fp16 LLaMA lm_head (conv layout).

Model: input x (1, 4096, 1, 1) fp16, 8 conv 1x1 weights (16032, 4096, 1, 1) fp16 drawn from
N(0, 0.02) with a fixed seed, outputs logits1..logits8. The model is built with the MIL
builder in a subprocess (so the build's memory does not count as the executor's) and
cached. The baseline multiplies the same fp32 weights (regenerated from the seed, decoded
fp16 -> fp32) by x; the two are timed interleaved in one process.

Prints one JSON line: medians, ratio (executor / baseline, target <= 1.05), load time and
peak RSS. Usage: python benchmarks/executor_lm_head.py [--iters N] [--cache DIR]
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

HIDDEN, VOCAB, CHUNKS, SEED, STD = 4096, 128256, 8, 0, 0.02
ROWS = VOCAB // CHUNKS


def chunk_weights(seed: int = SEED):
    """The fp16 chunk weights, generated in a fixed order (one chunk at a time)."""
    rng = np.random.default_rng(seed)
    for _ in range(CHUNKS):
        yield (rng.standard_normal((ROWS, HIDDEN), dtype=np.float32) * STD).astype(np.float16)


def build(path: Path) -> None:
    import coremltools as ct
    from coremltools.converters.mil import Builder as mb
    from coremltools.converters.mil.mil import types

    weights = [w.reshape(ROWS, HIDDEN, 1, 1) for w in chunk_weights()]

    @mb.program(
        input_specs=[mb.TensorSpec((1, HIDDEN, 1, 1), dtype=types.fp16)],
        opset_version=ct.target.iOS18,
    )
    def prog(x):
        return tuple(mb.conv(x=x, weight=w, name=f"logits{i + 1}") for i, w in enumerate(weights))

    model = ct.convert(
        prog,
        convert_to="mlprogram",
        minimum_deployment_target=ct.target.iOS18,
        compute_precision=ct.precision.FLOAT16,
    )
    model.save(str(path))


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--iters", type=int, default=15)
    ap.add_argument("--cache", default="out/bench_cache", help="where the built model is kept")
    ap.add_argument("--build-only", metavar="PATH", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.build_only:
        build(Path(args.build_only))
        return 0

    path = Path(args.cache) / f"executor_lm_head_seed{SEED}.mlpackage"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        t0 = time.perf_counter()
        subprocess.run(
            [sys.executable, __file__, "--build-only", str(path)],
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        print(f"built {path} in {time.perf_counter() - t0:.1f} s", file=sys.stderr)

    from anemll_spec.executor import load

    t0 = time.perf_counter()
    prog = load(path)
    load_s = time.perf_counter() - t0
    rng = np.random.default_rng(1)
    x16 = rng.standard_normal((1, HIDDEN, 1, 1)).astype(np.float16)
    out = prog.predict({"x": x16})  # warm-up, and the correctness check below
    executor_peak_rss = peak_rss_mb()

    weights = [w.astype(np.float32) for w in chunk_weights()]  # the baseline's own copy
    xv = x16.astype(np.float32).reshape(HIDDEN)

    def baseline():
        return [w @ xv for w in weights]

    ref = baseline()
    max_err = max(
        float(np.max(np.abs(out[f"logits{i + 1}"].reshape(-1) - ref[i]))) for i in range(CHUNKS)
    )
    if max_err > 1e-3:
        print(f"executor disagrees with W @ x: max abs error {max_err}", file=sys.stderr)
        return 1

    t_exec, t_base = [], []
    feed = {"x": x16}
    for i in range(args.iters):
        order = (0, 1) if i % 2 == 0 else (1, 0)  # alternate who goes first
        for which in order:
            t0 = time.perf_counter()
            if which == 0:
                prog.predict(feed)
                t_exec.append(time.perf_counter() - t0)
            else:
                baseline()
                t_base.append(time.perf_counter() - t0)
    med_exec, med_base = statistics.median(t_exec), statistics.median(t_base)
    print(
        json.dumps(
            {
                "benchmark": "executor_lm_head",
                "shape": {"hidden": HIDDEN, "vocab": VOCAB, "chunks": CHUNKS},
                "iters": args.iters,
                "executor_median_ms": round(med_exec * 1e3, 3),
                "baseline_median_ms": round(med_base * 1e3, 3),
                "ratio": round(med_exec / med_base, 4),
                "target_ratio": 1.05,
                "ok": med_exec / med_base <= 1.05,
                "load_s": round(load_s, 3),
                "executor_peak_rss_mb": round(executor_peak_rss, 1),
                "peak_rss_mb": round(peak_rss_mb(), 1),
                "max_abs_error": max_err,
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
