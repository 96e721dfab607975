"""Inputs of a prepared program: declared sizes checked before anything is allocated,
host arrays checked against their declarations and converted, and a compiled model's
metadata.json checked against its program."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from anemll_spec.errors import InputError
from anemll_spec.mlmodel.dtypes import BY_NAME
from anemll_spec.mlmodel.ir import VarType
from anemll_spec.mlmodel.limits import available_bytes, element_count

if TYPE_CHECKING:
    from anemll_spec.executor.program import Program
    from anemll_spec.mlmodel.features import ModelIO


def check_sizes(types: dict[str, VarType], fn_name: str) -> None:
    """Every declared tensor must fit in memory on its own, checked before anything is
    allocated (a model may declare an input of [1, 1e6, 1e6])."""
    avail = available_bytes()
    for v in types.values():
        t = BY_NAME.get(v.dtype)
        if v.static_shape is None or t is None or t.np_dtype is None:
            continue
        where = f"function '{fn_name}': '{v.name}'"
        nbytes = element_count(v.static_shape, where) * max(t.np_dtype.itemsize, 4)
        if nbytes > avail:
            raise InputError(
                f"{where} of shape {list(v.static_shape)} needs {nbytes / 2**30:,.1f} GiB, "
                f"{avail / 2**30:,.1f} GiB of memory is available"
            )


def match_description(prog: Program, io: ModelIO, path: Path) -> None:
    """A compiled model's metadata.json must describe what its model.mil computes: the
    same inputs, outputs and states, dtypes and (where fixed) shapes."""
    for what, declared, program in (
        ("input", io.inputs, prog.inputs),
        ("output", io.outputs, prog.outputs),
        ("state", io.states, prog.states),
    ):
        if [t.name for t in declared] and {t.name for t in declared} != set(program):
            raise InputError(
                f"{path}: metadata.json lists {what}s {sorted(t.name for t in declared)}, "
                f"model.mil has {sorted(program)}"
            )
        for t in declared:
            p = program.get(t.name)
            if p is None:
                continue
            shape_ok = len(t.shape) == len(p.shape) and all(
                b is None or a == b for a, b in zip(t.shape, p.shape, strict=True)
            )
            if t.dtype != p.dtype or not shape_ok:
                raise InputError(
                    f"{path}: {what} '{t.name}' is {t.dtype} {list(t.shape)} in metadata.json, "
                    f"{p.dtype} {list(p.shape)} in model.mil"
                )


def convert_inputs(prog: Program, inputs: dict[str, Any]) -> dict[str, Any]:
    """Check host inputs and convert them to backend tensors (what `Program.run` takes)."""
    if not isinstance(inputs, dict):
        raise InputError("inputs must be a dict of name -> array")
    extra = sorted(set(inputs) - set(prog.inputs))
    if extra:
        raise InputError(
            f"unknown input(s) {', '.join(extra)} (model inputs: {', '.join(prog.inputs)})"
        )
    missing = [n for n in prog.inputs if n not in inputs]
    if missing:
        raise InputError(f"missing input(s): {', '.join(missing)}")
    return {n: _convert(prog, n, inputs[n]) for n in prog.inputs}


def _convert(prog: Program, name: str, value: Any) -> Any:
    """Check one input against its declaration and convert it.

    Floats: any float dtype is accepted for an fp16/fp32 input (as Core ML accepts fp32
    for fp16 inputs) and rounded to the declared precision, which is what the model sees.
    Integers: any integer dtype whose values fit the declared type. Bool: bool only.
    """
    spec, shape = prog.inputs[name], prog.inputs[name].shape
    arr = np.asarray(value)
    if arr.ndim != len(shape) or any(
        d is not None and d != a for d, a in zip(shape, arr.shape, strict=False)
    ):
        raise InputError(
            f"input '{name}': shape {tuple(arr.shape)}, the model expects "
            f"{tuple('?' if d is None else d for d in shape)}"
        )
    flexible = prog.flexible.get(name)
    problem = flexible.shape_problem(tuple(arr.shape)) if flexible is not None else None
    if problem:
        raise InputError(f"input '{name}': shape {tuple(arr.shape)}, {problem}")
    xp = prog.xp
    target = np.dtype(spec.dtype)
    if target.kind == "f":
        if arr.dtype.kind != "f":
            raise InputError(f"input '{name}': dtype {arr.dtype}, the model expects {target}")
        arr = arr.astype(target).astype(np.float32)
        if prog.fp16:
            arr = arr.astype(np.float16).astype(np.float32)
        return xp.asarray(arr, xp.float_dtype)
    if target.kind in "iu":
        if arr.dtype.kind not in "iu":
            raise InputError(f"input '{name}': dtype {arr.dtype}, the model expects {target}")
        info = np.iinfo(target)
        if arr.size and (arr.min() < info.min or arr.max() > info.max):
            raise InputError(f"input '{name}': values outside the range of {target}")
        return xp.asarray(arr.astype(target))
    if target.kind == "b" and arr.dtype.kind != "b":
        raise InputError(f"input '{name}': dtype {arr.dtype}, the model expects bool")
    return xp.asarray(arr)
