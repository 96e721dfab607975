"""Compile-time ops (const and constexpr_*), evaluated once at load, in numpy.

Two generations of the palettization and sparsity ops share names; they are told apart by
their parameters, as the defs define them:
- iOS16 `constexpr_lut_to_dense(indices: uint8[M] packed, lut: T[2^n], shape: uint32[K])`;
  iOS18 `constexpr_lut_to_dense(indices: uintN[shape], lut: T[g..., 2^n, V], vector_axis?)`.
- iOS16 `constexpr_sparse_to_dense(nonzero_data, mask: uint8 packed bits, shape)`;
  iOS18 `constexpr_sparse_to_dense(nonzero_data, mask: uint1[shape])`.
iOS18's sparse-to-sparse ops (`constexpr_lut_to_sparse`,
`constexpr_sparse_blockwise_shift_scale`) have two outputs, (mask, nonzero_data), which a
`constexpr_sparse_to_dense` makes dense; chained, they give the joint sparse + palettized
and sparse + quantized forms (a quantized LUT is a `constexpr_blockwise_shift_scale`
feeding `lut`).

Numerics: the result has the op's declared dtype. Shift-scale is `scale * (data - offset)`;
the fp32 reference computes it in fp32 and rounds once to the declared dtype; with
`fp16=True` iOS18's fp16 result is computed as coremltools' own `decompress` computes it:
the subtraction and the product in fp16, or in fp32 where the offset is fp32. iOS16's
`constexpr_affine_dequantize` is computed as coremltools' value_inference computes it
(`optimize/_utils.dequantize_by_scale_and_zp`), in both modes: data and zero point as
fp32, the subtraction and the product in fp32, one rounding to the scale's dtype.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from anemll_spec.errors import InputError
from anemll_spec.mlmodel.dtypes import BY_NAME, unpack_bits
from anemll_spec.mlmodel.ir import Op, materialize
from anemll_spec.mlmodel.limits import check_alloc, element_count

Resolve = Callable[[str], Any]  # param name -> constant value (None when absent)


def is_compile_time(op_type: str) -> bool:
    return op_type == "const" or op_type.startswith("constexpr_")


def evaluate(op: Op, arg: Resolve, fp16: bool = False) -> Any:
    """Value of a const/constexpr op: one array, or a tuple for an op of several outputs."""
    if op.type == "const":
        if "val" not in op.attrs:
            raise InputError(f"{op.where()}: const without a value")
        return materialize(op.attrs["val"][0])
    fn = _DECOMPRESS.get(op.type)
    if fn is None:
        raise InputError(f"{op.where()}: unsupported op type '{op.type}'")
    _check_outputs(op)
    try:
        out = fn(arg, fp16)
    except InputError:
        raise
    except (ValueError, IndexError, TypeError, ArithmeticError) as exc:
        raise InputError(f"{op.where()}: cannot decompress: {exc}") from exc
    outs = out if isinstance(out, tuple) else (out,)
    if len(outs) != len(op.outputs):
        raise InputError(f"{op.where()}: {len(outs)} results for {len(op.outputs)} outputs")
    for value, var in zip(outs, op.outputs, strict=True):
        declared = var.static_shape
        if declared is not None and tuple(value.shape) != declared:
            raise InputError(
                f"{op.where()}: decompressed shape {tuple(value.shape)} != declared {declared}"
            )
    return out


def _check_outputs(op: Op) -> None:
    """The memory the declared outputs need, before anything is decoded."""
    total = 0
    for var in op.outputs:
        t = BY_NAME.get(var.dtype)
        if var.static_shape is None or t is None or t.np_dtype is None:
            continue
        total += element_count(var.static_shape, op.where()) * max(t.np_dtype.itemsize, 4)
    check_alloc(total, op.where(), "decompressing needs")


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


def _shift_scale(data: np.ndarray, scale: np.ndarray, offset: Any, fp16: bool) -> np.ndarray:
    """scale * (data - offset); scale and offset already broadcast against data."""
    scale = np.asarray(scale)
    if scale.dtype.kind != "f":
        raise ValueError(f"scale must be a float tensor, got {scale.dtype}")
    if fp16 and scale.dtype == np.float16:
        # coremltools' decompress (iOS18 compression.py): data cast to fp16, then numpy's
        # promotion: an integer or fp16 offset keeps both steps in fp16, an fp32 one
        # (fractional, not rounded to fp16 first) makes them fp32; one cast at the end
        steps: np.ndarray = data.astype(np.float16)
        if offset is not None:
            steps = steps - np.asarray(offset)
        return (scale * steps).astype(np.float16, copy=False)
    out: np.ndarray = data.astype(np.float32)
    if offset is not None:
        out -= np.asarray(offset).astype(np.float32)
    out *= scale.astype(np.float32)
    return out.astype(scale.dtype, copy=False)


# iOS16 constexpr_affine_dequantize's type domains (SrcT, ZeroPointT, DstT of its def), as
# the numpy dtypes their values decode to; shown in MIL's spelling
_AFFINE_DTYPES = {
    "quantized_data": ("int8", "uint8"),
    "zero_point": ("int8", "uint8", "float32"),
    "scale": ("float16", "float32"),
}
_MIL_NAME = {"float16": "fp16", "float32": "fp32", "float64": "fp64"}


def _affine_dequantize(arg: Resolve, fp16: bool) -> np.ndarray:
    """iOS16: scale * (quantized_data - zero_point), scale/zero_point scalar or along axis,
    in fp32 with one rounding to the scale's dtype whatever `fp16` is: coremltools'
    value_inference (`dequantize_by_scale_and_zp`) casts data and zero point to fp32,
    subtracts and multiplies in fp32 and casts the product once; an fp16 subtraction
    rounded a fractional zero point to fp16 first."""
    data = np.asarray(arg("quantized_data"))
    scale = np.asarray(arg("scale"))
    zero = np.asarray(arg("zero_point"))
    for name, value in (("quantized_data", data), ("zero_point", zero), ("scale", scale)):
        if value.dtype.name not in _AFFINE_DTYPES[name]:
            allowed = ", ".join(_MIL_NAME.get(d, d) for d in _AFFINE_DTYPES[name])
            got = _MIL_NAME.get(value.dtype.name, value.dtype.name)
            raise ValueError(f"{name} is {got}; the iOS16 def takes {allowed}")
    axis = int(arg("axis"))
    axis = axis + data.ndim if axis < 0 else axis
    if not 0 <= axis < data.ndim:
        raise ValueError(f"axis {axis} outside rank {data.ndim}")

    def along(v: np.ndarray) -> np.ndarray:
        if v.ndim == 0:
            return v
        shape = [1] * data.ndim
        shape[axis] = v.shape[0]
        return v.reshape(shape)

    return _shift_scale(data, along(scale), along(zero), False)


def _blockwise_shift_scale(arg: Resolve, fp16: bool) -> np.ndarray:
    """iOS18: scale[block] * (data - offset[block]); block = data.shape / scale.shape."""
    return _blockwise(np.asarray(arg("data")), np.asarray(arg("scale")), arg("offset"), fp16)


def _blockwise(data: np.ndarray, scale: np.ndarray, offset: Any, fp16: bool) -> np.ndarray:
    data_view, param_view = _block_view(data.shape, scale.shape)
    if offset is not None:
        offset = np.asarray(offset).reshape(param_view)
    out = _shift_scale(data.reshape(data_view), scale.reshape(param_view), offset, fp16)
    return out.reshape(data.shape)


# iOS16 constexpr_lut_to_dense: NUM_PALETTES in {2, 4, 16, 64, 256} (n_bits 1, 2, 4, 6, 8)
_LUT_SIZES = (2, 4, 16, 64, 256)


def _lut_to_dense(arg: Resolve, fp16: bool) -> np.ndarray:
    if arg("shape") is not None:  # iOS16 form
        indices = np.asarray(arg("indices"), dtype=np.uint8).reshape(-1)
        lut = np.asarray(arg("lut")).reshape(-1)
        shape = tuple(int(s) for s in np.asarray(arg("shape")).reshape(-1))
        if lut.size not in _LUT_SIZES:  # 1 entry: 0-bit indices; 8, 32, 128: 3, 5, 7 bits
            raise ValueError(
                f"lut size {lut.size} is not one of {', '.join(map(str, _LUT_SIZES))} "
                "(the iOS16 def's 1, 2, 4, 6 or 8 bits per index)"
            )
        nbits = int(lut.size).bit_length() - 1
        count = element_count(shape, "constexpr_lut_to_dense shape")
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
        if groups[a] == 0 or indices.shape[a] % groups[a]:
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
    axis = _vector_axis(vector_axis, rank)
    # (..., d_axis, ..., V) -> put V right after the axis, then merge the two
    values = np.moveaxis(values, -1, axis + 1)
    shape = list(indices.shape)
    shape[axis] *= vsize
    return values.reshape(shape)


def _vector_axis(vector_axis: Any, rank: int) -> int:
    if vector_axis is None:
        raise ValueError("vector palettization (V > 1) needs vector_axis")
    axis = int(vector_axis)
    if not -rank <= axis < rank:
        raise ValueError(f"vector_axis {axis} outside rank {rank}")
    return axis + rank if axis < 0 else axis


def _dense(nonzero: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Scatter nonzero values (in C order) into the set positions of a mask."""
    nz = mask != 0
    if int(nz.sum()) != nonzero.size:
        raise ValueError(f"mask has {int(nz.sum())} set bits for {nonzero.size} values")
    out = np.zeros(mask.shape, dtype=nonzero.dtype)
    out[nz] = nonzero.reshape(-1)
    return out


def _sparse_to_dense(arg: Resolve, fp16: bool) -> np.ndarray:
    data = np.asarray(arg("nonzero_data"))
    mask = np.asarray(arg("mask"))
    if arg("shape") is not None:  # iOS16: mask is packed bits, LSB first
        shape = tuple(int(s) for s in np.asarray(arg("shape")).reshape(-1))
        count = element_count(shape, "constexpr_sparse_to_dense shape")
        mask = unpack_bits(mask.astype(np.uint8), 1, count, False).reshape(shape)
    return _dense(data, mask)


def _lut_to_sparse(arg: Resolve, fp16: bool) -> tuple[np.ndarray, np.ndarray]:
    """iOS18: (mask, values): the lut applied to the nonzero indices only; with vector
    palettization every mask bit becomes V bits along vector_axis."""
    mask = np.asarray(arg("indices_mask"))
    lut = np.asarray(arg("lut"))
    indices = _dense(np.asarray(arg("indices_nonzero_data")), mask)
    dense = _lut_to_dense_ios18(indices, lut, arg("vector_axis"))
    if lut.shape[-1] > 1:
        mask = np.repeat(mask, lut.shape[-1], axis=_vector_axis(arg("vector_axis"), mask.ndim))
    return mask, dense[mask != 0].reshape(-1)


def _sparse_shift_scale(arg: Resolve, fp16: bool) -> tuple[np.ndarray, np.ndarray]:
    """iOS18: (mask, scale * (nonzero_data - offset)), blocks taken in the dense layout."""
    mask = np.asarray(arg("data_mask"))
    data = _dense(np.asarray(arg("nonzero_data")), mask)
    dense = _blockwise(data, np.asarray(arg("scale")), arg("offset"), fp16)
    return mask, dense[mask != 0].reshape(-1)


def _cast(arg: Resolve, fp16: bool) -> np.ndarray:
    dtype = str(arg("output_dtype"))
    np_dtype = {"fp32": np.float32, "fp16": np.float16}.get(dtype)
    if np_dtype is None:
        raise ValueError(f"constexpr_cast to {dtype} is not supported")
    return np.asarray(arg("source_val")).astype(np_dtype)


_DECOMPRESS: dict[str, Callable[[Resolve, bool], Any]] = {
    "constexpr_affine_dequantize": _affine_dequantize,
    "constexpr_blockwise_shift_scale": _blockwise_shift_scale,
    "constexpr_lut_to_dense": _lut_to_dense,
    "constexpr_sparse_to_dense": _sparse_to_dense,
    "constexpr_lut_to_sparse": _lut_to_sparse,
    "constexpr_sparse_blockwise_shift_scale": _sparse_shift_scale,
    "constexpr_cast": _cast,
}
