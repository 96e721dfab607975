"""Review 40 of the reference executor: three ops settled against coremltools 9's own op
definitions. Programs built with coremltools' MIL builder, saved, and run by the numpy
executor and the torch one (the CPU, and CUDA where the host has it).

- iOS16 constexpr_affine_dequantize: computed as coremltools' value_inference computes it
  (`optimize/_utils.dequantize_by_scale_and_zp`: fp32 data and zero point, the subtraction
  and the product in fp32, one cast to the scale's dtype), with fp16=True too; types its
  def does not take (an fp16 quantized_data) refused at load. iOS18's
  constexpr_blockwise_shift_scale with fp16=True: coremltools' decompress, whose numpy
  promotion keeps an fp32 (fractional) offset in fp32 instead of rounding it to fp16.
- Resizing an int32 x: the iOS15 defs (upsample_*, resize_nearest_neighbor,
  resize_bilinear, crop_resize) take fp16 or fp32 only and refuse it at load; iOS17's
  resize takes int32 but defines no rounding of a LINEAR result, so LINEAR of an int32 x
  is refused at load (it was truncated) and NEAREST_NEIGHBOR, a copy, runs.
- slice_by_size: -1 is the rest of the dimension, 0 an empty slice (the def's text and
  type_inference; its value_inference reads every size <= 0 as the rest, against the
  shape its type_inference declares); constant bounds it forbids are refused at load.
"""

from __future__ import annotations

import shutil

import coremltools as ct
import numpy as np
import pytest
from coremltools.converters.mil.mil import types
from coremltools.converters.mil.mil.ops.defs.iOS16.constexpr_ops import (
    constexpr_affine_dequantize,
)
from coremltools.converters.mil.mil.ops.defs.iOS18.compression import (
    constexpr_blockwise_shift_scale,
)
from coremltools.proto import FeatureTypes_pb2, MIL_pb2
from fixtures.executor.mil_models import mb, patch_const_input, save_program, set_attribute
from torch_util import refused_at_load, torch_devices

from anemll_spec.errors import InputError
from anemll_spec.executor import load


def _runners(path, fp16: bool = False):
    """The numpy executor and the torch one on each device, as predict(feed) -> first
    output (a numpy array)."""
    from anemll_spec.executor.torch_runner import load_torch

    programs = {"numpy": load(path, fp16=fp16)}
    programs |= {
        f"torch-{d}": load_torch(path, device=d, dtype="float32", fp16=fp16)
        for d in torch_devices()
    }
    return {
        kind: (lambda feed, prog=prog: np.asarray(next(iter(prog.predict(feed).values()))))
        for kind, prog in programs.items()
    }


# -- constexpr_affine_dequantize (iOS16) ---------------------------------------------------

RNG = np.random.default_rng(40)
Q = RNG.integers(-128, 128, (8, 64)).astype(np.int8)
ZP = (RNG.random(8) * 10 - 5).astype(np.float32)  # fractional: not exact in fp16
SCALE = (RNG.random(8) * 0.1 + 0.01).astype(np.float16)


@pytest.fixture(scope="module")
def affine(tmp_path_factory):
    """y + dequantized weight, y an fp16 input fed zeros (the add is exact): the output is
    the decompressed weight. Per-channel along axis 0: fp16 scale, fp32 zero point."""

    @mb.program(input_specs=[mb.TensorSpec(Q.shape, dtype=types.fp16)],
                opset_version=ct.target.iOS16)  # fmt: skip
    def prog(y):
        w = mb.constexpr_affine_dequantize(quantized_data=Q, zero_point=ZP, scale=SCALE, axis=0)
        return mb.add(x=y, y=w, name="w")

    folder = tmp_path_factory.mktemp("affine")
    return save_program(prog, folder / "affine.mlpackage", "fp16", ct.target.iOS16)


@pytest.mark.parametrize("fp16", [False, True])
def test_affine_dequantize_is_coremltools_value_inference_bit_for_bit(affine, fp16):
    """coremltools' own decompress (what its value_inference returns) is the reference;
    the fp16 mode used to subtract in fp16, rounding the zero point to fp16 first: about a
    quarter of the 512 values differed."""
    want = constexpr_affine_dequantize.decompress(Q, ZP, SCALE, 0)
    assert want.dtype == np.float16
    # its formula, written out: fp32 (q - zp) * scale, rounded once
    formula = ((Q.astype(np.float32) - ZP[:, None]) * SCALE[:, None].astype(np.float32)).astype(
        np.float16
    )
    np.testing.assert_array_equal(want, formula)
    # the fp16 steps the old code took give other values: the test tells them apart
    steps = ((Q.astype(np.float16) - ZP[:, None].astype(np.float16)) * SCALE[:, None]).astype(
        np.float16
    )
    assert (steps != want).sum() > 0
    feed = {"y": np.zeros(Q.shape, np.float16)}
    for kind, run in _runners(affine, fp16).items():
        got = run(feed)
        np.testing.assert_array_equal(got.astype(np.float16), want, err_msg=kind)
        np.testing.assert_array_equal(got.astype(np.float32), want.astype(np.float32), kind)


def test_affine_dequantize_of_fp16_quantized_data_is_refused_at_load(affine, tmp_path):
    """SrcT is uint8 or int8 (the def's type_domains): fp16 quantized data, which the
    builder refuses, was decompressed as if it were allowed."""
    path = tmp_path / "fp16_data.mlpackage"
    shutil.copytree(affine, path)
    set_attribute(path, "constexpr_affine_dequantize", "quantized_data", Q.astype(np.float16))
    with pytest.raises(
        InputError,
        match=r"\(constexpr_affine_dequantize\).*quantized_data is fp16; the iOS16 def takes "
        r"int8, uint8$",
    ):
        load(path)


BLOCK_SCALE = (RNG.random((8, 2)) * 0.1 + 0.01).astype(np.float16)  # blocks of 32 columns


@pytest.mark.parametrize(
    "data, offset",
    [
        (Q.astype(np.float16), (RNG.random((8, 2)) * 10 - 5).astype(np.float32)),
        (Q, (RNG.random((8, 2)) * 10 - 5).astype(np.float32)),
        (Q, (RNG.random((8, 2)) * 10 - 5).astype(np.float16)),
        (Q, RNG.integers(-5, 5, (8, 2)).astype(np.int8)),
    ],
    ids=["fp16_data_fp32_offset", "int8_data_fp32_offset", "fp16_offset", "int8_offset"],
)
def test_blockwise_shift_scale_in_fp16_mode_is_coremltools_decompress(tmp_path, data, offset):
    """iOS18 (SrcT takes fp16 data, OffsetT an fp32 offset): coremltools' decompress casts
    data to the scale's fp16 and lets numpy promote, so an fp32 offset makes the steps
    fp32 (its value is fp32, the declared type fp16: one rounding). The fp16 mode rounded
    the fractional offset to fp16 and stepped in fp16 (the first two cases differed)."""

    @mb.program(input_specs=[mb.TensorSpec(Q.shape, dtype=types.fp16)],
                opset_version=ct.target.iOS18)  # fmt: skip
    def prog(y):
        w = mb.constexpr_blockwise_shift_scale(data=data, scale=BLOCK_SCALE, offset=offset)
        return mb.add(x=y, y=w, name="w")

    path = save_program(prog, tmp_path / "shift_scale.mlpackage", "fp16")
    want = constexpr_blockwise_shift_scale.decompress(data, BLOCK_SCALE, offset)
    want = want.astype(np.float16)  # the declared fp16 of an fp32-offset value
    feed = {"y": np.zeros(Q.shape, np.float16)}
    for kind, run in _runners(path, fp16=True).items():
        np.testing.assert_array_equal(run(feed).astype(np.float16), want, err_msg=kind)


# -- resizing an int32 x ---------------------------------------------------------------------

IMG = np.array([[0, -7, 2**30 + 1]], np.int32).reshape(1, 1, 1, 3)  # 2**30 + 1: no fp32 value
I32 = types.int32


def _resize(folder, mode: str, dtype=I32):
    """iOS17 resize of a (1, 1, 1, 3) x to 5 columns (resized_dims 1), DEFAULT sampling."""

    @mb.program(input_specs=[mb.TensorSpec(IMG.shape, dtype=dtype)],
                opset_version=ct.target.iOS17)  # fmt: skip
    def prog(x):
        return mb.resize(x=x, shape=[1, 5], resized_dims=np.uint32(1), interpolation_mode=mode)

    return save_program(prog, folder / f"resize_{mode}.mlpackage", target=ct.target.iOS17)


def test_a_linear_resize_of_an_int32_x_is_refused_at_load(tmp_path):
    """T: fp16, fp32, int32 (iOS17/image_resizing.py), no value_inference and no rounding
    in the def: the interpolated values (0, -2.8, -5.6, ...) were truncated to int32."""
    path = _resize(tmp_path, "LINEAR")
    pattern = r"\(resize\).*LINEAR interpolation of an int32 x: the def defines no rounding"
    refused_at_load(path, pattern)


def test_a_nearest_resize_of_an_int32_x_copies_elements_exactly(tmp_path):
    """NEAREST_NEIGHBOR reads x at the DEFAULT grid point i * (in - in / out) / (out - 1)
    rounded half up (the resize_bilinear def's sampling modes): integers copied, exactly."""
    xin, xout = 3, 5
    grid = np.arange(xout) * (xin - xin / xout) / (xout - 1)
    want = IMG[..., np.minimum(np.floor(grid + 0.5).astype(int), xin - 1)]
    for kind, run in _runners(_resize(tmp_path, "NEAREST_NEIGHBOR")).items():
        got = run({"x": IMG})
        assert got.dtype == np.int32, kind
        np.testing.assert_array_equal(got, want, err_msg=kind)


def test_a_linear_resize_of_a_float_x_is_unchanged(tmp_path):
    """coremltools' own test of this op (TestResize.test_resize_linear) expects
    [0, 1] -> [0, 0.4, 0.8, 1, 1] for 5 columns at DEFAULT sampling."""

    @mb.program(input_specs=[mb.TensorSpec((1, 1, 2))], opset_version=ct.target.iOS17)
    def prog(x):
        return mb.resize(x=x, shape=[1, 1, 5], resized_dims=np.uint32(2))

    path = save_program(prog, tmp_path / "linear.mlpackage", target=ct.target.iOS17)
    for kind, run in _runners(path).items():
        got = run({"x": np.array([[[0, 1]]], np.float32)})
        np.testing.assert_allclose(got.reshape(-1), [0, 0.4, 0.8, 1, 1], rtol=1e-6, err_msg=kind)


def _as_int32_input(path, name: str) -> None:
    """Declare the saved program's input `name` (and its feature) int32: an x the builder
    refuses for the iOS15 resize ops, as a hand-written or damaged model could hold."""
    from coremltools.proto import Model_pb2

    spec_file = path / "Data" / "com.apple.CoreML" / "model.mlmodel"
    spec = Model_pb2.Model()
    spec.ParseFromString(spec_file.read_bytes())
    fn = spec.mlProgram.functions["main"]
    next(i for i in fn.inputs if i.name == name).type.tensorType.dataType = MIL_pb2.INT32
    feature = next(f for f in spec.description.input if f.name == name)
    feature.type.multiArrayType.dataType = FeatureTypes_pb2.ArrayFeatureType.INT32
    spec_file.write_bytes(spec.SerializeToString())


IOS15_RESIZES = {
    "upsample_nearest_neighbor": lambda x, b: mb.upsample_nearest_neighbor(
        x=x, scale_factor_height=2, scale_factor_width=2
    ),
    "resize_nearest_neighbor": lambda x, b: mb.resize_nearest_neighbor(
        x=x, target_size_height=4, target_size_width=4
    ),
    "upsample_bilinear": lambda x, b: mb.upsample_bilinear(
        x=x, scale_factor_height=2.0, scale_factor_width=2.0
    ),
    "resize_bilinear": lambda x, b: mb.resize_bilinear(
        x=x, target_size_height=4, target_size_width=4
    ),
    "crop_resize": lambda x, b: mb.crop_resize(x=x, boxes=b, target_height=2, target_width=2),
}


@pytest.mark.parametrize("op", sorted(IOS15_RESIZES))
def test_an_int32_x_of_the_float_only_resize_ops_is_refused_at_load(tmp_path, op):
    """T: fp16, fp32 (iOS15/image_resizing.py; iOS16's upsample_bilinear and iOS17's
    crop_resize keep it): an int32 x ran, bilinear ones truncating their results."""

    @mb.program(input_specs=[mb.TensorSpec((1, 1, 2, 2)), mb.TensorSpec((1, 4))],
                opset_version=ct.target.iOS17)  # fmt: skip
    def prog(x, b):
        return mb.add(x=b, y=0.0), IOS15_RESIZES[op](x, b)

    path = save_program(prog, tmp_path / f"{op}.mlpackage", target=ct.target.iOS17)
    load(path)  # fp32: loads
    _as_int32_input(path, "x")
    with pytest.raises(InputError, match=rf"\({op}\).*x is int32; the {op} def takes fp16 or fp32"):
        load(path)


# -- slice_by_size: a size of -1 or 0 -------------------------------------------------------

X = np.arange(12, dtype=np.float32).reshape(3, 4)


def _slice(folder, name: str, begin, size):
    @mb.program(input_specs=[mb.TensorSpec(X.shape)], opset_version=ct.target.iOS18)
    def prog(x):
        return mb.slice_by_size(x=x, begin=begin, size=size)

    return prog, save_program(prog, folder / f"{name}.mlpackage")


def test_a_size_of_0_is_an_empty_slice_as_the_program_declares(tmp_path):
    """coremltools' type_inference (what the saved program declares) gives 0 rows for a
    size of 0 and 4 - 1 columns for -1; both executors give x[1:1, 1:]."""
    prog, path = _slice(tmp_path, "zero", [1, 1], [0, -1])
    assert prog.functions["main"].outputs[0].shape == (0, 3)
    for kind, run in _runners(path).items():
        got = run({"x": X})
        assert got.shape == (0, 3), kind


def test_coremltools_value_inference_reads_a_size_of_0_as_the_rest():
    """Why the executor follows the text and type_inference, not value_inference: folded
    on a constant x, the op's value has 2 rows where its declared type has 0."""

    @mb.program(input_specs=[mb.TensorSpec(X.shape)], opset_version=ct.target.iOS18)
    def prog(x):
        return mb.slice_by_size(x=X, begin=[1, 1], size=[0, -1])

    out = prog.functions["main"].outputs[0]
    assert out.shape == (0, 3)
    np.testing.assert_array_equal(out.val, X[1:, 1:])


def test_runtime_sizes_of_minus_1_and_0(tmp_path):
    """begin and size as inputs (declared shape unknown): -1 from a negative begin reads
    to the end, 0 reads nothing; numpy slices of the def's reading."""

    @mb.program(
        input_specs=[mb.TensorSpec(X.shape), mb.TensorSpec((2,), dtype=I32),
                     mb.TensorSpec((2,), dtype=I32)],
        opset_version=ct.target.iOS18,
    )  # fmt: skip
    def prog(x, b, s):
        return mb.slice_by_size(x=x, begin=b, size=s)

    path = save_program(prog, tmp_path / "runtime.mlpackage")
    cases = [
        ([-1, 1], [-1, -1], X[2:, 1:]),
        ([-3, 0], [-1, 2], X[0:, 0:2]),
        ([1, 4], [2, 0], X[1:3, 4:4]),
        ([2, 1], [0, -1], X[2:2, 1:]),
    ]
    for kind, run in _runners(path).items():
        for begin, size, want in cases:
            feed = {"x": X, "b": np.array(begin, np.int32), "s": np.array(size, np.int32)}
            got = run(feed)
            assert got.shape == want.shape, (kind, begin, size)
            np.testing.assert_array_equal(got, want, err_msg=f"{kind} {begin} {size}")


@pytest.mark.parametrize(
    "size, message",
    [
        ([-2, -1], r"size -2 on axis 0 is outside \[0, 2\] for begin 1"),
        ([3, -1], r"size 3 on axis 0 is outside \[0, 2\] for begin 1"),
    ],
    ids=["minus_2", "past_the_end"],
)
def test_constant_sizes_the_def_forbids_are_refused_at_load(tmp_path, size, message):
    """Only -1 is special (the def's text); a size of -2 (type_inference: a dimension of
    -2) or past the end was refused at the first call, now at load."""
    _, path = _slice(tmp_path, "bad", [1, 1], [1, -1])
    patch_const_input(path, "slice_by_size", "size", np.array(size, np.int32))
    with pytest.raises(InputError, match=rf"\(slice_by_size\).*{message}"):
        load(path)
