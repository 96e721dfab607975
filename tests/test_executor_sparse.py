"""iOS18 sparse and joint compression: constexpr_lut_to_sparse and
constexpr_sparse_blockwise_shift_scale (two outputs: mask, nonzero values) made dense by
constexpr_sparse_to_dense, and quantized LUTs; the fp16 rule for decompression. Programs
built with coremltools' MIL builder and saved; expected values written from the op docs
(element by element), and for coremltools.optimize's joint compression from coremltools'
own decompression of the saved weights."""

from __future__ import annotations

import coremltools as ct
import coremltools.optimize.coreml as cto
import numpy as np
import pytest
from coremltools.converters.mil.mil import types
from fixtures.executor.mil_models import mb, save_program, saved_op_types
from test_executor_compression import lut_reference as lut_at  # the lut doc, element-wise

from anemll_spec.executor import load

RNG = np.random.default_rng(23)
SHAPE = (8, 24)
MASK = RNG.random(SHAPE) < 0.5
NNZ = int(MASK.sum())


def dense(values: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """constexpr_sparse_to_dense's doc: values fill the set positions in C order."""
    out = np.zeros(mask.shape, np.float64)
    k = 0
    for pos in np.ndindex(*mask.shape):
        if mask[pos]:
            out[pos] = values[k]
            k += 1
    return out


LUT_SPARSE = {  # name -> (indices dtype, lut shape, vector_axis)
    "lut2_sparse": (types.np_uint2_dtype, (2, 1, 4, 1), None),
    "lut4_sparse_cols": (types.np_uint4_dtype, (1, 3, 16, 1), None),
    "lut1_sparse_vector0": (types.np_uint1_dtype, (1, 1, 2, 2), 0),
}
LUT_DATA = {
    n: (
        RNG.integers(0, lut[-2], NNZ).astype(dt),
        RNG.standard_normal(lut).astype(np.float16),
    )
    for n, (dt, lut, _) in LUT_SPARSE.items()
}
SSS = {  # name -> (nonzero data, scale, offset)
    "sparse_int8_channel": (
        RNG.integers(-128, 128, NNZ).astype(np.int8),
        (RNG.random((4, 1)) + 0.1).astype(np.float16),
        RNG.integers(-3, 3, (4, 1)).astype(np.int8),
    ),
    "sparse_int4_block": (
        RNG.integers(-8, 8, NNZ).astype(types.np_int4_dtype),
        (RNG.random((2, 3)) + 0.1).astype(np.float16),
        None,
    ),
    "sparse_uint8_float_offset": (
        RNG.integers(0, 256, NNZ).astype(np.uint8),
        (RNG.random((1, 6)) * 0.01).astype(np.float16),
        (RNG.random((1, 6)) * 100).astype(np.float16),
    ),
}
# a quantized LUT: the palette itself is int8 data times a scale (palettized + quantized)
QLUT_DATA = RNG.integers(-128, 128, (2, 1, 16, 1)).astype(np.int8)
QLUT_SCALE = (RNG.random((2, 1, 1, 1)) * 0.05 + 0.01).astype(np.float16)
QLUT_IDX = RNG.integers(0, 16, SHAPE).astype(types.np_uint4_dtype)
QLUT_SPARSE_IDX = RNG.integers(0, 16, NNZ).astype(types.np_uint4_dtype)


def shift_scale(data: np.ndarray, scale: np.ndarray, offset) -> np.ndarray:
    """constexpr_blockwise_shift_scale's doc: scale[block] * (data - offset[block])."""
    reps = [d // s for d, s in zip(data.shape, scale.shape, strict=True)]
    s = np.kron(scale.astype(np.float64), np.ones(reps))
    o = 0 if offset is None else np.kron(offset.astype(np.float64), np.ones(reps))
    return (data.astype(np.float64) - o) * s


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    mask = MASK.astype(types.np_uint1_dtype)

    @mb.program(input_specs=[mb.TensorSpec(SHAPE, dtype=types.fp16)], opset_version=ct.target.iOS18)
    def prog(y):
        outs = []
        for n, (_, _, axis) in LUT_SPARSE.items():
            idx, lut = LUT_DATA[n]
            kw = {} if axis is None else {"vector_axis": axis}
            out_mask, values = mb.constexpr_lut_to_sparse(
                indices_mask=mask, indices_nonzero_data=idx, lut=lut, **kw
            )
            w = mb.constexpr_sparse_to_dense(nonzero_data=values, mask=out_mask)
            yy = y if axis is None else mb.concat(values=[y, y], axis=0)
            outs.append(mb.add(x=yy, y=w, name=n))
        for n, (data, scale, offset) in SSS.items():
            kw = {} if offset is None else {"offset": offset}
            out_mask, values = mb.constexpr_sparse_blockwise_shift_scale(
                data_mask=mask, nonzero_data=data, scale=scale, **kw
            )
            w = mb.constexpr_sparse_to_dense(nonzero_data=values, mask=out_mask)
            outs.append(mb.add(x=y, y=w, name=n))
        qlut = mb.constexpr_blockwise_shift_scale(data=QLUT_DATA, scale=QLUT_SCALE)
        w = mb.constexpr_lut_to_dense(indices=QLUT_IDX, lut=qlut)
        outs.append(mb.add(x=y, y=w, name="palettized_quantized"))
        qlut2 = mb.constexpr_blockwise_shift_scale(data=QLUT_DATA, scale=QLUT_SCALE)
        out_mask, values = mb.constexpr_lut_to_sparse(
            indices_mask=mask, indices_nonzero_data=QLUT_SPARSE_IDX, lut=qlut2
        )
        w = mb.constexpr_sparse_to_dense(nonzero_data=values, mask=out_mask)
        outs.append(mb.add(x=y, y=w, name="sparse_palettized_quantized"))
        return tuple(outs)

    return save_program(prog, tmp_path_factory.mktemp("sp") / "sp.mlpackage", precision="fp16")


def expected() -> dict[str, np.ndarray]:
    out = {}
    for n, (_, _, axis) in LUT_SPARSE.items():
        idx, lut = LUT_DATA[n]
        full = lut_at(dense(idx, MASK).astype(np.int64), lut, axis)
        m = MASK if axis is None else np.repeat(MASK, lut.shape[-1], axis=axis)
        out[n] = np.where(m, full, 0.0)
    for n, (data, scale, offset) in SSS.items():
        full = shift_scale(dense(data, MASK), scale, offset)
        out[n] = np.where(MASK, full, 0.0)
    qlut = shift_scale(QLUT_DATA, QLUT_SCALE, None).astype(np.float16)  # stored as fp16
    out["palettized_quantized"] = lut_at(QLUT_IDX, qlut, None)
    full = lut_at(dense(QLUT_SPARSE_IDX, MASK).astype(np.int64), qlut, None)
    out["sparse_palettized_quantized"] = np.where(MASK, full, 0.0)
    return out


def test_sparse_and_joint_forms_fp32_reference(model):
    saved = saved_op_types(model)
    assert saved.count("constexpr_lut_to_sparse") == len(LUT_SPARSE) + 1
    assert saved.count("constexpr_sparse_blockwise_shift_scale") == len(SSS)
    prog = load(model)
    out = prog.predict({"y": np.zeros(SHAPE, np.float16)})
    for n, ref in expected().items():
        # the decoded weight is stored in its declared dtype (fp16); y = 0 adds nothing
        np.testing.assert_array_equal(out[n], ref.astype(np.float16).astype(np.float32), n)


def test_fp16_mode_rounds_every_decompression_step_and_the_add(model):
    """fp16 mode: (data - offset) is rounded to fp16 before the product, and the add of
    the decoded weight to an fp16 input is rounded too (as Core ML computes fp16)."""
    y = (RNG.standard_normal(SHAPE) * 3).astype(np.float16)
    out = load(model, fp16=True).predict({"y": y})
    for n, (data, scale, offset) in SSS.items():
        d = dense(data, MASK).astype(np.float16)
        s = np.kron(scale, np.ones([a // b for a, b in zip(SHAPE, scale.shape, strict=True)]))
        s = s.astype(np.float16)
        if offset is not None:
            o = np.kron(offset.astype(np.float16), np.ones(d.shape // np.array(offset.shape)))
            d = (d - o.astype(np.float16)).astype(np.float16)
        w = np.where(MASK, (d * s).astype(np.float16), np.float16(0))
        np.testing.assert_array_equal(out[n], (y + w).astype(np.float16), err_msg=n)
        assert out[n].dtype == np.float16


def _joint_model(tmp_path):
    """A conv weight pruned to 50% and then palettized (joint sparse + palettized) by
    coremltools.optimize, saved."""
    weight = (RNG.standard_normal((16, 32, 1, 1)) * 0.05).astype(np.float32)

    @mb.program(input_specs=[mb.TensorSpec((1, 32, 1, 4))], opset_version=ct.target.iOS18)
    def prog(x):
        return mb.conv(x=x, weight=weight, name="y")

    model = ct.convert(
        prog,
        convert_to="mlprogram",
        minimum_deployment_target=ct.target.iOS18,
        compute_precision=ct.precision.FLOAT32,
        skip_model_load=True,
    )
    pruned = cto.prune_weights(
        model,
        cto.OptimizationConfig(
            global_config=cto.OpMagnitudePrunerConfig(target_sparsity=0.5, weight_threshold=0)
        ),
    )
    joint = cto.palettize_weights(
        pruned,
        cto.OptimizationConfig(
            global_config=cto.OpPalettizerConfig(
                nbits=2, mode="uniform", weight_threshold=0, enable_per_channel_scale=False
            )
        ),
        joint_compression=True,
    )
    path = tmp_path / "joint.mlpackage"
    joint.save(str(path))
    return path


def test_optimize_joint_sparse_palettized_matches_coremltools(tmp_path):
    from coremltools.converters.mil.frontend.milproto.load import load as milproto_load

    path = _joint_model(tmp_path)
    saved = saved_op_types(path)
    assert "constexpr_lut_to_sparse" in saved and "constexpr_sparse_to_dense" in saved
    spec = ct.utils.load_spec(str(path))
    pymil = milproto_load(
        spec,
        specification_version=spec.specificationVersion,
        file_weights_dir=str(path / "Data/com.apple.CoreML/weights"),
    )
    ops = pymil.functions["main"].operations
    last = [op for op in ops if op.op_type.startswith("constexpr_")][-1]
    weight = np.asarray(last.materialized_val_inference(), np.float64)  # coremltools' decode
    x = RNG.standard_normal((1, 32, 1, 4)).astype(np.float32)
    got = load(path).predict({"x": x})["y"]
    ref = np.einsum("oc,bchw->bohw", weight[:, :, 0, 0], x.astype(np.float64))
    np.testing.assert_allclose(got, ref, rtol=1e-5, atol=1e-6)
