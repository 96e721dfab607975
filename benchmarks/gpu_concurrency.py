"""N torch-CUDA instances timed at once in threads (as bench's `concurrency` runs them):
does each call wait for its own work only, and do instances overlap?

Each session queues its calls on a stream of its own and waits for its own end event;
on the shared default stream with a device-wide sync, every call also waited for the
other instances' kernels. Model: an fp16 linear LM head (1 chunk), built here; each
instance is a session of it, bound and timed with harness.time_concurrent.

Figures per N (1, 2, 4): aggregate calls/s (all calls / wall time of the timed phase)
and the median per-call wall latency (every instance's samples pooled), medians over
ROUNDS rounds; the ratio is N instances' calls/s over 1 instance's in the same round.

    python benchmarks/gpu_concurrency.py [--hidden 4096] [--vocab 32768]

Prints one JSON line. Needs CUDA.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
from pathlib import Path

ROUNDS = 3


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--hidden", type=int, default=4096)
    ap.add_argument("--vocab", type=int, default=32768)
    a = ap.parse_args()

    from anemll_spec.backends import torch_
    from anemll_spec.backends.base import Prepared
    from anemll_spec.build import build
    from anemll_spec.harness import Budget, time_concurrent
    from anemll_spec.model_io import describe, synth_inputs
    from anemll_spec.spec.families import FAMILIES
    from anemll_spec.spec.run_section import Run

    fields = {"family": "lm_head", "hidden_size": a.hidden, "vocab_size": a.vocab, "chunks": 1}
    model = FAMILIES["lm_head"].model_validate({**fields, "layout": "linear"})
    built = build(model, cache_dir=Path(tempfile.mkdtemp(prefix="gpu-conc-")))
    io = describe(built.path)
    inputs = synth_inputs(io, seed=0)
    prep = Prepared(path=built.path, source=built.path, compile_s=None)
    prep.input_dtypes = {t.name: t.dtype for t in io.inputs}
    backend = torch_.backend("cuda")
    opts = backend.options(Run(device="cuda"))
    budget = Budget(warmup=50, warmup_s=0.5, iterations=4000, min_iterations=100, max_time_s=3.0)
    out: dict = {"benchmark": "gpu_concurrency", "model": fields, "dtype": "float16"}
    ips: dict[int, list[float]] = {1: [], 2: [], 4: []}
    med: dict[int, list[float]] = {1: [], 2: [], 4: []}
    ratios: dict[int, list[float]] = {2: [], 4: []}
    for _ in range(ROUNDS):  # each round: 1, 2 and 4 instances; ratios to its own 1
        for n in (1, 2, 4):
            sessions = [backend.load(prep, opts) for _ in range(n)]
            fns = [s.bind(s.feed(inputs), s.new_state()) for s in sessions]
            res = time_concurrent(fns, budget)
            samples = [float(x) for t in res.per_instance for x in t.samples_ns]
            ips[n].append(res.calls / res.wall_s)
            med[n].append(statistics.median(samples) / 1e3)
            for s in sessions:
                s.close()
        for n in (2, 4):
            ratios[n].append(ips[n][-1] / ips[1][-1])
    for n in (1, 2, 4):
        out[f"n{n}"] = {
            "calls_per_s": round(statistics.median(ips[n])),
            "median_us": round(statistics.median(med[n]), 1),
        }
    for n in (2, 4):
        out[f"n{n}_throughput_ratio"] = round(statistics.median(ratios[n]), 3)
    out["measures"] = (
        f"medians over {ROUNDS} rounds: calls/s = all calls / wall time; the median of "
        "every call's wall latency"
    )
    out["baseline"] = "1 instance, same process, in the same round"
    print(json.dumps(out))


if __name__ == "__main__":
    main()
