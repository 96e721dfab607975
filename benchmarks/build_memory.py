"""Peak memory and time of building the full fp16 LLaMA LM head (4096 -> 128256, 8 chunks).

Ours: anemll_spec.build.build() into a fresh cache; also the 6-bit LUT head (uniform
LUTs: same streamed path and memory profile as k-means, minutes faster). Baseline: the plain way, in the
same script: draw all weights as float32 with numpy, cast to fp16, mb.program, and
ct.convert with coremltools' default pass pipeline, then save. Each build runs in
its own subprocess so one's peak RSS cannot hide the other's. Target: peak <=
1.5 x weight bytes + 0.5 GB. Prints one JSON line.

    .venv/bin/python benchmarks/build_memory.py [--skip-baseline]
"""

from __future__ import annotations

import argparse
import json
import tempfile

from _subprocess import run_python

OURS = """
import json, resource, sys, time
from pathlib import Path
from anemll_spec.build import build
m = dict(family="lm_head", hidden_size=4096, vocab_size=128256, chunks=8, layout="conv",
         seq_len=1, batch=1, dtype="float16", compute_precision="float16",
         deployment_target="iOS18", compression="none", seed=0, weight_std=0.02)
if len(sys.argv) > 2:
    m["compression"] = json.loads(sys.argv[2])
from anemll_spec.spec.families import FAMILIES
m = FAMILIES["lm_head"].model_validate(m)  # the builder takes the typed spec
t = time.perf_counter()
b = build(m, cache_dir=Path(sys.argv[1]))
dt = time.perf_counter() - t
print(json.dumps({"s": dt, "peak": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
                  "weight_bytes": b.weight_bytes}))
"""

BASELINE = """
import json, os, resource, sys, time
import numpy as np
import coremltools as ct
from coremltools.converters.mil import Builder as mb
from coremltools.converters.mil.mil import types
t = time.perf_counter()
rng = np.random.default_rng(0)
W = [(rng.standard_normal((16032, 4096, 1, 1), dtype=np.float32) * 0.02).astype(np.float16)
     for _ in range(8)]
@mb.program(input_specs=[mb.TensorSpec((1, 1, 4096), dtype=types.fp16)], opset_version=ct.target.iOS18)
def prog(x):
    h = mb.expand_dims(x=mb.transpose(x=x, perm=[0, 2, 1]), axes=[2])
    return tuple(mb.transpose(x=mb.squeeze(x=mb.conv(x=h, weight=w), axes=[2]), perm=[0, 2, 1],
                              name=f"logits{i + 1}") for i, w in enumerate(W))
del W
m = ct.convert(prog, convert_to="mlprogram", minimum_deployment_target=ct.target.iOS18,
               compute_precision=ct.precision.FLOAT16, skip_model_load=True)
m.save(os.path.join(sys.argv[1], "plain.mlpackage"))
dt = time.perf_counter() - t
wb = os.path.getsize(os.path.join(sys.argv[1], "plain.mlpackage/Data/com.apple.CoreML/weights/weight.bin"))
print(json.dumps({"s": dt, "peak": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
                  "weight_bytes": wb}))
"""


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--skip-baseline", action="store_true")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as d1:
        ours = run_python(OURS, d1)
    # The 6-bit grouped LUT head, uniform LUTs: the same memory profile as k-means (the
    # same streamed path and layout) without its ~15 minutes of exact 1-D k-means.
    lut6 = json.dumps(
        {
            "palettize": {
                "nbits": 6,
                "granularity": "per_grouped_channel",
                "group_size": 8,
                "mode": "uniform",
            }
        }
    )
    with tempfile.TemporaryDirectory() as d3:
        ours_lut6 = run_python(OURS, d3, lut6)
    base = None
    if not args.skip_baseline:
        with tempfile.TemporaryDirectory() as d2:
            base = run_python(BASELINE, d2)
    wb = ours["weight_bytes"]
    limit = 1.5 * wb + 0.5e9
    result = {
        "benchmark": "build_memory",
        "model": "llama_lm_head fp16",
        "weight_bytes": wb,
        "peak_rss_bytes": ours["peak"],
        "limit_bytes": int(limit),
        "within_limit": ours["peak"] <= limit,
        "build_s": round(ours["s"], 2),
        "lut6_weight_bytes": ours_lut6["weight_bytes"],
        "lut6_peak_rss_bytes": ours_lut6["peak"],
        "lut6_limit_bytes": int(1.5 * ours_lut6["weight_bytes"] + 0.5e9),
        "lut6_within_limit": ours_lut6["peak"] <= 1.5 * ours_lut6["weight_bytes"] + 0.5e9,
    }
    if base:
        result.update(
            baseline_peak_rss_bytes=base["peak"],
            baseline_build_s=round(base["s"], 2),
            peak_ratio_vs_baseline=round(ours["peak"] / base["peak"], 3),
            speedup_vs_baseline=round(base["s"] / ours["s"], 2),
        )
    print(json.dumps(result))


if __name__ == "__main__":
    main()
