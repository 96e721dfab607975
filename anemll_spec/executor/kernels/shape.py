"""Shape and tensor-construction kernels: reshape (and _like, flatten2d), transpose, squeeze,
concat/stack/split, tile, fill, band_part, range_1d, pad, cumsum..."""

from __future__ import annotations

import math

import numpy as np

from anemll_spec.executor.kernels.base import (
    Prep,
    Run,
    kernel,
    maybe_static,
    norm_axis,
    runtime_ints,
)


@kernel("identity")
def _identity(p: Prep) -> Run:
    x = p.ref("x")
    return lambda env: env[x]


@kernel("reshape", reads="a runtime target shape")
def _reshape(p: Prep) -> Run:
    xp, x = p.xp, p.ref("x")
    static, key = maybe_static(p, "shape")

    def reshape(env):
        v = env[x]
        src = xp.shape(v)
        shape = runtime_ints(xp, env, static, key)
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


@kernel("reshape_like")
def _reshape_like(p: Prep) -> Run:
    xp, x, refs = p.xp, p.ref("x"), p.refs("ref_tensors")
    begins, ends = p.ints("begins"), p.ints("ends")
    masks = p.bools("end_masks") or []
    p.check(
        len(refs) == len(begins) == len(ends) == len(masks),
        f"{len(refs)} ref_tensors need as many begins, ends and end_masks "
        f"(got {len(begins)}, {len(ends)}, {len(masks)})",
    )

    def reshape_like(env):
        shape: list[int] = []
        for ref, b, e, m in zip(refs, begins, ends, masks, strict=True):
            dims = xp.shape(env[ref])
            shape += dims[b:] if m else dims[b:e]
        return xp.reshape(env[x], shape)

    return reshape_like


@kernel("flatten2d")
def _flatten2d(p: Prep) -> Run:
    xp, x, axis = p.xp, p.ref("x"), p.int("axis", 1)
    rank = p.rank("x")
    p.check(-rank <= axis <= rank, f"axis {axis} is outside [-{rank}, {rank}]")

    def flatten2d(env):
        shape = xp.shape(env[x])
        a = norm_axis(axis, len(shape))
        return xp.reshape(env[x], [math.prod(shape[:a]), math.prod(shape[a:])])

    return flatten2d


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
        shape = xp.shape(v)
        ax = range(len(shape)) if axes is None else [norm_axis(a, len(shape)) for a in axes]
        # axes of size other than 1 are left alone (PyTorch's rule, as the def says)
        return xp.squeeze(v, [a for a in ax if shape[a] == 1])

    return squeeze


@kernel("concat")
def _concat(p: Prep) -> Run:
    """Scalars (all values have one rank) concatenate as a vector: the def counts a rank-0
    value as length 1 and stacks them; traced shape arithmetic (`torch.ones(t, t)` with
    a flexible t) builds shapes that way."""
    xp, xs, axis = p.xp, p.refs("values"), p.int("axis")

    def scalars(vals):
        return not xp.shape(vals[0])

    if p.bool("interleave", False):

        def interleave(env):
            vals = [env[k] for k in xs]
            if scalars(vals):
                return xp.stack(vals, 0)
            shape = list(xp.shape(vals[0]))
            a = axis + len(shape) if axis < 0 else axis
            stacked = xp.stack(vals, a + 1)
            shape[a] *= len(vals)
            return xp.reshape(stacked, shape)

        return interleave

    def concat(env):
        vals = [env[k] for k in xs]
        return xp.stack(vals, 0) if scalars(vals) else xp.concat(vals, axis)

    return concat


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


def _at_least_one(p: Prep, values: list[int], name: str) -> list[int]:
    """`values` (a fill shape, tile reps), each >= 1 as the defs ask: a 0 gave an empty
    tensor where the op has none, a negative a backend's own error."""
    if min(values, default=1) < 1:
        raise p.fail(f"{name} {values} must all be >= 1")
    return values


@kernel("tile", reads="runtime reps")
def _tile(p: Prep) -> Run:
    """reps: one value >= 1 per dimension of x (iOS15 def); fewer gave numpy's broadcast."""
    xp, x = p.xp, p.ref("x")
    reps, key = maybe_static(p, "reps")

    def tile(env):
        v = env[x]
        shape = xp.shape(v)
        r = _at_least_one(p, runtime_ints(xp, env, reps, key), "reps")
        if len(r) != len(shape):
            raise p.fail(f"reps {r} must hold one value per dimension of x (rank {len(shape)})")
        p.sized([d * n for d, n in zip(shape, r, strict=True)], "the tiled tensor")
        return xp.tile(v, r)

    return tile


def _fill_dtype(p: Prep, value) -> str:
    out = p.out().dtype
    if out in ("fp16", "fp32"):
        return p.xp.float_dtype
    return {"int32": "int32", "bool": "bool"}.get(out, np.asarray(value).dtype.name)


@kernel("fill", reads="a runtime shape")
def _fill(p: Prep) -> Run:
    xp = p.xp
    shape, key = maybe_static(p, "shape")
    value = p.const("value", 0.0)
    dtype = _fill_dtype(p, value)
    v = np.asarray(value).item()
    if shape is not None:  # a constant shape: checked once
        fixed = p.sized(_at_least_one(p, shape, "shape"), "the filled tensor")
        return lambda env: xp.full(fixed, v, dtype)

    def fill(env):
        dims = _at_least_one(p, runtime_ints(xp, env, shape, key), "shape")
        return xp.full(p.sized(dims, "the filled tensor"), v, dtype)

    return fill


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

    def band(m: int, n: int) -> np.ndarray:
        rows, cols = np.arange(m)[:, None], np.arange(n)[None, :]
        keep = np.ones((m, n), dtype=bool)
        if lower >= 0:
            keep &= (rows - cols) <= lower
        if upper >= 0:
            keep &= (cols - rows) <= upper
        return keep

    def band_part(env):
        v = env[x]
        m, n = xp.shape(v)[-2:]
        dtype = xp.dtype_name(v)
        keep = p.derived(("band", m, n), lambda: band(m, n))
        return xp.where(keep, v, p.derived(("zero", dtype), lambda: np.zeros((), dtype)))

    return band_part


@kernel("shape")
def _shape(p: Prep) -> Run:
    xp, x = p.xp, p.ref("x")
    return lambda env: xp.asarray(np.asarray(xp.shape(env[x]), dtype=np.int32))


@kernel("range_1d", reads="start, end and step (the output length depends on them)")
def _range_1d(p: Prep) -> Run:
    xp = p.xp
    names = ("start", "end", "step")
    dtype = xp.float_dtype if p.out().dtype in ("fp16", "fp32") else "int32"
    if all(p.is_const(k) for k in names):  # a constant range: made once
        s, e, st = (np.asarray(p.const(k)).item() for k in names)
        _range_length(p, s, e, st)
        value = p.tensor(np.arange(s, e, st)) if dtype != "int32" else xp.arange(s, e, st, dtype)
        return lambda env: value
    keys = {k: p.ref(k) for k in names}

    def range_1d(env):
        s, e, st = (xp.to_numpy(env[keys[k]]).item() for k in names)
        if not _range_length(p, s, e, st):  # numpy's empty range (torch refuses one)
            return xp.full([0], 0, dtype)
        return xp.arange(s, e, st, dtype)

    return range_1d


def _range_length(p: Prep, start, end, step) -> int:
    """Length of the range, checked before it is made: a step of 0, a bound that is not
    finite or a length past the memory available is refused (numpy's and torch's own
    errors, or a process killed for memory); an end before the start is empty (the def:
    numpy-like)."""
    if not all(math.isfinite(v) for v in (start, end, step)):
        raise p.fail(f"range from {start} to {end} by {step}: the values must be finite")
    if step == 0:
        raise p.fail(f"range from {start} to {end} by {step}: the step must not be 0")
    if all(isinstance(v, int) for v in (start, end, step)):
        n = len(range(start, end, step))
    else:  # numpy's length: ceil((end - start) / step)
        n = max(0, math.ceil((end - start) / step))
    p.sized([n], "the range")
    return n


@kernel("pad", reads="a runtime pad")
def _pad(p: Prep) -> Run:
    """`pad` may be a runtime vector of 2 x rank(x) (iOS15 defs), read per call. Every
    amount is >= 0, at most D - 1 in reflect mode and D in replicate mode (iOS15 pad),
    checked at load for a constant pad on a known shape, else per call."""
    xp, x = p.xp, p.ref("x")
    static, key = maybe_static(p, "pad")
    mode = p.str("mode", "constant")
    value = p.scalar("constant_val", 0.0)
    if mode not in ("constant", "reflect", "replicate"):
        raise p.fail(f"pad mode '{mode}' is not supported")
    limit = {"reflect": 1, "replicate": 0}.get(mode)  # the most a side pads is D - limit

    def amounts(flat: list[int], shape: tuple) -> list[tuple[int, int]]:
        rank = len(shape)
        if len(flat) % 2 or len(flat) > 2 * rank:
            raise p.fail(f"pad has {len(flat)} values: 2 per padded dimension of rank {rank}")
        pairs = [(flat[2 * i], flat[2 * i + 1]) for i in range(len(flat) // 2)]
        pads = [(0, 0)] * (rank - len(pairs)) + pairs
        for axis, ((before, after), d) in enumerate(zip(pads, shape, strict=True)):
            if min(before, after) < 0:
                raise p.fail(f"pad amounts must be >= 0, got {flat}")
            if limit is not None and max(before, after) > d - limit:
                raise p.fail(
                    f"{mode} pads at most {d - limit} on axis {axis} of size {d} "
                    f"(D{' - 1' if limit else ''}), got {(before, after)}"
                )
        return pads

    def padded(pads: list[tuple[int, int]], shape: tuple) -> list[tuple[int, int]]:
        out = [d + b + a for d, (b, a) in zip(shape, pads, strict=True)]
        p.sized(out, "the padded tensor")
        return pads

    dims = p.dims("x")
    if static is not None and dims is not None:  # checked once, at load
        fixed = padded(amounts(static, dims), dims)
        return lambda env: xp.pad(env[x], fixed, mode, value)
    if static is not None and min(static, default=0) < 0:
        raise p.fail(f"pad amounts must be >= 0, got {static}")

    def pad(env):
        v = env[x]
        shape = xp.shape(v)
        flat = runtime_ints(xp, env, static, key)
        if key is not None and len(flat) != 2 * len(shape):  # the def: N == D_in
            raise p.fail(
                f"a runtime pad needs 2 values per dimension of rank {len(shape)}, got {len(flat)}"
            )
        return xp.pad(v, padded(amounts(flat, shape), shape), mode, value)

    return pad


@kernel("cumsum")
def _cumsum(p: Prep) -> Run:
    xp, x = p.xp, p.ref("x")
    axis, exclusive, reverse = (
        p.int("axis", 0),
        p.bool("exclusive", False),
        p.bool("reverse", False),
    )
    rank = p.rank("x")
    p.check(-rank <= axis < rank, f"axis {axis} is outside [-{rank}, {rank - 1}]")
    a = norm_axis(axis, rank)

    def along(index) -> tuple:
        return tuple(index if i == a else slice(None) for i in range(rank))

    def cumsum(env):
        v = env[x]
        if reverse:
            v = xp.getitem(v, along(slice(None, None, -1)))
        out = xp.cumsum(v, a)
        if exclusive:  # shifted by one, 0 first: exact, unlike cumsum - x
            pads = [(1, 0) if i == a else (0, 0) for i in range(rank)]
            out = xp.pad(xp.getitem(out, along(slice(None, -1))), pads, "constant", 0)
        if reverse:
            out = xp.getitem(out, along(slice(None, None, -1)))
        return out

    return cumsum
