"""Read the `model.mil` text of a compiled model (.mlmodelc) into a ProgramInfo.

The text is what coremlcompiler writes, e.g.

    func main<ios18>(tensor<fp16, [1, 1, 4096]> hidden_states, state<tensor<fp16, [..]>> k) {
        tensor<fp16, [16032, 4096, 1, 1]> w = const()[name = string("w"), val = tensor<fp16,
            [16032, 4096, 1, 1]>(BLOBFILE(path = string("@model_path/weights/weight.bin"),
            offset = uint64(64)))];
        tensor<fp16, [1, 16032, 1, 1]> y = conv(weight = w, x = x, ...)[name = string("y")];
    } -> (logits1, ...);

(one statement per line in the real file). We take the signature, every
`TYPE NAME = OP(ARGS)[ATTRS];` statement and the returned names: enough for
inputs/outputs/states, op counts, FLOPs and the compression of each weight.
"""

from __future__ import annotations

import re
from pathlib import Path

from anemll_spec.build.program_info import BlobRef, OpInfo, ProgramInfo
from anemll_spec.errors import InputError
from anemll_spec.model_io import TensorInfo

_TYPE = re.compile(r"tensor<\s*(\w+)\s*,\s*\[([^\]]*)\]\s*>")
_FUNC = re.compile(r"func\s+(\w+)(?:<(\w+)>)?\s*\((.*?)\)\s*\{", re.S)
_STMT = re.compile(
    r"^\s*(?:(?P<decl>[^=(]+?|\(.*?\))\s*=\s*)?(?P<op>[A-Za-z_]\w*)\((?P<args>.*)\)\s*\[(?P<attrs>.*)\]\s*;\s*$"
)
_BLOB = re.compile(
    r"tensor<\s*(\w+)\s*,\s*\[([^\]]*)\]\s*>\s*\(\s*BLOBFILE\(\s*path\s*=\s*string\(\"([^\"]*)\"\)\s*,"
    r"\s*offset\s*=\s*uint64\((\d+)\)\s*\)\s*\)"
)
_RETURN = re.compile(r"\}\s*->\s*\(([^)]*)\)\s*;")
_NPTYPE = {
    "fp16": "float16",
    "fp32": "float32",
    "fp64": "float64",
    "int32": "int32",
    "int8": "int8",
}


def _shape(dims: str) -> tuple[int, ...] | None:
    dims = dims.strip()
    if not dims:
        return ()
    try:
        return tuple(int(d) for d in dims.split(","))
    except ValueError:
        return None  # symbolic dims


def _split_top(text: str) -> list[str]:
    """Split on commas outside <>, (), [] and quotes."""
    out, depth, cur, quote = [], 0, [], False
    for ch in text:
        if ch == '"':
            quote = not quote
        elif not quote and ch in "<([{":
            depth += 1
        elif not quote and ch in ">)]}":
            depth -= 1
        if ch == "," and depth == 0 and not quote:
            out.append("".join(cur).strip())
            cur = []
        else:
            cur.append(ch)
    if "".join(cur).strip():
        out.append("".join(cur).strip())
    return out


def _param(text: str, where: Path) -> tuple[str, TensorInfo]:
    """'tensor<fp16, [1, 4096]> x' or 'state<tensor<fp16, [..]>> k' -> (kind, TensorInfo)."""
    kind = "state" if text.lstrip().startswith("state<") else "input"
    m = _TYPE.search(text)
    name = text.split()[-1]
    if not m:
        raise InputError(f"{where}: cannot read the type of function parameter {text!r}")
    dt = _NPTYPE.get(m.group(1), m.group(1))
    return kind, TensorInfo(name, _shape(m.group(2)) or (), dt)


def parse_mil_text(text: str, where: Path) -> ProgramInfo:
    fm = _FUNC.search(text)
    if not fm:
        raise InputError(f"{where}: no function found in model.mil")
    inputs, states = [], []
    for p in _split_top(fm.group(3)):
        kind, t = _param(p, where)
        (states if kind == "state" else inputs).append(t)
    body = text[fm.end() :]
    ret = _RETURN.search(body)
    if not ret:
        raise InputError(f"{where}: model.mil has no return statement for {fm.group(1)}")
    returned = [n.strip() for n in ret.group(1).split(",") if n.strip()]
    ops: list[OpInfo] = []
    for line in body[: ret.start()].splitlines():
        m = _STMT.match(line)
        if not m:
            continue
        decls = (m.group("decl") or "").strip()
        if decls.startswith("("):
            decls = decls[1:-1]
        outs = []
        for d in _split_top(decls):
            tm = _TYPE.search(d)
            name = d.split()[-1]
            outs.append((name, _shape(tm.group(2)) if tm else None, tm.group(1) if tm else ""))
        inputs_map: dict[str, list[str]] = {}
        blobs: list[BlobRef] = []
        values: dict[str, object] = {}
        vtypes: dict[str, tuple[str, tuple[int, ...]]] = {}
        for arg in _split_top(m.group("args")) + _split_top(m.group("attrs")):
            if "=" not in arg:
                continue
            key, val = (s.strip() for s in arg.split("=", 1))
            bm = _BLOB.search(val)
            tm = _TYPE.match(val)
            if tm:
                vtypes[key] = (tm.group(1), _shape(tm.group(2)) or ())
            if bm:
                blobs.append(
                    BlobRef(
                        key, bm.group(1), _shape(bm.group(2)) or (), int(bm.group(4)), bm.group(3)
                    )
                )
            elif re.fullmatch(r"[A-Za-z_]\w*", val):
                inputs_map[key] = [val]
            elif val.startswith("(") and val.endswith(")"):
                inputs_map[key] = [v.strip() for v in val[1:-1].split(",") if v.strip()]
            else:
                values[key] = val
        name = str(values.get("name", "")).removeprefix('string("').removesuffix('")')
        ops.append(OpInfo(m.group("op"), name, inputs_map, outs, blobs, values, vtypes))
    shapes = {t.name: t for t in inputs}
    for op in ops:
        for n, s, dt in op.outputs:
            shapes[n] = TensorInfo(n, s or (), _NPTYPE.get(dt, dt))
    outputs = []
    for n in returned:
        if n not in shapes:
            raise InputError(f"{where}: returned value {n!r} is never defined")
        outputs.append(shapes[n])
    return ProgramInfo(inputs, outputs, states, ops, fm.group(2) or "", None)
