"""A model's inputs, outputs and states (`ModelIO` of `TensorSpec`s), from its description.

Read from the model description in the protobuf (`.mlpackage`, `.mlmodel`), from a
compiled model's metadata.json (`inputSchema` / `outputSchema` / `stateSchema`, every
feature's name, data type and shape as strings), or from a program function's signature
(model.mil without metadata.json). Every reader gives numpy dtype names.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from anemll_spec.errors import InputError
from anemll_spec.mlmodel.dtypes import FEATURE_ARRAY_DTYPES, SCHEMA_DTYPES, VALUE_DTYPES, np_name


@dataclass(frozen=True)
class TensorSpec:
    """A model input, output or state: name, shape (None where not fixed), numpy dtype name."""

    name: str
    shape: tuple[int | None, ...]
    dtype: str  # numpy dtype name: float16, float32, int32, ...; "str", "dict": host values
    # a flexible input's allowed shapes (protobuf descriptions): per-dimension [low, high]
    # (high None: unbounded), or the enumerated shapes; None: the shape above, as it is
    ranges: tuple[tuple[int, int | None], ...] | None = None
    shapes: tuple[tuple[int, ...], ...] | None = None

    def shape_problem(self, shape: tuple[int, ...]) -> str | None:
        """Why `shape` is not one this input allows (None: it is)."""
        ranges = self.ranges if self.ranges and len(self.ranges) == len(shape) else ()
        if any(
            d < lo or (hi is not None and d > hi)
            for d, (lo, hi) in zip(shape, ranges, strict=False)
        ):
            return f"the model allows {range_text(ranges)}"
        if self.shapes and tuple(shape) not in self.shapes:
            return "the model allows only " + ", ".join("x".join(map(str, s)) for s in self.shapes)
        return None

    def to_json(self) -> dict[str, Any]:
        """name, shape (a flexible input's default), dtype; and a flexible input's allowed
        `ranges` ([low, high or null] per dimension) or enumerated `shapes`."""
        out: dict[str, Any] = {"name": self.name, "shape": list(self.shape), "dtype": self.dtype}
        if self.ranges:
            out["ranges"] = [list(r) for r in self.ranges]
        if self.shapes:
            out["shapes"] = [list(s) for s in self.shapes]
        return out


def range_text(ranges) -> str:
    """A flexible shape as people write it: 1x3x[4..64] ([4..] unbounded)."""
    return "x".join(
        str(lo) if lo == hi else f"[{lo}..{'' if hi is None else hi}]" for lo, hi in ranges
    )


@dataclass(frozen=True)
class ModelIO:
    inputs: list[TensorSpec]
    outputs: list[TensorSpec]
    states: list[TensorSpec] = field(default_factory=list)
    kind: str = "mlpackage"  # mlpackage | mlmodel | mlmodelc

    def input(self, name: str) -> TensorSpec:
        return _by_name(self.inputs, name, "input")

    def output(self, name: str) -> TensorSpec:
        return _by_name(self.outputs, name, "output")

    def to_json(self) -> dict:
        return {
            "kind": self.kind,
            "inputs": [t.to_json() for t in self.inputs],
            "outputs": [t.to_json() for t in self.outputs],
            "states": [t.to_json() for t in self.states],
        }


def _by_name(items: list[TensorSpec], name: str, what: str) -> TensorSpec:
    for t in items:
        if t.name == name:
            return t
    raise KeyError(f"no {what} named {name!r}")


# ---------------------------------------------------------------- protobuf description


def _feature(fd, where: Path | str, output: bool = False) -> TensorSpec:
    which = fd.type.WhichOneof("Type")
    if output and which in ("stringType", "int64Type"):  # a classifier's label: a scalar
        return TensorSpec(fd.name, (), "str" if which == "stringType" else "int64")
    if output and which == "dictionaryType":  # a classifier's {label: probability}
        return TensorSpec(fd.name, (), "dict")
    if which == "multiArrayType":
        arr = fd.type.multiArrayType
    elif which == "stateType":
        arr = fd.type.stateType.arrayType
    elif which == "int64Type":
        return TensorSpec(fd.name, (1,), "int64")
    elif which == "doubleType":
        return TensorSpec(fd.name, (1,), "float64")
    else:
        raise InputError(f"{where}: feature {fd.name!r} has type {which}, which is not supported")
    shape = tuple(int(d) for d in arr.shape)
    ranges = shapes = None
    if arr.HasField("shapeRange") and arr.shapeRange.sizeRanges:
        ranges = tuple(
            (int(r.lowerBound), None if r.upperBound < 0 else int(r.upperBound))
            for r in arr.shapeRange.sizeRanges
        )
        shape = shape or tuple(lo for lo, _ in ranges)
    if arr.HasField("enumeratedShapes") and arr.enumeratedShapes.shapes:
        shapes = tuple(tuple(int(d) for d in s.shape) for s in arr.enumeratedShapes.shapes)
        shape = shape or shapes[0]
    if any(d < 0 for d in shape):
        raise InputError(f"{where}: feature {fd.name!r} has a negative dimension {list(shape)}")
    dtype = FEATURE_ARRAY_DTYPES.get(arr.dataType)
    if dtype is None:
        raise InputError(f"{where}: feature {fd.name!r} has an unknown data type {arr.dataType}")
    return TensorSpec(fd.name, shape, dtype, ranges, shapes)


def from_description(spec, kind: str, where: Path | str, function: str | None = None) -> ModelIO:
    """ModelIO of a Model message's description. A multi-function model describes each
    function on its own (the top-level lists are empty): `function`'s, else the default's."""
    d = spec.description
    if d.functions:
        name = function or d.defaultFunctionName or d.functions[0].name
        found = [f for f in d.functions if f.name == name]
        if not found:
            names = ", ".join(sorted(f.name for f in d.functions))
            raise InputError(f"{where}: no function '{name}' (has: {names})")
        d = found[0]
    elif function not in (None, "main"):
        raise InputError(f"{where}: no function '{function}' (has: main)")
    return ModelIO(
        inputs=[_feature(f, where) for f in d.input],
        outputs=[_feature(f, where, output=True) for f in d.output],
        states=[_feature(f, where) for f in d.state],
        kind=kind,
    )


# ---------------------------------------------------------------- metadata.json


def has_schema(meta: dict | None) -> bool:
    return isinstance(meta, dict) and ("inputSchema" in meta or "outputSchema" in meta)


def _schema_shape(entry: dict, where: Path) -> tuple[int, ...]:
    raw = entry.get("shape")
    if raw is None:
        # Older compilers leave out "shape"; "formattedType" reads "MultiArray (Float16 1 × 4096)".
        m = re.search(r"\(\w+\s+([^)]*)\)", str(entry.get("formattedType", "")))
        raw = "[" + ", ".join(re.findall(r"\d+", m.group(1))) + "]" if m else None
    if raw is None:
        raise InputError(f"{where}: feature {entry.get('name')!r} in metadata.json has no shape")
    try:
        dims = json.loads(raw) if isinstance(raw, str) else raw
        shape = tuple(int(d) for d in dims)
    except (ValueError, TypeError, RecursionError):  # RecursionError: nested too deeply
        raise InputError(
            f"{where}: feature {entry.get('name')!r} has a bad shape {raw!r}"
        ) from None
    if any(d < 0 for d in shape):
        raise InputError(f"{where}: feature {entry.get('name')!r} has a negative dimension")
    return shape


def _schema_feature(entry: Any, where: Path) -> TensorSpec:
    if not isinstance(entry, dict):
        raise InputError(f"{where}: metadata.json has a feature that is not an object")
    name = entry.get("name")
    if not isinstance(name, str) or not name:
        raise InputError(f"{where}: metadata.json has a feature without a name")
    dt = str(entry.get("dataType", "")).lower()
    dtype = SCHEMA_DTYPES.get(dt)
    if dtype is None:
        raise InputError(
            f"{where}: feature {name!r} has unsupported data type {entry.get('dataType')!r}"
        )
    return TensorSpec(name, _schema_shape(entry, where), dtype)


def from_metadata(meta: dict, where: Path) -> ModelIO:
    """ModelIO of a compiled model's metadata.json (inputSchema/outputSchema/stateSchema)."""

    def features(key: str) -> list[TensorSpec]:
        items = meta.get(key, [])
        if not isinstance(items, list):
            raise InputError(f"{where}: metadata.json {key} must be a list")
        return [_schema_feature(e, where) for e in items]

    return ModelIO(
        features("inputSchema"), features("outputSchema"), features("stateSchema"), "mlmodelc"
    )


# ---------------------------------------------------------------- function signature


def spec_of(v, where: Path | str, output: bool = False) -> TensorSpec:
    """The TensorSpec of a program variable; an output may also be a host value (a
    classifier's str label or dict). InputError for a dtype nothing here can hold."""
    dt = np_name(v.dtype) or (VALUE_DTYPES.get(v.dtype) if output else None)
    if dt is None:
        raise InputError(f"{where}: {v.name!r} has data type {v.dtype}, not supported")
    return TensorSpec(v.name, tuple(v.shape), dt)


def from_function(fn, kind: str, where: Path | str) -> ModelIO:
    """ModelIO of a program function's signature and returned values."""
    from anemll_spec.mlmodel.ir import walk

    def spec(v, output: bool = False) -> TensorSpec:
        return spec_of(v, where, output)

    types = {v.name: v for v in fn.inputs}
    for op in walk(fn.ops):
        types.update({o.name: o for o in op.outputs})
    missing = [n for n in fn.outputs if n not in types]
    if missing:
        raise InputError(f"{where}: returned value {missing[0]!r} is never defined")
    return ModelIO(
        inputs=[spec(v) for v in fn.inputs if not v.is_state],
        outputs=[spec(types[n], output=True) for n in fn.outputs],
        states=[spec(v) for v in fn.inputs if v.is_state],
        kind=kind,
    )
