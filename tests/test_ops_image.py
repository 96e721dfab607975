"""Resizing ops (upsample/resize nearest and bilinear, iOS17 resize, crop_resize in its
iOS15/16 and iOS17 forms, crop) against the grids of the resize_bilinear definition and
coremltools' own expected values (its op tests, run on Core ML by Apple's CI), fp32 and
fp16, numpy and torch."""

from __future__ import annotations

import coremltools as ct
import numpy as np
import pytest
from coremltools.converters.mil.mil import types
from fixtures.executor.mil_models import mb, save_program
from fixtures.executor.op_cases import Case, op_tests

from anemll_spec.executor import load

RNG = np.random.default_rng(17)
IMG = np.arange(1, 17, dtype=np.float32).reshape(1, 1, 4, 4)  # coremltools' test image


def rand(*shape):
    return RNG.standard_normal(shape).astype(np.float32)


def grid(mode, xin, xout):
    """The resize_bilinear def's sampling grids, clamped to [0, xin - 1]."""
    i = np.arange(xout, dtype=np.float64)
    if mode == "STRICT_ALIGN_CORNERS":
        g = i * (xin - 1) / (xout - 1) if xout > 1 else np.zeros(1)
    elif mode == "ALIGN_CORNERS":
        g = i * (xin - 1) / (xout - 1) if xout > 1 else np.full(1, (xin - 1) / 2)
    elif mode == "DEFAULT":
        g = i * (xin - xin / xout) / (xout - 1) if xout > 1 else np.zeros(1)
    elif mode == "OFFSET_CORNERS":
        delta = max(1, xin - 1) / xout
        g = 0.5 * delta + i * delta
    elif mode == "UNALIGN_CORNERS":
        g = i * xin / xout + 0.5 * xin / xout - 0.5
    else:  # ASYMMETRIC: upsample_bilinear(align_corners=False, half_pixel_centers=False)
        g = i * xin / xout
    return np.clip(g, 0, xin - 1)


def linear(x, axis, g):
    lo = np.floor(g).astype(int)
    hi = np.minimum(lo + 1, x.shape[axis] - 1)
    w = (g - lo).reshape([-1] + [1] * (x.ndim - 1 - axis))
    a, b = np.take(x, lo, axis), np.take(x, hi, axis)
    return a * (1 - w) + b * w


def bilinear(x, out_h, out_w, mode):
    y = linear(x, x.ndim - 2, grid(mode, x.shape[-2], out_h))
    return linear(y, x.ndim - 1, grid(mode, x.shape[-1], out_w))


def nearest(x, out_h, out_w):
    """Output i reads input floor(i * in / out) (coremltools' reference values agree)."""
    h, w = x.shape[-2:]
    rows = [min(i * h // out_h, h - 1) for i in range(out_h)]
    cols = [min(j * w // out_w, w - 1) for j in range(out_w)]
    return x[..., rows, :][..., cols]


def box_sample(img, boxes, th, tw, pad):
    """ALIGN_CORNERS crops: (h0, w0, h1, w1) pixel boxes, a point outside reads pad."""
    out = np.zeros((len(boxes), img.shape[1], th, tw))
    for n, (h0, w0, h1, w1) in enumerate(boxes):
        ys = h0 + np.arange(th) * (h1 - h0) / (th - 1) if th > 1 else [(h0 + h1) / 2]
        xs = w0 + np.arange(tw) * (w1 - w0) / (tw - 1) if tw > 1 else [(w0 + w1) / 2]
        for i, y in enumerate(ys):
            for j, x in enumerate(xs):
                if not (0 <= y <= img.shape[2] - 1 and 0 <= x <= img.shape[3] - 1):
                    out[n, :, i, j] = pad
                    continue
                y0, x0 = int(np.floor(y)), int(np.floor(x))
                y1, x1 = min(y0 + 1, img.shape[2] - 1), min(x0 + 1, img.shape[3] - 1)
                wy, wx = y - y0, x - x0
                top = img[0, :, y0, x0] * (1 - wx) + img[0, :, y0, x1] * wx
                bot = img[0, :, y1, x0] * (1 - wx) + img[0, :, y1, x1] * wx
                out[n, :, i, j] = top * (1 - wy) + bot * wy
    return out


X = rand(2, 3, 5, 6)
MODES = ("STRICT_ALIGN_CORNERS", "ALIGN_CORNERS", "DEFAULT", "OFFSET_CORNERS", "UNALIGN_CORNERS")
BOXES3 = np.array([[0.1, 0.3, 1.3, 1.0], [0.5, 1.8, 1.0, 0.3], [0.0, 0.4, 0.6, 0.7]], np.float32)

CASES = [
    Case(
        "upsample_nearest_reference",  # coremltools' expected values (tests/iOS15)
        {"x": np.array([1.5, -2.5, 3.5], np.float32).reshape(1, 1, 1, 3)},
        lambda v, f: (
            mb.upsample_nearest_neighbor(
                x=v["x"], scale_factor_height=3.17, scale_factor_width=0.67
            ),
            mb.upsample_nearest_neighbor(
                x=v["x"], scale_factor_height=2.0, scale_factor_width=1.12
            ),
        ),
        lambda v, f: (
            np.array([1.5, -2.5, 1.5, -2.5, 1.5, -2.5]).reshape(1, 1, 3, 2),
            np.array([1.5, -2.5, 3.5, 1.5, -2.5, 3.5]).reshape(1, 1, 2, 3),
        ),
    ),
    Case(
        "upsample_nearest_int",
        {"x": X},
        lambda v, f: mb.upsample_nearest_neighbor(
            x=v["x"], scale_factor_height=2, scale_factor_width=3
        ),
        lambda v, f: nearest(v["x"], 10, 18),
    ),
    Case(
        "resize_nearest",
        {"x": X},
        lambda v, f: mb.resize_nearest_neighbor(
            x=v["x"], target_size_height=3, target_size_width=10
        ),
        lambda v, f: nearest(v["x"], 3, 10),
    ),
    Case(
        "upsample_bilinear_reference",  # coremltools' expected values (tests/iOS14, iOS16)
        {
            "x": np.array([0, 1], np.float32).reshape(1, 1, 2),
            "y": np.array([1, 2], np.float32).reshape(1, 1, 1, 2),
        },
        lambda v, f: (
            mb.upsample_bilinear(
                x=v["x"], scale_factor_height=1, scale_factor_width=3, align_corners=True
            ),
            mb.upsample_bilinear(
                x=v["x"], scale_factor_height=1.0, scale_factor_width=2.6, align_corners=False
            ),
            mb.upsample_bilinear(
                x=v["y"],
                scale_factor_height=2,
                scale_factor_width=3,
                align_corners=False,
                half_pixel_centers=False,
            ),
        ),
        lambda v, f: (
            np.array([0, 0.2, 0.4, 0.6, 0.8, 1]).reshape(1, 1, 6),
            np.array([0, 0.1, 0.5, 0.9, 1]).reshape(1, 1, 5),
            np.tile(np.array([1.0, 1.33334, 1.66667, 2.0, 2.0, 2.0]), 2).reshape(1, 1, 2, 6),
        ),
        tol=2e-5,
    ),
    *[
        Case(
            f"upsample_bilinear_align{int(a)}_half{int(h)}",
            {"x": X},
            lambda v, f, a=a, h=h: mb.upsample_bilinear(
                x=v["x"],
                scale_factor_height=1.6,
                scale_factor_width=2.0,
                align_corners=a,
                half_pixel_centers=h,
            ),
            lambda v, f, a=a, h=h: bilinear(
                v["x"],
                8,
                12,
                "STRICT_ALIGN_CORNERS" if a else "UNALIGN_CORNERS" if h else "ASYMMETRIC",
            ),
        )
        for a, h in ((True, False), (False, True), (False, False))
    ],
    Case(
        "resize_bilinear_reference",  # the def's example grids for Xin = 2 (tests/iOS14, iOS15)
        {"x": np.array([0, 1], np.float32).reshape(1, 1, 2)},
        lambda v, f: tuple(
            mb.resize_bilinear(x=v["x"], target_size_height=1, target_size_width=n, sampling_mode=m)
            for m in MODES
            for n in (5, 6)
        ),
        lambda v, f: tuple(
            np.array(g).reshape(1, 1, -1)
            for g in (
                [0, 0.25, 0.5, 0.75, 1],
                [0, 0.2, 0.4, 0.6, 0.8, 1],
                [0, 0.25, 0.5, 0.75, 1],
                [0, 0.2, 0.4, 0.6, 0.8, 1],
                [0, 0.4, 0.8, 1, 1],
                [0, 1 / 3, 2 / 3, 1, 1, 1],
                [0.1, 0.3, 0.5, 0.7, 0.9],
                [1 / 12, 0.25, 5 / 12, 7 / 12, 0.75, 11 / 12],
                [0, 0.1, 0.5, 0.9, 1],
                [0, 0, 1 / 3, 2 / 3, 1, 1],
            )
        ),
    ),
    *[
        Case(
            f"resize_bilinear_{m.lower()}",
            {"x": X},
            lambda v, f, m=m: mb.resize_bilinear(
                x=v["x"], target_size_height=7, target_size_width=4, sampling_mode=m
            ),
            lambda v, f, m=m: bilinear(v["x"], 7, 4, m),
        )
        for m in MODES
    ],
    Case(
        "resize_align_corners_one_row",  # ALIGN_CORNERS to one row reads the middle
        {"x": X},
        lambda v, f: mb.resize_bilinear(
            x=v["x"], target_size_height=1, target_size_width=3, sampling_mode="ALIGN_CORNERS"
        ),
        lambda v, f: bilinear(v["x"], 1, 3, "ALIGN_CORNERS"),
    ),
    Case(
        "resize_ios17_reference",  # coremltools' expected values (tests/iOS17)
        {
            "a": np.array([-6.174, 9.371], np.float32).reshape(1, 1, 1, 2, 1),
            "b": np.array([0, 1], np.float32).reshape(1, 1, 2),
        },
        lambda v, f: (
            mb.resize(
                x=v["a"],
                shape=[1, 1, 3, 2],
                resized_dims=np.uint32(2),
                interpolation_mode="NEAREST_NEIGHBOR",
            ),
            mb.resize(
                x=v["b"], shape=[1, 1, 5], resized_dims=np.uint32(2), interpolation_mode="LINEAR"
            ),
            mb.resize(x=v["a"], shape=[1, 0, 0, 0], resized_dims=np.uint32(3)),
        ),
        lambda v, f: (
            np.array([-6.174, -6.174, 9.371, 9.371, 9.371, 9.371]).reshape(1, 1, 1, 3, 2),
            np.array([0, 0.4, 0.8, 1, 1]).reshape(1, 1, 5),
            np.array([-6.174, 9.371]).reshape(1, 1, 1, 2, 1),
        ),
    ),
    *[
        Case(
            f"resize_ios17_linear_{m.lower()}",
            {"x": X},
            lambda v, f, m=m: mb.resize(
                x=v["x"], shape=[6, 3], resized_dims=np.uint32(2), sampling_mode=m
            ),
            lambda v, f, m=m: bilinear(v["x"], 6, 3, m),
        )
        for m in ("DEFAULT", "UNALIGN_CORNERS")
    ],
    Case(
        "resize_ios17_nearest_offset",  # nearest: the grid point rounded half up
        {"x": X},
        lambda v, f: mb.resize(
            x=v["x"],
            shape=[9, 0],
            resized_dims=np.uint32(2),
            interpolation_mode="NEAREST_NEIGHBOR",
            sampling_mode="OFFSET_CORNERS",
        ),
        lambda v, f: np.take(
            v["x"], np.floor(grid("OFFSET_CORNERS", 5, 9) + 0.5).astype(int), axis=2
        ),
    ),
    Case(
        "crop_resize_ios17_reference",  # coremltools' expected values (tests/iOS17)
        {"x": IMG},
        lambda v, f: (
            mb.crop_resize(
                x=v["x"],
                boxes=np.array([[1, 1, 2, 2]], f),
                target_height=2,
                target_width=2,
                sampling_mode="ALIGN_CORNERS",
                pad_value=f(10),
            ),
            mb.crop_resize(
                x=v["x"],
                boxes=BOXES3.astype(f),
                box_indices=np.zeros(3, np.int32),
                target_height=2,
                target_width=2,
                normalized_coordinates=True,
                sampling_mode="ALIGN_CORNERS",
                pad_value=f(10),
            ),
        ),
        lambda v, f: (
            np.array([6, 7, 10, 11]).reshape(1, 1, 2, 2),
            np.array([3.1, 5.2, 10, 10, 10, 7.899, 10, 13.9, 2.2, 3.1, 9.4, 10.3]).reshape(
                3, 1, 2, 2
            ),
        ),
        tol=2e-4,  # the reference values carry 4-5 digits
        tol16=3e-3,
    ),
    Case(
        "crop_resize_ios17_center_size_width_first",
        {
            "x": rand(2, 3, 5, 6),
            "b": np.array([[2.5, 1.5, 3, 2], [1, 3, 2, 1.5]], np.float32),
            "i": np.array([1, 0], np.int32),
        },
        lambda v, f: mb.crop_resize(
            x=v["x"],
            boxes=v["b"],
            box_indices=v["i"],
            target_height=3,
            target_width=4,
            box_coordinate_mode="CENTER_SIZE_WIDTH_FIRST",
            sampling_mode="ALIGN_CORNERS",
            spatial_scale=np.float32(1.5),
        ),
        # (w centre, h centre, width, height) * 1.5 -> corners (h0, w0, h1, w1)
        lambda v, f: np.concatenate(
            [
                box_sample(
                    v["x"][[int(i)]],
                    [
                        [
                            (hc - bh / 2) * 1.5,
                            (wc - bw / 2) * 1.5,
                            (hc + bh / 2) * 1.5,
                            (wc + bw / 2) * 1.5,
                        ]
                    ],
                    3,
                    4,
                    0.0,
                )
                for (wc, hc, bw, bh), i in zip(v["b"], v["i"], strict=True)
            ]
        ),
    ),
]

# iOS15/16 crop_resize: roi [N, 1, 4 or 5, 1, 1], output [N, B or 1, C, h, w]
ROI = np.array([1, 1, 2, 2], np.float32).reshape(1, 1, 4, 1, 1)
CASES_16 = [
    Case(
        "crop_resize_ios15_reference",  # coremltools' expected values (tests/iOS14, iOS16)
        {"x": IMG},
        lambda v, f: (
            mb.crop_resize(
                x=v["x"],
                roi=ROI.astype(f),
                target_width=2,
                target_height=2,
                sampling_mode="ALIGN_CORNERS",
            ),
            mb.crop_resize(
                x=v["x"],
                roi=ROI.astype(f),
                target_width=4,
                target_height=4,
                sampling_mode="ALIGN_CORNERS",
            ),
            mb.crop_resize(
                x=v["x"],
                roi=ROI.astype(f),
                target_width=1,
                target_height=1,
                sampling_mode="ALIGN_CORNERS",
            ),
            mb.crop_resize(
                x=v["x"],
                roi=np.array([0, 0, 0, 1 / 3, 1 / 3], f).reshape(1, 1, 5, 1, 1),
                target_width=2,
                target_height=2,
                normalized_coordinates=True,
                sampling_mode="ALIGN_CORNERS",
            ),
            mb.crop_resize(
                x=v["x"],
                roi=np.array([2, 2, 1, 1], f).reshape(1, 1, 4, 1, 1),
                target_width=2,
                target_height=2,
                sampling_mode="ALIGN_CORNERS",
            ),
            mb.crop_resize(
                x=v["x"],
                roi=np.concatenate([np.zeros((3, 1)), BOXES3], 1).astype(f).reshape(3, 1, 5, 1, 1),
                target_width=2,
                target_height=2,
                normalized_coordinates=True,
                sampling_mode="ALIGN_CORNERS",
                pad_value=f(1.0),
            ),
        ),
        lambda v, f: (
            np.array([6, 7, 10, 11]).reshape(1, 1, 1, 2, 2),
            np.array(
                [
                    [6, 6.333333, 6.66666, 7],
                    [7.333333, 7.666666, 8, 8.333333],
                    [8.666666, 9, 9.3333333, 9.666666],
                    [10, 10.333333, 10.666666, 11],
                ]
            ).reshape(1, 1, 1, 4, 4),
            np.array([8.5]).reshape(1, 1, 1, 1, 1),
            np.array([1, 2, 5, 6]).reshape(1, 1, 1, 2, 2),
            np.array([11, 10, 7, 6]).reshape(1, 1, 1, 2, 2),
            np.array([3.1, 5.2, 1, 1, 1, 7.899, 1, 13.9, 2.2, 3.1, 9.4, 10.3]).reshape(
                3, 1, 1, 2, 2
            ),
        ),
        tol=2e-4,  # the reference values carry 4-5 digits
        tol16=3e-3,
    ),
    Case(
        "crop_resize_ios15_all_images",  # a 4-value roi crops every image of the batch
        {"x": rand(2, 2, 4, 5)},
        lambda v, f: mb.crop_resize(
            x=v["x"],
            roi=np.array([0.5, 1, 3, 3.5], f).reshape(1, 1, 4, 1, 1),
            target_height=3,
            target_width=2,
            sampling_mode="STRICT_ALIGN_CORNERS",
        ),
        lambda v, f: np.stack(
            [box_sample(v["x"][[b]], [[0.5, 1, 3, 3.5]], 3, 2, 0.0) for b in range(2)], axis=1
        ),
    ),
]


group, test_numpy, test_torch = op_tests(CASES, "ops_image")


group16, test_ios16_numpy, test_ios16_torch = op_tests(
    CASES_16, "ops_image16", "group16", torch_fp32_only=True, target=ct.target.iOS16
)


def test_resize_to_a_runtime_shape(tmp_path):
    """iOS17 resize reads its target from a runtime tensor (coremltools' reference)."""

    @mb.program(
        input_specs=[mb.TensorSpec((1, 1, 2, 1)), mb.TensorSpec((4,), dtype=types.int32)],
        opset_version=ct.target.iOS18,
    )
    def prog(x, shape):
        return mb.resize(
            x=x, shape=shape, resized_dims=np.uint32(2), interpolation_mode="NEAREST_NEIGHBOR"
        )

    path = save_program(prog, tmp_path / "resize.mlpackage")
    x = np.array([-6.174, 9.371], np.float32).reshape(1, 1, 2, 1)
    out = list(load(path).predict({"x": x, "shape": np.array([1, 1, 3, 2], np.int32)}).values())[0]
    np.testing.assert_allclose(
        out.reshape(-1), [-6.174, -6.174, 9.371, 9.371, 9.371, 9.371], rtol=1e-6
    )


@pytest.mark.torch
def test_bilinear_grids_agree_with_torch_interpolate():
    """The reference grids are PyTorch's interpolate where it defines the same thing:
    STRICT_ALIGN_CORNERS = align_corners=True, UNALIGN_CORNERS = align_corners=False."""
    import torch
    import torch.nn.functional as F  # noqa: N812

    x = rand(1, 2, 5, 6)
    for mode, align in (("STRICT_ALIGN_CORNERS", True), ("UNALIGN_CORNERS", False)):
        want = F.interpolate(torch.from_numpy(x), size=(7, 4), mode="bilinear", align_corners=align)
        np.testing.assert_allclose(
            bilinear(x.astype(np.float64), 7, 4, mode), want.numpy(), rtol=1e-5, atol=1e-6
        )
