"""crop_resize's spatial_scale must be finite: a NaN or inf one put every box off the
image, and each output read pad_value, silently. Refused at load, naming the value; a
finite scale still scales the boxes (expected values from the image's own formula)."""

from __future__ import annotations

import coremltools as ct
import numpy as np
import pytest
from fixtures.executor.mil_models import mb, patch_const_input, save_program

from anemll_spec.errors import InputError
from anemll_spec.executor import load

IMG = np.arange(6, dtype=np.float32).reshape(1, 1, 2, 3)  # value 3 * row + column


def _model(tmp_path):
    """One box, the target 2 x 3 at ALIGN_CORNERS: output i reads box start + i * step."""

    @mb.program(input_specs=[mb.TensorSpec((1, 1, 2, 3)), mb.TensorSpec((1, 4))],
                opset_version=ct.target.iOS18)  # fmt: skip
    def prog(x, b):
        return mb.crop_resize(
            x=x, boxes=b, target_height=2, target_width=3, sampling_mode="ALIGN_CORNERS",
            spatial_scale=0.5,
        )  # fmt: skip

    return save_program(prog, tmp_path / "crop.mlpackage")


def test_a_finite_scale_scales_the_boxes(tmp_path):
    """A box (0, 0, 2, 4) scaled by 0.5 is the whole image (0, 0, 1, 2): the image back;
    (0, 0, 2, 2) is its left 2 x 2, read at columns 0, 0.5, 1 (ALIGN_CORNERS)."""
    program = load(_model(tmp_path))
    for box, want in (
        ([0, 0, 2, 4], IMG[0, 0]),
        ([0, 0, 2, 2], np.array([[0, 0.5, 1], [3, 3.5, 4]])),
    ):
        feed = {"x": IMG, "b": np.array([box], np.float32)}
        out = next(iter(program.predict(feed).values()))
        np.testing.assert_allclose(out.reshape(2, 3), want)


@pytest.mark.parametrize("value", [float("nan"), float("inf"), float("-inf")])
def test_a_scale_that_is_no_finite_number_is_refused_at_load(tmp_path, value):
    path = _model(tmp_path)
    patch_const_input(path, "crop_resize", "spatial_scale", np.float32(value))
    with pytest.raises(
        InputError, match=rf"\(crop_resize\).*spatial_scale {value} must be finite$"
    ):
        load(path)
