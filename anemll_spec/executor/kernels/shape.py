"""Shape, slicing, indexing and tensor-construction kernels."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np

from anemll_spec.executor.kernels.base import Prep, Run, kernel

INT32_MAX = np.iinfo(np.int32).max


def _maybe_static(p: Prep, param: str):
    """(static list of ints, None) if `param` is constant, else (None, env key)."""
    if p.is_const(param):
        return p.ints(param), None
    return None, p.ref(param)


def _runtime_ints(xp, env, static, key) -> list[int]:
    if static is not None:
        return static
    return [int(v) for v in xp.to_numpy(env[key]).reshape(-1)]


@kernel("identity")
def _identity(p: Prep) -> Run:
    x = p.ref("x")
    return lambda env: env[x]


@kernel("reshape")
def _reshape(p: Prep) -> Run:
    xp, x = p.xp, p.ref("x")
    static, key = _maybe_static(p, "shape")

    def reshape(env):
        v = env[x]
        src = xp.shape(v)
        shape = _runtime_ints(xp, env, static, key)
        # iOS17 semantics (identical to iOS15 when len(shape) == rank): a 0 copies the
        # input dimension aligned from the right, or is 1 where there is none
        out = []
        for i, s in enumerate(shape):
            if s == 0:
                j = len(src) - (len(shape) - i)
                s = src[j] if j >= 0 else 1
            out.append(s)
        return xp.reshape(v, out)

    return reshape


@kernel("reverse")
def _reverse(p: Prep) -> Run:
    xp, x, axes = p.xp, p.ref("x"), p.ints("axes", None)

    def reverse(env):
        v = env[x]
        rank = len(xp.shape(v))
        flip = set(range(rank)) if axes is None else {a + rank if a < 0 else a for a in axes}
        return xp.getitem(
            v, tuple(slice(None, None, -1) if i in flip else slice(None) for i in range(rank))
        )

    return reverse


@kernel("transpose")
def _transpose(p: Prep) -> Run:
    xp, x, perm = p.xp, p.ref("x"), p.ints("perm")
    return lambda env: xp.permute_dims(env[x], perm)


@kernel("expand_dims")
def _expand_dims(p: Prep) -> Run:
    xp, x, axes = p.xp, p.ref("x"), p.ints("axes")
    return lambda env: xp.expand_dims(env[x], axes)


@kernel("squeeze")
def _squeeze(p: Prep) -> Run:
    xp, x, axes = p.xp, p.ref("x"), p.ints("axes", None)

    def squeeze(env):
        v = env[x]
        ax = axes
        if ax is None:
            ax = [i for i, d in enumerate(xp.shape(v)) if d == 1]
        return xp.squeeze(v, ax)

    return squeeze


@kernel("concat")
def _concat(p: Prep) -> Run:
    xp, xs, axis = p.xp, p.refs("values"), p.int("axis")
    if p.bool("interleave", False):

        def interleave(env):
            vals = [env[k] for k in xs]
            shape = list(xp.shape(vals[0]))
            a = axis + len(shape) if axis < 0 else axis
            stacked = xp.stack(vals, a + 1)
            shape[a] *= len(vals)
            return xp.reshape(stacked, shape)

        return interleave
    return lambda env: xp.concat([env[k] for k in xs], axis)


@kernel("stack")
def _stack(p: Prep) -> Run:
    xp, xs, axis = p.xp, p.refs("values"), p.int("axis")
    return lambda env: xp.stack([env[k] for k in xs], axis)


@kernel("split")
def _split(p: Prep) -> Run:
    xp, x, axis = p.xp, p.ref("x"), p.int("axis")
    sizes = p.ints("split_sizes", None)
    n_out = len(p.op.outputs)

    def split(env):
        v = env[x]
        shape = xp.shape(v)
        a = axis + len(shape) if axis < 0 else axis
        sz = sizes
        if sz is None:
            if shape[a] % n_out:
                raise p.fail(f"dimension {shape[a]} does not split into {n_out} equal parts")
            sz = [shape[a] // n_out] * n_out
        outs, start = [], 0
        for s in sz:
            idx = [slice(None)] * len(shape)
            idx[a] = slice(start, start + s)
            outs.append(xp.getitem(v, tuple(idx)))
            start += s
        return tuple(outs)

    return split


def _index_slices(shape, begin, end, stride, begin_mask, end_mask, squeeze_mask):
    """numpy index tuple of slice_by_index / slice_update (iOS15 defs, _utils.py)."""
    rank = len(shape)
    stride = stride or [1] * rank
    out = []
    for i in range(rank):
        if squeeze_mask and squeeze_mask[i]:
            b = begin[i] + shape[i] if begin[i] < 0 else begin[i]
            out.append(b)  # pure index: this axis disappears
            continue
        b = None if begin_mask and begin_mask[i] else begin[i]
        e = None if end_mask and end_mask[i] else end[i]
        out.append(slice(b, e, stride[i]))
    return tuple(out)


def _slice_params(p: Prep):
    begin, bkey = _maybe_static(p, "begin")
    end, ekey = _maybe_static(p, "end")
    stride = p.ints("stride", None)
    masks = p.bools("begin_mask"), p.bools("end_mask"), p.bools("squeeze_mask")

    def slices(xp, env, shape):
        b = _runtime_ints(xp, env, begin, bkey)
        e = _runtime_ints(xp, env, end, ekey)
        return _index_slices(shape, b, e, stride, *masks)

    return slices


@kernel("slice_by_index")
def _slice_by_index(p: Prep) -> Run:
    xp, x = p.xp, p.ref("x")
    slices = _slice_params(p)
    return lambda env: xp.getitem(env[x], slices(xp, env, xp.shape(env[x])))


@kernel("slice_update")
def _slice_update(p: Prep) -> Run:
    xp, x, upd = p.xp, p.ref("x"), p.ref("update")
    stride = p.ints("stride", None)
    masks = (p.bools("begin_mask"), p.bools("end_mask"), p.bools("squeeze_mask"))
    runtime = not (p.is_const("begin") and p.is_const("end"))
    if runtime and all(s == 1 for s in stride or ()) and not any(any(m or ()) for m in masks):
        # A KV-cache write at a runtime position: where it lands is the backend's to work
        # out (on the device, for torch on CUDA), so no host read interrupts the call;
        # the K and V writes of one step share it.
        begin, end = p.ref("begin"), p.ref("end")

        def slice_update(env):
            v, u = env[x], env[upd]
            shape, size = xp.shape(v), xp.shape(u)
            where = per_call(
                env,
                ("slice_where", begin, end, shape, size),
                lambda: xp.slice_where(env[begin], env[end], shape, size, p.fail),
            )
            return xp.write_slice(v, where, u)

        return slice_update
    slices = _slice_params(p)
    return lambda env: xp.setitem(env[x], slices(xp, env, xp.shape(env[x])), env[upd])


def per_call(env: dict, key: tuple, make: Callable[[], Any]) -> Any:
    """A value derived from this call's tensors, made once per call: ops that read the
    same runtime indices or bounds (a step's K and V cache writes, RoPE's cos and sin
    gathers) share it. `env` lives for one call, so nothing carries over to the next."""
    value = env.get(key)
    if value is None:
        value = env[key] = make()
    return value


def _checked(p: Prep, env: dict, ind: str, dim: int) -> Any:
    """The gather indices bound to `ind`, checked and wrapped for a dimension `dim`."""
    return per_call(
        env,
        ("checked_indices", ind, dim),
        lambda: p.xp.astype(p.xp.checked_indices(env[ind], dim, p.fail), "int32"),
    )


@kernel("slice_by_size")
def _slice_by_size(p: Prep) -> Run:
    xp, x = p.xp, p.ref("x")
    begin, bkey = _maybe_static(p, "begin")
    size, skey = _maybe_static(p, "size")

    def slice_by_size(env):
        v = env[x]
        shape = xp.shape(v)
        b = _runtime_ints(xp, env, begin, bkey)
        s = _runtime_ints(xp, env, size, skey)
        idx = []
        for i, (bi, si) in enumerate(zip(b, s, strict=True)):
            bi = bi + shape[i] if bi < 0 else bi
            idx.append(slice(bi, None if si == -1 else bi + si))
        return xp.getitem(v, tuple(idx))

    return slice_by_size


@kernel("gather")
def _gather(p: Prep) -> Run:
    xp, x, ind = p.xp, p.ref("x"), p.ref("indices")
    axis, batch_dims = p.int("axis", 0), p.int("batch_dims", 0)

    def gather(env):
        v = env[x]
        shape = xp.shape(v)
        a = axis + len(shape) if axis < 0 else axis
        idx = _checked(p, env, ind, shape[a])
        if batch_dims == 0:
            return xp.take(v, idx, a)
        bshape = shape[:batch_dims]
        nb = math.prod(bshape)
        vb = xp.reshape(v, [nb, *shape[batch_dims:]])
        ishape = xp.shape(idx)
        ib = xp.reshape(idx, [nb, *ishape[batch_dims:]])
        parts = [xp.take(vb[i], ib[i], a - batch_dims) for i in range(nb)]
        out = xp.stack(parts, 0)
        return xp.reshape(out, [*bshape, *xp.shape(out)[1:]])

    return gather


@kernel("gather_along_axis")
def _gather_along_axis(p: Prep) -> Run:
    xp, x, ind, axis = p.xp, p.ref("x"), p.ref("indices"), p.int("axis", 0)

    def gather_along_axis(env):
        v = env[x]
        shape = xp.shape(v)
        a = axis + len(shape) if axis < 0 else axis
        idx = _checked(p, env, ind, shape[a])
        return xp.take_along_axis(v, idx, a)

    return gather_along_axis


@kernel("gather_nd")
def _gather_nd(p: Prep) -> Run:
    xp, x, ind = p.xp, p.ref("x"), p.ref("indices")
    if p.int("batch_dims", 0) != 0:
        raise p.fail("gather_nd with batch_dims != 0 is not supported")

    def gather_nd(env):
        v, idx = env[x], xp.astype(env[ind], "int32")
        k = xp.shape(idx)[-1]
        shape = xp.shape(v)
        cols = tuple(
            xp.checked_indices(xp.getitem(idx, (Ellipsis, i)), shape[i], p.fail) for i in range(k)
        )
        return xp.getitem(v, cols)

    return gather_nd


@kernel("tile")
def _tile(p: Prep) -> Run:
    xp, x = p.xp, p.ref("x")
    reps, key = _maybe_static(p, "reps")
    return lambda env: xp.tile(env[x], _runtime_ints(xp, env, reps, key))


def _fill_dtype(p: Prep, value) -> str:
    out = p.out().dtype
    if out in ("fp16", "fp32"):
        return p.xp.float_dtype
    return {"int32": "int32", "bool": "bool"}.get(out, np.asarray(value).dtype.name)


@kernel("fill")
def _fill(p: Prep) -> Run:
    xp = p.xp
    shape, key = _maybe_static(p, "shape")
    value = p.const("value", 0.0)
    dtype = _fill_dtype(p, value)
    v = np.asarray(value).item()
    return lambda env: xp.full(_runtime_ints(xp, env, shape, key), v, dtype)


@kernel("fill_like")
def _fill_like(p: Prep) -> Run:
    xp, ref = p.xp, p.ref("ref_tensor")
    value = p.const("value", 0.0)
    dtype, v = _fill_dtype(p, value), np.asarray(value).item()
    return lambda env: xp.full(xp.shape(env[ref]), v, dtype)


@kernel("band_part")
def _band_part(p: Prep) -> Run:
    xp, x = p.xp, p.ref("x")
    lower, upper = p.int("lower", -1), p.int("upper", -1)

    def band_part(env):
        v = env[x]
        m, n = xp.shape(v)[-2:]
        rows = np.arange(m)[:, None]
        cols = np.arange(n)[None, :]
        keep = np.ones((m, n), dtype=bool)
        if lower >= 0:
            keep &= (rows - cols) <= lower
        if upper >= 0:
            keep &= (cols - rows) <= upper
        return xp.where(xp.asarray(keep), v, xp.astype(xp.asarray(0), xp.dtype_name(v)))

    return band_part


@kernel("shape")
def _shape(p: Prep) -> Run:
    xp, x = p.xp, p.ref("x")
    return lambda env: xp.asarray(np.asarray(xp.shape(env[x]), dtype=np.int32))


@kernel("range_1d")
def _range_1d(p: Prep) -> Run:
    xp = p.xp
    keys = {k: p.ref(k) for k in ("start", "end", "step")}
    dtype = xp.float_dtype if p.out().dtype in ("fp16", "fp32") else "int32"

    def range_1d(env):
        s, e, st = (xp.to_numpy(env[keys[k]]).item() for k in ("start", "end", "step"))
        return xp.arange(s, e, st, dtype)

    return range_1d


@kernel("pad")
def _pad(p: Prep) -> Run:
    xp, x = p.xp, p.ref("x")
    flat = p.ints("pad")
    mode = p.str("mode", "constant")
    value = p.float("constant_val", 0.0)
    if mode not in ("constant", "reflect", "replicate"):
        raise p.fail(f"pad mode '{mode}' is not supported")

    def pad(env):
        v = env[x]
        rank = len(xp.shape(v))
        pairs = [(flat[2 * i], flat[2 * i + 1]) for i in range(len(flat) // 2)]
        pads = [(0, 0)] * (rank - len(pairs)) + pairs
        return xp.pad(v, pads, mode, value)

    return pad


@kernel("cumsum")
def _cumsum(p: Prep) -> Run:
    xp, x = p.xp, p.ref("x")
    axis, exclusive, reverse = (
        p.int("axis", 0),
        p.bool("exclusive", False),
        p.bool("reverse", False),
    )

    def cumsum(env):
        v = env[x]
        rank = len(xp.shape(v))
        a = axis + rank if axis < 0 else axis
        flip = tuple(slice(None, None, -1) if i == a else slice(None) for i in range(rank))
        if reverse:
            v = xp.getitem(v, flip)
        out = xp.cumsum(v, a)
        if exclusive:
            out = out - v
        if reverse:
            out = xp.getitem(out, flip)
        return out

    return cumsum
