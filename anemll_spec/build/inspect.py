"""Inspect any saved Core ML model from disk: I/O, ops, weights, FLOPs, compression.

Everything is read back from the files (the model proto or model.mil, and the blob
headers of weight.bin), never from builder memory, so `inspect` reports what a
device would load. "Weight bytes" is anemll-bench's definition: the bytes of the
files under Data/com.apple.CoreML/weights (weights/ in a compiled model).

weight.bin layout (coremltools' MIL blob storage, version 2): a 64-byte file header
(uint32 blob count, uint32 version), then per blob a 64-byte metadata record
(uint32 sentinel 0xDEADBEEF, uint32 data type, uint64 size in bytes, uint64 data
offset, ...) followed by the data, each record 64-byte aligned.
"""

from __future__ import annotations

import hashlib
import math
import re
import struct
from collections import Counter
from pathlib import Path

from anemll_spec.build.program_info import OpInfo, ProgramInfo, read_package
from anemll_spec.errors import InputError

SENTINEL = 0xDEADBEEF
TARGET_OF_SPEC = {
    4: "iOS13",
    5: "iOS14",
    6: "iOS15",
    7: "iOS16",
    8: "iOS17",
    9: "iOS18",
    10: "iOS26",
}
_OPSET_TARGET = {"CoreML5": "iOS15", "CoreML6": "iOS16", "CoreML7": "iOS17", "CoreML8": "iOS18"}


def weights_dir(path: Path) -> Path:
    path = Path(path)
    if path.suffix == ".mlmodelc":
        return path / "weights"
    return path / "Data" / "com.apple.CoreML" / "weights"


def weight_files(path: Path) -> list[Path]:
    d = weights_dir(path)
    return sorted(p for p in d.rglob("*") if p.is_file()) if d.is_dir() else []


def weights_sha256(path: Path) -> str:
    """sha256 over the weight files (relative name, then content), in name order."""
    h = hashlib.sha256()
    base = weights_dir(path)
    for p in weight_files(path):
        h.update(str(p.relative_to(base)).encode() + b"\0")
        with p.open("rb") as f:
            while chunk := f.read(1 << 23):
                h.update(chunk)
    return h.hexdigest()


def read_blob_index(weight_bin: Path) -> list[dict]:
    """Every blob's metadata record: offset of the record, data type, size, data offset."""
    size = weight_bin.stat().st_size
    out = []
    with weight_bin.open("rb") as f:
        head = f.read(64)
        if len(head) < 8:
            raise InputError(f"{weight_bin}: too short to be a weight file")
        count, version = struct.unpack_from("<II", head)
        pos = 64
        for _ in range(count):
            f.seek(pos)
            rec = f.read(64)
            if len(rec) < 32:
                raise InputError(
                    f"{weight_bin}: truncated at blob record {len(out)} (offset {pos})"
                )
            sentinel, dtype, nbytes, offset = struct.unpack_from("<IIQQ", rec)
            if sentinel != SENTINEL:
                raise InputError(
                    f"{weight_bin}: bad blob record at offset {pos} (weight file corrupt)"
                )
            if offset + nbytes > size:
                raise InputError(
                    f"{weight_bin}: blob at {offset} runs past the end (file truncated)"
                )
            out.append({"record": pos, "dtype": dtype, "size": nbytes, "offset": offset})
            pos = -(-(offset + nbytes) // 64) * 64
    return out


def _prod(shape) -> int:
    return math.prod(shape) if shape else 1


def _const_values(info: ProgramInfo) -> dict[str, object]:
    return {
        op.outputs[0][0]: op.values.get("val")
        for op in info.ops
        if op.type == "const" and op.outputs
    }


def _truthy(v) -> bool:
    if isinstance(v, list):
        v = v[0] if v else False
    return str(v).lower() in ("true", "1", "bool(true)")


def op_flops(op: OpInfo, shapes: dict, consts: dict) -> int:
    """2 x multiply-accumulates of one op (0 for ops that do no MACs)."""
    out = op.outputs[0][1] if op.outputs else None

    def shape_of(param: str):
        names = op.inputs.get(param) or []
        return shapes.get(names[0]) if names else None

    if out is None:
        return 0
    t = op.type
    if t == "conv":
        w = shape_of("weight")
        return 2 * _prod(out) * _prod(w[1:]) if w else 0
    if t == "linear":
        w = shape_of("weight")
        return 2 * _prod(out) * w[-1] if w else 0
    if t == "matmul":
        x = shape_of("x")
        if not x:
            return 0
        tx = _truthy(
            consts.get((op.inputs.get("transpose_x") or [""])[0], op.values.get("transpose_x"))
        )
        k = x[-2] if tx and len(x) > 1 else x[-1]
        return 2 * _prod(out) * k
    if t == "scaled_dot_product_attention":
        q, k, v = shape_of("query"), shape_of("key"), shape_of("value")
        if not (q and k and v):
            return 0
        batch, length, e = _prod(q[:-2]), q[-2], q[-1]
        s, ev = k[-2], v[-1]
        return 2 * batch * length * s * e + 2 * batch * length * s * ev
    if t == "einsum":
        eq = consts.get((op.inputs.get("equation") or [""])[0]) or op.values.get("equation")
        eq = (eq[0] if isinstance(eq, list) else eq) or ""
        eq = eq.decode() if isinstance(eq, bytes) else str(eq)
        eq = re.sub(r'^string\("|"\)$', "", eq)
        names = op.inputs.get("values") or []
        if "->" not in eq or len(names) != 2:
            return 0
        lhs = eq.split("->")[0].split(",")
        sizes: dict[str, int] = {}
        for letters, n in zip(lhs, names, strict=False):
            shp = shapes.get(n)
            if not shp or len(shp) != len(letters):
                return 0
            sizes.update(zip(letters, shp, strict=True))
        return 2 * _prod(sizes.values())
    return 0


def _nbits(dtype: str) -> int | None:
    m = re.fullmatch(r"u?int(\d+)", dtype)
    return int(m.group(1)) if m else None


def op_compression(op: OpInfo) -> dict | None:
    """Which constexpr op stores a weight, and how (nbits, granularity, group/block)."""
    if not op.type.startswith("constexpr_"):
        return None
    vt = op.vtypes  # param -> (dtype, shape), for blobs and inline values alike
    out_shape = op.outputs[0][1] if op.outputs else None
    info: dict = {"op": op.type, "name": op.outputs[0][0] if op.outputs else op.name}
    if op.type == "constexpr_lut_to_dense":
        lut, idx = vt.get("lut"), vt.get("indices")
        if lut and len(lut[1]) == 1:  # iOS16 form: one LUT, packed uint8 indices
            info.update(kind="palettize", nbits=int(math.log2(lut[1][0])), granularity="per_tensor")
        elif lut and out_shape:
            info.update(kind="palettize", nbits=_nbits(idx[0]) if idx else None)
            axes = [a for a in range(len(out_shape)) if lut[1][a] > 1]
            if not axes:
                info["granularity"] = "per_tensor"
            else:
                a = axes[0]
                info.update(
                    granularity="per_grouped_channel", axis=a, group_size=out_shape[a] // lut[1][a]
                )
        return info
    if op.type in ("constexpr_blockwise_shift_scale", "constexpr_affine_dequantize"):
        data = vt.get("data") or vt.get("quantized_data")
        scale = vt.get("scale")
        info.update(
            kind="quantize",
            dtype=data[0] if data else None,
            nbits=_nbits(data[0]) if data else None,
        )
        if scale is None or not out_shape or _prod(scale[1]) == 1:
            info["granularity"] = "per_tensor"
        elif op.type == "constexpr_affine_dequantize":
            info["granularity"] = "per_channel"
        else:
            blocks = [o // s for o, s in zip(out_shape, scale[1], strict=False)]
            partial = [b for b, o in zip(blocks, out_shape, strict=False) if 1 < b < o]
            if partial:
                info.update(granularity="per_block", block_size=partial[0])
            else:
                info["granularity"] = "per_channel"
        return info
    info["kind"] = op.type.removeprefix("constexpr_")
    return info


def _read_program(path: Path) -> tuple[ProgramInfo, str]:
    if path.suffix == ".mlpackage":
        return read_package(path), "mlpackage"
    if path.suffix == ".mlmodelc":
        from anemll_spec.build.miltext import parse_mil_text

        mil = path / "model.mil"
        if not mil.is_file():
            raise InputError(f"{path}: compiled model has no model.mil (not an ML Program?)")
        info = parse_mil_text(mil.read_text(errors="replace"), where=mil)
        from anemll_spec.model_io import read_compiled_metadata

        meta = read_compiled_metadata(path) or {}
        if meta.get("specificationVersion") is not None:
            info.spec_version = int(meta["specificationVersion"])
        return info, "mlmodelc"
    raise InputError(f"{path}: not a Core ML model (expected .mlpackage or .mlmodelc)")


def deployment_target(info: ProgramInfo) -> str | None:
    if info.spec_version in TARGET_OF_SPEC:
        return TARGET_OF_SPEC[info.spec_version]
    if info.opset in _OPSET_TARGET:
        return _OPSET_TARGET[info.opset]
    m = re.fullmatch(r"ios(\d+)", info.opset or "")
    return f"iOS{m.group(1)}" if m else None


def check_blobs(path: Path, info: ProgramInfo) -> None:
    """Every blob the program references exists in its weight file (else: corrupt)."""
    base = weights_dir(path)
    index_cache: dict[str, set[int]] = {}
    for op in info.ops:
        for b in op.blobs:
            rel = b.file.replace("@model_path/weights/", "")
            if rel not in index_cache:
                f = base / rel
                if not f.is_file():
                    raise InputError(
                        f"{path}: weight file {rel} referenced by {op.type} is missing"
                    )
                index_cache[rel] = {r["record"] for r in read_blob_index(f)}
            if b.offset not in index_cache[rel]:
                raise InputError(
                    f"{path}: {op.type} {op.name!r} points to no blob at offset {b.offset}"
                )


def inspect_model(path: str | Path, *, sha: bool = True) -> dict:
    """Everything `anemll-spec inspect` prints, as a JSON-able dict."""
    p = Path(path)
    if not p.exists():
        raise InputError(f"{p}: no such model")
    info, kind = _read_program(p)
    check_blobs(p, info)
    shapes = info.shapes()
    consts = _const_values(info)
    ops = Counter(op.type for op in info.ops)
    flops_by_op: Counter = Counter()
    for op in info.ops:
        f = op_flops(op, shapes, consts)
        if f:
            flops_by_op[op.type] += f
    files = weight_files(p)
    base = weights_dir(p)
    compression = [c for op in info.ops if (c := op_compression(op))]
    return {
        "path": str(p),
        "kind": kind,
        "deployment_target": deployment_target(info),
        "spec_version": info.spec_version,
        "opset": info.opset,
        "inputs": [t.to_json() for t in info.inputs],
        "outputs": [t.to_json() for t in info.outputs],
        "states": [t.to_json() for t in info.states],
        "ops": dict(sorted(ops.items())),
        "weight_bytes": sum(f.stat().st_size for f in files),
        "weight_files": {str(f.relative_to(base)): f.stat().st_size for f in files},
        "blobs": sum(len(op.blobs) for op in info.ops),
        "flops": sum(flops_by_op.values()),
        "flops_by_op": dict(flops_by_op),
        "compression": compression,
        "weights_sha256": weights_sha256(p) if sha else None,
    }
