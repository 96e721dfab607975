"""Do N instances of one backend run at once in threads, or only in processes?

For each backend given (numpy; torch on CPU or CUDA when installed): aggregate
throughput (all calls / wall time from the first start to the last end) of
- 1 instance (the baseline, same process, same model),
- N instances in threads of this process (harness.time_concurrent),
- N instances in spawned processes (concurrency.time_processes), each process's math
  library pools split (default_threads: cpus // N) and, for contrast, full-size,
and each one's ratio to the baseline (medians over rounds, each round's ratio to the
single instance timed just before and just after it). N instances that run at once give a ratio near N
(when the machine has the cores); a ratio near 1 means they took turns (the GIL, or one
resource all share). concurrency.THREADS_RUN_AT_ONCE records the verdict.
Prints one JSON line.

    python benchmarks/concurrency_scaling.py [--instances 2] [--backends numpy,torch]
        [--device cpu] [--dtype float16] [--hidden 2048] [--vocab 16384]
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import statistics
import tempfile
from pathlib import Path

ROUNDS = 3


def _throughput(backend, prepared, options, inputs, device, n: int, mode: str | None) -> float:
    """Calls per second of n instances (threads, processes with split pools, or with
    mode None processes each with a full-size math pool)."""
    from anemll_spec import concurrency

    if mode is None:
        r = concurrency.time_processes(
            backend, prepared, options, inputs, _budget(), n_instances=n, threads=None
        )
    else:
        r = concurrency.time_instances(
            backend, prepared, options, inputs, _budget(), n_instances=n, mode=mode, device=device
        )
    return r.throughput_per_s


def _budget():
    from anemll_spec.harness import Budget

    return Budget(warmup=5, warmup_s=0.5, iterations=400, min_iterations=20, max_time_s=4.0)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--instances", type=int, default=2)
    ap.add_argument("--backends", default="numpy,torch")
    ap.add_argument("--device", default="cpu", help="torch device (cpu | cuda)")
    ap.add_argument("--dtype", default="float16")
    ap.add_argument("--hidden", type=int, default=2048)
    ap.add_argument("--vocab", type=int, default=16384)
    ap.add_argument("--cache", default=None, help="build cache (default: a temp folder)")
    ap.add_argument(
        "--package", default=None, help="time this saved .mlpackage instead of building one"
    )
    a = ap.parse_args()

    import importlib.util

    from anemll_spec import backends
    from anemll_spec.backends.base import Prepared
    from anemll_spec.model_io import describe, synth_inputs
    from anemll_spec.spec.run_section import Run

    if a.package:  # a package built elsewhere (a machine without the builder's deps)
        path = Path(a.package)
        fields = {"package": path.name}
        weight_bytes = sum(f.stat().st_size for f in path.rglob("*.bin"))
    else:
        from anemll_spec.build import build
        from anemll_spec.spec.families import FAMILIES

        fields = {
            "family": "lm_head",
            "hidden_size": a.hidden,
            "vocab_size": a.vocab,
            "chunks": 2,
            "layout": "conv",
            "dtype": a.dtype,
        }
        model = FAMILIES["lm_head"].model_validate(fields)
        built = build(model, cache_dir=Path(a.cache or tempfile.mkdtemp(prefix="conc-")))
        path, weight_bytes = built.path, built.weight_bytes
    io = describe(path)
    inputs = synth_inputs(io, seed=0)
    prepared = Prepared(path=path, source=path, compile_s=None)
    prepared.input_dtypes = {t.name: t.dtype for t in io.inputs}
    results = []
    for backend in a.backends.split(","):
        if backend == "torch" and importlib.util.find_spec("torch") is None:
            continue
        device = a.device if backend == "torch" else None
        options = backends.get(backend).options(Run(device=device or "auto"))
        row: dict = {"backend": backend, "device": device}

        throughput = functools.partial(_throughput, backend, prepared, options, inputs, device)
        parallel = (
            ("threads", "threads"),
            ("processes", "processes"),  # pools split: default_threads
            ("processes_full_pools", None),
        )
        # Rounds: 1 instance, then the parallel forms (in a rotating order), then 1 instance
        # again, which also opens the next round; each round's ratios are to the mean of
        # the single instance just before and just after it, so drift cancels.
        serial = [throughput(1, "threads")]
        ips: dict[str, list[float]] = {label: [] for label, _ in parallel}
        ratios: dict[str, list[float]] = {label: [] for label, _ in parallel}
        for r in range(ROUNDS):
            k = r % len(parallel)
            order = parallel[k:] + parallel[:k]
            got = {label: throughput(a.instances, mode) for label, mode in order}
            serial.append(throughput(1, "threads"))
            base = (serial[-2] + serial[-1]) / 2
            for label, value in got.items():
                ips[label].append(value)
                ratios[label].append(value / base)
        row["serial_ips"] = round(statistics.median(serial), 2)
        for label, _ in parallel:
            row[f"{label}_ips"] = round(statistics.median(ips[label]), 2)
            row[f"{label}_ratio"] = round(statistics.median(ratios[label]), 3)
        results.append(row)
    print(
        json.dumps(
            {
                "benchmark": "concurrency_scaling",
                "instances": a.instances,
                "model": fields,
                "weight_bytes": weight_bytes,
                "cpu_count": os.cpu_count(),
                "blas_env": {
                    k: os.environ.get(k)
                    for k in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")
                },
                "baseline": "1 instance, timed before and after each round",
                "measures": f"medians over {ROUNDS} rounds of per-round ratios to the baseline",
                "results": results,
            }
        )
    )


if __name__ == "__main__":
    main()
