"""The array seam: the narrow set of primitives every kernel is written against.

Kernels never call numpy directly on runtime tensors; they call `xp.<primitive>` on an
`ArrayOps` object. `NumpyOps` is the reference implementation; a torch implementation
(CUDA/MPS/CPU, fp16 or fp32) provides the same names with the same semantics, and the same
prepared program runs on it. Semantics worth knowing when implementing another array library:

- dtypes are named by strings: "float32", "float16", "int8", "uint8", "int16", "uint16",
  "int32", "bool"; `xp.float_dtype` is the dtype float tensors are computed in.
- `getitem(x, slices)` takes a tuple of Python `slice`/int with numpy semantics, including
  negative steps (torch: flip); `setitem(x, slices, value)` returns an updated copy, `value`
  of the slice's own shape (never reshaped into it: a ValueError otherwise).
- `mod` is floor-mod (sign of the divisor, numpy/`torch.remainder`); `floor_divide` rounds
  to -inf; on integers, both give 0 where the divisor is 0 (numpy's answer; torch raises);
  `round` rounds half to even (numpy; `torch.round` does too).
- `power` of integers: a negative exponent gives 1 / x ** |y| truncated (1 -> 1, -1 -> +-1,
  anything else, 0 included, -> 0: `integer_power`); numpy raises, torch computes this.
- `sign(NaN)` is NaN (numpy; `torch.sign` gives 0).
- `mean` of integers is taken in float64 (float32 lost integers above 2**24).
- reductions take `axis` as a tuple (or None for all) and `keepdims`.
- `conv(x, w, strides, pads, dilations, groups)`: N-D cross-correlation, x (N, C, *d),
  w (O, C/groups, *k), pads = [(before, after), ...] per spatial dim (torch: F.conv*d).
- `conv_transpose(x, w, strides, dilations, groups)`: the full transposed convolution,
  x (N, C, *d), w (C, O/groups, *k) -> (N, O, *((d-1)*s + (k-1)*dil + 1)); kernels crop
  or pad it to the op's output size.
- `argsort(x, axis, descending)` is stable: equal values keep their index order; NaN is
  the largest value (last ascending, first descending), as in argmax, max and `torch.sort`.
- `scatter_rows(data, rows, updates, mode)`: rows `rows` (1-D ints, in range) of a 2-D
  `data` combined with the rows of `updates` by `mode` (update, add, sub, mul, div, max,
  min); repeated rows accumulate (update: one of them wins).
- `matmul` follows numpy broadcasting (including 1-D operands).
- `to_numpy(x)` returns a numpy array (host copy where needed); `asarray(a, dtype)` builds a
  tensor of the library from a numpy array or Python scalar.
- Runtime indices and bounds: `checked_indices(indices, dim, fail, wrap=True)` takes
  [-dim, dim) and wraps negative indices with `wrap` (iOS15/16 gather/scatter), else
  [0, dim) (iOS17+), and rejects out-of-range ones with `fail(message)` (an exception);
  slice_update with runtime bounds and unit strides is `write_slice(x, slice_where(begin,
  end, x_shape, update_shape, fail), update)`, `slice_where`'s result being opaque (numpy:
  slices). numpy checks on the host; a device library may check on the device and raise
  after the call (torch on CUDA does, so that such a program can be captured as a CUDA
  graph).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np

# Abramowitz & Stegun 7.1.26 is too coarse (2.5e-5) for an fp32 reference; this is the
# Numerical Recipes erfc Chebyshev fit (fractional error < 1.2e-7), evaluated in float64.
_ERFC_COEFFS = (
    -1.26551223,
    1.00002368,
    0.37409196,
    0.09678418,
    -0.18628806,
    0.27886807,
    -1.13520398,
    1.48851587,
    -0.82215223,
    0.17087277,
)


class NumpyOps:
    """numpy implementation of the kernel primitives (see the module docstring)."""

    name = "numpy"
    float_dtype = "float32"

    # -- creation / conversion -------------------------------------------------------
    @staticmethod
    def asarray(a: Any, dtype: str | None = None) -> np.ndarray:
        return np.asarray(a, dtype=dtype)

    @staticmethod
    def to_numpy(x: Any) -> np.ndarray:
        return np.asarray(x)

    @staticmethod
    def astype(x: np.ndarray, dtype: str) -> np.ndarray:
        return x.astype(dtype, copy=False)

    @staticmethod
    def dtype_name(x: Any) -> str:
        return np.asarray(x).dtype.name

    @staticmethod
    def shape(x: Any) -> tuple[int, ...]:
        return tuple(np.shape(x))

    @staticmethod
    def round_to_fp16(x: np.ndarray) -> np.ndarray:
        """Round float values to fp16 precision and range (overflow gives inf), keep dtype."""
        return x.astype(np.float16).astype(x.dtype)

    full = staticmethod(lambda shape, value, dtype: np.full(tuple(shape), value, dtype=dtype))
    arange = staticmethod(lambda start, stop, step, dtype: np.arange(start, stop, step, dtype))

    # -- elementwise ------------------------------------------------------------------
    add = staticmethod(np.add)
    subtract = staticmethod(np.subtract)
    multiply = staticmethod(np.multiply)
    divide = staticmethod(np.true_divide)

    @staticmethod
    def power(a: Any, b: Any) -> Any:
        dtype = np.result_type(a, b)
        if dtype.kind != "i":
            return np.power(a, b)
        return integer_power(a, b, np.power, np.where).astype(dtype, copy=False)

    maximum = staticmethod(np.maximum)
    minimum = staticmethod(np.minimum)
    floor_divide = staticmethod(np.floor_divide)
    mod = staticmethod(np.mod)
    equal = staticmethod(np.equal)
    not_equal = staticmethod(np.not_equal)
    less = staticmethod(np.less)
    less_equal = staticmethod(np.less_equal)
    greater = staticmethod(np.greater)
    greater_equal = staticmethod(np.greater_equal)
    logical_and = staticmethod(np.logical_and)
    logical_or = staticmethod(np.logical_or)
    logical_xor = staticmethod(np.logical_xor)
    logical_not = staticmethod(np.logical_not)
    where = staticmethod(np.where)
    clip = staticmethod(lambda x, lo, hi: np.minimum(np.maximum(x, lo), hi))

    abs = staticmethod(np.abs)
    negative = staticmethod(np.negative)
    sign = staticmethod(np.sign)
    floor = staticmethod(np.floor)
    ceil = staticmethod(np.ceil)
    round = staticmethod(np.round)
    sin = staticmethod(np.sin)
    cos = staticmethod(np.cos)
    tan = staticmethod(np.tan)
    asin = staticmethod(np.arcsin)
    acos = staticmethod(np.arccos)
    atan = staticmethod(np.arctan)
    atanh = staticmethod(np.arctanh)
    sinh = staticmethod(np.sinh)
    cosh = staticmethod(np.cosh)
    tanh = staticmethod(np.tanh)
    exp = staticmethod(np.exp)
    exp2 = staticmethod(np.exp2)
    log = staticmethod(np.log)
    log1p = staticmethod(np.log1p)
    sqrt = staticmethod(np.sqrt)
    reciprocal = staticmethod(np.reciprocal)
    square = staticmethod(np.square)

    @staticmethod
    def sigmoid(x: np.ndarray) -> np.ndarray:
        # split by sign so exp never overflows
        e = np.exp(-np.abs(x))
        return np.where(x >= 0, 1.0 / (1.0 + e), e / (1.0 + e)).astype(x.dtype, copy=False)

    @staticmethod
    def erf(x: np.ndarray) -> np.ndarray:
        """1 - erfc from the fit, except near 0, where the fit's error (relative to erfc,
        ~1) would swamp erf itself: there, the Maclaurin series (|x| < 0.5: 12 terms
        reach 1e-17)."""
        z = np.abs(x.astype(np.float64))
        t = 1.0 / (1.0 + 0.5 * z)
        poly = np.zeros_like(t)
        for c in reversed(_ERFC_COEFFS):
            poly = c + t * poly
        far = 1.0 - t * np.exp(-z * z + poly)
        z2, term, near = z * z, z.copy(), z.copy()
        for n in range(1, 12):  # sum (-1)^n z^(2n+1) / (n! (2n+1))
            term = term * -z2 / n
            near = near + term / (2 * n + 1)
        near = near * (2.0 / np.sqrt(np.pi))
        return np.copysign(np.where(z < 0.5, near, far), x).astype(x.dtype, copy=False)

    # -- reductions -------------------------------------------------------------------
    sum = staticmethod(lambda x, axis, keepdims: np.sum(x, axis=axis, keepdims=keepdims))
    mean = staticmethod(lambda x, axis, keepdims: np.mean(x, axis=axis, keepdims=keepdims))
    max = staticmethod(lambda x, axis, keepdims: np.max(x, axis=axis, keepdims=keepdims))
    min = staticmethod(lambda x, axis, keepdims: np.min(x, axis=axis, keepdims=keepdims))
    prod = staticmethod(lambda x, axis, keepdims: np.prod(x, axis=axis, keepdims=keepdims))
    argmax = staticmethod(lambda x, axis, keepdims: np.argmax(x, axis=axis, keepdims=keepdims))
    argmin = staticmethod(lambda x, axis, keepdims: np.argmin(x, axis=axis, keepdims=keepdims))
    cumsum = staticmethod(lambda x, axis: np.cumsum(x, axis=axis))

    # -- shape / indexing -------------------------------------------------------------
    reshape = staticmethod(lambda x, shape: np.reshape(x, tuple(shape)))
    permute_dims = staticmethod(lambda x, perm: np.transpose(x, tuple(perm)))
    expand_dims = staticmethod(lambda x, axes: np.expand_dims(x, tuple(axes)))
    squeeze = staticmethod(lambda x, axes: np.squeeze(x, axis=tuple(axes)))
    concat = staticmethod(lambda xs, axis: np.concatenate(xs, axis=axis))
    stack = staticmethod(lambda xs, axis: np.stack(xs, axis=axis))
    broadcast_to = staticmethod(lambda x, shape: np.broadcast_to(x, tuple(shape)))
    tile = staticmethod(lambda x, reps: np.tile(x, tuple(reps)))
    take = staticmethod(lambda x, indices, axis: np.take(x, indices, axis=axis))
    take_along_axis = staticmethod(lambda x, idx, axis: np.take_along_axis(x, idx, axis=axis))
    getitem = staticmethod(lambda x, slices: x[slices])

    @staticmethod
    def setitem(x: np.ndarray, slices: tuple, value: np.ndarray) -> np.ndarray:
        out = np.array(x, copy=True)
        check_fits(np.shape(value), out[slices].shape)
        out[slices] = value
        return out

    @staticmethod
    def checked_indices(
        indices: Any, dim: int, fail: Callable[[str], Exception], wrap: bool = True
    ) -> Any:
        return host_checked_indices(numpy_ops, indices, dim, fail, wrap)

    @staticmethod
    def slice_where(begin: Any, end: Any, shape: tuple, size: tuple, fail) -> tuple:
        return host_slice_where(numpy_ops, begin, end, shape, size, fail)

    @staticmethod
    def write_slice(x: np.ndarray, where: tuple, update: np.ndarray) -> np.ndarray:
        return NumpyOps.setitem(x, where, update)

    @staticmethod
    def argsort(x: np.ndarray, axis: int, descending: bool) -> np.ndarray:
        if not descending:  # numpy sorts NaN last: NaN is the largest value
            return np.argsort(x, axis=axis, kind="stable")
        # descending: the ascending order of x reversed along the axis, read backwards (so
        # NaN comes first and equal values keep their index order); any dtype, no negation
        n = np.shape(x)[axis]
        order = np.argsort(np.flip(x, axis), axis=axis, kind="stable")
        return (n - 1) - np.flip(order, axis)

    @staticmethod
    def scatter_rows(data: np.ndarray, rows: Any, updates: np.ndarray, mode: str) -> np.ndarray:
        out = np.array(data, copy=True)
        rows = np.asarray(rows).astype(np.intp)
        updates = np.asarray(updates).astype(out.dtype, copy=False)
        if mode == "update":
            out[rows] = updates
            return out
        if mode == "div" and out.dtype.kind in "iu":
            np.floor_divide.at(out, rows, updates)
            return out
        _SCATTER_UFUNCS[mode].at(out, rows, updates)
        return out

    @staticmethod
    def pad(x: np.ndarray, pads: list[tuple[int, int]], mode: str, value: float) -> np.ndarray:
        if mode == "constant":
            return np.pad(x, pads, mode="constant", constant_values=value)
        if mode == "reflect":
            return np.pad(x, pads, mode="reflect")
        if mode == "replicate":
            return np.pad(x, pads, mode="edge")
        raise KeyError(mode)

    # -- linear algebra ---------------------------------------------------------------
    matmul = staticmethod(np.matmul)
    einsum = staticmethod(lambda eq, *xs: np.einsum(eq, *xs, optimize=True))

    @staticmethod
    def conv(
        x: np.ndarray,
        w: np.ndarray,
        strides: list[int],
        pads: list[tuple[int, int]],
        dilations: list[int],
        groups: int,
    ) -> np.ndarray:
        """N-D convolution by im2col: one (O/g, C/g*K) x (C/g*K, L) matmul per group."""
        n, c = x.shape[:2]
        o, cg = w.shape[:2]
        ksize = w.shape[2:]
        nd = len(ksize)
        if any(b or a for b, a in pads):
            x = np.pad(x, [(0, 0), (0, 0), *pads])
        dims = x.shape[2:]
        out_dims = [
            (dims[i] - (ksize[i] - 1) * dilations[i] - 1) // strides[i] + 1 for i in range(nd)
        ]
        # gather one strided view per kernel tap: cols (N, C, K..., out...)
        taps = []
        for k in np.ndindex(*ksize):
            sl = tuple(
                slice(
                    k[i] * dilations[i],
                    k[i] * dilations[i] + (out_dims[i] - 1) * strides[i] + 1,
                    strides[i],
                )
                for i in range(nd)
            )
            taps.append(x[(slice(None), slice(None), *sl)])
        cols = np.stack(taps, axis=2)  # (N, C, K, *out)
        length = math.prod(out_dims)
        cols = cols.reshape(n, groups, cg * len(taps), length)
        wg = w.reshape(groups, o // groups, cg * len(taps))
        y = np.matmul(wg[None], cols)  # (N, g, O/g, L)
        return y.reshape(n, o, *out_dims)

    @staticmethod
    def conv_transpose(
        x: np.ndarray, w: np.ndarray, strides: list[int], dilations: list[int], groups: int
    ) -> np.ndarray:
        """Each kernel tap adds W_tap^T x into a strided view of the output (col2im)."""
        n, c = x.shape[:2]
        og, ksize, dims = w.shape[1], w.shape[2:], x.shape[2:]
        nd = len(ksize)
        out_dims = [
            (dims[i] - 1) * strides[i] + (ksize[i] - 1) * dilations[i] + 1 for i in range(nd)
        ]
        dtype = np.result_type(x, w)
        y = np.zeros((n, groups, og, *out_dims), dtype=dtype)
        xg = x.reshape(n, groups, c // groups, -1)  # (N, g, C/g, L)
        wg = w.reshape(groups, c // groups, og, -1)  # (g, C/g, O/g, taps)
        for t, k in enumerate(np.ndindex(*ksize)):
            part = np.matmul(np.swapaxes(wg[..., t], 1, 2)[None], xg)  # (N, g, O/g, L)
            view = tuple(
                slice(
                    k[i] * dilations[i],
                    k[i] * dilations[i] + (dims[i] - 1) * strides[i] + 1,
                    strides[i],
                )
                for i in range(nd)
            )
            y[(slice(None), slice(None), slice(None), *view)] += part.reshape(n, groups, og, *dims)
        return y.reshape(n, groups * og, *out_dims)


numpy_ops = NumpyOps()

_SCATTER_UFUNCS = {
    "add": np.add,
    "sub": np.subtract,
    "mul": np.multiply,
    "div": np.true_divide,
    "max": np.maximum,
    "min": np.minimum,
}


def integer_power(a: Any, b: Any, pow_: Callable, where: Callable) -> Any:
    """Integer a ** b, one rule for every array library (numpy raises where b < 0): a
    negative exponent gives 1 / a ** |b| truncated, so 1 -> 1, -1 -> 1 or -1 (b even or
    odd) and any other base -> 0, 0 included (as integer division by 0 gives 0 here)."""
    negative = b < 0
    inverse = where(a == 1, 1, where(a == -1, 1 - 2 * (b % 2), 0))
    return where(negative, inverse, pow_(a, where(negative, 0, b)))  # callers set the dtype


def host_checked_indices(
    xp, indices: Any, dim: int, fail: Callable[[str], Exception], wrap: bool = True
) -> Any:
    """With `wrap`, negative indices wrap (iOS15/16 semantics), else they are out of range
    (iOS17+ gather/scatter); out-of-range ones are an error, never silently clamped (iOS17+
    leaves them undefined). Reads the indices on the host."""
    idx = xp.to_numpy(indices)
    if idx.size and (idx.min() < (-dim if wrap else 0) or idx.max() >= dim):
        raise fail(index_range(dim, wrap, f": min {idx.min()}, max {idx.max()}"))
    if wrap and idx.size and idx.min() < 0:
        indices = xp.where(indices < 0, indices + dim, indices)
    return indices


def host_slice_where(xp, begin: Any, end: Any, shape: tuple, size: tuple, fail) -> tuple:
    """The slices of slice_update with unit strides, the bounds read on the host (numpy
    semantics: negative counts from the end, then clamped); the update must have their
    shape, dimension by dimension (iOS18 slice_update)."""
    b = [int(v) for v in xp.to_numpy(begin).reshape(-1)]
    e = [int(v) for v in xp.to_numpy(end).reshape(-1)]
    index = tuple(slice(bi, ei) for bi, ei in zip(b, e, strict=True))
    target = tuple(len(range(*s.indices(d))) for s, d in zip(index, shape, strict=True))
    if target != tuple(size):
        raise fail(
            f"update of shape {tuple(size)} does not match the slice "
            f"begin={b} end={e} of shape {target}"
        )
    return index


def check_fits(value_shape: tuple, slice_shape: tuple) -> None:
    """setitem's rule: the value has the slice's shape (kernels check it first, by name)."""
    if tuple(value_shape) != tuple(slice_shape):
        raise ValueError(
            f"value of shape {tuple(value_shape)} for a slice of shape {tuple(slice_shape)}"
        )


def index_range(dim: int, wrap: bool, found: str = "") -> str:
    """The message of an out-of-range index (`checked_indices`), `found` after the range."""
    if wrap:
        return f"index out of range [{-dim}, {dim}){found}"
    return (
        f"index out of range [0, {dim}){found} (from iOS17 negative indices are out of "
        "range: Core ML raises with validate_indices, else the result is undefined)"
    )
