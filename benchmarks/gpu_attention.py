"""GPU attention decode step: our torch backend replayed as a CUDA graph against eager.

Model: specs/attention.yaml (LLaMA-3-8B attention, fp16, 32/8 heads of 128, KV cache of
512 as iOS18 states), built by `anemll_spec.build.build(case.model)` and run by the torch
backend as `bench` runs it (session.feed once; the bound call = copy inputs in, replay or
run eagerly, sync). Each call is one decode step at a fixed position (256): it writes
that position of both caches and attends over all 512 slots (the mask lets every slot
through, as `synth_inputs` makes it).

Variants, interleaved in rounds in one process:
- graph: the default (the KV write and the RoPE gather at the runtime position are kept
  on the device, so the whole step is captured);
- eager: the same program without a CUDA graph (graphs=False) - the baseline.

Figures: wall medians per step (perf_counter_ns around the call, as the harness times
it), CUDA-event medians beside them; "GB/s" = weight bytes / wall median (the q/k/v/o
weights; the two fp16 caches add 4 MiB of reads). Both are verified against the numpy
fp32 reference on a fresh state.

    python benchmarks/gpu_attention.py [--iters 1000] [--cache DIR]

Prints one JSON line.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from _gpu import Variant, provenance, run_interleaved

from anemll_spec.backends.torch_ import TorchOptions
from anemll_spec.spec.run_section import Tolerance

ROOT = Path(__file__).resolve().parents[1]
POSITION = 256
TOL = Tolerance()  # the spec's fp16 defaults


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--spec", default=str(ROOT / "specs" / "attention.yaml"))
    ap.add_argument("--iters", type=int, default=1000, help="timed calls per variant")
    ap.add_argument("--warmup", type=int, default=50)
    ap.add_argument("--rounds", type=int, default=10, help="interleaved blocks per variant")
    ap.add_argument("--cache", default=None, help="build cache (default: ANEMLL_SPEC_CACHE)")
    ap.add_argument("--device", default="cuda")
    args = ap.parse_args()

    from anemll_spec.backends.torch_ import TorchBackend
    from anemll_spec.build import build
    from anemll_spec.executor import load
    from anemll_spec.model_io import describe, synth_inputs
    from anemll_spec.spec import expand, parse
    from anemll_spec.verify import check_outputs

    (case,) = expand(parse(Path(args.spec)))
    m = case.model
    t0 = time.perf_counter()
    built = build(m, cache_dir=Path(args.cache) if args.cache else None)
    build_s = time.perf_counter() - t0
    inputs = synth_inputs(describe(built.path), seed=0, int_ranges={"position": (POSITION,) * 2})
    ref_prog = load(built.path)
    reference = ref_prog.predict(inputs, ref_prog.make_state())

    workdir = Path(tempfile.mkdtemp(prefix="gpu-attention-"))
    variants, info, sessions = [], {}, {}
    for name, opts in (("graph", {}), ("eager", {"graphs": False})):
        b = TorchBackend(args.device, **opts)
        s = b.load(b.prepare(built.path, workdir), TorchOptions())
        feed = s.feed(inputs)
        verdict = check_outputs(s.predict(feed, s.new_state()), reference, TOL).to_dict()
        variants.append(Variant(name, s.bind(feed, s.new_state()), s.runtime_probe))
        info[name] = {"execution": s.describe()["execution"], "verify": verdict}
        sessions[name] = s

    run_interleaved(variants, args.warmup, args.iters, args.rounds)
    for name, s in sessions.items():  # the runner's own flag: its notes all say "CUDA graph"
        info[name]["graphed"] = bool(s.runner.graphed)

    wbytes = built.weight_bytes
    res = {}
    for v in variants:
        wall, dev = v.medians_us()
        res[v.name] = {
            "median_us": round(wall, 2),
            "event_median_us": None if dev is None else round(dev, 2),
            "gbps": round(wbytes / (wall * 1e-6) / 1e9, 1),
            "n": len(v.wall),
            **info[v.name],
        }
    speedup = res["eager"]["median_us"] / res["graph"]["median_us"]
    print(
        json.dumps(
            {
                **provenance("gpu_attention", args.device),
                "model": {
                    k: getattr(m, k)
                    for k in ("hidden_size", "heads", "kv_heads", "head_dim", "context_length")
                },
                "position": POSITION,
                "weight_bytes": wbytes,
                "build_s": round(build_s, 1),
                "gbps_is": "weight bytes / wall median",
                **res,
                "graph_vs_eager": round(speedup, 3),
                "pass": bool(
                    res["graph"]["graphed"]
                    and not res["eager"]["graphed"]
                    and all(res[k]["verify"]["status"] == "pass" for k in res)
                ),
            }
        )
    )


if __name__ == "__main__":
    main()
