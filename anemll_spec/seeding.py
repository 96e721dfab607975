"""Seeded random streams keyed by name: the one rule behind reproducible weights (build)
and reproducible inputs (model_io), kept apart from both so that reading a model's
inputs needs no builder code.

Each name has its own PCG64 stream keyed by (seed, crc32(name)): a tensor's values
depend only on the seed and its name, never on what else is drawn or in which order.
"""

from __future__ import annotations

import zlib

import numpy as np


def stream(seed: int, name: str) -> np.random.Generator:
    ss = np.random.SeedSequence(int(seed), spawn_key=(zlib.crc32(name.encode()),))
    return np.random.Generator(np.random.PCG64(ss))
