"""Compile-time ops (const and constexpr_*), evaluated once at load, in numpy.

Two generations of the palettization and sparsity ops share names; they are told apart by
their parameters, as the defs define them:
- iOS16 `constexpr_lut_to_dense(indices: uint8[M] packed, lut: T[2^n], shape: uint32[K])`;
  iOS18 `constexpr_lut_to_dense(indices: uintN[shape], lut: T[g..., 2^n, V], vector_axis?)`.
- iOS16 `constexpr_sparse_to_dense(nonzero_data, mask: uint8 packed bits, shape)`;
  iOS18 `constexpr_sparse_to_dense(nonzero_data, mask: uint1[shape])`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from anemll_spec.errors import InputError
from anemll_spec.executor.dtypes import unpack_bits
from anemll_spec.executor.graph import Op, materialize

Resolve = Callable[[str], Any]  # param name -> constant value (None when absent)


def is_compile_time(op_type: str) -> bool:
    return op_type == "const" or op_type.startswith("constexpr_")


def evaluate(op: Op, arg: Resolve) -> Any:
    """Value of a const/constexpr op's (first) output."""
    if op.type == "const":
        if "val" not in op.attrs:
            raise InputError(f"{op.where()}: const without a value")
        return materialize(op.attrs["val"][0])
    fn = _DECOMPRESS.get(op.type)
    if fn is None:
        raise InputError(f"{op.where()}: unsupported op type '{op.type}'")
    try:
        out = fn(arg)
    except InputError:
        raise
    except (ValueError, IndexError, TypeError) as exc:
        raise InputError(f"{op.where()}: cannot decompress: {exc}") from exc
    declared = op.outputs[0].static_shape
    if declared is not None and tuple(out.shape) != declared:
        raise InputError(
            f"{op.where()}: decompressed shape {tuple(out.shape)} != declared {declared}"
        )
    return out


def _block_view(shape: tuple[int, ...], blocks: tuple[int, ...]) -> tuple[list[int], list[int]]:
    """Shapes that view a tensor as (b0, d0/b0, b1, d1/b1, ...) and a per-block parameter as
    (b0, 1, b1, 1, ...), so the parameter broadcasts over its blocks without being repeated."""
    if len(blocks) != len(shape):
        raise ValueError(f"per-block parameter rank {len(blocks)} != data rank {len(shape)}")
    data_view, param_view = [], []
    for axis, (full, nb) in enumerate(zip(shape, blocks, strict=True)):
        if nb == 0 or full % nb:
            raise ValueError(f"dimension {full} is not a multiple of {nb} blocks (axis {axis})")
        data_view += [nb, full // nb]
        param_view += [nb, 1]
    return data_view, param_view


def _affine_dequantize(arg: Resolve) -> np.ndarray:
    """iOS16: scale * (quantized_data - zero_point), scale/zero_point scalar or along axis."""
    data = np.asarray(arg("quantized_data"))
    scale = np.asarray(arg("scale"))
    zero = np.asarray(arg("zero_point"))
    axis = int(arg("axis"))
    axis = axis + data.ndim if axis < 0 else axis

    def along(v: np.ndarray) -> np.ndarray:
        if v.ndim == 0:
            return v.astype(np.float32)
        shape = [1] * data.ndim
        shape[axis] = v.shape[0]
        return v.astype(np.float32).reshape(shape)

    out = (data.astype(np.float32) - along(zero)) * along(scale)
    return out.astype(scale.dtype)


def _blockwise_shift_scale(arg: Resolve) -> np.ndarray:
    """iOS18: scale[block] * (data - offset[block]); block = data.shape / scale.shape."""
    data = np.asarray(arg("data"))
    scale = np.asarray(arg("scale"))
    offset = arg("offset")
    data_view, param_view = _block_view(data.shape, scale.shape)
    out = data.astype(np.float32)
    view = out.reshape(data_view)
    if offset is not None:
        view -= np.asarray(offset).astype(np.float32).reshape(param_view)
    view *= scale.astype(np.float32).reshape(param_view)
    return out.astype(scale.dtype)


def _lut_to_dense(arg: Resolve) -> np.ndarray:
    if arg("shape") is not None:  # iOS16 form
        indices = np.asarray(arg("indices"), dtype=np.uint8).reshape(-1)
        lut = np.asarray(arg("lut")).reshape(-1)
        shape = tuple(int(s) for s in np.asarray(arg("shape")).reshape(-1))
        nbits = int(np.log2(lut.size))
        if 2**nbits != lut.size:
            raise ValueError(f"lut size {lut.size} is not a power of two")
        count = int(np.prod(shape, dtype=np.int64))
        return lut[unpack_bits(indices, nbits, count, False)].reshape(shape)
    return _lut_to_dense_ios18(
        np.asarray(arg("indices")), np.asarray(arg("lut")), arg("vector_axis")
    )


def _lut_to_dense_ios18(indices: np.ndarray, lut: np.ndarray, vector_axis: Any) -> np.ndarray:
    """lut: (g_0..g_{K-1}, 2^n, V); the lut of index position i along axis a is number
    i // (indices.shape[a] / g_a). V > 1 fills V consecutive outputs along vector_axis.
    Decoded one lut block at a time, so temporaries stay the size of a block."""
    rank = indices.ndim
    if lut.ndim != rank + 2:
        raise ValueError(f"lut rank {lut.ndim} != indices rank {rank} + 2")
    groups, (palette, vsize) = lut.shape[:rank], lut.shape[rank:]
    for a in range(rank):
        if indices.shape[a] % groups[a]:
            raise ValueError(f"indices dim {indices.shape[a]} not divisible by {groups[a]} luts")
    if int(indices.max(initial=0)) >= palette:
        raise ValueError(f"index {int(indices.max())} outside a {palette}-entry lut")
    step = [indices.shape[a] // groups[a] for a in range(rank)]
    values = np.empty(indices.shape + (vsize,), dtype=lut.dtype)
    for g in np.ndindex(*groups):
        sl = tuple(slice(g[a] * step[a], (g[a] + 1) * step[a]) for a in range(rank))
        values[sl] = lut[g][indices[sl]]  # (palette, V) table indexed by uint indices
    if vsize == 1:
        return values[..., 0]
    if vector_axis is None:
        raise ValueError("vector palettization (V > 1) needs vector_axis")
    axis = int(vector_axis)
    axis = axis + rank if axis < 0 else axis
    # (..., d_axis, ..., V) -> put V right after the axis, then merge the two
    values = np.moveaxis(values, -1, axis + 1)
    shape = list(indices.shape)
    shape[axis] *= vsize
    return values.reshape(shape)


def _sparse_to_dense(arg: Resolve) -> np.ndarray:
    data = np.asarray(arg("nonzero_data"))
    mask = np.asarray(arg("mask"))
    if arg("shape") is not None:  # iOS16: mask is packed bits, LSB first
        shape = tuple(int(s) for s in np.asarray(arg("shape")).reshape(-1))
        count = int(np.prod(shape, dtype=np.int64))
        bits = unpack_bits(mask.astype(np.uint8), 1, count, False).reshape(shape)
    else:  # iOS18: mask is a uint1 tensor of the output shape
        shape, bits = mask.shape, mask
    out = np.zeros(shape, dtype=data.dtype)
    nz = bits != 0
    if int(nz.sum()) != data.size:
        raise ValueError(f"mask has {int(nz.sum())} set bits for {data.size} values")
    out[nz] = data.reshape(-1)
    return out


def _cast(arg: Resolve) -> np.ndarray:
    dtype = str(arg("output_dtype"))
    np_dtype = {"fp32": np.float32, "fp16": np.float16}.get(dtype)
    if np_dtype is None:
        raise ValueError(f"constexpr_cast to {dtype} is not supported")
    return np.asarray(arg("source_val")).astype(np_dtype)


_DECOMPRESS: dict[str, Callable[[Resolve], np.ndarray]] = {
    "constexpr_affine_dequantize": _affine_dequantize,
    "constexpr_blockwise_shift_scale": _blockwise_shift_scale,
    "constexpr_lut_to_dense": _lut_to_dense,
    "constexpr_sparse_to_dense": _sparse_to_dense,
    "constexpr_cast": _cast,
}
