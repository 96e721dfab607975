"""Load-time simplifications: lowering passes `Function -> Function` for `load(passes=...)`.

    load(path, passes=[simplify])           # or any of the passes below, in order

- `pointwise_to_matmul`: a 1x1, stride-1, unpadded, ungrouped conv with a constant weight
  becomes reshape -> matmul(W (out, in), x (N, in, L)) -> reshape; a linear with a constant
  weight becomes matmul(x, W, transpose_y=True). A constant bias becomes an `add` (an
  all-zero bias is dropped).
- `merge_parallel_matmuls`: matmuls that read the same runtime tensor with constant
  weights of the same width merge into one matmul over the concatenated weight; a `split`
  hands each original output back as a view of the merged result (the 8 LM-head chunks
  become one (128256, 4096) weight: one pass over the weights, one kernel).
- `drop_dead_constants`: const/constexpr ops nothing reads any more are removed, so the
  original (compressed) weights are never decoded a second time.

Constant weights are decoded here, once (constexpr chains evaluated by the executor's own
`decompress.evaluate`), and stored as plain `const` ops; the rewritten function keeps the
original's inputs, outputs and semantics, and runs on every backend (numpy included).
The decoding passes take the program's `fp16` mode (`functools.partial(simplify,
fp16=True)` for a program loaded with fp16=True): an fp16 mode decodes as the program
itself would (iOS18 shift-scale in coremltools' fp16 steps), not as the fp32 reference.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np

from anemll_spec.executor.decompress import evaluate, is_compile_time
from anemll_spec.mlmodel.ir import Arg, Function, Op, VarType, materialize


class Constants:
    """Values of a function's compile-time variables, decoded on demand."""

    def __init__(self, fn: Function, fp16: bool = False):
        self.fp16 = fp16  # decode as a program loaded with this fp16 mode does
        self.producers = {
            o.name: op for op in fn.ops if is_compile_time(op.type) for o in op.outputs
        }

    def is_const(self, op: Op, param: str) -> bool:
        args = op.inputs.get(param) or []
        return len(args) == 1 and (args[0].ref is None or args[0].ref in self.producers)

    def value(self, op: Op, param: str, default: Any = None) -> Any:
        """Decoded value of a constant argument (`default` when the argument is absent)."""
        args = op.inputs.get(param)
        if not args:
            return default
        return self._arg(args[0])

    def _arg(self, arg: Arg) -> Any:
        if arg.ref is None:
            return materialize(arg.value)
        return self.of(arg.ref)

    def of(self, name: str) -> Any:
        op = self.producers[name]

        def resolve(param: str) -> Any:
            args = op.inputs.get(param)
            return self._arg(args[0]) if args else None

        value = evaluate(op, resolve, self.fp16)
        if len(op.outputs) > 1:  # sparse constexprs give (mask, values)
            return value[[o.name for o in op.outputs].index(name)]
        return value


def _static(v: VarType | None) -> tuple[int, ...] | None:
    return None if v is None else v.static_shape


def _const_op(index: int, name: str, value: np.ndarray, dtype: str) -> Op:
    return Op(
        index,
        "const",
        name,
        {},
        [VarType(name, dtype, tuple(value.shape))],
        {"val": (value, dtype)},
    )


def _inline(value: Any, dtype: str) -> list[Arg]:
    return [Arg(value=np.asarray(value), dtype=dtype)]


def _reshape(index: int, x: str, shape: tuple[int, ...], out: str, dtype: str) -> Op:
    return Op(
        index,
        "reshape",
        out,
        {"x": [Arg(ref=x)], "shape": _inline(np.asarray(shape, dtype=np.int32), "int32")},
        [VarType(out, dtype, shape)],
    )


def _matmul(index: int, x: str, y: str, transpose_y: bool, out: VarType) -> Op:
    return Op(
        index,
        "matmul",
        out.name,
        {
            "x": [Arg(ref=x)],
            "y": [Arg(ref=y)],
            "transpose_x": _inline(False, "bool"),
            "transpose_y": _inline(transpose_y, "bool"),
        },
        [out],
    )


def _weight_dtype(value: np.ndarray) -> str:
    return "fp16" if value.dtype == np.float16 else "fp32"


def _float_weight(value: Any) -> np.ndarray:
    """A decoded weight as a float array (fp16 stays fp16; others become fp32)."""
    arr = np.asarray(value)
    return arr if arr.dtype in (np.float16, np.float32) else arr.astype(np.float32)


def _trivial_pointwise(op: Op, consts: Constants, w_shape: tuple[int, ...]) -> bool:
    nd = len(w_shape) - 2
    if nd < 1 or any(k != 1 for k in w_shape[2:]):
        return False
    for param in ("groups", "strides", "pad_type", "pad"):
        if op.inputs.get(param) and not consts.is_const(op, param):
            return False
    if int(np.asarray(consts.value(op, "groups", 1))) != 1:
        return False
    if any(int(s) != 1 for s in np.asarray(consts.value(op, "strides", [1] * nd)).reshape(-1)):
        return False
    pad_type = str(consts.value(op, "pad_type", "valid"))
    if pad_type == "custom":
        return not np.any(np.asarray(consts.value(op, "pad", [0])))
    return pad_type in ("valid", "same", "same_lower")  # a 1x1 kernel pads nothing


def pointwise_to_matmul(fn: Function, fp16: bool = False) -> Function:
    """1x1 convs and linears with constant weights -> matmul (+ add for a nonzero bias)."""
    consts = Constants(fn, fp16)
    types = {v.name: v for v in fn.inputs}
    for op in fn.ops:
        types.update({o.name: o for o in op.outputs})
    flats: dict[tuple[str, tuple[int, ...]], str] = {}  # shared flattening of one input
    ops: list[Op] = []
    for op in fn.ops:
        new = None
        if op.type == "conv":
            new = _lower_conv(op, consts, types, flats)
        elif op.type == "linear":
            new = _lower_linear(op, consts, types)
        if new is None:
            ops.append(op)
        else:
            ops.extend(new)
    return Function(fn.name, fn.opset, fn.inputs, fn.outputs, ops)


def _bias(op: Op, consts: Constants, out_ch: int) -> np.ndarray | None:
    if not op.inputs.get("bias"):
        return None
    if not consts.is_const(op, "bias"):
        raise _Skip
    b = _float_weight(consts.value(op, "bias")).reshape(-1)
    if b.size != out_ch:
        raise _Skip
    return b if np.any(b) else None


class _Skip(Exception):  # noqa: N818 - internal: this op is left as it is
    pass


def _lower_conv(op: Op, consts: Constants, types: dict[str, VarType], flats: dict) -> list | None:
    if not consts.is_const(op, "weight") or not op.inputs.get("x") or len(op.outputs) != 1:
        return None
    x = op.inputs["x"][0].ref
    xshape, out = _static(types.get(x or "")), op.outputs[0]
    w = _float_weight(consts.value(op, "weight"))
    if x is None or xshape is None or out.static_shape is None or w.ndim != len(xshape):
        return None
    if not _trivial_pointwise(op, consts, w.shape) or xshape[1] != w.shape[1]:
        return None
    try:
        bias = _bias(op, consts, w.shape[0])
    except _Skip:
        return None
    n, c, spatial = xshape[0], xshape[1], xshape[2:]
    o, length = w.shape[0], math.prod(spatial)
    i, dt = op.index, out.dtype
    new: list[Op] = []
    flat_shape = (n, c, length)
    flat = flats.get((x, flat_shape))
    if flat is None:
        flat = flats[(x, flat_shape)] = f"{x}@flat{length}"
        new.append(_reshape(i, x, flat_shape, flat, types[x].dtype))
    wname = f"{out.name}@weight"
    new.append(_const_op(i, wname, w.reshape(o, c), _weight_dtype(w)))
    y = VarType(f"{out.name}@matmul", dt, (n, o, length))
    new.append(_matmul(i, wname, flat, False, y))
    if bias is not None:
        new.append(_const_op(i, f"{out.name}@bias", bias.reshape(o, 1), _weight_dtype(bias)))
        biased = VarType(f"{out.name}@biased", dt, y.shape)
        new.append(
            Op(
                i,
                "add",
                biased.name,
                {"x": [Arg(ref=y.name)], "y": [Arg(ref=f"{out.name}@bias")]},
                [biased],
            )
        )
        y = biased
    new.append(_reshape(i, y.name, out.static_shape, out.name, dt))
    return new


def _lower_linear(op: Op, consts: Constants, types: dict[str, VarType]) -> list | None:
    if not consts.is_const(op, "weight") or not op.inputs.get("x") or len(op.outputs) != 1:
        return None
    x = op.inputs["x"][0].ref
    w = _float_weight(consts.value(op, "weight"))
    xtype, out = types.get(x or ""), op.outputs[0]
    if (
        x is None
        or w.ndim != 2
        or xtype is None
        or not xtype.shape
        or xtype.shape[-1] != w.shape[1]
    ):
        return None
    try:
        bias = _bias(op, consts, w.shape[0])
    except _Skip:
        return None
    i, dt = op.index, out.dtype
    wname = f"{out.name}@weight"
    new: list[Op] = [_const_op(i, wname, w, _weight_dtype(w))]
    if bias is None:
        return [*new, _matmul(i, x, wname, True, out)]
    y = VarType(f"{out.name}@matmul", dt, out.shape)
    new.append(_matmul(i, x, wname, True, y))
    new.append(_const_op(i, f"{out.name}@bias", bias, _weight_dtype(bias)))
    new.append(
        Op(i, "add", out.name, {"x": [Arg(ref=y.name)], "y": [Arg(ref=f"{out.name}@bias")]}, [out])
    )
    return new


# -- merging ---------------------------------------------------------------------------
def _bool_arg(op: Op, consts: Constants, param: str) -> bool | None:
    if not op.inputs.get(param):
        return False
    value = np.asarray(consts.value(op, param)) if consts.is_const(op, param) else None
    if value is None or value.size != 1:  # unknown, or not a flag: the kernel names it
        return None
    return bool(value.reshape(()))


def _merge_key(op: Op, consts: Constants) -> tuple | None:
    """(runtime input, side, width, dtype) of a matmul with a constant 2-D weight, or None.

    side "left":  matmul(W (O, C), y (..., C, L)) -> (..., O, L), merged along axis -2;
    side "right": matmul(x (..., C), W (O, C), transpose_y) -> (..., O), along axis -1.
    """
    if op.type != "matmul" or len(op.outputs) != 1 or op.outputs[0].static_shape is None:
        return None
    tx, ty = _bool_arg(op, consts, "transpose_x"), _bool_arg(op, consts, "transpose_y")
    if tx is None or ty is None or tx:
        return None
    xc, yc = consts.is_const(op, "x"), consts.is_const(op, "y")
    if xc and not yc and not ty:
        w, side, data = op.inputs["x"][0], "left", op.inputs["y"][0].ref
    elif yc and not xc and ty:
        w, side, data = op.inputs["y"][0], "right", op.inputs["x"][0].ref
    else:
        return None
    if w.ref is None or consts.producers[w.ref].type != "const":
        return None  # merge only decoded weights (pointwise_to_matmul makes them)
    shape = consts.producers[w.ref].outputs[0].shape
    if len(shape) != 2:
        return None
    return (data, side, shape[1], consts.producers[w.ref].outputs[0].dtype)


def merge_parallel_matmuls(fn: Function, min_group: int = 2, fp16: bool = False) -> Function:
    """Matmuls reading one runtime tensor with constant weights of one width -> one matmul."""
    consts = Constants(fn, fp16)
    groups: dict[tuple, list[Op]] = {}
    for op in fn.ops:
        key = _merge_key(op, consts)
        if key is not None:
            groups.setdefault(key, []).append(op)
    merged: dict[int, list[Op]] = {}  # id(first op of a group) -> replacement
    drop: set[int] = set()
    for key, members in groups.items():
        if len(members) < min_group:
            continue
        merged[id(members[0])] = _merge(key, members, consts)
        drop.update(id(op) for op in members[1:])
    if not merged:
        return fn
    ops: list[Op] = []
    for op in fn.ops:
        if id(op) in merged:
            ops.extend(merged[id(op)])
        elif id(op) not in drop:
            ops.append(op)
    return Function(fn.name, fn.opset, fn.inputs, fn.outputs, ops)


def _ref(op: Op, param: str) -> str:
    """The variable bound to `param` (merged ops read their weight from a named const)."""
    ref = op.inputs[param][0].ref
    if ref is None:
        raise ValueError(f"{op.name}: {param} is an inline value, not a variable")
    return ref


def _merge(key: tuple, members: list[Op], consts: Constants) -> list[Op]:
    data, side, _, wdtype = key
    param = "x" if side == "left" else "y"
    weights = [np.asarray(consts.of(_ref(op, param))) for op in members]
    rows = [w.shape[0] for w in weights]
    first, i = members[0], members[0].index
    outs = [op.outputs[0] for op in members]
    base = outs[0].name
    axis = -2 if side == "left" else -1
    shape = list(outs[0].static_shape)  # type: ignore[arg-type]
    shape[axis] = sum(rows)
    wname, yname = f"{base}@merged_weight", f"{base}@merged"
    merged_w = np.concatenate(weights, axis=0)
    del weights
    y = VarType(yname, outs[0].dtype, tuple(shape))
    mm = _matmul(
        i, wname if side == "left" else data, data if side == "left" else wname, side == "right", y
    )
    mm.name = f"{first.name}@merged{len(members)}"
    split = Op(
        i,
        "split",
        f"{first.name}@split",
        {
            "x": [Arg(ref=yname)],
            "axis": _inline(np.int32(axis), "int32"),
            "split_sizes": _inline(np.asarray(rows, dtype=np.int32), "int32"),
        },
        outs,
    )
    return [_const_op(i, wname, merged_w, wdtype), mm, split]


# -- clean-up --------------------------------------------------------------------------
def drop_dead_constants(fn: Function) -> Function:
    """Remove const/constexpr ops whose outputs nothing reads (repeated to a fixed point)."""
    ops = list(fn.ops)
    while True:
        used = {r for op in ops for r in op.refs()}  # nested blocks' reads included
        used |= set(fn.outputs)
        kept = [
            op
            for op in ops
            if not is_compile_time(op.type) or any(o.name in used for o in op.outputs)
        ]
        if len(kept) == len(ops):
            return Function(fn.name, fn.opset, fn.inputs, fn.outputs, kept)
        ops = kept


# the load-time passes, in order, each followed by drop_dead_constants
PASSES: tuple[Callable[..., Function], ...] = (pointwise_to_matmul, merge_parallel_matmuls)


def simplify(fn: Function, fp16: bool = False) -> Function:
    """All the load-time simplifications, in order (PASSES); fp16: the program's fp16
    mode, in which the passes that decode constant weights decode them."""
    for p in PASSES:
        fn = drop_dead_constants(p(fn, fp16=fp16))
    return fn
