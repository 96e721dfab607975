"""Core ML's compute plan: where each op of the function the model RUNS is placed.

`MLComputePlan.load_from_path(path, compute_units)` (macOS 14.4+) exposes every function
of the program (`model_structure.program.functions`, a dict). A model loaded without a
function name runs Core ML's default function ("Use nil to use a default function",
MLModelConfiguration.functionName), which a multi-function package names in its
description (`description.defaultFunctionName`); a single-function program has one
function, `main`. So the plan is read for that function, never for "main or the first".

What needs no Core ML (choosing the function, shaping rows, shares) is plain code,
tested on Linux; `read_compute_plan` calls coremltools 9's real API.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from anemll_spec.backends.base import BackendError

# coremltools' device classes -> the store's names ('NeuralEngine' | 'GPU' | 'CPU')
DEVICE_NAMES = {
    "MLCPUComputeDevice": "CPU",
    "MLGPUComputeDevice": "GPU",
    "MLNeuralEngineComputeDevice": "NeuralEngine",
}


@dataclass(frozen=True)
class OpPlan:
    """One op of a compute plan, as plain data."""

    op_type: str
    outputs: tuple[str, ...]
    preferred: str | None  # 'NeuralEngine' | 'GPU' | 'CPU' | None (unknown)
    supported: tuple[str, ...]
    cost: float | None  # Core ML's estimated share of the model's work, 0..1


def device_name(device: Any) -> str | None:
    if device is None:
        return None
    return DEVICE_NAMES.get(type(device).__name__, type(device).__name__)


def default_function(source: Path) -> str | None:
    """The function Core ML runs when none is named: the description's
    defaultFunctionName of an .mlpackage ('' in single-function models -> None).
    A compiled .mlmodelc does not say (None)."""
    from anemll_spec.mlmodel import open_model

    if source.suffix.lower() != ".mlpackage":
        return None
    return open_model(source).spec.description.defaultFunctionName or None


def pick_function(names: Iterable[str], default: str | None) -> str:
    """The function of `names` the model runs, given the description's default."""
    names = list(names)
    if default:
        if default not in names:
            raise BackendError(
                f"the model's default function {default!r} is not in its program "
                f"(functions: {', '.join(names)})"
            )
        return default
    if len(names) == 1:
        return names[0]
    raise BackendError(
        f"the program has {len(names)} functions ({', '.join(names)}) and its default "
        "function is unknown (a compiled .mlmodelc does not record it): give the .mlpackage"
    )


def placement_rows(ops: Iterable[OpPlan], compute_units: str) -> list[dict]:
    """Compute-plan ops -> rows of the store's `placements` table.

    Constants are left out: Core ML gives them no device and no cost.
    """
    rows: list[dict] = []
    for op in ops:
        if op.op_type == "const" and op.preferred is None:
            continue
        rows.append(
            {
                "op_index": len(rows),
                "op_name": op.outputs[0] if op.outputs else None,
                "op_type": op.op_type,
                "preferred_device": op.preferred,
                "estimated_cost": op.cost,
                "compute_units": compute_units,
            }
        )
    return rows


def placement_basis(rows: Iterable[Mapping]) -> str:
    """What placement_shares divides: Core ML's estimated costs where it gave any (ops
    without one are left out, and said so), else op counts."""
    rows = list(rows)
    costed = sum(r.get("estimated_cost") is not None for r in rows)
    if not costed:
        return f"op count ({len(rows)} ops; Core ML estimated no costs)"
    left = len(rows) - costed
    return "estimated cost" + (f" ({left} of {len(rows)} ops had none: left out)" if left else "")


def placement_shares(rows: Iterable[Mapping]) -> dict[str, float]:
    """Share of the estimated cost per preferred device (by op count where no costs;
    placement_basis says which)."""
    rows = list(rows)
    costed = [r for r in rows if r.get("estimated_cost") is not None]
    use = costed if costed else rows
    weights: dict[str, float] = {}
    for r in use:
        dev = r.get("preferred_device") or "unknown"
        w = r["estimated_cost"] if costed else 1.0
        weights[dev] = weights.get(dev, 0.0) + float(w)
    total = sum(weights.values())
    return {k: v / total for k, v in sorted(weights.items())} if total > 0 else {}


def _usage(usage) -> tuple[str | None, tuple[str, ...]]:
    if usage is None:
        return None, ()
    supported = tuple(d for d in map(device_name, usage.supported_compute_devices) if d)
    return device_name(usage.preferred_compute_device), supported


def read_compute_plan(
    mlmodelc: Path, compute_units: Any, default: str | None = None
) -> list[OpPlan]:
    """Every op of the function the model runs, with its preferred device and cost.

    compute_units: a coremltools.ComputeUnit; default: the description's default
    function name (default_function(source)), None for single-function models."""
    from coremltools.models.compute_plan import MLComputePlan

    plan = MLComputePlan.load_from_path(path=str(mlmodelc), compute_units=compute_units)
    structure = plan.model_structure
    out: list[OpPlan] = []
    if structure.program is not None:
        functions = structure.program.functions
        fn = functions[pick_function(functions, default)]

        def walk(operations) -> None:
            for op in operations:
                preferred, supported = _usage(
                    plan.get_compute_device_usage_for_mlprogram_operation(op)
                )
                cost = plan.get_estimated_cost_for_mlprogram_operation(op)
                out.append(
                    OpPlan(
                        op_type=op.operator_name,
                        outputs=tuple(o.name for o in op.outputs),
                        preferred=preferred,
                        supported=supported,
                        cost=float(cost.weight) if cost is not None else None,
                    )
                )
                for block in op.blocks:
                    walk(block.operations)

        walk(fn.block.operations)
    elif structure.neuralnetwork is not None:
        for layer in structure.neuralnetwork.layers:
            preferred, supported = _usage(
                plan.get_compute_device_usage_for_neuralnetwork_layer(layer)
            )
            out.append(OpPlan(layer.type, tuple(layer.output_names), preferred, supported, None))
    else:  # a pipeline: its models' plans are not read (said, not an empty plan)
        from anemll_spec.backends.base import BackendError

        raise BackendError("the compute plan of a pipeline model is not read")
    return out
