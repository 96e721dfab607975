"""GPU LM head: our torch backend against device copy bandwidth and a plain eager head.

Model: specs/lm_head.yaml (fp16, 4096 -> 128256 as 8 conv 1x1 chunks), built by
`anemll_spec.build.build(case.model)` and run by the torch backend exactly as `bench`
runs it (session.feed once; the bound call = copy inputs in, CUDA-graph replay, sync).
Three figures, measured in one process on one GPU, interleaved in rounds:

- copy: `dst.copy_(src)` of a 1 GiB fp16 buffer; bandwidth counts bytes read + written;
- plain: eager PyTorch, `x @ W_i.T` for each of the 8 fp16 chunk weights (random N(0, .02));
- ours: the backend (default GEMV), plus ours_cublas (torch.mv on the merged weight) and
  ours_eager (no CUDA graph) for the record.

Every timed call ends with torch.cuda.synchronize(); wall medians (perf_counter_ns around
the call, as the harness times it) decide the targets; CUDA-event medians are printed
beside them. Effective bandwidth = weight bytes / median. Targets: ours >= 90% of the
copy bandwidth and >= 1.15x plain. Ours is verified against the numpy fp32 reference.

    python benchmarks/gpu_lm_head.py [--iters 300] [--cache DIR] [--vocab N --hidden N]

Prints one JSON line.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

from _gpu import Variant, provenance, run_interleaved, synced

from anemll_spec.backends.torch_ import TorchOptions
from anemll_spec.spec.run_section import Tolerance

ROOT = Path(__file__).resolve().parents[1]


def case_model(spec: Path, vocab: int | None, hidden: int | None):
    """The spec's (typed) model, with --vocab / --hidden applied and validated again."""
    from anemll_spec.spec import expand, parse

    (case,) = expand(parse(spec))
    m = case.model.to_json()
    if vocab:
        m["vocab_size"] = vocab
    if hidden:
        m["hidden_size"] = hidden
    return type(case.model).model_validate(m)


def gemv_sweep(torch, session, vocab: int, hidden: int) -> dict:
    """Each Triton configuration and torch.mv alone on the merged weight, in TB/s of weight
    bytes: CUDA events around 20 back-to-back calls (so launch overhead stays hidden, as
    in the graph), median of 7 such blocks; and the autotuner's choice."""
    from anemll_spec.executor import triton_gemv

    pool = session.runner.program._pool.values()
    w = next(t for t in pool if tuple(t.shape) == (vocab, hidden))
    x = torch.randn(hidden, device=w.device, dtype=w.dtype)
    candidates = {"cublas_mv": lambda: torch.mv(w, x)}
    for cfg in triton_gemv.CONFIGS:
        name = "triton_{}_{}_w{}_s{}".format(*cfg)
        candidates[name] = lambda cfg=cfg: triton_gemv.gemv_config(w, x, cfg)
    out = {}
    for name, fn in candidates.items():
        for _ in range(5):
            fn()
        blocks = []
        for _ in range(7):
            start = torch.cuda.Event(enable_timing=True)
            end = torch.cuda.Event(enable_timing=True)
            start.record()
            for _ in range(20):
                fn()
            end.record()
            end.synchronize()
            blocks.append(start.elapsed_time(end) * 1e-3 / 20)
        out[name] = round(w.numel() * w.element_size() / statistics.median(blocks) / 1e12, 4)
    out["autotuned"] = triton_gemv.best_config(vocab, hidden)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--spec", default=str(ROOT / "specs" / "lm_head.yaml"))
    ap.add_argument("--iters", type=int, default=300, help="timed calls per variant")
    ap.add_argument("--warmup", type=int, default=30)
    ap.add_argument("--rounds", type=int, default=10, help="interleaved blocks per variant")
    ap.add_argument("--cache", default=None, help="build cache (default: ANEMLL_SPEC_CACHE)")
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--vocab", type=int, default=None, help="override (smoke tests)")
    ap.add_argument("--hidden", type=int, default=None, help="override (smoke tests)")
    ap.add_argument("--copy-mib", type=int, default=1024)
    args = ap.parse_args()

    import numpy as np
    import torch

    from anemll_spec.backends.torch_ import TorchBackend
    from anemll_spec.build import build
    from anemll_spec.executor import load
    from anemll_spec.model_io import describe, synth_inputs
    from anemll_spec.verify import check_outputs

    m = case_model(Path(args.spec), args.vocab, args.hidden)
    t0 = time.perf_counter()
    built = build(m, cache_dir=Path(args.cache) if args.cache else None)
    build_s = time.perf_counter() - t0
    dev = torch.device(args.device)
    events = dev.type == "cuda"
    hidden, vocab, chunks = m.hidden_size, m.vocab_size, m.chunks
    rows = vocab // chunks
    g = torch.Generator(device=dev).manual_seed(0)

    # copy bandwidth: read + write of a buffer far larger than L2
    n = args.copy_mib * 2**20 // 2
    src = torch.randn(n, device=dev, generator=g, dtype=torch.float32).half()
    dst = torch.empty_like(src)
    copy_call, copy_ev = synced(torch, dev, lambda: dst.copy_(src), events)

    # plain eager PyTorch head: one x @ W.T per chunk
    weights = [
        (torch.randn(rows, hidden, device=dev, generator=g) * 0.02).half() for _ in range(chunks)
    ]
    x = torch.randn(1, hidden, device=dev, generator=g).half()
    plain_call, plain_ev = synced(torch, dev, lambda: [x @ w.T for w in weights], events)

    # ours: the backend as the runner drives it
    io = describe(built.path)
    inputs = synth_inputs(io, seed=m.seed)
    workdir = Path(tempfile.mkdtemp(prefix="gpu-lm-head-"))
    sessions, variants, load_s = {}, [], {}
    for name, opts in (
        ("ours", {}),
        ("ours_cublas", {"gemv": "cublas"}),
        ("ours_eager", {"graphs": False}),
    ):
        if name == "ours_cublas" and dev.type != "cuda":
            continue
        b = TorchBackend(args.device, **opts)
        t0 = time.perf_counter()
        s = b.load(b.prepare(built.path, workdir), TorchOptions())
        load_s[name] = time.perf_counter() - t0
        feed = s.feed(inputs)
        sessions[name] = (s, s.predict(feed))
        variants.append(Variant(name, s.bind(feed), s.runtime_probe))
    variants += [Variant("copy", copy_call, copy_ev), Variant("plain", plain_call, plain_ev)]

    reference = load(built.path).predict(inputs)
    verdicts = {
        name: check_outputs(
            out,
            reference,
            Tolerance(),  # the spec's fp16 defaults
            vocab_chunk=rows,
        ).to_dict()
        for name, (_, out) in sessions.items()
    }
    # plain computes the same function: check it once against numpy on its own weights
    plain_ref = np.concatenate(
        [x.float().cpu().numpy() @ w.float().cpu().numpy().T for w in weights], axis=1
    )
    plain_out = torch.cat([x @ w.T for w in weights], dim=1).float().cpu().numpy()
    plain_rel = float(np.linalg.norm(plain_out - plain_ref) / np.linalg.norm(plain_ref))

    run_interleaved(variants, args.warmup, args.iters, args.rounds)

    wbytes = built.weight_bytes
    res: dict = {}
    for v in variants:
        wall, devt = v.medians_us()
        moved = 2 * src.numel() * src.element_size() if v.name == "copy" else wbytes
        res[v.name] = {
            "median_us": round(wall, 2),
            "event_median_us": None if devt is None else round(devt, 2),
            "tbps": round(moved / (wall * 1e-6) / 1e12, 4),
            "event_tbps": None if devt is None else round(moved / (devt * 1e-6) / 1e12, 4),
            "n": len(v.wall),
        }
    for name, (s, _) in sessions.items():
        res[name].update(
            execution=s.describe()["execution"],
            gemv=s.describe()["gemv"],
            load_s=round(load_s[name], 2),
            verify=verdicts[name],
        )
    res["copy"]["bytes_read_plus_written"] = 2 * src.numel() * src.element_size()
    if "ours_cublas" in sessions:
        res["gemv_sweep"] = gemv_sweep(torch, sessions["ours"][0], vocab, hidden)
    res["plain"]["rel_l2_vs_numpy"] = plain_rel
    vs_copy = res["ours"]["tbps"] / res["copy"]["tbps"]
    vs_plain = res["plain"]["median_us"] / res["ours"]["median_us"]
    print(
        json.dumps(
            {
                **provenance("gpu_lm_head", args.device),
                "model": {
                    "hidden": hidden,
                    "vocab": vocab,
                    "chunks": chunks,
                    "dtype": m.dtype,
                    "weight_bytes": wbytes,
                    "build_s": round(build_s, 1),
                    "cached": built.cached,
                },
                **res,
                "ours_vs_copy": round(vs_copy, 4),
                "ours_vs_plain": round(vs_plain, 4),
                "targets": {"ours_vs_copy": 0.90, "ours_vs_plain": 1.15},
                "pass": bool(
                    vs_copy >= 0.90
                    and vs_plain >= 1.15
                    and all(v["status"] == "pass" for v in verdicts.values())
                ),
            }
        )
    )


if __name__ == "__main__":
    main()
