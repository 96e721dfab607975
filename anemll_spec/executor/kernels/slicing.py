"""Slicing kernels: slice_by_index, slice_by_size, slice_update, sliding_windows,
reverse_sequence, crop; and `per_call`, which ops reading the same runtime indices share."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from anemll_spec.executor.kernels.base import (
    Prep,
    Run,
    kernel,
    maybe_static,
    norm_axis,
    runtime_ints,
)


def _index_slices(shape, begin, end, stride, begin_mask, end_mask, squeeze_mask):
    """numpy index tuple of slice_by_index / slice_update (iOS15 defs, _utils.py)."""
    rank = len(shape)
    stride = stride or [1] * rank
    out = []
    for i in range(rank):
        if squeeze_mask and squeeze_mask[i]:  # a pure index: this axis disappears
            b = 0 if begin_mask and begin_mask[i] else begin[i]  # the mask wins (iOS15 defs)
            out.append(b + shape[i] if b < 0 else b)
            continue
        b = None if begin_mask and begin_mask[i] else begin[i]
        e = None if end_mask and end_mask[i] else end[i]
        out.append(slice(b, e, stride[i]))
    return tuple(out)


def _slice_params(p: Prep):
    begin, bkey = maybe_static(p, "begin")
    end, ekey = maybe_static(p, "end")
    stride = p.ints("stride", None)
    masks = p.bools("begin_mask"), p.bools("end_mask"), p.bools("squeeze_mask")

    def slices(xp, env, shape):
        b = runtime_ints(xp, env, begin, bkey)
        e = runtime_ints(xp, env, end, ekey)
        return _index_slices(shape, b, e, stride, *masks)

    return slices


@kernel("slice_by_index", reads="runtime begin and end")
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
    dims, size = p.dims("x"), p.dims("update")
    if not runtime and dims is not None and size is not None:  # a bad update fails at load
        index = _index_slices(dims, p.ints("begin"), p.ints("end"), stride, *masks)
        _check_update(p, index, dims, size)

    def slice_update_at(env):
        v, u = env[x], env[upd]
        shape = xp.shape(v)
        index = slices(xp, env, shape)
        _check_update(p, index, shape, xp.shape(u))
        return xp.setitem(v, index, u)

    return slice_update_at


def _check_update(p: Prep, index: tuple, shape: tuple, size: tuple) -> None:
    """iOS18 slice_update: the update has the shape of the slice, dimension by dimension
    (an update of as many elements in another shape is refused, never reshaped)."""
    pairs = zip(index, shape, strict=True)
    target = tuple(len(range(*s.indices(d))) for s, d in pairs if isinstance(s, slice))
    if target != tuple(size):
        raise p.fail(f"update of shape {tuple(size)} does not match the slice's shape {target}")


def per_call(env: dict, key: tuple, make: Callable[[], Any]) -> Any:
    """A value derived from this call's tensors, made once per call: ops that read the
    same runtime indices or bounds (a step's K and V cache writes, RoPE's cos and sin
    gathers) share it. `env` lives for one call, so nothing carries over to the next."""
    value = env.get(key)
    if value is None:
        value = env[key] = make()
    return value


@kernel("slice_by_size", reads="runtime begin and size")
def _slice_by_size(p: Prep) -> Run:
    xp, x = p.xp, p.ref("x")
    begin, bkey = maybe_static(p, "begin")
    size, skey = maybe_static(p, "size")
    dims = p.dims("x")
    if begin is not None and size is not None and dims is not None:
        _sized_slices(p, dims, begin, size)  # constant bounds the def forbids: at load

    def slice_by_size(env):
        v = env[x]
        shape = xp.shape(v)
        b = runtime_ints(xp, env, begin, bkey)
        s = runtime_ints(xp, env, size, skey)
        return xp.getitem(v, _sized_slices(p, shape, b, s))

    return slice_by_size


def _sized_slices(p: Prep, shape: tuple, begin: list[int], size: list[int]) -> tuple:
    """slice_by_size's index (iOS15 def): one begin and size per dimension, a begin in
    [-D, D], a size of -1 (the rest) or one that stays inside the dimension. numpy slicing
    would have cut an overlong size short and made a negative one (or a begin past the
    end) an empty slice, a result with other sizes than the ones asked for. A begin of D
    is the empty slice at the end (size 0 or -1), as coremltools' inference and TF's
    Slice, which converts to this op, have it. A size of 0 is an empty slice anywhere:
    the def's size is the count sliced, -1 its one special value, and its type_inference
    declares a dimension of 0 (its value_inference, which reads every size <= 0 as the
    rest, contradicts the shape it declares). Constant bounds of an x of known shape are
    checked at load."""
    rank = len(shape)
    if len(begin) != rank or len(size) != rank:
        raise p.fail(f"begin {begin} and size {size} need {rank} values each (rank of x)")
    idx = []
    for i, (bi, si, d) in enumerate(zip(begin, size, shape, strict=True)):
        if not -d <= bi <= d:
            raise p.fail(f"begin {bi} is outside [-{d}, {d}] on axis {i} (begin {begin})")
        bi = bi + d if bi < 0 else bi
        if si != -1 and not 0 <= si <= d - bi:
            raise p.fail(
                f"size {si} on axis {i} is outside [0, {d - bi}] for begin {bi} of a "
                f"dimension of {d} (-1: the rest; size {size})"
            )
        idx.append(slice(bi, None if si == -1 else bi + si))
    return tuple(idx)


@kernel("sliding_windows")
def _sliding_windows(p: Prep) -> Run:
    xp, x = p.xp, p.ref("x")
    axis, size, stride = p.int("axis"), p.int("size"), p.int("stride", 1)
    p.check(size >= 1 and stride >= 1, f"size {size} and stride {stride} must be >= 1")

    def windows(shape) -> tuple[int, int]:
        a = norm_axis(axis, len(shape))
        count = (shape[a] - size) // stride + 1
        if count < 1:
            raise p.fail(f"window of {size} does not fit a dimension of {shape[a]}")
        return a, count

    if p.dims("x") is not None:
        windows(p.dims("x"))

    def sliding_windows(env):
        v = env[x]
        shape = xp.shape(v)
        a, count = windows(shape)
        # out[..., w, s, ...] = x[..., w * stride + s, ...]: one strided view per offset s
        views = []
        for s in range(size):
            idx = [slice(None)] * len(shape)
            idx[a] = slice(s, s + (count - 1) * stride + 1, stride)
            views.append(xp.getitem(v, tuple(idx)))
        return xp.stack(views, a + 1)

    return sliding_windows


@kernel("reverse_sequence")
def _reverse_sequence(p: Prep) -> Run:
    xp, x, lengths = p.xp, p.ref("x"), p.ref("lengths")
    rank = p.rank("x")
    seq = norm_axis(p.int("seq_axis", 0), rank)
    batch = norm_axis(p.int("batch_axis", 0), rank)
    p.check(seq != batch, f"seq_axis and batch_axis are both axis {seq}")

    def reverse_sequence(env):
        v = env[x]
        shape = xp.shape(v)
        steps, size = shape[seq], shape[batch]

        def positions():  # t along seq_axis, 1 elsewhere
            return np.arange(steps, dtype=np.int32).reshape(
                [steps if i == seq else 1 for i in range(rank)]
            )

        t = p.derived(("t", steps, rank), positions)
        n = xp.reshape(
            xp.astype(env[lengths], "int32"), [size if i == batch else 1 for i in range(rank)]
        )
        # the first lengths[b] steps of batch b in reverse, the rest in place
        idx = xp.where(t < n, n - 1 - t, t)
        return xp.take_along_axis(v, xp.broadcast_to(idx, shape), seq)

    return reverse_sequence


@kernel("crop")
def _crop(p: Prep) -> Run:
    xp, x = p.xp, p.ref("x")
    h, w = p.ints("crop_height"), p.ints("crop_width")
    p.check(len(h) == 2 and len(w) == 2, "crop_height and crop_width take two values each")
    p.check(min(h + w) >= 0, f"crop amounts must be >= 0, got {h} and {w}")

    def fits(shape) -> None:
        if h[0] + h[1] >= shape[-2] or w[0] + w[1] >= shape[-1]:
            raise p.fail(f"crops {h}, {w} leave nothing of {tuple(shape[-2:])}")

    if p.dims("x") is not None:
        fits(p.dims("x"))

    def crop(env):
        v = env[x]
        shape = xp.shape(v)
        fits(shape)
        index = (Ellipsis, slice(h[0], shape[-2] - h[1]), slice(w[0], shape[-1] - w[1]))
        return xp.getitem(v, index)

    return crop
