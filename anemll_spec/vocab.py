"""The words every stage shares (backends, compute units, devices, dtypes, targets),
declared once. Plain typing only: the store and the CLI import these without loading the
spec's models."""

from __future__ import annotations

from typing import Literal, get_args

BackendName = Literal["auto", "coreml", "numpy", "torch"]
ComputeUnit = Literal["CPU_ONLY", "CPU_AND_GPU", "CPU_AND_NE", "ALL"]
TorchDevice = Literal["auto", "cuda", "mps", "cpu"]
Dtype = Literal["float16", "float32"]
Target = Literal["iOS16", "iOS17", "iOS18"]
Instances = Literal["shared", "distinct"]

BACKENDS: tuple[str, ...] = get_args(BackendName)  # as a spec names them (auto included)
RESOLVED_BACKENDS: tuple[str, ...] = BACKENDS[1:]  # what runs, and what a store holds
COMPUTE_UNITS: tuple[str, ...] = get_args(ComputeUnit)
DEVICES: tuple[str, ...] = get_args(TorchDevice)[1:]  # resolved torch devices
INSTANCES: tuple[str, ...] = get_args(Instances)
# Compute units choose Core ML's devices; `auto` may resolve to coreml, so it keeps them
# until it is resolved. No other backend has compute units.
COMPUTE_UNIT_BACKENDS = frozenset({"coreml", "auto"})
TARGET_VERSION = {"iOS16": 16, "iOS17": 17, "iOS18": 18}

# How many cases a sweep may expand to: DEFAULT without asking, LIMIT at most (--max-cases);
# the product is checked before anything is expanded.
DEFAULT_MAX_CASES = 256
MAX_CASES_LIMIT = 100_000

# The chip factors are against unless told otherwise: the published tables' baseline.
DEFAULT_BASELINE = "M1 Max"

# Below this many samples a side, a bootstrap CI is a few distinct values (at n = 1 a
# single point, a CI of no width): none is stored or shown, and no verdict is drawn from
# it (here, not in `bootstrap`, so the store's views read it without numpy).
MIN_SAMPLES = 6

# characters of a spec's text the store keeps (runs.spec_yaml); a longer spec is refused
# when read, so that spec_sha256 is always the hash of the text stored
SPEC_TEXT = 262_144
