"""Inputs, outputs and states of a Core ML model on disk, and seeded inputs for it.

`describe(path)` reads an `.mlpackage` (its Manifest.json and the model proto), a
single-file `.mlmodel`, or a compiled `.mlmodelc`. A compiled model is a folder Xcode
or `coremlcompiler` writes: `metadata.json` (a one-element JSON list whose
`inputSchema` / `outputSchema` / `stateSchema` give every feature's name, data type
and shape as strings), `model.mil` (the program as text), `weights/weight.bin`,
`coremldata.bin` and `analytics/coremldata.bin` (binary, undocumented). We read
`metadata.json`, and fall back to the `main` function signature in `model.mil`.

`synth_inputs(io, seed)` gives deterministic inputs in the model's own dtypes; the
runner and `predict` both use it, so every backend sees the same numbers.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path

from anemll_spec.errors import InputError

# Core ML array data types -> numpy dtype names
_PROTO_DTYPES = {
    65552: "float16",
    65568: "float32",
    65600: "float64",
    131104: "int32",
    131080: "int8",
}
_SCHEMA_DTYPES = {
    "float16": "float16",
    "float32": "float32",
    "float": "float32",
    "double": "float64",
    "float64": "float64",
    "int32": "int32",
    "int8": "int8",
}
_MIL_DTYPES = {
    "fp16": "float16",
    "fp32": "float32",
    "fp64": "float64",
    "int32": "int32",
    "int8": "int8",
}


@dataclass(frozen=True)
class TensorInfo:
    name: str
    shape: tuple[int, ...]
    dtype: str  # numpy dtype name: float16, float32, float64, int32, int8

    def to_json(self) -> dict:
        return {"name": self.name, "shape": list(self.shape), "dtype": self.dtype}


@dataclass(frozen=True)
class ModelIO:
    inputs: list[TensorInfo]
    outputs: list[TensorInfo]
    states: list[TensorInfo] = field(default_factory=list)
    kind: str = "mlpackage"  # mlpackage | mlmodel | mlmodelc

    def input(self, name: str) -> TensorInfo:
        return _by_name(self.inputs, name, "input")

    def output(self, name: str) -> TensorInfo:
        return _by_name(self.outputs, name, "output")

    def to_json(self) -> dict:
        return {
            "kind": self.kind,
            "inputs": [t.to_json() for t in self.inputs],
            "outputs": [t.to_json() for t in self.outputs],
            "states": [t.to_json() for t in self.states],
        }


def _by_name(items: list[TensorInfo], name: str, what: str) -> TensorInfo:
    for t in items:
        if t.name == name:
            return t
    raise KeyError(f"no {what} named {name!r}")


# ---------------------------------------------------------------- describe


def describe(path: str | Path) -> ModelIO:
    """Inputs, outputs and states of the model at `path` (InputError if it is not one)."""
    p = Path(path)
    if not p.exists():
        raise InputError(f"{p}: no such model (file or folder not found)")
    suffix = p.suffix.lower()
    if suffix == ".mlpackage":
        spec = load_spec_proto(p)
        return _from_proto(spec, "mlpackage")
    if suffix == ".mlmodel":
        spec = _parse_model_proto(p.read_bytes(), p)
        return _from_proto(spec, "mlmodel")
    if suffix == ".mlmodelc":
        return _describe_compiled(p)
    raise InputError(f"{p}: not a Core ML model (expected .mlpackage, .mlmodelc or .mlmodel)")


def package_model_path(pkg: Path) -> Path:
    """The model proto inside an .mlpackage, found through its Manifest.json."""
    manifest = pkg / "Manifest.json"
    if not pkg.is_dir() or not manifest.is_file():
        raise InputError(f"{pkg}: not an .mlpackage (Manifest.json missing)")
    try:
        doc = json.loads(manifest.read_text())
        root = doc["rootModelIdentifier"]
        entry = doc["itemInfoEntries"][root]
        rel = entry["path"]
    except (ValueError, KeyError, TypeError) as exc:
        raise InputError(
            f"{pkg}: Manifest.json is damaged ({exc.__class__.__name__}: {exc})"
        ) from None
    model = pkg / "Data" / rel
    if not model.is_file():
        raise InputError(f"{pkg}: the model file Data/{rel} named in Manifest.json is missing")
    return model


def load_spec_proto(pkg: Path):
    """The Model proto of an .mlpackage, parsed with coremltools' own proto classes."""
    model = package_model_path(pkg)
    return _parse_model_proto(model.read_bytes(), pkg)


def _parse_model_proto(data: bytes, where: Path):
    from coremltools.proto import Model_pb2
    from google.protobuf.message import DecodeError

    spec = Model_pb2.Model()
    try:
        spec.ParseFromString(data)
    except DecodeError as exc:
        raise InputError(f"{where}: the model proto is corrupt ({exc})") from None
    if not spec.specificationVersion or not spec.HasField("description"):
        raise InputError(f"{where}: the model proto is empty or not a Core ML model")
    return spec


def _feature(fd, where: Path) -> TensorInfo:
    which = fd.type.WhichOneof("Type")
    if which == "multiArrayType":
        arr = fd.type.multiArrayType
    elif which == "stateType":
        arr = fd.type.stateType.arrayType
    elif which == "int64Type":
        return TensorInfo(fd.name, (1,), "int64")
    elif which == "doubleType":
        return TensorInfo(fd.name, (1,), "float64")
    else:
        raise InputError(f"{where}: feature {fd.name!r} has type {which}, which is not supported")
    shape = tuple(int(d) for d in arr.shape)
    if not shape and arr.HasField("shapeRange"):
        shape = tuple(int(r.lowerBound) for r in arr.shapeRange.sizeRanges)
    if not shape and arr.HasField("enumeratedShapes") and arr.enumeratedShapes.shapes:
        shape = tuple(int(d) for d in arr.enumeratedShapes.shapes[0].shape)
    dtype = _PROTO_DTYPES.get(arr.dataType)
    if dtype is None:
        raise InputError(f"{where}: feature {fd.name!r} has an unknown data type {arr.dataType}")
    return TensorInfo(fd.name, shape, dtype)


def _from_proto(spec, kind: str) -> ModelIO:
    d = spec.description
    where = Path(kind)
    return ModelIO(
        inputs=[_feature(f, where) for f in d.input],
        outputs=[_feature(f, where) for f in d.output],
        states=[_feature(f, where) for f in d.state],
        kind=kind,
    )


# ---- compiled models


def read_compiled_metadata(path: Path) -> dict | None:
    """The single metadata dict of a .mlmodelc, or None if it has no metadata.json."""
    meta = path / "metadata.json"
    if not meta.is_file():
        return None
    try:
        doc = json.loads(meta.read_text())
    except ValueError as exc:
        raise InputError(f"{path}: metadata.json is not valid JSON ({exc})") from None
    if isinstance(doc, list) and doc and isinstance(doc[0], dict):
        return doc[0]
    if isinstance(doc, dict):
        return doc
    raise InputError(f"{path}: metadata.json is not a list holding one model description")


def _schema_shape(entry: dict, where: Path) -> tuple[int, ...]:
    raw = entry.get("shape")
    if raw is None:
        # Older compilers leave out "shape"; "formattedType" reads "MultiArray (Float16 1 × 4096)".
        m = re.search(r"\(\w+\s+([^)]*)\)", entry.get("formattedType", ""))
        raw = "[" + ", ".join(re.findall(r"\d+", m.group(1))) + "]" if m else None
    if raw is None:
        raise InputError(f"{where}: feature {entry.get('name')!r} in metadata.json has no shape")
    try:
        dims = json.loads(raw) if isinstance(raw, str) else raw
        return tuple(int(d) for d in dims)
    except (ValueError, TypeError):
        raise InputError(
            f"{where}: feature {entry.get('name')!r} has a bad shape {raw!r}"
        ) from None


def _schema_feature(entry: dict, where: Path) -> TensorInfo:
    name = entry.get("name")
    if not name:
        raise InputError(f"{where}: metadata.json has a feature without a name")
    dt = str(entry.get("dataType", "")).lower()
    dtype = _SCHEMA_DTYPES.get(dt)
    if dtype is None:
        raise InputError(
            f"{where}: feature {name!r} has unsupported data type {entry.get('dataType')!r}"
        )
    return TensorInfo(name, _schema_shape(entry, where), dtype)


def _describe_compiled(path: Path) -> ModelIO:
    if not path.is_dir():
        raise InputError(f"{path}: a compiled model (.mlmodelc) must be a folder")
    meta = read_compiled_metadata(path)
    if meta is not None and ("inputSchema" in meta or "outputSchema" in meta):
        return ModelIO(
            inputs=[_schema_feature(e, path) for e in meta.get("inputSchema", [])],
            outputs=[_schema_feature(e, path) for e in meta.get("outputSchema", [])],
            states=[_schema_feature(e, path) for e in meta.get("stateSchema", [])],
            kind="mlmodelc",
        )
    mil = path / "model.mil"
    if mil.is_file():
        from anemll_spec.build.miltext import parse_mil_text

        parsed = parse_mil_text(mil.read_text(errors="replace"), where=mil)
        return ModelIO(parsed.inputs, parsed.outputs, parsed.states, kind="mlmodelc")
    raise InputError(
        f"{path}: not a compiled Core ML model (neither metadata.json with inputSchema nor model.mil)"
    )


# ---------------------------------------------------------------- synth_inputs


def _rng(seed: int, name: str):
    # Keyed by name (the weights' stream), so an input's values do not depend on the
    # order of the others.
    from anemll_spec.build.weights import stream

    return stream(seed, name)


def synth_inputs(
    io: ModelIO, seed: int = 0, int_ranges: dict[str, list[int] | tuple[int, int]] | None = None
) -> dict:
    """Deterministic inputs for every model input, in the model's dtypes.

    float: N(0, 1) (hidden-state scale; cast to the input dtype); an input named like
    `*mask*`: zeros (an additive causal mask that lets every position through);
    integer: uniform in `int_ranges[name]` inclusive, default [0, 1].
    """
    import numpy as np

    ranges = dict(int_ranges or {})
    unknown = set(ranges) - {t.name for t in io.inputs}
    if unknown:
        raise InputError(f"input_ranges names inputs the model does not have: {sorted(unknown)}")
    out: dict[str, np.ndarray] = {}
    for t in io.inputs:
        dt = np.dtype(t.dtype)
        if dt.kind == "f":
            if "mask" in t.name.lower():
                out[t.name] = np.zeros(t.shape, dtype=dt)
            else:
                x = _rng(seed, t.name).standard_normal(t.shape, dtype=np.float32)
                out[t.name] = x.astype(dt)
        elif dt.kind in "iu":
            lo, hi = ranges.get(t.name, (0, 1))
            if lo > hi:
                raise InputError(f"input_ranges.{t.name}: low {lo} is above high {hi}")
            x = _rng(seed, t.name).integers(lo, hi, size=t.shape, endpoint=True, dtype=np.int64)
            out[t.name] = x.astype(dt)
        else:
            raise InputError(f"input {t.name!r}: cannot synthesise dtype {t.dtype}")
    return out
