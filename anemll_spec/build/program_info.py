"""A neutral view of an ML Program's ops, read from a proto or from model.mil text.

Both readers produce `ProgramInfo`; `inspect` derives op counts, FLOPs and the
compression of every weight from it, so packages and compiled models are treated
alike.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from anemll_spec.errors import InputError
from anemll_spec.model_io import TensorInfo


@dataclass
class BlobRef:
    param: str
    dtype: str  # MIL spelling: fp16, uint6, int4, ...
    shape: tuple[int, ...]
    offset: int
    file: str


@dataclass
class OpInfo:
    type: str
    name: str
    inputs: dict[str, list[str]]  # parameter -> argument var names
    outputs: list[tuple[str, tuple[int, ...] | None, str]]  # (name, shape, dtype)
    blobs: list[BlobRef] = field(default_factory=list)
    values: dict[str, object] = field(default_factory=dict)  # small immediate values
    vtypes: dict[str, tuple[str, tuple[int, ...]]] = field(default_factory=dict)  # param -> type


@dataclass
class ProgramInfo:
    inputs: list[TensorInfo]
    outputs: list[TensorInfo]
    states: list[TensorInfo]
    ops: list[OpInfo]
    opset: str = ""
    spec_version: int | None = None

    def shapes(self) -> dict[str, tuple[int, ...]]:
        out = {t.name: t.shape for t in self.inputs + self.states}
        for op in self.ops:
            for name, shape, _ in op.outputs:
                if shape is not None:
                    out[name] = shape
        return out


# ---------------------------------------------------------------- proto reader


def _dtype_name(enum_value: int) -> str:
    from coremltools.proto import MIL_pb2

    return MIL_pb2.DataType.Name(enum_value).lower().replace("float", "fp")


def _tensor_shape(vt) -> tuple[int, ...] | None:
    if vt.WhichOneof("type") != "tensorType":
        return None
    dims = []
    for d in vt.tensorType.dimensions:
        if d.WhichOneof("dimension") != "constant":
            return None
        dims.append(int(d.constant.size))
    return tuple(dims)


def _immediate(value):
    """Small immediate tensor values (ints, bools, floats, strings) as Python lists."""
    if value.WhichOneof("value") != "immediateValue":
        return None
    t = value.immediateValue.tensor
    kind = t.WhichOneof("value")
    if kind is None:
        return None
    return list(getattr(t, kind).values)


def _blob(param: str, value) -> BlobRef | None:
    if value.WhichOneof("value") != "blobFileValue":
        return None
    tt = value.type.tensorType
    return BlobRef(
        param=param,
        dtype=_dtype_name(tt.dataType),
        shape=_tensor_shape(value.type) or (),
        offset=int(value.blobFileValue.offset),
        file=value.blobFileValue.fileName,
    )


def from_proto(spec) -> ProgramInfo:
    from anemll_spec.model_io import ModelIO, _from_proto

    if spec.WhichOneof("Type") != "mlProgram":
        io: ModelIO = _from_proto(spec, "mlpackage")
        return ProgramInfo(io.inputs, io.outputs, io.states, [], "", spec.specificationVersion)
    io = _from_proto(spec, "mlpackage")
    fn_name = spec.description.defaultFunctionName or "main"
    funcs = spec.mlProgram.functions
    if fn_name not in funcs:
        fn_name = next(iter(funcs))
    fn = funcs[fn_name]
    block = fn.block_specializations[fn.opset]
    ops: list[OpInfo] = []

    def walk(blk) -> None:
        for op in blk.operations:
            inputs, blobs, values, vtypes = {}, [], {}, {}
            for param, arg in op.inputs.items():
                names = []
                for a in arg.arguments:
                    if a.WhichOneof("binding") == "name":
                        names.append(a.name)
                    else:
                        vt = a.value.type
                        if vt.WhichOneof("type") == "tensorType":
                            vtypes[param] = (
                                _dtype_name(vt.tensorType.dataType),
                                _tensor_shape(vt) or (),
                            )
                        b = _blob(param, a.value)
                        if b:
                            blobs.append(b)
                        else:
                            values[param] = _immediate(a.value)
                inputs[param] = names
            name = ""
            for key, val in op.attributes.items():
                if key == "name":
                    name = (_immediate(val) or [b""])[0]
                    name = name.decode() if isinstance(name, bytes) else str(name)
                    continue
                if val.type.WhichOneof("type") == "tensorType":
                    vtypes[key] = (
                        _dtype_name(val.type.tensorType.dataType),
                        _tensor_shape(val.type) or (),
                    )
                b = _blob(key, val)
                if b:
                    blobs.append(b)
                else:
                    values[key] = _immediate(val)
            outs = []
            for o in op.outputs:
                shape = _tensor_shape(o.type)
                dt = o.type.tensorType.dataType if o.type.WhichOneof("type") == "tensorType" else 0
                outs.append((o.name, shape, _dtype_name(dt) if dt else ""))
            ops.append(OpInfo(op.type, name, inputs, outs, blobs, values, vtypes))
            for b in op.blocks:
                walk(b)

    walk(block)
    return ProgramInfo(io.inputs, io.outputs, io.states, ops, fn.opset, spec.specificationVersion)


def read_package(pkg: Path) -> ProgramInfo:
    from anemll_spec.model_io import load_spec_proto

    return from_proto(load_spec_proto(pkg))


def require(cond: bool, where: Path, what: str) -> None:
    if not cond:
        raise InputError(f"{where}: {what}")
