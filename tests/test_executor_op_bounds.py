"""What an op's definition bounds, refused by both executors alike (numpy and torch on
CPU) in one line rather than computed into something the definition does not give:
slice_update's update shape at runtime bounds (iOS18 def: the update has the slice's shape);
negative gather/scatter indices and crop_resize box_indices from iOS17 (out of range there,
gather/scatter indices wrapped up to iOS16); pad
amounts (iOS15 def: >= 0, at most D - 1 to reflect, D to replicate); quantize's per-channel
scale holding a 0 (iOS17 def: only a scale 0 everywhere is refused)."""

from __future__ import annotations

import coremltools as ct
import numpy as np
import pytest
from coremltools.converters.mil.mil import types
from fixtures.executor.mil_models import mb, save_program

from anemll_spec.errors import InputError
from anemll_spec.executor import load

EXECUTORS = ["numpy", pytest.param("torch", marks=pytest.mark.torch)]


def _run(path, feed: dict, executor: str, **kw) -> dict:
    if executor == "numpy":
        return load(path).predict(feed)
    from anemll_spec.executor.torch_runner import load_torch

    return load_torch(path, device="cpu", **kw).predict(feed)


# -- slice_update -------------------------------------------------------------------------

X46 = np.zeros((4, 6), np.float32)
U23 = np.arange(1, 7, dtype=np.float32).reshape(2, 3)


@pytest.fixture(scope="module")
def slice_update(tmp_path_factory):
    """A (2, 3) update into a (4, 6) x at runtime bounds: unit strides (b, e) and
    stride [1, 2] (b2, e2)."""
    i32 = {"dtype": types.int32}

    @mb.program(
        input_specs=[
            mb.TensorSpec((4, 6)),
            mb.TensorSpec((2, 3)),
            *(mb.TensorSpec((2,), **i32) for _ in range(4)),
        ],
        opset_version=ct.target.iOS18,
    )
    def prog(x, u, b, e, b2, e2):
        unit = mb.slice_update(x=x, update=u, begin=b, end=e, name="unit")
        strided = mb.slice_update(x=x, update=u, begin=b2, end=e2, stride=[1, 2], name="strided")
        return unit, strided

    return save_program(prog, tmp_path_factory.mktemp("slice_update") / "su.mlpackage")


def _su_feed(end=(2, 3), end2=(2, 6)) -> dict:
    zero = np.zeros(2, np.int32)
    return {
        "x": X46,
        "u": U23,
        "b": zero,
        "e": np.array(end, np.int32),
        "b2": zero,
        "e2": np.array(end2, np.int32),
    }


@pytest.mark.parametrize("executor", EXECUTORS)
def test_slice_update_writes_an_update_of_the_slices_shape(slice_update, executor):
    out = _run(slice_update, _su_feed(), executor)
    want = X46.copy()
    want[:2, :3] = U23
    np.testing.assert_array_equal(out["unit"], want)
    want = X46.copy()
    want[:2, ::2] = U23
    np.testing.assert_array_equal(out["strided"], want)


@pytest.mark.parametrize("executor", EXECUTORS)
@pytest.mark.parametrize(
    "end, end2, shape",
    [((3, 2), (2, 6), (3, 2)), ((1, 6), (2, 6), (1, 6)), ((2, 3), (3, 4), (3, 2))],
)
def test_slice_update_refuses_an_update_of_another_shape(slice_update, executor, end, end2, shape):
    """Six elements into a (3, 2) or (1, 6) slice: they were reshaped into it (the (2, 3)
    update scrambled across rows), as the stride-2 (3, 2) slice took them too."""
    rows, cols = shape
    bad = rf"update of shape \(2, 3\) does not match the slice.* shape \({rows}, {cols}\)"
    with pytest.raises(InputError, match=bad):
        _run(slice_update, _su_feed(end, end2), executor)
    if executor == "torch":  # bounds checked on the device too (as on CUDA)
        with pytest.raises(InputError, match="does not match the slice"):
            _run(slice_update, _su_feed(end, end2), executor, device_checks=True)


def test_predict_refuses_a_misshapen_update_in_one_line(slice_update, tmp_path, cli):
    inputs = tmp_path / "in.npz"
    np.savez(inputs, **_su_feed(end=(3, 2)))
    r = cli("predict", slice_update, "--inputs", inputs, "--out", tmp_path / "out.npz")
    assert r.returncode == 2, (r.returncode, r.stderr)
    assert r.stderr.count("\n") == 1 and "Traceback" not in r.stderr, r.stderr
    assert "'unit' (slice_update)" in r.stderr and "of shape (3, 2)" in r.stderr, r.stderr
    assert not (tmp_path / "out.npz").exists()


# -- negative gather / scatter indices from iOS17 -------------------------------------------

X32 = np.arange(6, dtype=np.float32).reshape(3, 2)
GOOD = {"i1": [2], "i2": [[2, 0]], "ind": [[2, 1]]}  # row 2; rows 2, 0 along axis 0; x[2, 1]


@pytest.fixture(scope="module", params=[True, False], ids=["validate", "no_validate"])
def gathers17(request, tmp_path_factory):
    """Every gather and scatter op of iOS17 at runtime indices: i1 (1,), i2 (1, 2) along
    axis 0, ind (1, 2) one element; validate_indices as the param says."""
    v = {"validate_indices": request.param}
    i32 = {"dtype": types.int32}

    @mb.program(
        input_specs=[
            mb.TensorSpec((3, 2)),
            mb.TensorSpec((1,), **i32),
            mb.TensorSpec((1, 2), **i32),
            mb.TensorSpec((1, 2), **i32),
        ],
        opset_version=ct.target.iOS17,
    )
    def prog(x, i1, i2, ind):
        u1, u2, u0 = np.full((1, 2), 9, np.float32), np.full((1, 2), 9, np.float32), [9.0]
        return (
            mb.gather(x=x, indices=i1, axis=0, name="gather", **v),
            mb.gather_along_axis(x=x, indices=i2, axis=0, name="gather_along_axis", **v),
            mb.gather_nd(x=x, indices=ind, name="gather_nd", **v),
            mb.scatter(data=x, indices=i1, updates=u1, mode="update", name="scatter", **v),
            mb.scatter_along_axis(
                data=x, indices=i2, updates=u2, mode="update", name="scatter_along_axis", **v
            ),
            mb.scatter_nd(
                data=x,
                indices=ind,
                updates=np.array(u0, np.float32),
                mode="update",
                name="scatter_nd",
                **v,
            ),
        )

    folder = tmp_path_factory.mktemp("gathers17")
    return save_program(prog, folder / "g.mlpackage", target=ct.target.iOS17)


def _g_feed(**bad) -> dict:
    feed = {k: np.array(v, np.int32) for k, v in {**GOOD, **bad}.items()}
    return {"x": X32, **feed}


@pytest.mark.parametrize("executor", EXECUTORS)
def test_ios17_gathers_and_scatters_at_in_range_indices(gathers17, executor):
    out = _run(gathers17, _g_feed(), executor)
    np.testing.assert_array_equal(out["gather"], X32[[2]])
    np.testing.assert_array_equal(out["gather_along_axis"], [[4.0, 1.0]])
    np.testing.assert_array_equal(out["gather_nd"], [5.0])
    rows = X32.copy()
    rows[2] = 9
    np.testing.assert_array_equal(out["scatter"], rows)
    along = X32.copy()
    along[2, 0] = along[0, 1] = 9
    np.testing.assert_array_equal(out["scatter_along_axis"], along)
    one = X32.copy()
    one[2, 1] = 9
    np.testing.assert_array_equal(out["scatter_nd"], one)


@pytest.mark.parametrize("executor", EXECUTORS)
@pytest.mark.parametrize(
    "bad, ops",
    [
        ({"i1": [-1]}, "gather|scatter"),  # the first op reading i1 names it
        ({"i2": [[2, -3]]}, "gather_along_axis|scatter_along_axis"),
        ({"ind": [[-1, 1]]}, "gather_nd|scatter_nd"),
        ({"ind": [[2, -2]]}, "gather_nd|scatter_nd"),
    ],
)
def test_ios17_negative_indices_are_out_of_range(gathers17, executor, bad, ops):
    """iOS17 defs: negative indices are out of bounds (Core ML raises with
    validate_indices, else the result is undefined); both executors wrapped them (gather
    [-1] gave row 2, scatter wrote it)."""
    match = rf"\(({ops})\) in function 'main': index out of range \[0, \d\): min -\d.*undefined"
    with pytest.raises(InputError, match=match):
        _run(gathers17, _g_feed(**bad), executor)
    if executor == "torch":
        with pytest.raises(InputError, match=r"index out of range \[0, \d\) \(from iOS17"):
            _run(gathers17, _g_feed(**bad), executor, device_checks=True)


@pytest.fixture(scope="module")
def crop17(tmp_path_factory):
    """iOS17 crop_resize of x (2, 1, 3, 3) by one box (rows 0-2, cols 0-2, 3 x 3: the
    whole image, read at the grid points) at a runtime box index `bi` (1,)."""

    @mb.program(
        input_specs=[mb.TensorSpec((2, 1, 3, 3)), mb.TensorSpec((1,), dtype=types.int32)],
        opset_version=ct.target.iOS17,
    )
    def prog(x, bi):
        box = np.array([[0, 0, 2, 2]], np.float32)
        return mb.crop_resize(
            x=x,
            boxes=box,
            box_indices=bi,
            target_height=3,
            target_width=3,
            sampling_mode="STRICT_ALIGN_CORNERS",
            name="crop",
        )

    folder = tmp_path_factory.mktemp("crop17")
    return save_program(prog, folder / "crop.mlpackage", target=ct.target.iOS17)


X2133 = np.arange(18, dtype=np.float32).reshape(2, 1, 3, 3)


@pytest.mark.parametrize("executor", EXECUTORS)
def test_ios17_crop_resize_box_index_picks_the_image(crop17, executor):
    out = _run(crop17, {"x": X2133, "bi": np.array([1], np.int32)}, executor)
    np.testing.assert_array_equal(out["crop"], X2133[[1]])


@pytest.mark.parametrize("executor", EXECUTORS)
@pytest.mark.parametrize("index", [-1, 2])
def test_ios17_crop_resize_box_index_out_of_range(crop17, executor, index):
    """A negative box index is out of bound from iOS17, as gather's; both executors
    wrapped -1 to the last image (crop of image 1)."""
    match = r"\(crop_resize\) in function 'main': index out of range \[0, 2\)"
    with pytest.raises(InputError, match=match):
        _run(crop17, {"x": X2133, "bi": np.array([index], np.int32)}, executor)
    if executor == "torch":  # the checks CUDA runs: deferred, on the device
        with pytest.raises(InputError, match=r"index out of range \[0, 2\)"):
            feed = {"x": X2133, "bi": np.array([index], np.int32)}
            _run(crop17, feed, executor, device_checks=True)


# -- pad amounts -----------------------------------------------------------------------------

X13 = np.array([[1.0, 2.0, 3.0]], np.float32)
MOST = {"constant": [0, 0, 4, 5], "reflect": [0, 0, 2, 2], "replicate": [0, 0, 3, 3]}
NP_MODE = {"constant": "constant", "reflect": "reflect", "replicate": "edge"}


def _pad_program(folder, pads: dict):
    """x (1, 3) padded in each mode: by a runtime pad (inputs named after the modes), and
    by the constant `pads` (outputs named c_<mode>)."""

    @mb.program(
        input_specs=[
            mb.TensorSpec((1, 3)),
            *(mb.TensorSpec((4,), dtype=types.int32) for _ in range(3)),
        ],
        opset_version=ct.target.iOS18,
    )
    def prog(x, constant, reflect, replicate):
        runtime = {"constant": constant, "reflect": reflect, "replicate": replicate}
        return (
            *(mb.pad(x=x, pad=v, mode=m, name=m) for m, v in runtime.items()),
            *(
                mb.pad(x=x, pad=np.array(v, np.int32), mode=m, name=f"c_{m}")
                for m, v in pads.items()
            ),
        )

    return save_program(prog, folder / "pad.mlpackage")


@pytest.fixture(scope="module")
def pads(tmp_path_factory):
    return _pad_program(tmp_path_factory.mktemp("pad"), MOST)


def _pad_feed(**bad) -> dict:
    return {"x": X13, **{m: np.array(v, np.int32) for m, v in {**MOST, **bad}.items()}}


@pytest.mark.parametrize("executor", EXECUTORS)
def test_pad_computes_up_to_the_most_each_mode_takes(pads, executor):
    out = _run(pads, _pad_feed(), executor)
    for mode, amounts in MOST.items():
        want = np.pad(X13, [(0, 0), tuple(amounts[2:])], mode=NP_MODE[mode])
        np.testing.assert_array_equal(out[mode], want)
        np.testing.assert_array_equal(out[f"c_{mode}"], want)


@pytest.mark.parametrize("executor", EXECUTORS)
@pytest.mark.parametrize(
    "bad, message",
    [
        (
            {"constant": [0, 0, -1, 0]},
            r"'constant' \(pad\).*pad amounts must be >= 0, got \[0, 0, -1, 0\]",
        ),
        ({"replicate": [-1, 0, 0, 0]}, r"'replicate' \(pad\).*must be >= 0"),
        (
            {"reflect": [0, 0, 3, 0]},
            r"reflect pads at most 2 on axis 1 of size 3 \(D - 1\), got \(3, 0\)",
        ),
        (
            {"replicate": [0, 0, 0, 4]},
            r"replicate pads at most 3 on axis 1 of size 3 \(D\), got \(0, 4\)",
        ),
        ({"reflect": [1, 0, 0, 0]}, r"reflect pads at most 0 on axis 0 of size 1"),
    ],
)
def test_a_runtime_pad_outside_the_definition_is_refused(pads, executor, bad, message):
    """numpy raised 'index can't contain negative values' for a negative pad (an
    ExecutionError) while torch cropped [[2., 3.]]; reflect 3 and replicate 4 of a
    dimension of 3 were computed (by repeating the reflection or the edge)."""
    with pytest.raises(InputError, match=message):
        _run(pads, _pad_feed(**bad), executor)


@pytest.mark.parametrize("executor", EXECUTORS)
@pytest.mark.parametrize("mode, amounts", [("reflect", [0, 0, 3, 5]), ("replicate", [0, 0, 4, 4])])
def test_a_constant_pad_outside_the_definition_is_refused_at_load(
    tmp_path, executor, mode, amounts
):
    path = _pad_program(tmp_path, {mode: amounts})
    with pytest.raises(InputError, match=rf"'c_{mode}' \(pad\).*{mode} pads at most"):
        if executor == "numpy":
            load(path)
        else:
            from anemll_spec.executor.torch_runner import load_torch

            load_torch(path, device="cpu")


# -- quantize with a zero in a per-channel scale ------------------------------------------------

QX = np.array([[1.0, -2.0, 3.0], [-4.0, 5.0, 0.5]], np.float32)
QUANT = {  # output dtype -> (scale along axis 1, zero point)
    "int8": (np.array([0.5, 0.0, 2.0], np.float32), np.array([0, 3, -1], np.int8)),
    "uint8": (np.array([0.0, 1.0, 0.25], np.float32), np.array([10, 0, 128], np.uint8)),
}


@pytest.fixture(scope="module")
def quantize(tmp_path_factory):
    @mb.program(input_specs=[mb.TensorSpec((2, 3))], opset_version=ct.target.iOS17)
    def prog(x):
        return tuple(
            mb.quantize(input=x, scale=s, zero_point=z, axis=1, output_dtype=d, name=f"q_{d}")
            for d, (s, z) in QUANT.items()
        )

    folder = tmp_path_factory.mktemp("quantize")
    return save_program(prog, folder / "q.mlpackage", target=ct.target.iOS17)


@pytest.mark.parametrize("executor", EXECUTORS)
def test_a_per_channel_scale_holding_a_zero_quantizes(quantize, executor):
    """x / 0 is +-inf, saturated by the clip, as coremltools' value_inference computes it
    (the executors refused the op at load: 'scale must not be 0')."""
    from coremltools.optimize._utils import quantize_by_scale_and_zp

    out = _run(quantize, {"x": QX}, executor)
    for dtype, (scale, zero) in QUANT.items():
        with np.errstate(divide="ignore"):
            want = quantize_by_scale_and_zp(QX, scale.reshape(1, 3), zero.reshape(1, 3), dtype)
        np.testing.assert_array_equal(out[f"q_{dtype}"], want)
    assert out["q_int8"][:, 1].tolist() == [-128, 127] and out["q_uint8"][:, 0].tolist() == [255, 0]


@pytest.mark.parametrize("executor", EXECUTORS)
def test_zero_over_a_zero_scale_is_refused(quantize, executor):
    """0 / 0 is NaN: coremltools' value_inference casts it to an undefined integer."""
    x = QX.copy()
    x[1, 1] = 0.0  # int8's channel 1 has scale 0
    with pytest.raises(InputError, match=r"'q_int8' \(quantize\).*input 0 \(or NaN\) in channel 1"):
        _run(quantize, {"x": x}, executor)
