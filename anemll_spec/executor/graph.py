"""Parse a saved ML Program (protobuf) into plain records: functions, ops, arguments, values.

Nothing here computes: `Op` records carry resolved arguments (a variable name, or a decoded
constant value) and declared output types, so a later lowering step can rewrite the op list
(fuse, fold, re-layout) before kernels are prepared.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from anemll_spec.errors import InputError
from anemll_spec.executor.blob import BlobFile
from anemll_spec.executor.dtypes import BY_PROTO, MilType, bf16_to_fp32, unpack_bits


@dataclass(frozen=True)
class VarType:
    """Declared type of a variable: MIL dtype name and shape (None: a dimension not fixed)."""

    name: str
    dtype: str
    shape: tuple[int | None, ...]
    is_state: bool = False

    @property
    def static_shape(self) -> tuple[int, ...] | None:
        return None if any(d is None for d in self.shape) else tuple(self.shape)  # type: ignore


@dataclass(frozen=True)
class BlobRef:
    """A constant stored in a weight file, decoded only when asked for (and not kept), so
    compressed weights are never all unpacked at once while a program is prepared."""

    blob: BlobFile
    offset: int
    dtype: str
    shape: tuple[int, ...]

    def load(self) -> np.ndarray:
        return self.blob.read(self.offset, self.dtype, self.shape)


def materialize(value: Any) -> Any:
    return value.load() if isinstance(value, BlobRef) else value


@dataclass(frozen=True)
class Arg:
    """One argument binding: a variable reference or an inline constant value."""

    ref: str | None = None
    value: Any = None
    dtype: str | None = None  # MIL dtype of an inline value


@dataclass
class Op:
    index: int  # position in the function's block
    type: str
    name: str
    inputs: dict[str, list[Arg]]
    outputs: list[VarType]
    attrs: dict[str, Any] = field(default_factory=dict)  # "val" of const ops, etc.

    def where(self) -> str:
        return f"op {self.index} '{self.name}' ({self.type})"


@dataclass
class Function:
    name: str
    opset: str
    inputs: list[VarType]  # includes states (is_state=True)
    outputs: list[str]
    ops: list[Op]


class ValueDecoder:
    """Decodes proto `Value`s; owns the memory-mapped weight files it opened."""

    def __init__(self, model_dir: Path):
        self.model_dir = model_dir  # Data/com.apple.CoreML
        self.files: dict[str, BlobFile] = {}

    def blob(self, file_name: str) -> BlobFile:
        rel = file_name.removeprefix("@model_path/")
        if rel not in self.files:
            path = self.model_dir / rel
            if not path.is_file():
                raise InputError(f"{path}: weight file referenced by the program is missing")
            self.files[rel] = BlobFile(path)
        return self.files[rel]

    def release_pages(self, min_bytes: int = 64 << 20) -> None:
        """Release the mapped pages of files read from heavily since the last call."""
        for blob in self.files.values():
            if blob.touched >= min_bytes:
                blob.release_pages()

    def decode(self, value, where: str) -> tuple[Any, str]:
        """(decoded value, MIL dtype name) of a proto Value."""
        vtype = value.type.WhichOneof("type")
        if vtype != "tensorType":
            raise InputError(f"{where}: values of type {vtype} are not supported")
        t, shape = tensor_type(value.type.tensorType, where)
        if any(d is None for d in shape):
            raise InputError(f"{where}: constant with a non-fixed shape")
        kind = value.WhichOneof("value")
        if kind == "blobFileValue":
            bf = value.blobFileValue
            blob = self.blob(bf.fileName)
            blob.meta(bf.offset)  # validate now: a broken file fails at load, not mid-run
            return BlobRef(blob, bf.offset, t.name, shape), t.name  # type: ignore[arg-type]
        if kind != "immediateValue":
            raise InputError(f"{where}: value without data")
        imm = value.immediateValue
        if imm.WhichOneof("value") != "tensor":
            raise InputError(f"{where}: immediate {imm.WhichOneof('value')} values not supported")
        return _immediate_tensor(imm.tensor, t, shape, where), t.name  # type: ignore


def tensor_type(tt, where: str) -> tuple[MilType, tuple[int | None, ...]]:
    t = BY_PROTO.get(tt.dataType)
    if t is None:
        raise InputError(f"{where}: unknown MIL data type {tt.dataType}")
    shape = tuple(
        int(d.constant.size) if d.WhichOneof("dimension") == "constant" else None
        for d in tt.dimensions
    )
    return t, shape


def _immediate_tensor(tv, t: MilType, shape: tuple[int, ...], where: str) -> Any:
    count = int(np.prod(shape, dtype=np.int64))
    field_name = tv.WhichOneof("value")
    if t.name == "string":
        vals = [s.decode() if isinstance(s, bytes) else s for s in tv.strings.values]
        return vals[0] if shape == () else np.array(vals, dtype=object).reshape(shape)
    if field_name == "bytes":
        raw = np.frombuffer(tv.bytes.values, dtype=np.uint8)
        if t.bits:
            return unpack_bits(raw, t.bits, count, t.signed).reshape(shape)
        if t.name == "bf16":
            return bf16_to_fp32(raw.view(np.uint16)[:count]).reshape(shape)
        if t.np_dtype is None:
            raise InputError(f"{where}: {t.name} immediate values are not supported")
        return raw.view(t.np_dtype)[:count].reshape(shape).copy()
    if field_name is None:  # an empty tensor
        return np.zeros(shape, dtype=t.np_dtype)
    vals = getattr(tv, field_name).values
    if t.np_dtype is None:
        raise InputError(f"{where}: {t.name} immediate values are not supported")
    return np.array(list(vals)).astype(t.np_dtype).reshape(shape)


def _var_type(nvt, where: str) -> VarType:
    vt = nvt.type
    kind = vt.WhichOneof("type")
    if kind == "tensorType":
        t, shape = tensor_type(vt.tensorType, where)
        return VarType(nvt.name, t.name, shape)
    if kind == "stateType":
        wrapped = vt.stateType.wrappedType
        t, shape = tensor_type(wrapped.tensorType, where)
        return VarType(nvt.name, t.name, shape, is_state=True)
    return VarType(nvt.name, kind or "unknown", ())


def parse_function(fn_proto, fn_name: str, decoder: ValueDecoder) -> Function:
    opset = fn_proto.opset
    if opset not in fn_proto.block_specializations:
        raise InputError(f"function '{fn_name}': no block for opset {opset}")
    block = fn_proto.block_specializations[opset]
    inputs = [_var_type(v, f"function '{fn_name}' input {v.name}") for v in fn_proto.inputs]
    ops = []
    for index, op in enumerate(block.operations):
        name = op.outputs[0].name if op.outputs else f"{op.type}_{index}"
        if "name" in op.attributes:
            name, _ = decoder.decode(op.attributes["name"], f"op {index}")
        where = f"op {index} '{name}' ({op.type})"
        if len(op.blocks):
            raise InputError(f"{where}: control flow (nested blocks) is not supported")
        args: dict[str, list[Arg]] = {}
        for param, argument in op.inputs.items():
            bound = []
            for binding in argument.arguments:
                if binding.WhichOneof("binding") == "name":
                    bound.append(Arg(ref=binding.name))
                else:
                    val, dt = decoder.decode(binding.value, f"{where} input {param}")
                    bound.append(Arg(value=val, dtype=dt))
            args[param] = bound
        outputs = [_var_type(o, where) for o in op.outputs]
        attrs = {}
        for key, val in op.attributes.items():
            if key == "name":
                continue
            value, dt = decoder.decode(val, f"{where} attribute {key}")
            if op.type == "const" or key in args:
                attrs[key] = (value, dt)
            else:  # iOS16 constexpr ops carry their parameters as attributes
                args[key] = [Arg(value=value, dtype=dt)]
        ops.append(Op(index, op.type, str(name), args, outputs, attrs))
    return Function(fn_name, opset, inputs, list(block.outputs), ops)
