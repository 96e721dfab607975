"""Review of the day's changes (0f9f4b8..): what they missed, each shown against the
authority the change itself cites (coremltools 9's op defs, ...)."""

from __future__ import annotations

import coremltools as ct
import numpy as np
import pytest
from coremltools.converters.mil.mil import types
from coremltools.converters.mil.mil.ops.defs.iOS15.image_resizing import affine as affine_def
from coremltools.converters.mil.mil.ops.defs.iOS17.image_resizing import (
    resample as resample_def,
)
from coremltools.converters.mil.mil.ops.defs.iOS18.compression import (
    constexpr_blockwise_shift_scale,
)
from fixtures.executor.mil_models import mb, save_program
from test_executor_semantics40 import _as_int32_input
from torch_util import refused_at_load, torch_devices

from anemll_spec.executor import load

# -- resample and affine: the interpolating image ops the int32 refusal left out -------------

SAMPLERS = {
    "resample": (
        resample_def,
        lambda x: mb.resample(
            x=x,
            coordinates=np.full((1, 3, 3, 2), 0.3, np.float32),
            sampling_mode="bilinear",
            padding_mode="constant",
            padding_value=0.0,
            coordinates_mode="normalized_minus_one_to_one",
            align_corners=True,
        ),
    ),
    "affine": (
        affine_def,
        lambda x: mb.affine(
            x=x,
            transform_matrix=np.array([[0.5, 0, 0, 0, 0.5, 0]], np.float32),
            output_height=3,
            output_width=3,
            sampling_mode="bilinear",
            padding_mode="constant",
            padding_value=0.0,
            coordinates_mode="normalized_minus_one_to_one",
            align_corners=True,
        ),
    ),
}


@pytest.mark.parametrize("op", sorted(SAMPLERS))
def test_an_int32_x_of_resample_and_affine_is_refused_at_load(tmp_path, op):
    """Their defs (image_resizing.py, as upsample_bilinear's) take an fp16 or fp32 x only;
    an int32 x was interpolated (the bilinear mix of 0, 7, 3, 1 at 0.3: fractions), a
    result no def gives, where the resize ops next to them are now refused."""
    op_def, make = SAMPLERS[op]
    domain = {types.builtin_to_string(t) for t in op_def.type_domains["T"]}
    assert "int32" not in domain and domain == {"fp16", "fp32"}

    @mb.program(input_specs=[mb.TensorSpec((1, 1, 2, 2))], opset_version=ct.target.iOS17)
    def prog(x):
        return make(x)

    path = save_program(prog, tmp_path / f"{op}.mlpackage", target=ct.target.iOS17)
    load(path)  # fp32: loads
    _as_int32_input(path, "x")
    pattern = rf"\({op}\).*x is int32; the {op} def takes fp16 or fp32"
    refused_at_load(path, pattern)


# -- simplify decoded constexpr weights as the fp32 reference in an fp16 program ------------

RNG = np.random.default_rng(4040)
# two linears' (out, in) weights, per-block fp16 scales and fractional fp16 offsets
# (OffsetT takes fp16): blocks of 32 input columns
WEIGHTS = [
    (
        RNG.integers(-128, 128, (8, 64)).astype(np.int8),
        (RNG.random((8, 2)) * 0.1 + 0.01).astype(np.float16),
        (RNG.random((8, 2)) * 10 - 5).astype(np.float16),
    )
    for _ in range(2)
]


def test_simplify_decodes_weights_in_the_programs_fp16_mode(tmp_path):
    """The torch runner lowers linears (and 1x1 convs) to matmuls with simplify, which
    decoded their constexpr weights with fp16=False: the fp32 reference, one rounding,
    where the program itself (fp16=True) decodes as coremltools' decompress (data -
    offset rounded to fp16, then the product). So torch and numpy differed in fp16 mode
    for a weight with an fp16 offset. x is the identity: each output is its weight,
    transposed, read back exactly (products by 1, sums with zeros). The two linears read
    one x, so they are merged too (merge_parallel_matmuls)."""
    from anemll_spec.executor.torch_runner import load_torch

    @mb.program(input_specs=[mb.TensorSpec((64, 64), dtype=types.fp16)],
                opset_version=ct.target.iOS18)  # fmt: skip
    def prog(x):
        return tuple(
            mb.linear(x=x, weight=mb.constexpr_blockwise_shift_scale(data=q, scale=s, offset=o))
            for q, s, o in WEIGHTS
        )

    path = save_program(prog, tmp_path / "weights.mlpackage", "fp16")
    wants = [
        constexpr_blockwise_shift_scale.decompress(q, s, o).astype(np.float16).T
        for q, s, o in WEIGHTS
    ]
    for (q, s, o), want in zip(WEIGHTS, wants, strict=True):
        # the fp32 reference decoding (simplify's) differs: the test tells them apart
        cols = [0] * 32 + [1] * 32
        ref = (q.astype(np.float32) - o.astype(np.float32)[:, cols]) * s[:, cols]
        assert (want != ref.astype(np.float16).T).sum() > 0
    feed = {"x": np.eye(64, dtype=np.float16)}
    runners = {"numpy": load(path, fp16=True)}
    runners |= {f"torch-{d}": load_torch(path, device=d, fp16=True) for d in torch_devices()}
    for kind, program in runners.items():
        got = [np.asarray(v).astype(np.float16) for v in program.predict(feed).values()]
        assert len(got) == len(wants), kind
        for g, w in zip(got, wants, strict=True):
            np.testing.assert_array_equal(g, w, err_msg=kind)
