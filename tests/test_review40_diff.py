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
from fixtures.executor.mil_models import mb, save_program
from test_executor_semantics40 import _as_int32_input
from torch_util import torch_devices

from anemll_spec.errors import InputError
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
    with pytest.raises(InputError, match=pattern):
        load(path)
    from anemll_spec.executor.torch_runner import load_torch

    for device in torch_devices():
        with pytest.raises(InputError, match=pattern):
            load_torch(path, device=device)
