"""Quantization (iOS17 quantize / dequantize), lists (make_list, list_*), classify,
_const_symbolic, and the random ops, which are refused.

List values are `TensorList`s: a list op returns a new list (the program's variables are
single-assignment), elements written as tensors, unwritten ones None (read as zeros when
the element shape is known).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from anemll_spec.executor.kernels.base import Prep, Run, kernel, norm_axis, refuse
from anemll_spec.mlmodel.dtypes import BY_NAME

refuse(
    "random ops draw from Core ML's own generator, which cannot be reproduced off a Mac",
    "random_bernoulli",
    "random_categorical",
    "random_normal",
    "random_uniform",
)

# ops whose kernels are here but whose values the program cannot carry yet, and why
# (`anemll-spec ops` lists them as not supported; none today)
PENDING: dict[str, str] = {}

QUANT_RANGE = {"int8": (-128, 127), "uint8": (0, 255)}


def _per_axis(p: Prep, name: str, rank: int, axis: int | None, default: float) -> Any:
    """scale / zero_point: a scalar, or a vector along `axis` shaped to broadcast."""
    if not p.has(name):
        return default
    value = np.asarray(p.const(name), dtype=np.float32)
    if value.ndim == 0:  # rounded in fp16 mode, as a tensor constant would be
        return float(np.float16(value)) if p.fp16 else float(value)
    if value.ndim != 1 or axis is None:
        raise p.fail(f"{name} of shape {value.shape} needs an axis")
    shape = [1] * rank
    shape[norm_axis(axis, rank)] = -1
    return p.tensor(value.reshape(shape))


def _axis(p: Prep, rank: int) -> int | None:
    axis = p.int("axis") if p.has("axis") else None
    p.check(axis is None or -rank <= axis < rank, f"axis {axis} is outside [-{rank}, {rank - 1}]")
    return axis


@kernel("quantize")
def _quantize(p: Prep) -> Run:
    """clip(round(x / scale) + zero_point) in int8 / uint8, rounding half to even.

    A scale that is 0 everywhere is refused (coremltools' def); a per-channel scale may
    hold a 0: x / 0 is then +-inf, which the clip saturates (as coremltools'
    value_inference computes it), but 0 / 0 (or NaN / 0) is NaN, which has no int8 / uint8
    value (its cast is undefined): a call with one in such a channel is refused."""
    xp, x = p.xp, p.ref("input")
    dtype = p.choice("output_dtype", tuple(QUANT_RANGE))
    rank = p.rank("input")
    axis = _axis(p, rank)
    scale = _per_axis(p, "scale", rank, axis, 1.0)
    zeros = np.asarray(p.const("scale")).reshape(-1) == 0
    p.check(not zeros.all(), "scale must not be 0 everywhere")
    zero = _per_axis(p, "zero_point", rank, axis, 0.0)
    lo, hi = QUANT_RANGE[dtype]

    def scaled(env):  # held in fp16 in fp16 mode (as fp16 hardware computes it)
        return p.round(env[x] / scale)

    def finish(q):
        return xp.astype(xp.clip(xp.round(q) + zero, lo, hi), dtype)

    if not zeros.any():
        return lambda env: finish(scaled(env))
    a = norm_axis(axis, rank) if axis is not None else 0

    def quantize(env):
        q = scaled(env)
        nan = xp.to_numpy(xp.not_equal(q, q))  # a host read, for such a scale only
        others = tuple(i for i in range(nan.ndim) if i != a)
        bad = np.flatnonzero(nan.any(axis=others) & zeros)
        if bad.size:
            raise p.fail(
                f"input 0 (or NaN) in channel {bad[0]} of axis {a}, whose scale is 0: "
                f"0 / 0 is NaN, which has no {dtype} value"
            )
        return finish(q)

    return quantize


@kernel("dequantize")
def _dequantize(p: Prep) -> Run:
    """scale * (x - zero_point), in the scale's float type."""
    xp, x = p.xp, p.ref("input")
    rank = p.rank("input")
    axis = _axis(p, rank)
    scale = _per_axis(p, "scale", rank, axis, 1.0)
    zero = _per_axis(p, "zero_point", rank, axis, 0.0)
    return lambda env: (xp.astype(env[x], xp.float_dtype) - zero) * scale


@kernel("_const_symbolic")
def _const_symbolic(p: Prep) -> Run:
    value = p.tensor(p.const("val"))
    return lambda env: value


@kernel("classify", host="its label and dictionary are host values", values=True)
def _classify(p: Prep) -> Run:
    """(the label of the highest probability, {label: probability}) over the flattened
    probabilities, as Core ML returns them: a str (or int for int64 labels) and a dict of
    float64 values; the first of equal maxima wins (numpy's argmax)."""
    xp, probs = p.xp, p.ref("probabilities")
    classes = p.const("classes")
    p.check(isinstance(classes, list) and bool(classes), "classes must be a non-empty list")
    labels = [c if isinstance(c, str) else int(np.asarray(c).reshape(())) for c in classes]
    p.check(
        all(isinstance(c, str) for c in labels) or not any(isinstance(c, str) for c in labels),
        "classes mix str and int labels",
    )
    dims = p.dims("probabilities")
    if dims is not None:
        p.check(
            int(np.prod(dims)) == len(labels),
            f"{int(np.prod(dims))} probabilities (shape {list(dims)}) for {len(labels)} classes",
        )

    def classify(env):
        values = np.asarray(xp.to_numpy(env[probs]), dtype=np.float64).reshape(-1)
        if values.size != len(labels):
            raise p.fail(f"{values.size} probabilities for {len(labels)} classes")
        return labels[int(np.argmax(values))], dict(zip(labels, values.tolist(), strict=True))

    return classify


# -- lists ------------------------------------------------------------------------------


class TensorList(list):
    """A MIL list value: elements (tensors, None where unwritten), their shape and dtype."""

    def __init__(self, items, elem_shape: tuple | None, dtype: str, dynamic: bool):
        super().__init__(items)
        self.elem_shape, self.dtype, self.dynamic = elem_shape, dtype, dynamic

    def copy_with(self, items) -> TensorList:
        return TensorList(items, self.elem_shape, self.dtype, self.dynamic)


def _index(xp, v: Any) -> int:
    return int(np.asarray(xp.to_numpy(v)).reshape(()))


def _list_dtype(p: Prep, name: str) -> str:
    t = BY_NAME.get(name)
    if t is None or t.np_dtype is None or name not in ("bool", "fp16", "fp32", "int32"):
        raise p.fail(f"dtype '{name}' is not one of bool, fp16, fp32, int32")
    return p.xp.float_dtype if t.is_float else t.np_dtype.name


@kernel("make_list", host="list lengths and indices are read on the host")
def _make_list(p: Prep) -> Run:
    xp = p.xp
    dtype = _list_dtype(p, p.str("dtype", "fp32"))
    shape = p.const("elem_shape", None)
    dims = [] if shape is None else list(shape) if isinstance(shape, list) else [shape]
    elem_shape = None if any(isinstance(d, str) for d in dims) else tuple(int(d) for d in dims)
    dynamic = p.bool("dynamic_length", True)
    length_key = p.ref("init_length") if p.has("init_length") else None

    def make_list(env):
        length = 1 if length_key is None else _index(xp, env[length_key])
        if length < 0:  # [None] * -3 is an empty list
            raise p.fail(f"init_length {length} must be >= 0")
        p.sized([length], "a list")
        return TensorList([None] * length, elem_shape, dtype, dynamic)

    return make_list


def _read(p: Prep, ls: TensorList, i: int) -> Any:
    if not 0 <= i < len(ls):
        raise p.fail(f"index {i} is outside the list of length {len(ls)}")
    item = ls[i]
    if item is None:
        if ls.elem_shape is None:
            raise p.fail(f"element {i} was never written and its shape is unknown")
        return p.xp.full(ls.elem_shape, 0, ls.dtype)
    return item


def _write(p: Prep, ls: TensorList, writes: list[tuple[int, Any]]) -> TensorList:
    items = list(ls)
    for i, value in writes:
        if i < 0 or (i >= len(items) and not ls.dynamic):
            raise p.fail(f"index {i} is outside the list of length {len(items)}")
        if i >= len(items):  # a dynamic list grows to i + 1 slots: checked first
            items += [None] * (p.sized([i + 1], "a list")[0] - len(items))
        items[i] = value
    return ls.copy_with(items)


@kernel("list_length", host="list lengths and indices are read on the host")
def _list_length(p: Prep) -> Run:
    xp, ls = p.xp, p.ref("ls")
    return lambda env: xp.asarray(np.int32(len(env[ls])))


@kernel("list_write", host="list lengths and indices are read on the host")
def _list_write(p: Prep) -> Run:
    xp, ls, index, value = p.xp, p.ref("ls"), p.ref("index"), p.ref("value")
    return lambda env: _write(p, env[ls], [(_index(xp, env[index]), env[value])])


@kernel("list_read", host="list lengths and indices are read on the host")
def _list_read(p: Prep) -> Run:
    xp, ls, index = p.xp, p.ref("ls"), p.ref("index")
    return lambda env: _read(p, env[ls], _index(xp, env[index]))


@kernel("list_gather", host="list lengths and indices are read on the host")
def _list_gather(p: Prep) -> Run:
    xp, ls, ind = p.xp, p.ref("ls"), p.ref("indices")

    def list_gather(env):
        items = [_read(p, env[ls], int(i)) for i in np.asarray(xp.to_numpy(env[ind])).reshape(-1)]
        return xp.stack(items, 0)

    return list_gather


@kernel("list_scatter", host="list lengths and indices are read on the host")
def _list_scatter(p: Prep) -> Run:
    xp, ls, ind, value = p.xp, p.ref("ls"), p.ref("indices"), p.ref("value")

    def list_scatter(env):
        indices = [int(i) for i in np.asarray(xp.to_numpy(env[ind])).reshape(-1)]
        v = env[value]
        return _write(p, env[ls], [(i, xp.getitem(v, (k,))) for k, i in enumerate(indices)])

    return list_scatter
