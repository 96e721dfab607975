"""A model the user points to: validated where it lies, never copied.

Built.path is the user's own path; weight bytes, FLOPs and the weights' sha256 come
from inspecting the files (a .mlpackage's proto or a .mlmodelc's model.mil).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING

from anemll_spec.errors import InputError

if TYPE_CHECKING:
    from anemll_spec.spec.families import External


def _path(model: External) -> Path:
    raw = model.path
    if not raw:
        raise InputError("model.path: an external model needs a path")
    return Path(raw)


def validate(model: External, *, sha: bool = True) -> dict:
    """Inspect the user's model; InputError naming the path and what is wrong."""
    from anemll_spec.mlmodel.inspect import inspect_model
    from anemll_spec.model_io import describe

    p = _path(model)
    if not p.exists():
        raise InputError(f"model.path: {p} does not exist")
    if p.suffix.lower() not in (".mlpackage", ".mlmodelc"):
        raise InputError(f"model.path: {p} is not a .mlpackage or .mlmodelc")
    describe(p)  # inputs/outputs must be readable
    return inspect_model(p, sha=sha)


def estimate(model: External):
    from anemll_spec.build.records import Estimate

    info = validate(model, sha=False)  # sizes and FLOPs; hashing GBs is for build()
    warnings = []
    if info["deployment_target"] and info["deployment_target"] < "iOS16":
        warnings.append(f"{model.path}: deployment target {info['deployment_target']}")
    return Estimate(info["weight_bytes"], info["flops"], 0, warnings)


def build(model: External):
    from anemll_spec.build.records import Built

    t0 = time.perf_counter()
    info = validate(model)
    return Built(
        path=_path(model),
        key="external:" + info["weights_sha256"][:16],
        weight_bytes=info["weight_bytes"],
        flops=info["flops"],
        build_s=time.perf_counter() - t0,
        cached=True,
        weights_sha256=info["weights_sha256"],
    )
