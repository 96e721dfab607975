"""Deterministic random weights, generated fast and chunk by chunk.

Each tensor has its own stream (`seeding.stream`, keyed by seed and name), so a tensor's
values depend only on the seed and its name: adding a layer or reordering the
graph changes no other tensor, and the same case gives a byte-identical weight.bin.
Values are drawn as float32 N(0, 1) in slices of `_SLICE` elements, scaled and
cast into the destination in place, so no full-size float32 copy ever exists.
"""

from __future__ import annotations

import numpy as np

from anemll_spec.seeding import stream

_SLICE = 1 << 22  # 4M values: 16 MB of float32 scratch


def normal(
    name: str, shape: tuple[int, ...], *, seed: int, std: float, dtype: str = "float16"
) -> np.ndarray:
    """N(0, std) tensor of `shape` in `dtype`; reproducible from (seed, name)."""
    out = np.empty(shape, dtype=np.dtype(dtype))
    flat = out.reshape(-1)
    gen = stream(seed, name)
    scratch = np.empty(min(_SLICE, flat.size), dtype=np.float32)
    for start in range(0, flat.size, _SLICE):
        n = min(_SLICE, flat.size - start)
        buf = scratch[:n]
        gen.standard_normal(out=buf, dtype=np.float32)
        buf *= np.float32(std)
        flat[start : start + n] = buf  # casts to fp16 here, slice by slice
    return out
