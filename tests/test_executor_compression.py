"""Compressed weights: MILBlob sub-byte packing and every constexpr form, iOS16 and iOS18."""

from __future__ import annotations

import coremltools as ct
import coremltools.optimize.coreml as cto
import numpy as np
import pytest
from coremltools.converters.mil.frontend.milproto.load import load as milproto_load
from coremltools.converters.mil.mil import types
from coremltools.libmilstoragepython import _BlobStorageReader, _BlobStorageWriter
from fixtures.executor.mil_models import mb, save_program, saved_op_types

from anemll_spec.errors import InputError
from anemll_spec.executor import load
from anemll_spec.mlmodel.blob import BlobFile

RNG = np.random.default_rng(3)


def pack_lsb_first(values: np.ndarray, nbits: int) -> np.ndarray:
    """Reference bit packing written from the constexpr_lut_to_dense doc: element i's bits
    start at bit i*nbits of the stream, least significant bit first."""
    bits = []
    for v in values.reshape(-1).astype(np.int64):
        bits += [(int(v) >> b) & 1 for b in range(nbits)]
    bits += [0] * (-len(bits) % 8)
    return np.array(
        [sum(bit << i for i, bit in enumerate(bits[j : j + 8])) for j in range(0, len(bits), 8)],
        dtype=np.uint8,
    )


# -- the MILBlob file format, against coremltools' own writer and reader ------------------

SUB_BYTE = {
    1: types.np_uint1_dtype,
    2: types.np_uint2_dtype,
    3: types.np_uint3_dtype,
    4: types.np_uint4_dtype,
    6: types.np_uint6_dtype,
}


def test_blob_reader_matches_coremltools_for_every_dtype(tmp_path):
    path = str(tmp_path / "w.bin")
    writer = _BlobStorageWriter(path)
    written = []
    for count in (1, 5, 13, 64):
        for nbits, dt in SUB_BYTE.items():
            arr = RNG.integers(0, 2**nbits, count).astype(dt)
            written.append((getattr(writer, f"write_uint{nbits}_data")(arr), f"uint{nbits}", arr))
        arr = RNG.integers(-8, 8, count).astype(types.np_int4_dtype)
        written.append((writer.write_int4_data(arr), "int4", arr))
    for name, dt in (
        ("int8", np.int8),
        ("uint8", np.uint8),
        ("int16", np.int16),
        ("uint16", np.uint16),
        ("int32", np.int32),
        ("uint32", np.uint32),
    ):
        info = np.iinfo(dt)
        arr = RNG.integers(info.min, info.max, 7, dtype=np.int64).astype(dt)
        written.append((getattr(writer, f"write_{name}_data")(arr), name, arr))
    f16 = RNG.standard_normal(9).astype(np.float16)
    written.append((writer.write_fp16_data(f16.view(np.uint16)), "fp16", f16))
    f32 = RNG.standard_normal(9).astype(np.float32)
    written.append((writer.write_float_data(f32), "fp32", f32))
    del writer

    blob = BlobFile(tmp_path / "w.bin")
    reader = _BlobStorageReader(path)
    assert blob.count == len(written)
    for offset, dtype, arr in written:
        got = blob.read(offset, dtype, arr.shape)
        np.testing.assert_array_equal(
            got.astype(np.int64) if dtype != "fp16" and dtype != "fp32" else got,
            arr.astype(got.dtype),
            err_msg=dtype,
        )
        if dtype.startswith(("uint", "int")) and dtype not in ("uint16", "int16", "uint32"):
            theirs = getattr(reader, f"read_{dtype}_data")(offset)
            np.testing.assert_array_equal(got.astype(np.int64), np.asarray(theirs, np.int64))


def test_blob_reader_rejects_bad_offsets_and_types(tmp_path):
    path = str(tmp_path / "w.bin")
    writer = _BlobStorageWriter(path)
    off = writer.write_float_data(np.ones(4, np.float32))
    writer.write_float_data(np.ones(64, np.float32))
    del writer
    blob = BlobFile(tmp_path / "w.bin")
    with pytest.raises(InputError, match="bad sentinel"):
        blob.read(off + 64, "fp32", (4,))
    with pytest.raises(InputError, match="holds fp32"):
        blob.read(off, "fp16", (4,))
    with pytest.raises(InputError, match="too few"):
        blob.read(off, "fp32", (5,))


# -- constexpr ops built directly with the MIL builder -----------------------------------

IOS16_LUT = {}
for _nbits in (1, 2, 4, 6, 8):
    _shape = (3, 5)  # 15 elements: never a whole number of bytes for the odd widths
    _idx = RNG.integers(0, 2**_nbits, _shape)
    _lut = RNG.standard_normal(2**_nbits).astype(np.float16)
    IOS16_LUT[_nbits] = (_idx, _lut, _shape)

Q8 = RNG.integers(-128, 128, (4, 6)).astype(np.int8)
Q8_SCALE = (RNG.random(6) + 0.5).astype(np.float16)
Q8_ZP = RNG.integers(-5, 5, 6).astype(np.int8)
QU8 = RNG.integers(0, 256, (4, 6)).astype(np.uint8)
SP_MASK = RNG.random((4, 6)) < 0.4
SP_DATA = RNG.standard_normal(int(SP_MASK.sum())).astype(np.float16)


@pytest.fixture(scope="module")
def ios16_model(tmp_path_factory):
    @mb.program(
        input_specs=[
            mb.TensorSpec((3, 5), dtype=types.fp16),
            mb.TensorSpec((4, 6), dtype=types.fp16),
        ],
        opset_version=ct.target.iOS16,
    )
    def prog(x, y):
        outs = []
        for nbits, (idx, lut, shape) in IOS16_LUT.items():
            w = mb.constexpr_lut_to_dense(
                indices=pack_lsb_first(idx, nbits), lut=lut, shape=np.array(shape, np.uint32)
            )
            outs.append(mb.add(x=x, y=w, name=f"lut{nbits}"))
        deq = mb.constexpr_affine_dequantize(
            quantized_data=Q8, zero_point=Q8_ZP, scale=Q8_SCALE, axis=1
        )
        deq_u = mb.constexpr_affine_dequantize(
            quantized_data=QU8, zero_point=np.uint8(128), scale=np.float16(0.01), axis=0
        )
        sparse = mb.constexpr_sparse_to_dense(
            nonzero_data=SP_DATA,
            mask=pack_lsb_first(SP_MASK.astype(np.uint8), 1),
            shape=np.array([4, 6], np.uint32),
        )
        outs += [
            mb.add(x=y, y=deq, name="affine_int8"),
            mb.add(x=y, y=deq_u, name="affine_uint8"),
            mb.add(x=y, y=sparse, name="sparse16"),
        ]
        return tuple(outs)

    return save_program(
        prog,
        tmp_path_factory.mktemp("c16") / "c16.mlpackage",
        precision="fp16",
        target=ct.target.iOS16,
    )


def test_ios16_constexpr_forms(ios16_model):
    saved = saved_op_types(ios16_model)
    assert saved.count("constexpr_lut_to_dense") == len(IOS16_LUT)
    assert {"constexpr_affine_dequantize", "constexpr_sparse_to_dense"} <= set(saved)
    x, y = np.zeros((3, 5), np.float16), np.zeros((4, 6), np.float16)
    out = load(ios16_model).predict({"x": x, "y": y})
    for nbits, (idx, lut, _) in IOS16_LUT.items():
        np.testing.assert_array_equal(
            out[f"lut{nbits}"], lut[idx].astype(np.float32), err_msg=f"{nbits}-bit"
        )
    expected = (Q8.astype(np.float32) - Q8_ZP) * Q8_SCALE.astype(np.float32)
    np.testing.assert_allclose(out["affine_int8"], expected.astype(np.float16), rtol=1e-3)
    expected_u = (QU8.astype(np.float32) - 128) * np.float32(np.float16(0.01))
    np.testing.assert_allclose(out["affine_uint8"], expected_u.astype(np.float16), rtol=1e-3)
    dense = np.zeros((4, 6), np.float16)
    dense[SP_MASK] = SP_DATA
    np.testing.assert_array_equal(out["sparse16"], dense.astype(np.float32))


IOS18_LUT = {  # name -> (indices dtype, indices shape, lut shape, vector_axis)
    "lut1_tensor": (types.np_uint1_dtype, (4, 6), (1, 1, 2, 1), None),
    "lut2_rows": (types.np_uint2_dtype, (4, 6), (2, 1, 4, 1), None),
    "lut3_grid": (types.np_uint3_dtype, (4, 6), (2, 3, 8, 1), None),
    "lut4_cols": (types.np_uint4_dtype, (4, 6), (1, 2, 16, 1), None),
    "lut6_rows": (types.np_uint6_dtype, (4, 6), (4, 1, 64, 1), None),
    "lut8_tensor": (np.uint8, (4, 6), (1, 1, 256, 1), None),
    "lut4_vector_axis0": (types.np_uint4_dtype, (2, 6), (1, 1, 16, 2), 0),
    "lut2_vector_axis1": (types.np_uint2_dtype, (4, 3), (2, 1, 4, 2), 1),
}
IOS18_LUT_DATA = {
    n: (RNG.integers(0, lut[-2], shape).astype(dt), RNG.standard_normal(lut).astype(np.float16))
    for n, (dt, shape, lut, _) in IOS18_LUT.items()
}

BW = {  # name -> (data, scale, offset)
    "bw_int4_block": (
        RNG.integers(-8, 8, (4, 6)).astype(types.np_int4_dtype),
        (RNG.random((4, 2)) + 0.1).astype(np.float16),
        None,
    ),
    "bw_uint4_offset": (
        RNG.integers(0, 16, (4, 6)).astype(types.np_uint4_dtype),
        (RNG.random((2, 3)) + 0.1).astype(np.float16),
        RNG.integers(0, 16, (2, 3)).astype(types.np_uint4_dtype),
    ),
    "bw_int8_channel": (
        RNG.integers(-128, 128, (4, 6)).astype(np.int8),
        (RNG.random((4, 1)) + 0.1).astype(np.float16),
        RNG.integers(-3, 3, (4, 1)).astype(np.int8),
    ),
    "bw_uint8_float_offset": (
        RNG.integers(0, 256, (4, 6)).astype(np.uint8),
        (RNG.random((1, 6)) * 0.01).astype(np.float16),
        (RNG.random((1, 6)) * 100).astype(np.float16),
    ),
}


def lut_reference(idx, lut, vector_axis):
    """Element-by-element expansion, straight from the iOS18 constexpr_lut_to_dense doc."""
    rank, vsize = idx.ndim, lut.shape[-1]
    block = [idx.shape[a] // lut.shape[a] for a in range(rank)]
    out_shape = list(idx.shape)
    if vsize > 1:
        out_shape[vector_axis] *= vsize
    out = np.zeros(out_shape, np.float32)
    for pos in np.ndindex(*idx.shape):
        g = tuple(pos[a] // block[a] for a in range(rank))
        vec = lut[g][int(idx[pos])]
        for v in range(vsize):
            dst = list(pos)
            if vsize > 1:
                dst[vector_axis] = pos[vector_axis] * vsize + v
            out[tuple(dst)] = vec[v]
    return out


@pytest.fixture(scope="module")
def ios18_model(tmp_path_factory):
    @mb.program(
        input_specs=[mb.TensorSpec((4, 6), dtype=types.fp16)], opset_version=ct.target.iOS18
    )
    def prog(y):
        outs = []
        for n, (_, _, _, axis) in IOS18_LUT.items():
            idx, lut = IOS18_LUT_DATA[n]
            kw = {} if axis is None else {"vector_axis": axis}
            outs.append(
                mb.add(x=y, y=mb.constexpr_lut_to_dense(indices=idx, lut=lut, **kw), name=n)
            )
        for n, (data, scale, offset) in BW.items():
            kw = {} if offset is None else {"offset": offset}
            w = mb.constexpr_blockwise_shift_scale(data=data, scale=scale, **kw)
            outs.append(mb.add(x=y, y=w, name=n))
        sparse = mb.constexpr_sparse_to_dense(
            nonzero_data=SP_DATA, mask=SP_MASK.astype(types.np_uint1_dtype)
        )
        outs.append(mb.add(x=y, y=sparse, name="sparse18"))
        return tuple(outs)

    return save_program(prog, tmp_path_factory.mktemp("c18") / "c18.mlpackage", precision="fp16")


def test_ios18_constexpr_forms(ios18_model):
    saved = saved_op_types(ios18_model)
    assert saved.count("constexpr_lut_to_dense") == len(IOS18_LUT)
    assert saved.count("constexpr_blockwise_shift_scale") == len(BW)
    out = load(ios18_model).predict({"y": np.zeros((4, 6), np.float16)})
    for n, (_, _, _, axis) in IOS18_LUT.items():
        idx, lut = IOS18_LUT_DATA[n]
        np.testing.assert_array_equal(out[n], lut_reference(idx, lut, axis), err_msg=n)
    for n, (data, scale, offset) in BW.items():
        reps = [d // s for d, s in zip(data.shape, scale.shape, strict=True)]
        s32 = np.kron(scale.astype(np.float32), np.ones(reps, np.float32))
        o32 = 0 if offset is None else np.kron(offset.astype(np.float32), np.ones(reps))
        expected = ((data.astype(np.float32) - o32) * s32).astype(np.float16)
        np.testing.assert_array_equal(out[n], expected.astype(np.float32), err_msg=n)
    dense = np.zeros((4, 6), np.float16)
    dense[SP_MASK] = SP_DATA
    np.testing.assert_array_equal(out["sparse18"], dense.astype(np.float32))


# -- models compressed by coremltools.optimize -------------------------------------------

W = (RNG.standard_normal((48, 64)) * 0.02).astype(np.float32)
COMPRESSIONS = {
    # mode="uniform": kmeans needs scikit-learn, which the project does not depend on
    "palettize_uniform4_grouped": cto.OpPalettizerConfig(
        nbits=4, mode="uniform", granularity="per_grouped_channel", group_size=8, weight_threshold=0
    ),
    "palettize_uniform6": cto.OpPalettizerConfig(nbits=6, mode="uniform", weight_threshold=0),
    "palettize_uniform3": cto.OpPalettizerConfig(nbits=3, mode="uniform", weight_threshold=0),
    "quantize_int8_channel": cto.OpLinearQuantizerConfig(
        dtype="int8", granularity="per_channel", weight_threshold=0
    ),
    "quantize_int4_block": cto.OpLinearQuantizerConfig(
        dtype="int4", granularity="per_block", block_size=16, weight_threshold=0
    ),
}


@pytest.mark.parametrize("name", list(COMPRESSIONS))
def test_optimize_compressed_conv_matches_weights_decoded_by_coremltools(tmp_path, name):
    @mb.program(
        input_specs=[mb.TensorSpec((1, 64, 1, 1), dtype=types.fp16)], opset_version=ct.target.iOS18
    )
    def prog(x):
        return mb.conv(x=x, weight=W.reshape(48, 64, 1, 1), name="y")

    model = ct.convert(
        prog,
        convert_to="mlprogram",
        minimum_deployment_target=ct.target.iOS18,
        compute_precision=ct.precision.FLOAT16,
        skip_model_load=True,
    )
    config = cto.OptimizationConfig(global_config=COMPRESSIONS[name])
    if name.startswith("palettize"):
        model = cto.palettize_weights(model, config)
    else:
        model = cto.linear_quantize_weights(model, config)
    path = tmp_path / f"{name}.mlpackage"
    model.save(str(path))
    assert any(t.startswith("constexpr_") for t in saved_op_types(path))

    # the decompressed weight, as coremltools' own MIL loader materialises it
    spec = ct.utils.load_spec(str(path))
    pymil = milproto_load(
        spec,
        spec.specificationVersion,
        file_weights_dir=str(path / "Data/com.apple.CoreML/weights"),
    )
    constexprs = [
        op for op in pymil.functions["main"].operations if op.op_type.startswith("constexpr_")
    ]
    weight = constexprs[-1].outputs[0].op.materialized_val_inference()
    weight = np.asarray(weight, np.float32).reshape(48, 64)
    assert np.abs(weight - W).max() < 0.02  # it is a compressed copy of W

    x = RNG.standard_normal((1, 64, 1, 1)).astype(np.float16)
    out = load(path).predict({"x": x})["y"]
    expected = weight.astype(np.float64) @ x.astype(np.float64).reshape(64)
    np.testing.assert_allclose(out.reshape(48), expected, rtol=1e-5, atol=1e-6)
