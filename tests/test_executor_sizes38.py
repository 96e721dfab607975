"""Review 38 of the reference executor: ops whose output size is a runtime value (a fill
shape, tile reps, a range's bounds, a one-hot depth, pad amounts, slice_by_size bounds, a
list length) or a constant the def leaves unbounded (upsample scales, affine / crop_resize
output sizes, NMS max_boxes). A model is untrusted: such a value is checked before anything
is allocated, a value outside the def's range is refused with one line, never a result of
other sizes. Programs built with coremltools' MIL builder, saved, and run by both
executors (numpy, and torch on the CPU); expected values from numpy formulas.

No test allocates more than ~150 MB: an oversized request either asks for 2**38 elements
or more (refused by the size check everywhere), or runs with the memory available
patched down to 1 MiB (`little_memory`), so that the check, not the machine, refuses it.
"""

from __future__ import annotations

import coremltools as ct
import numpy as np
import pytest
from coremltools.converters.mil.mil import get_new_symbol, types
from fixtures.executor.mil_models import mb, save_program
from torch_util import torch_devices

from anemll_spec.errors import InputError
from anemll_spec.executor import load
from anemll_spec.mlmodel import limits

I32 = types.int32
X = np.arange(6, dtype=np.float32).reshape(2, 3)
MEMORY = r"needs [\d.,]+ [MGT]iB of memory, [\d.,]+ [MG]iB is available"


def _ints(*values: int) -> np.ndarray:
    return np.array(values, np.int32)


def _build(folder, name: str, specs, fn):
    prog = mb.program(input_specs=specs, opset_version=ct.target.iOS18)(fn)
    return save_program(prog, folder / f"{name}.mlpackage")


def _runners(path):
    """The numpy executor and the torch one (CPU), each as predict(feed) -> first output."""
    from anemll_spec.executor.torch_runner import load_torch

    programs = {"numpy": load(path)}
    programs |= {f"torch-{d}": load_torch(path, device=d) for d in torch_devices()}
    return {
        kind: (lambda feed, prog=prog: np.asarray(next(iter(prog.predict(feed).values()))))
        for kind, prog in programs.items()
    }


def _refused(runners, feed, pattern: str) -> None:
    for kind, run in runners.items():
        with pytest.raises(InputError, match=pattern):
            run(feed)
            pytest.fail(f"{kind}: not refused")


@pytest.fixture
def little_memory(monkeypatch):
    """The memory available as 1 MiB: an output past 2**24 elements must be refused by the
    check before it is made (the request itself stays under ~150 MB)."""
    monkeypatch.setattr(limits, "available_bytes", lambda: 1 << 20)


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    d = tmp_path_factory.mktemp("sizes38")
    scalar3 = [mb.TensorSpec((1,), dtype=I32) for _ in range(3)]
    scalarf3 = [mb.TensorSpec((1,)) for _ in range(3)]
    paths = {
        "fill": _build(
            d, "fill", [mb.TensorSpec((2,), dtype=I32)], lambda s: mb.fill(shape=s, value=1.5)
        ),
        "tile": _build(
            d,
            "tile",
            [mb.TensorSpec((2, 3)), mb.TensorSpec((2,), dtype=I32)],
            lambda x, r: mb.tile(x=x, reps=r),
        ),
        "tile1": _build(
            d,
            "tile1",
            [mb.TensorSpec((2, 3)), mb.TensorSpec((1,), dtype=I32)],
            lambda x, r: mb.tile(x=x, reps=r),
        ),
        "range": _build(d, "range", scalar3, _range),
        "rangef": _build(d, "rangef", scalarf3, _range),
        "one_hot": _build(
            d,
            "one_hot",
            [mb.TensorSpec((32,), dtype=I32), mb.TensorSpec((1,), dtype=I32)],
            lambda i, n: mb.one_hot(indices=i, one_hot_vector_size=mb.squeeze(x=n), axis=0),
        ),
        "pad": _build(
            d,
            "pad",
            [mb.TensorSpec((2, 3)), mb.TensorSpec((4,), dtype=I32)],
            lambda x, p: mb.pad(x=x, pad=p, constant_val=-1.0),
        ),
        "pad2": _shorten_pad(
            _build(
                d,
                "pad2",
                [mb.TensorSpec((2, 3)), mb.TensorSpec((4,), dtype=I32)],
                lambda x, p: mb.pad(x=x, pad=p),
            )
        ),
        "slice": _build(
            d,
            "slice",
            [mb.TensorSpec((2, 3)), mb.TensorSpec((2,), dtype=I32), mb.TensorSpec((2,), dtype=I32)],
            lambda x, b, s: mb.slice_by_size(x=x, begin=b, size=s),
        ),
    }
    return {name: _runners(path) for name, path in paths.items()}


def _shorten_pad(path):
    """The saved program's runtime pad input `p` declared as 2 values, not 2 * rank(x) = 4
    (coremltools' builder refuses to write that; a hostile file can hold it)."""
    from coremltools.proto import Model_pb2

    spec_file = path / "Data" / "com.apple.CoreML" / "model.mlmodel"
    spec = Model_pb2.Model()
    spec.ParseFromString(spec_file.read_bytes())
    spec.description.input[1].type.multiArrayType.shape[:] = [2]
    fn_input = spec.mlProgram.functions["main"].inputs[1]
    assert fn_input.name == "p"
    fn_input.type.tensorType.dimensions[0].constant.size = 2
    spec_file.write_bytes(spec.SerializeToString())
    return path


def _range(a, b, c):
    return mb.range_1d(start=mb.squeeze(x=a), end=mb.squeeze(x=b), step=mb.squeeze(x=c))


# -- fill, tile ----------------------------------------------------------------------------


def test_fill_takes_its_runtime_shape_and_refuses_a_size_below_one(models):
    """iOS15 fill: shape[k] > 0. A 0 gave an empty tensor, a negative a backend error."""
    for run in models["fill"].values():
        np.testing.assert_array_equal(run({"s": _ints(3, 2)}), np.full((3, 2), 1.5, np.float32))
    for bad in ((2, 0), (2, -3)):
        _refused(models["fill"], {"s": _ints(*bad)}, rf"\(fill\).*shape \[{bad[0]}, {bad[1]}\]")


def test_fill_of_2_to_the_38_elements_is_refused_before_allocating(models):
    """2**19 x 2**19 fp32 values ask for 1 TiB: the memory check refuses it first."""
    _refused(models["fill"], {"s": _ints(2**19, 2**19)}, rf"\(fill\).*{MEMORY}")


def test_tile_reps_must_be_one_per_dimension_and_at_least_one(models):
    for run in models["tile"].values():
        np.testing.assert_array_equal(run({"x": X, "r": _ints(2, 3)}), np.tile(X, (2, 3)))
    _refused(models["tile"], {"x": X, "r": _ints(0, 1)}, r"\(tile\).*reps \[0, 1\]")
    # one value for x of rank 2 was numpy's broadcast: x tiled along its last axis
    _refused(models["tile1"], {"x": X, "r": _ints(3)}, r"\(tile\).*one value per dimension")


def test_tile_past_the_memory_available_is_refused(models, little_memory):
    _refused(models["tile"], {"x": X, "r": _ints(2**11, 2**11)}, rf"\(tile\).*{MEMORY}")


# -- range_1d ------------------------------------------------------------------------------


def _r(a, b, c, dtype=np.int32):
    return {k: np.array([v], dtype) for k, v in zip("abc", (a, b, c), strict=True)}


def test_a_runtime_range_agrees_with_numpy_on_both_executors(models):
    """An end before the start is numpy's empty range (the def: numpy-like); torch's
    arange refused it, so the two executors disagreed."""
    for run in models["range"].values():
        np.testing.assert_array_equal(run(_r(7, -5, -3)), np.arange(7, -5, -3))
        assert run(_r(5, 0, 1)).shape == (0,)
    for run in models["rangef"].values():
        np.testing.assert_allclose(run(_r(0.5, 2.0, 0.25, np.float32)), np.arange(0.5, 2.0, 0.25))


def test_a_range_with_a_zero_step_or_a_bound_not_finite_is_refused(models):
    _refused(models["range"], _r(0, 5, 0), r"\(range_1d\).*the step must not be 0")
    for bad in (np.nan, np.inf):
        _refused(models["rangef"], _r(0, bad, 1, np.float32), r"\(range_1d\).*must be finite")


def test_a_range_too_long_is_refused_before_allocating(models, little_memory):
    _refused(models["rangef"], _r(0, 2**38, 1, np.float32), rf"\(range_1d\).*{MEMORY}")
    _refused(models["range"], _r(0, 2**25, 1), rf"\(range_1d\).*{MEMORY}")


# -- one_hot -------------------------------------------------------------------------------


IDX = (np.arange(32) % 5).astype(np.int32)


def test_a_runtime_one_hot_depth_below_zero_is_refused(models):
    """A constant depth < 0 was refused at load; a runtime one gave an empty output."""
    for run in models["one_hot"].values():
        want = (np.arange(4)[:, None] == IDX[None, :]).astype(np.float32)  # axis 0
        np.testing.assert_array_equal(run({"i": IDX, "n": _ints(4)}), want)
    _refused(models["one_hot"], {"i": IDX, "n": _ints(-2)}, r"\(one_hot\).*-2 must be >= 0")


def test_a_one_hot_depth_past_the_memory_available_is_refused(models, little_memory):
    _refused(models["one_hot"], {"i": IDX, "n": _ints(2**20)}, rf"\(one_hot\).*{MEMORY}")


# -- pad -----------------------------------------------------------------------------------


def test_a_runtime_pad_holds_two_values_per_dimension(models):
    """The iOS15 def: a pad that is not a constant has 2 * rank(x) values; 2 values for
    x of rank 2 padded the last axis alone."""
    for run in models["pad"].values():
        want = np.pad(X, ((1, 0), (0, 2)), constant_values=-1.0)
        np.testing.assert_array_equal(run({"x": X, "p": _ints(1, 0, 0, 2)}), want)
    _refused(models["pad2"], {"x": X, "p": _ints(1, 1)}, r"\(pad\).*2 values per dimension")


def test_a_runtime_pad_past_the_memory_available_is_refused(models, little_memory):
    _refused(models["pad"], {"x": X, "p": _ints(0, 0, 0, 2**24)}, rf"\(pad\).*{MEMORY}")


# -- slice_by_size -------------------------------------------------------------------------


def _sl(begin, size):
    return {"x": X, "b": _ints(*begin), "s": _ints(*size)}


def test_slice_by_size_reads_inside_the_tensor(models):
    for run in models["slice"].values():
        np.testing.assert_array_equal(run(_sl((-1, 1), (1, 2))), X[1:2, 1:3])
        np.testing.assert_array_equal(run(_sl((0, 1), (-1, -1))), X[0:, 1:])


@pytest.mark.parametrize(
    ("begin", "size", "why"),
    [
        ((0, 1), (2, -3), r"size -3 on axis 1 is outside \[0, 2\]"),  # was an empty slice
        ((0, 2), (2, 5), r"size 5 on axis 1 is outside \[0, 1\]"),  # was cut to 1
        ((0, 7), (2, 1), r"begin 7 is outside \[-3, 3\]"),  # was empty
        ((-3, 0), (1, 1), r"begin -3 is outside \[-2, 2\]"),  # was x[-1:0]: empty
    ],
)
def test_slice_by_size_refuses_bounds_outside_the_tensor(models, begin, size, why):
    _refused(models["slice"], _sl(begin, size), rf"\(slice_by_size\).*{why}")


# -- lists ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def lists(tmp_path_factory):
    d = tmp_path_factory.mktemp("lists38")

    def made(n):
        ls = mb.make_list(init_length=mb.squeeze(x=n), elem_shape=[1, 3], dtype="fp32")
        return mb.list_length(ls=ls)

    def written(x, i):
        ls = mb.make_list(init_length=1, elem_shape=[1, 3], dtype="fp32")
        ls = mb.list_write(ls=ls, index=mb.squeeze(x=i), value=x)
        return mb.list_length(ls=ls)

    spec = mb.TensorSpec((1,), dtype=I32)
    return {
        "make": _runners(_build(d, "make", [spec], made)),
        "write": _runners(_build(d, "write", [mb.TensorSpec((1, 3)), spec], written)),
    }


def test_a_list_of_a_negative_runtime_length_is_refused(lists):
    """[None] * -3 made an empty list."""
    for run in lists["make"].values():
        assert int(run({"n": _ints(3)})) == 3
    _refused(lists["make"], {"n": _ints(-3)}, r"\(make_list\).*init_length -3 must be >= 0")


def test_a_list_longer_than_the_memory_available_is_refused(lists, little_memory):
    """A list slot costs 8 bytes (a pointer); an index of 2**31 - 1 grew a dynamic list to
    16 GiB of slots."""
    _refused(lists["make"], {"n": _ints(2**24 + 1)}, rf"\(make_list\).*{MEMORY}")
    row = np.ones((1, 3), np.float32)
    for run in lists["write"].values():
        assert int(run({"x": row, "i": _ints(4)})) == 5
    _refused(lists["write"], {"x": row, "i": _ints(2**24)}, rf"\(list_write\).*{MEMORY}")


# -- constant sizes the defs leave unbounded -----------------------------------------------


def test_an_upsample_scale_past_the_element_limit_is_refused(tmp_path):
    """A scale of 2**20 on 2 x 2 pixels asks for 4 * 2**40 outputs: refused by the element
    limit (the first axis alone was made before the second failed to allocate). x of a
    flexible size: a declared output shape is checked at load already."""
    path = _build(
        tmp_path,
        "up",
        [mb.TensorSpec((1, 1, get_new_symbol(), get_new_symbol()))],
        lambda x: mb.upsample_nearest_neighbor(
            x=x, scale_factor_height=float(2**20), scale_factor_width=float(2**20)
        ),
    )
    img = np.arange(4, dtype=np.float32).reshape(1, 1, 2, 2)  # the range's largest
    _refused(_runners(path), {"x": img}, r"\(upsample_nearest_neighbor\).*elements \(limit")


def test_an_affine_output_past_the_memory_available_is_refused(tmp_path):
    """output_height x output_width of 2**20 x 2**20: 2**40 pixels (the base grid alone
    asked for 8 TiB); a flexible batch, so that the output shape is not declared."""
    path = _build(
        tmp_path,
        "affine",
        [mb.TensorSpec((get_new_symbol(), 1, 2, 3)), mb.TensorSpec((1, 6))],
        lambda x, m: mb.affine(
            x=x,
            transform_matrix=m,
            output_height=2**20,
            output_width=2**20,
            sampling_mode="bilinear",
            padding_mode="constant",
            padding_value=0.0,
            coordinates_mode="normalized_minus_one_to_one",
            align_corners=True,
        ),
    )
    feed = {"x": np.ones((1, 1, 2, 3), np.float32), "m": np.array([[1, 0, 0, 0, 1, 0]], "f4")}
    _refused(_runners(path), feed, rf"\(affine\).*{MEMORY}")
