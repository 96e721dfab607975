"""Review 40 of the reference executor: three ops settled against coremltools 9's own op
definitions. Programs built with coremltools' MIL builder, saved, and run by the numpy
executor and the torch one (the CPU, and CUDA where the host has it).

- iOS16 constexpr_affine_dequantize: computed as coremltools' value_inference computes it
  (`optimize/_utils.dequantize_by_scale_and_zp`: fp32 data and zero point, the subtraction
  and the product in fp32, one cast to the scale's dtype), with fp16=True too; types its
  def does not take (an fp16 quantized_data) refused at load.
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
from fixtures.executor.mil_models import mb, save_program, set_attribute
from torch_util import torch_devices

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
