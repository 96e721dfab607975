"""Gather and scatter kernels: gather, gather_along_axis, gather_nd, scatter,
scatter_along_axis, scatter_nd.

Indices: negative ones wrap up to iOS16 (-D <= i < D); from iOS17 they are out of range
(the iOS17 defs: "negative values are considered out-of-bound"). Out-of-range ones are an
error, never clamped or wrapped: with `validate_indices` Core ML raises too, without it the
result is undefined, which the executors do not make up. Every scatter is one
`xp.scatter_rows` on a 2-D view of the data: rows are the addressed slices, so repeated
indices accumulate in the add/sub/mul/div/max/min modes (update: one of them wins).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from anemll_spec.executor.kernels.base import Prep, Run, kernel, norm_axis
from anemll_spec.executor.kernels.slicing import per_call

SCATTER_MODES = ("update", "add", "sub", "mul", "div", "max", "min")


def _wraps(p: Prep) -> bool:
    """Whether negative indices wrap: up to iOS16 (from iOS17 they are out of range)."""
    return not p.since(17)


def _checked(p: Prep, env: dict, ind: str, dim: int) -> Any:
    """The gather indices bound to `ind`, checked (and wrapped up to iOS16) for a
    dimension `dim`."""
    wrap = _wraps(p)
    return per_call(
        env,
        ("checked_indices", ind, dim, wrap),
        lambda: p.xp.astype(p.xp.checked_indices(env[ind], dim, p.fail, wrap), "int32"),
    )


def _strides(shape) -> list[int]:
    return [math.prod(shape[i + 1 :]) for i in range(len(shape))]


@kernel("gather")
def _gather(p: Prep) -> Run:
    xp, x, ind = p.xp, p.ref("x"), p.ref("indices")
    axis, batch_dims = p.int("axis", 0), p.int("batch_dims", 0)

    def gather(env):
        v = env[x]
        shape = xp.shape(v)
        a = norm_axis(axis, len(shape))
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
        a = norm_axis(axis, len(shape))
        idx = _checked(p, env, ind, shape[a])
        return xp.take_along_axis(v, idx, a)

    return gather_along_axis


def _nd_rows(p: Prep, idx: Any, shape: tuple, batch_dims: int) -> Any:
    """Row numbers into x viewed as (prod(shape[:batch_dims + k]), rest) of the index tuples
    idx[..., :] (k = idx.shape[-1]), batch offsets included; shape idx.shape[:-1]."""
    xp = p.xp
    ishape = xp.shape(idx)
    k = ishape[-1]
    dims = shape[batch_dims : batch_dims + k]
    strides = _strides(dims)
    rows = None
    for j in range(k):
        col = xp.checked_indices(xp.getitem(idx, (Ellipsis, j)), dims[j], p.fail, _wraps(p))
        term = xp.astype(col, "int32") * strides[j]
        rows = term if rows is None else rows + term
    if rows is None:  # k == 0: whole slices
        rows = xp.full(ishape[:-1], 0, "int32")
    if batch_dims:
        per_batch = math.prod(dims)
        lead = ishape[:batch_dims]

        def offsets():
            grid = np.arange(math.prod(lead), dtype=np.int32).reshape(lead) * per_batch
            return grid.reshape(lead + (1,) * (len(ishape) - 1 - batch_dims))

        rows = rows + p.derived(("batch_rows", tuple(ishape), per_batch), offsets)
    return rows


@kernel("gather_nd")
def _gather_nd(p: Prep) -> Run:
    xp, x, ind = p.xp, p.ref("x"), p.ref("indices")
    batch_dims = p.int("batch_dims", 0)
    p.check(batch_dims >= 0, f"batch_dims {batch_dims} must be >= 0")

    def gather_nd(env):
        v, idx = env[x], env[ind]
        shape, ishape = xp.shape(v), xp.shape(idx)
        lead = batch_dims + ishape[-1]
        if lead > len(shape) or tuple(ishape[:batch_dims]) != tuple(shape[:batch_dims]):
            raise p.fail(f"indices of shape {ishape} do not fit x of shape {shape}")
        rows = _nd_rows(p, idx, shape, batch_dims)
        flat = xp.reshape(v, [math.prod(shape[:lead]), *shape[lead:]])
        return xp.take(flat, rows, 0)

    return gather_nd


def _mode(p: Prep) -> str:
    return p.choice("mode", SCATTER_MODES, "add")


def _updates(xp, u, dtype: str):
    return u if xp.dtype_name(u) == dtype else xp.astype(u, dtype)


@kernel("scatter")
def _scatter(p: Prep) -> Run:
    """updates has shape data.shape[:axis] + indices.shape + data.shape[axis + 1:] (indices
    may have any rank, as TensorFlow's scatter ops)."""
    xp, data, ind, upd = p.xp, p.ref("data"), p.ref("indices"), p.ref("updates")
    axis, mode = p.int("axis", 0), _mode(p)

    def scatter(env):
        d, u = env[data], env[upd]
        shape = xp.shape(d)
        a = norm_axis(axis, len(shape))
        idx = _checked(p, env, ind, shape[a])
        k = len(xp.shape(idx))
        rows = xp.reshape(idx, [-1])
        perm = [a, *(i for i in range(len(shape)) if i != a)]
        back = [perm.index(i) for i in range(len(shape))]
        d2 = xp.reshape(xp.permute_dims(d, perm), [shape[a], -1])
        u_perm = [*range(a, a + k), *range(a), *range(a + k, len(xp.shape(u)))]
        u2 = xp.reshape(xp.permute_dims(u, u_perm), [xp.shape(rows)[0], -1])
        out = xp.scatter_rows(d2, rows, _updates(xp, u2, xp.dtype_name(d)), mode)
        moved = [shape[i] for i in perm]
        return xp.permute_dims(xp.reshape(out, moved), back)

    return scatter


@kernel("scatter_along_axis")
def _scatter_along_axis(p: Prep) -> Run:
    xp, data, ind, upd = p.xp, p.ref("data"), p.ref("indices"), p.ref("updates")
    axis, mode = p.int("axis", 0), _mode(p)

    def scatter_along_axis(env):
        d, u = env[data], env[upd]
        shape = xp.shape(d)
        a = norm_axis(axis, len(shape))
        idx = _checked(p, env, ind, shape[a])
        ishape = xp.shape(idx)
        strides = _strides(shape)

        def base():  # flat offset of each index position with its axis coordinate at 0
            grids = np.meshgrid(*[np.arange(n) for n in ishape], indexing="ij")
            offsets = [g * s for i, (g, s) in enumerate(zip(grids, strides, strict=True)) if i != a]
            return np.asarray(sum(offsets), dtype=np.int32)

        rows = p.derived(("base", tuple(ishape), tuple(shape), a), base)
        rows = xp.reshape(rows + xp.astype(idx, "int32") * strides[a], [-1])
        out = xp.scatter_rows(
            xp.reshape(d, [-1, 1]),
            rows,
            _updates(xp, xp.reshape(u, [-1, 1]), xp.dtype_name(d)),
            mode,
        )
        return xp.reshape(out, shape)

    return scatter_along_axis


@kernel("scatter_nd")
def _scatter_nd(p: Prep) -> Run:
    xp, data, ind, upd = p.xp, p.ref("data"), p.ref("indices"), p.ref("updates")
    mode = _mode(p)

    def scatter_nd(env):
        d, idx, u = env[data], env[ind], env[upd]
        shape, k = xp.shape(d), xp.shape(idx)[-1]
        if k > len(shape):
            raise p.fail(f"indices address {k} dimensions of data of rank {len(shape)}")
        rows = xp.reshape(_nd_rows(p, idx, shape, 0), [-1])
        d2 = xp.reshape(d, [math.prod(shape[:k]), -1])
        u2 = xp.reshape(u, [xp.shape(rows)[0], -1])
        out = xp.scatter_rows(d2, rows, _updates(xp, u2, xp.dtype_name(d)), mode)
        return xp.reshape(out, shape)

    return scatter_nd
