"""The ML Program of a Model protobuf, as the IR (`ir.Program`).

Immediate values are decoded here (they are small, and their declared sizes are checked
against the data they hold); weights stay in their file as `BlobRef`s, each checked now
(type and size against its metadata record) so a broken file fails at load, not mid-run.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from anemll_spec.errors import InputError
from anemll_spec.mlmodel.blob import BlobFile
from anemll_spec.mlmodel.dtypes import BY_PROTO, MilType, bf16_to_fp32, unpack_bits
from anemll_spec.mlmodel.files import inside
from anemll_spec.mlmodel.ir import Arg, BlobRef, Block, Function, Op, Program, VarType
from anemll_spec.mlmodel.limits import as_array, element_count


class WeightFiles:
    """The weight files a program references, memory-mapped once each, resolved inside the
    model's folder (`@model_path/...`)."""

    def __init__(self, model_dir: Path):
        self.model_dir = model_dir  # the folder @model_path refers to; nothing outside is read
        self.files: dict[str, BlobFile] = {}

    def get(self, file_name: Any, where: str) -> BlobFile:
        if not isinstance(file_name, str):
            raise InputError(f"{where}: weight file name must be a string")
        rel = file_name.removeprefix("@model_path/")
        if rel not in self.files:
            path = inside(self.model_dir, rel, where, "weight file")
            if not path.is_file():
                raise InputError(f"{path}: weight file referenced by the program is missing")
            self.files[rel] = BlobFile(path)
        return self.files[rel]

    def ref(self, file_name: Any, offset: int, t: MilType, shape: tuple, where: str) -> BlobRef:
        blob = self.get(file_name, where)
        if any(d is None for d in shape):
            raise InputError(f"{where}: weight with a non-fixed shape")
        blob.check(int(offset), t.name, shape)  # type and size, before anything is read
        return BlobRef(blob, int(offset), t.name, shape)

    def release_pages(self, min_bytes: int = 64 << 20) -> None:
        """Release the mapped pages of files read from heavily since the last call."""
        for blob in self.files.values():
            if blob.touched >= min_bytes:
                blob.release_pages()


def tensor_type(tt, where: str) -> tuple[MilType, tuple[int | None, ...]]:
    t = BY_PROTO.get(tt.dataType)
    if t is None:
        raise InputError(f"{where}: unknown MIL data type {tt.dataType}")
    shape = tuple(
        int(d.constant.size) if d.WhichOneof("dimension") == "constant" else None
        for d in tt.dimensions
    )
    return t, shape


def immediate(t: MilType, shape: tuple[int, ...], kind: str | None, data: Any, where: str) -> Any:
    """An immediate tensor value from its raw data, its size checked against its shape.

    kind: "bytes" (raw little-endian storage), "strings", a list field name, or None
    (no data: only a tensor with no elements may have none)."""
    count = element_count(shape, where)
    if t.name == "string":
        vals = [s.decode() if isinstance(s, bytes) else str(s) for s in (data or [])]
        if len(vals) != count:
            raise InputError(f"{where}: {len(vals)} strings for a shape of {count} values")
        return vals[0] if shape == () else np.array(vals, dtype=object).reshape(shape)
    if t.np_dtype is None:
        raise InputError(f"{where}: {t.name} immediate values are not supported")
    if kind is None:
        if count:
            raise InputError(f"{where}: an immediate value of {count:,} elements holds no data")
        return np.zeros(shape, dtype=t.np_dtype)
    if kind == "bytes":
        raw = np.frombuffer(data, dtype=np.uint8)
        need = -(-count * t.storage_bits // 8)
        if raw.size < need:
            raise InputError(
                f"{where}: immediate value has {raw.size} bytes, too few for {count:,} "
                f"{t.name} values"
            )
        if t.bits:
            return unpack_bits(raw, t.bits, count, t.signed).reshape(shape)
        if t.name == "bf16":
            return bf16_to_fp32(raw[: 2 * count].view(np.uint16)).reshape(shape)
        return raw[: count * t.np_dtype.itemsize].view(t.np_dtype).reshape(shape).copy()
    vals = list(data)
    if len(vals) != count:
        raise InputError(f"{where}: immediate value holds {len(vals)} values, shape needs {count}")
    return as_array(vals, t.np_dtype, t.name, where).reshape(shape)


class _Reader:
    def __init__(self, weights: WeightFiles):
        self.weights = weights

    def value(self, value, where: str) -> tuple[Any, str]:
        """(decoded value, MIL dtype name) of a proto Value."""
        vtype = value.type.WhichOneof("type")
        if vtype == "listType":
            return self.list_value(value, where), "list"
        if vtype != "tensorType":
            raise InputError(f"{where}: values of type {vtype} are not supported")
        t, shape = tensor_type(value.type.tensorType, where)
        if any(d is None for d in shape):
            raise InputError(f"{where}: constant with a non-fixed shape")
        kind = value.WhichOneof("value")
        if kind == "blobFileValue":
            bf = value.blobFileValue
            return self.weights.ref(bf.fileName, bf.offset, t, shape, where), t.name
        if kind != "immediateValue":
            raise InputError(f"{where}: value without data")
        imm = value.immediateValue
        if imm.WhichOneof("value") != "tensor":
            raise InputError(f"{where}: immediate {imm.WhichOneof('value')} values not supported")
        tv = imm.tensor
        field = tv.WhichOneof("value")
        if field == "bytes":
            data: Any = tv.bytes.values
        elif field is None:
            data = None
        else:
            data = getattr(tv, field).values
        return immediate(t, shape, field, data, where), t.name  # type: ignore[arg-type]

    def list_value(self, value, where: str) -> list:
        """An inline list (classify's class labels): its elements decoded, each a tensor of
        the declared element type, as many as a fixed declared length says."""
        lt = value.type.listType
        if value.WhichOneof("value") != "immediateValue" or (
            value.immediateValue.WhichOneof("value") != "list"
        ):
            raise InputError(f"{where}: a list value without its elements")
        items = value.immediateValue.list.values
        if lt.length.WhichOneof("dimension") == "constant" and lt.length.constant.size != len(
            items
        ):
            raise InputError(
                f"{where}: list declares {lt.length.constant.size} elements, holds {len(items)}"
            )
        declared = (
            lt.type.tensorType.dataType if lt.type.WhichOneof("type") == "tensorType" else None
        )
        out = []
        for i, item in enumerate(items):
            if item.type.WhichOneof("type") != "tensorType" or (
                declared is not None and item.type.tensorType.dataType != declared
            ):
                raise InputError(f"{where}: list element {i} is not of the list's element type")
            out.append(self.value(item, f"{where} element {i}")[0])
        return out

    def var_type(self, nvt, where: str) -> VarType:
        vt = nvt.type
        kind = vt.WhichOneof("type")
        if kind == "tensorType":
            t, shape = tensor_type(vt.tensorType, where)
            return VarType(nvt.name, t.name, shape)
        if kind == "stateType":
            wrapped = vt.stateType.wrappedType
            t, shape = tensor_type(wrapped.tensorType, where)
            return VarType(nvt.name, t.name, shape, is_state=True)
        if kind == "dictionaryType":  # classify's {label: probability}
            return VarType(nvt.name, "dict", ())
        return VarType(nvt.name, kind or "unknown", ())

    def block(self, block, where: str) -> Block:
        inputs = [self.var_type(v, f"{where} input {v.name}") for v in block.inputs]
        ops = [self.op(index, op) for index, op in enumerate(block.operations)]
        return Block(inputs, ops, list(block.outputs))

    def op(self, index: int, op) -> Op:
        name = op.outputs[0].name if op.outputs else f"{op.type}_{index}"
        if "name" in op.attributes:
            name, _ = self.value(op.attributes["name"], f"op {index}")
        where = f"op {index} '{name}' ({op.type})"
        args: dict[str, list[Arg]] = {}
        for param, argument in op.inputs.items():
            bound = []
            for binding in argument.arguments:
                if binding.WhichOneof("binding") == "name":
                    bound.append(Arg(ref=binding.name))
                else:
                    val, dt = self.value(binding.value, f"{where} input {param}")
                    bound.append(Arg(value=val, dtype=dt))
            args[param] = bound
        outputs = [self.var_type(o, where) for o in op.outputs]
        attrs = {}
        for key, val in op.attributes.items():
            if key == "name":
                continue
            value, dt = self.value(val, f"{where} attribute {key}")
            if op.type == "const" or key in args:
                attrs[key] = (value, dt)
            else:  # iOS16 constexpr ops carry their parameters as attributes
                args[key] = [Arg(value=value, dtype=dt)]
        blocks = [self.block(b, f"{where} block {i}") for i, b in enumerate(op.blocks)]
        return Op(index, op.type, str(name), args, outputs, attrs, blocks)

    def function(self, fn_proto, fn_name: str) -> Function:
        opset = fn_proto.opset
        if opset not in fn_proto.block_specializations:
            raise InputError(f"function '{fn_name}': no block for opset {opset}")
        block = fn_proto.block_specializations[opset]
        where = f"function '{fn_name}'"
        inputs = [self.var_type(v, f"{where} input {v.name}") for v in fn_proto.inputs]
        ops = [self.op(index, op) for index, op in enumerate(block.operations)]
        return Function(fn_name, opset, inputs, list(block.outputs), ops)


def read_program(spec, weights: WeightFiles, where: Path | str, only: str | None = None) -> Program:
    """The ML Program of a Model message (`only`: parse just that function, by name)."""
    if spec.WhichOneof("Type") != "mlProgram":
        raise InputError(f"{where}: a {spec.WhichOneof('Type')} model, not an ML Program")
    reader = _Reader(weights)
    protos = spec.mlProgram.functions
    default = spec.description.defaultFunctionName or "main"
    if default not in protos and protos:
        default = next(iter(protos))
    if only is not None and only not in protos:  # parse none, but say what there is
        raise InputError(f"{where}: no function '{only}' (has: {', '.join(sorted(protos))})")
    functions = {}
    for name in protos:
        if only is None or name == only:
            try:
                functions[name] = reader.function(protos[name], name)
            except InputError as exc:  # said at the op: name the model (and function) too
                msg = str(exc)
                if msg.startswith(str(where)):  # a weight file of the model, named in full
                    raise
                fn = "" if msg.startswith("function '") else f"function '{name}': "
                raise InputError(f"{where}: {fn}{msg}") from None
    order = {f.name: [i.name for i in f.input] for f in spec.description.functions}
    order.setdefault(default, [i.name for i in spec.description.input])
    return Program(functions, default, spec.specificationVersion, order)
