"""What a saved model holds, read back from its files: I/O, ops, weights, FLOPs, compression.

Everything comes from the files (the protobuf or model.mil, and the weight files), never
from builder memory, so `inspect` reports what a device would load. "Weight bytes" is
anemll-bench's definition: the bytes of the files under Data/com.apple.CoreML/weights
(weights/ in a compiled model); of a multi-function model, whose files hold every
function's weights, the bytes of the blobs the default function references (each once). Every weight the program references is checked against
its file's metadata record (type, size) while the program is read.
"""

from __future__ import annotations

import contextlib
import hashlib
import math
import mmap
import os
import re
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

from anemll_spec.mlmodel.files import ModelFiles, locate, weight_files

__all__ = ["inspect_model", "op_compression", "op_flops", "weight_files", "weights_sha256"]
from anemll_spec.mlmodel.ir import BlobRef, Op, VarType, walk
from anemll_spec.mlmodel.model import SavedModel

_SLICE = 1 << 26  # a multiple of every page size (madvise takes page-aligned starts)
_DONTNEED = getattr(mmap, "MADV_DONTNEED", None)  # absent on some platforms: just hash


def weights_sha256(path: Path | ModelFiles) -> str:
    """sha256 over the weight files (relative name, then content), in name order."""
    located = path if isinstance(path, ModelFiles) else locate(path)
    h = hashlib.sha256()
    base = located.weights_dir
    for p in weight_files(located):
        h.update(str(p.relative_to(base)).encode() + b"\0")
        with p.open("rb") as f:
            size = os.fstat(f.fileno()).st_size
            if not size:
                continue
            # hashed straight from the page cache (no copy into Python buffers), in slices
            # so the GIL-free hashing of each slice stays cache-friendly; each hashed slice
            # is dropped from this process's pages (Linux; macOS may only deactivate them),
            # or a 1 GB file adds 1 GB to its RSS (a build's peak, the program still held)
            with mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as mm, memoryview(mm) as mv:
                for i in range(0, size, _SLICE):
                    h.update(mv[i : i + _SLICE])
                    if _DONTNEED is not None:
                        with contextlib.suppress(OSError):  # advice (locked memory refuses)
                            mm.madvise(_DONTNEED, i, min(_SLICE, size - i))
    return h.hexdigest()


def _prod(shape) -> int:
    return math.prod(shape) if shape else 1


class _View:
    """Types and constant values of a function's variables, for the per-op figures."""

    def __init__(self, fn_inputs: list[VarType], ops: list[Op]):
        self.types: dict[str, VarType] = {v.name: v for v in fn_inputs}
        self.consts: dict[str, Any] = {}
        for op in walk(ops):
            for b in op.blocks:
                self.types.update({v.name: v for v in b.inputs})
            self.types.update({o.name: o for o in op.outputs})
            if op.type == "const" and op.outputs and "val" in op.attrs:
                value = op.attrs["val"][0]
                if not isinstance(value, BlobRef):  # small values only; weights stay on disk
                    self.consts[op.outputs[0].name] = value

    def shape(self, op: Op, param: str) -> tuple | None:
        """Static shape of an argument (None: absent or not fixed)."""
        ds = self.dtype_shape(op, param)
        return None if ds is None or any(d is None for d in ds[1]) else ds[1]

    def dtype_shape(self, op: Op, param: str) -> tuple[str, tuple] | None:
        args = op.inputs.get(param) or []
        if not args:
            return None
        a = args[0]
        if a.ref is not None:
            v = self.types.get(a.ref)
            return None if v is None else (v.dtype, tuple(v.shape))
        dt, shape = a.type_of()
        return (dt or "", shape or ())

    def value(self, op: Op, param: str) -> Any:
        args = op.inputs.get(param) or []
        if not args:
            return None
        a = args[0]
        if a.ref is not None:
            return self.consts.get(a.ref)
        return None if isinstance(a.value, BlobRef) else a.value


def _truthy(v: Any) -> bool:
    return bool(np.asarray(v).reshape(-1)[0]) if v is not None and np.size(v) else False


def op_flops(op: Op, view: _View) -> int:
    """2 x multiply-accumulates of one op (0 for ops that do no MACs)."""
    out = op.outputs[0].static_shape if op.outputs else None
    if out is None:
        return 0
    t = op.type
    if t == "conv":
        w = view.shape(op, "weight")
        return 2 * _prod(out) * _prod(w[1:]) if w else 0
    if t == "conv_transpose":  # every input element meets C_out / groups x kernel weights
        x, w = view.shape(op, "x"), view.shape(op, "weight")
        return 2 * _prod(x) * _prod(w[1:]) if x and w else 0
    if t == "linear":
        w = view.shape(op, "weight")
        return 2 * _prod(out) * w[-1] if w else 0
    if t == "matmul":
        x = view.shape(op, "x")
        if not x:
            return 0
        tx = _truthy(view.value(op, "transpose_x"))
        k = x[-2] if tx and len(x) > 1 else x[-1]
        return 2 * _prod(out) * k
    if t == "scaled_dot_product_attention":
        q, k, v = view.shape(op, "query"), view.shape(op, "key"), view.shape(op, "value")
        if not (q and k and v):
            return 0
        batch, length, e = _prod(q[:-2]), q[-2], q[-1]
        s, ev = k[-2], v[-1]
        return 2 * batch * length * s * e + 2 * batch * length * s * ev
    if t == "einsum":
        eq = view.value(op, "equation")
        eq = str(eq) if eq is not None else ""
        values = op.inputs.get("values") or []
        if "->" not in eq or len(values) != 2:
            return 0
        sizes: dict[str, int] = {}
        for letters, a in zip(eq.split("->")[0].split(","), values, strict=False):
            var = view.types.get(a.ref or "")
            shp = var.static_shape if var is not None else None
            if not shp or len(shp) != len(letters):
                return 0
            sizes.update(zip(letters, shp, strict=True))
        return 2 * _prod(sizes.values())
    return 0


def _nbits(dtype: str | None) -> int | None:
    m = re.fullmatch(r"u?int(\d+)", dtype or "")
    return int(m.group(1)) if m else None


def op_compression(op: Op, view: _View) -> dict | None:
    """Which constexpr op stores a weight, and how (nbits, granularity, group/block)."""
    if not op.type.startswith("constexpr_"):
        return None
    out_shape = op.outputs[0].static_shape if op.outputs else None
    info: dict = {"op": op.type, "name": op.outputs[0].name if op.outputs else op.name}
    if op.type == "constexpr_lut_to_dense":
        lut, idx = view.dtype_shape(op, "lut"), view.dtype_shape(op, "indices")
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
        data = view.dtype_shape(op, "data") or view.dtype_shape(op, "quantized_data")
        scale = view.dtype_shape(op, "scale")
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
            # per block: more than one scale per output channel, i.e. a block smaller
            # than its axis on an axis besides the output one (blocks of 1 included: a
            # scale on two axes), not one scale per output channel
            pairs = [(o // s, o) for o, s in zip(out_shape, scale[1], strict=False) if s > 1]
            partial = [b for b, o in pairs if 1 < b < o]
            if len(partial) > 1:  # blocks on several axes: the block's shape, per axis
                block = [o // s for o, s in zip(out_shape, scale[1], strict=False)]
                info.update(granularity="per_block", block_size=block)
            elif partial:
                info.update(granularity="per_block", block_size=partial[0])
            elif len(pairs) > 1:
                info.update(granularity="per_block", block_size=1)
            else:
                info["granularity"] = "per_channel"
        return info
    info["kind"] = op.type.removeprefix("constexpr_")
    return info


def _blobs(op: Op) -> list[BlobRef]:
    refs = [a.value for args in op.inputs.values() for a in args if isinstance(a.value, BlobRef)]
    return refs + [v[0] for v in op.attrs.values() if isinstance(v[0], BlobRef)]


def _blob_bytes(refs: list[BlobRef]) -> int:
    """Bytes of the distinct blobs referenced (each its metadata record's size)."""
    seen = {(str(r.blob.path), r.offset): r for r in refs}
    return sum(r.blob.meta(r.offset).size for r in seen.values())


def inspect_model(path: str | Path, *, sha: bool = True) -> dict:
    """Everything `anemll-spec inspect` prints, as a JSON-able dict."""
    model = SavedModel(locate(path))
    io = model.io()
    opset, ops_list, fn_inputs, fn_names, fn_name = "", [], [], [], None
    model_type = "mlProgram" if model.spec is None else model.spec.WhichOneof("Type")
    if model_type == "mlProgram":
        prog = model.program()
        fn = prog.function(None, str(model.path))
        opset, ops_list, fn_inputs = fn.opset, list(walk(fn.ops)), fn.inputs
        fn_names, fn_name = sorted(prog.functions), fn.name
    view = _View(fn_inputs, ops_list)
    ops = Counter(op.type for op in ops_list)
    flops_by_op: Counter = Counter()
    for op in ops_list:
        f = op_flops(op, view)
        if f:
            flops_by_op[op.type] += f
    files = model.weight_files()
    base = model.files.weights_dir
    compression = [c for op in ops_list if (c := op_compression(op, view))]
    blobs = [r for op in ops_list for r in _blobs(op)]
    weight_bytes = sum(f.stat().st_size for f in files)
    if len(fn_names) > 1:  # the files hold every function's weights: count the run one's
        weight_bytes = _blob_bytes(blobs)
    return {
        "path": str(model.path),
        "kind": model.kind,
        "model_type": model_type,  # mlProgram; else ops, weights and FLOPs are not read
        "deployment_target": model.deployment_target(opset),
        "spec_version": model.spec_version,
        "opset": opset,
        "inputs": [t.to_json() for t in io.inputs],
        "outputs": [t.to_json() for t in io.outputs],
        "states": [t.to_json() for t in io.states],
        # ops, blobs, FLOPs and (of a multi-function model) weight_bytes are the function's
        # that runs when none is named
        "function": fn_name,
        "functions": fn_names,
        "ops": dict(sorted(ops.items())),
        "weight_bytes": weight_bytes,
        "weight_files": {str(f.relative_to(base)): f.stat().st_size for f in files},
        "blobs": len(blobs),
        "flops": sum(flops_by_op.values()),
        "flops_by_op": dict(flops_by_op),
        "compression": compression,
        "weights_sha256": weights_sha256(model.files) if sha else None,
    }
