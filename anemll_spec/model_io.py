"""Inputs, outputs and states of a Core ML model on disk, and seeded inputs for it.

`describe(path)` reads an `.mlpackage` (its Manifest.json and the model proto), a
single-file `.mlmodel`, or a compiled `.mlmodelc` (its metadata.json, else the `main`
function signature in model.mil), through `anemll_spec.mlmodel`, the one reader of saved
models.

`synth_inputs(io, seed)` gives deterministic inputs in the model's own dtypes; the
runner and `predict` both use it, so every backend sees the same numbers.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from anemll_spec.errors import InputError
from anemll_spec.mlmodel.features import ModelIO, TensorSpec
from anemll_spec.mlmodel.limits import check_alloc, element_count, fixed_shape
from anemll_spec.mlmodel.model import open_model

__all__ = ["ModelIO", "TensorSpec", "describe", "synth_inputs"]


def describe(path: str | Path, function: str | None = None) -> ModelIO:
    """Inputs, outputs and states of the model at `path` (of `function`, else the default
    one, for a multi-function model; InputError if it is not a model)."""
    return open_model(path).io(function)


def _rng(seed: int, name: str):
    # Keyed by name (the weights' stream), so an input's values do not depend on the
    # order of the others.
    from anemll_spec.seeding import stream

    return stream(seed, name)


def synth_bytes(tensors: Sequence[Any], where: str = "") -> int:
    """Memory synth_inputs needs for these inputs (anything with .name, .shape, .dtype):
    float32 draws are made first, then cast, so each element counts both."""
    import numpy as np

    need = 0
    for t in tensors:
        at = f"{where}input {t.name!r}"
        try:
            itemsize = np.dtype(t.dtype).itemsize
        except TypeError:
            raise InputError(f"{at}: cannot synthesise dtype {t.dtype}") from None
        need += element_count(t.shape, at) * (itemsize + 8)
    return need


def synth_inputs(
    io: ModelIO, seed: int = 0, int_ranges: Mapping[str, Sequence[int]] | None = None
) -> dict:
    """Deterministic inputs for every model input, in the model's dtypes.

    float: N(0, 1) (hidden-state scale; cast to the input dtype); an input named like
    `*mask*`: zeros (an additive causal mask that lets every position through);
    integer: uniform in `int_ranges[name]` inclusive, default [0, 1]. The memory all inputs
    need is checked before any is made (a model may declare an input of [1, 1e6, 1e6]).
    """
    import numpy as np

    ranges = dict(int_ranges or {})
    unknown = set(ranges) - {t.name for t in io.inputs}
    if unknown:
        raise InputError(f"input_ranges names inputs the model does not have: {sorted(unknown)}")
    need = synth_bytes(io.inputs)
    check_alloc(need, f"the model's inputs ({len(io.inputs)})", "synthesising them needs")
    out: dict[str, np.ndarray] = {}
    for t in io.inputs:
        dt = np.dtype(t.dtype)
        shape = fixed_shape(t.shape, f"input {t.name!r}")
        if dt.kind == "f":
            if "mask" in t.name.lower():
                out[t.name] = np.zeros(shape, dtype=dt)
            else:
                x = _rng(seed, t.name).standard_normal(shape, dtype=np.float32)
                out[t.name] = x.astype(dt)
        elif dt.kind in "iu":
            lo, hi = ranges.get(t.name, (0, 1))
            if lo > hi:
                raise InputError(f"input_ranges.{t.name}: low {lo} is above high {hi}")
            x = _rng(seed, t.name).integers(lo, hi, size=shape, endpoint=True, dtype=np.int64)
            out[t.name] = x.astype(dt)
        else:
            raise InputError(f"input {t.name!r}: cannot synthesise dtype {t.dtype}")
    return out
