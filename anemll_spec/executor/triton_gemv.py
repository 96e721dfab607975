"""A Triton GEMV, y = W @ x for a row-major (O, C) weight: one pass over W at bandwidth.

Each program streams BLOCK_O whole rows of W in BLOCK_C-wide tiles (16-byte loads,
evicted first: W is read once, x stays cached), accumulates in fp32 and writes BLOCK_O
outputs in W's dtype. Rows past O are clamped to row 0 for the loads (no row masks in the
inner loop) and masked at the store. Configurations are autotuned per (rows, width), once.
Imported only on CUDA; importing it does not import triton (`available()` checks).
"""

from __future__ import annotations

import functools
import importlib.util

import torch

# (BLOCK_O, BLOCK_C, num_warps, num_stages) tried by the autotuner
CONFIGS = (
    (4, 1024, 4, 3),
    (8, 512, 4, 3),
    (8, 1024, 8, 2),
    (16, 256, 4, 4),
    (16, 512, 4, 3),
    (16, 512, 8, 3),
    (32, 256, 8, 3),
    (32, 512, 8, 2),
)


def available() -> bool:
    return importlib.util.find_spec("triton") is not None


@functools.cache
def _kernel():
    import triton
    import triton.language as tl

    configs = [
        triton.Config({"BLOCK_O": bo, "BLOCK_C": bc}, num_warps=nw, num_stages=ns)
        for bo, bc, nw, ns in CONFIGS
    ]

    @triton.autotune(configs=configs, key=["R", "C"])
    @triton.heuristics({"EVEN_C": lambda a: a["C"] % a["BLOCK_C"] == 0})
    @triton.jit
    def gemv_kernel(
        W, X, Y, R, C, BLOCK_O: tl.constexpr, BLOCK_C: tl.constexpr, EVEN_C: tl.constexpr
    ):
        pid = tl.program_id(0)
        rows = pid * BLOCK_O + tl.arange(0, BLOCK_O)
        live = rows < R
        safe = tl.where(live, rows, 0).to(tl.int64)
        cols = tl.arange(0, BLOCK_C)
        w_ptrs = W + safe[:, None] * C + cols[None, :]
        acc = tl.zeros((BLOCK_O, BLOCK_C), dtype=tl.float32)
        for k in range(0, tl.cdiv(C, BLOCK_C)):
            if EVEN_C:
                w = tl.load(w_ptrs, eviction_policy="evict_first")
                x = tl.load(X + k * BLOCK_C + cols)
            else:
                inside = k * BLOCK_C + cols < C
                w = tl.load(w_ptrs, mask=inside[None, :], other=0.0, eviction_policy="evict_first")
                x = tl.load(X + k * BLOCK_C + cols, mask=inside, other=0.0)
            acc += w.to(tl.float32) * x.to(tl.float32)[None, :]
            w_ptrs += BLOCK_C
        y = tl.sum(acc, axis=1)
        tl.store(Y + rows, y.to(Y.dtype.element_ty), mask=live)

    return gemv_kernel


def gemv(w: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """w (O, C) contiguous on CUDA, x (C,) -> (O,) in w's dtype, fp32 accumulation."""
    import triton

    out_rows, width = w.shape
    x = x.contiguous()
    y = torch.empty(out_rows, dtype=w.dtype, device=w.device)
    kernel = _kernel()
    kernel[lambda meta: (triton.cdiv(out_rows, meta["BLOCK_O"]),)](w, x, y, out_rows, width)
    return y


def gemv_config(
    w: torch.Tensor, x: torch.Tensor, config: tuple[int, int, int, int]
) -> torch.Tensor:
    """gemv with one fixed configuration (no autotuning): for sweeps and tests."""
    import triton

    out_rows, width = w.shape
    block_o, block_c, warps, stages = config
    y = torch.empty(out_rows, dtype=w.dtype, device=w.device)
    kernel = _kernel().fn  # the heuristics-wrapped jit function, below the autotuner
    kernel[(triton.cdiv(out_rows, block_o),)](
        w,
        x.contiguous(),
        y,
        out_rows,
        width,
        BLOCK_O=block_o,
        BLOCK_C=block_c,
        num_warps=warps,
        num_stages=stages,
    )
    return y


def best_config(rows: int, width: int) -> str | None:
    """The autotuner's choice for a (rows, width) weight, once it has run."""
    cache = getattr(_kernel(), "cache", {})
    for key, cfg in cache.items():
        if tuple(key[:2]) == (rows, width):
            return str(cfg)
    return None
