"""Executor vs numpy: shape/indexing ops, reductions, softmax, layer_norm."""

from __future__ import annotations

import coremltools as ct
import numpy as np
import pytest
from coremltools.converters.mil.mil import types
from fixtures.executor.mil_models import mb, save_program, saved_op_types

from anemll_spec.executor import load

RNG = np.random.default_rng(1)
X = RNG.standard_normal((2, 3, 4, 5)).astype(np.float32)
IDX = np.array([[2, 3], [0, 1]], dtype=np.int32)
POS = np.array([1], dtype=np.int32)

# name -> (builder expression of x (2,3,4,5), idx (2,2) int32, pos (1,) int32; numpy expectation)
CASES = {
    "reshape_neg1": (lambda x, i, p: mb.reshape(x=x, shape=[6, -1]), lambda x: x.reshape(6, -1)),
    "reshape_zero": (
        lambda x, i, p: mb.reshape(x=x, shape=[0, 0, -1, 10]),
        lambda x: x.reshape(2, 3, 2, 10),
    ),
    "reshape_zero_right_aligned": (
        lambda x, i, p: mb.reshape(x=x, shape=[1, 0, -1, 0]),
        lambda x: x.reshape(1, 3, 8, 5),
    ),
    "transpose": (
        lambda x, i, p: mb.transpose(x=x, perm=[3, 1, 0, 2]),
        lambda x: x.transpose(3, 1, 0, 2),
    ),
    "expand_dims": (
        lambda x, i, p: mb.expand_dims(x=mb.reduce_sum(x=x, axes=[0]), axes=[0, -1]),
        lambda x: x.sum(axis=0)[None, ..., None],
    ),
    "squeeze_axes": (
        lambda x, i, p: mb.squeeze(x=mb.expand_dims(x=x, axes=[1]), axes=[-4]),
        lambda x: x,
    ),
    "squeeze_all": (
        lambda x, i, p: mb.squeeze(x=mb.slice_by_size(x=x, begin=[0, 0, 0, 0], size=[1, 3, 1, 5])),
        lambda x: x[0, :, 0, :],
    ),
    "concat": (
        lambda x, i, p: mb.concat(values=[x, mb.mul(x=x, y=2.0)], axis=-2),
        lambda x: np.concatenate([x, 2 * x], axis=-2),
    ),
    "concat_interleave": (
        lambda x, i, p: mb.concat(values=[x, mb.mul(x=x, y=2.0)], axis=1, interleave=True),
        lambda x: np.stack([x, 2 * x], axis=2).reshape(2, 6, 4, 5),
    ),
    "stack": (
        lambda x, i, p: mb.stack(
            values=[x, mb.neg(x=x) if hasattr(mb, "neg") else mb.mul(x=x, y=-1.0)], axis=-1
        ),
        lambda x: np.stack([x, -x], axis=-1),
    ),
    "slice_by_index": (
        lambda x, i, p: mb.slice_by_index(
            x=x,
            begin=[1, 0, 3, 0],
            end=[2, 3, 0, 4],
            stride=[1, 2, -1, 1],
            end_mask=[False, False, True, False],
            squeeze_mask=[True, False, False, False],
        ),
        lambda x: x[1, 0:3:2, 3::-1, 0:4],
    ),
    "slice_by_index_masks": (
        lambda x, i, p: mb.slice_by_index(
            x=x,
            begin=[0, -2, 1, 0],
            end=[0, 0, -1, 0],
            begin_mask=[True, False, False, True],
            end_mask=[True, True, False, True],
        ),
        lambda x: x[:, -2:, 1:-1, :],
    ),
    "slice_by_index_runtime_begin": (
        lambda x, i, p: mb.slice_by_index(
            x=x,
            begin=mb.concat(
                values=[np.array([0], np.int32), p, np.array([0, 0], np.int32)], axis=0
            ),
            end=mb.concat(
                values=[np.array([2], np.int32), mb.add(x=p, y=1), np.array([4, 5], np.int32)],
                axis=0,
            ),
        ),
        lambda x: x[:, 1:2],
    ),
    "slice_by_size": (
        lambda x, i, p: mb.slice_by_size(x=x, begin=[0, 1, -3, 2], size=[2, -1, 2, 3]),
        lambda x: x[0:2, 1:, 1:3, 2:5],
    ),
    "gather": (
        lambda x, i, p: mb.gather(x=x, indices=i, axis=2),
        lambda x: np.take(x, [[2, 3], [0, 1]], axis=2),
    ),
    "gather_neg_axis": (
        lambda x, i, p: mb.gather(x=x, indices=np.array([4, 0], np.int32), axis=-1),
        lambda x: x[..., [4, 0]],
    ),
    "gather_batch_dims": (
        lambda x, i, p: mb.gather(
            x=x, indices=np.array([[1, 0], [2, 2]], np.int32), axis=1, batch_dims=1
        ),
        lambda x: np.stack([x[0][[1, 0]], x[1][[2, 2]]]),
    ),
    "gather_along_axis": (
        lambda x, i, p: mb.gather_along_axis(
            x=x, indices=np.tile(np.array([[[[3], [0], [1], [3]]]], np.int32), (2, 3, 1, 1)), axis=3
        ),
        lambda x: np.take_along_axis(
            x, np.tile(np.array([[[[3], [0], [1], [3]]]]), (2, 3, 1, 1)), axis=3
        ),
    ),
    "tile": (lambda x, i, p: mb.tile(x=x, reps=[1, 2, 1, 3]), lambda x: np.tile(x, (1, 2, 1, 3))),
    "reverse": (lambda x, i, p: mb.reverse(x=x, axes=[1, -1]), lambda x: x[:, ::-1, :, ::-1]),
    "band_part": (
        lambda x, i, p: mb.band_part(x=x, lower=1, upper=0),
        lambda x: x * (np.tril(np.ones((4, 5))) - np.tril(np.ones((4, 5)), -2)),
    ),
    "fill": (lambda x, i, p: mb.fill(shape=[2, 3], value=1.5), lambda x: np.full((2, 3), 1.5)),
    "reduce_sum_all": (lambda x, i, p: mb.reduce_sum(x=x), lambda x: np.sum(x)),
    "reduce_mean_keep": (
        lambda x, i, p: mb.reduce_mean(x=x, axes=[-1, 1], keep_dims=True),
        lambda x: x.mean(axis=(1, 3), keepdims=True),
    ),
    "reduce_max": (lambda x, i, p: mb.reduce_max(x=x, axes=[2]), lambda x: x.max(axis=2)),
    "reduce_min": (lambda x, i, p: mb.reduce_min(x=x, axes=[0, 3]), lambda x: x.min(axis=(0, 3))),
    "reduce_prod": (lambda x, i, p: mb.reduce_prod(x=x, axes=[-1]), lambda x: x.prod(axis=-1)),
    "reduce_sum_square": (
        lambda x, i, p: mb.reduce_sum_square(x=x, axes=[1]),
        lambda x: (x * x).sum(axis=1),
    ),
    "reduce_l2_norm": (
        lambda x, i, p: mb.reduce_l2_norm(x=x, axes=[3]),
        lambda x: np.sqrt((x * x).sum(axis=3)),
    ),
    "reduce_l1_norm": (
        lambda x, i, p: mb.reduce_l1_norm(x=x, axes=[0, 2]),
        lambda x: np.abs(x).sum(axis=(0, 2)),
    ),
    "reduce_log_sum": (  # of |x|: the log of a positive sum
        lambda x, i, p: mb.reduce_log_sum(x=mb.abs(x=x), axes=[-1], keep_dims=True),
        lambda x: np.log(np.abs(x).sum(axis=-1, keepdims=True)),
    ),
    "fill_like": (
        lambda x, i, p: mb.fill_like(ref_tensor=x, value=2.5),
        lambda x: np.full(x.shape, 2.5),
    ),
    "reduce_log_sum_exp": (
        lambda x, i, p: mb.reduce_log_sum_exp(x=x, axes=[1, 2]),
        lambda x: np.log(np.exp(x).sum(axis=(1, 2))),
    ),
    "softmax": (
        lambda x, i, p: mb.softmax(x=x, axis=1),
        lambda x: np.exp(x) / np.exp(x).sum(axis=1, keepdims=True),
    ),
    "softmax_default_axis": (
        lambda x, i, p: mb.softmax(x=x),
        lambda x: np.exp(x) / np.exp(x).sum(axis=-1, keepdims=True),
    ),
    "cumsum": (
        lambda x, i, p: mb.cumsum(x=x, axis=2, exclusive=True, reverse=True),
        lambda x: np.flip(np.cumsum(np.flip(x, 2), 2), 2) - x,
    ),
}

INT_CASES = {
    "argmax": (lambda x: mb.reduce_argmax(x=x, axis=2), lambda x: x.argmax(axis=2)),
    "argmax_keep": (
        lambda x: mb.reduce_argmax(x=x, axis=-1, keep_dims=True),
        lambda x: x.argmax(axis=-1)[..., None],
    ),
    "argmin": (lambda x: mb.reduce_argmin(x=x, axis=0), lambda x: x.argmin(axis=0)),
    "shape": (lambda x: mb.shape(x=x), lambda x: np.array(x.shape)),
}

GAMMA = RNG.standard_normal((4, 5)).astype(np.float32)
BETA = RNG.standard_normal((4, 5)).astype(np.float32)


def _layer_norm(x, axes, gamma=None, beta=None, eps=1e-5):
    mean = x.mean(axis=axes, keepdims=True)
    var = ((x - mean) ** 2).mean(axis=axes, keepdims=True)
    out = (x - mean) / np.sqrt(var + eps)
    return out * (1 if gamma is None else gamma) + (0 if beta is None else beta)


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    @mb.program(
        input_specs=[
            mb.TensorSpec((2, 3, 4, 5), dtype=types.fp32),
            mb.TensorSpec((2, 2), dtype=types.int32),
            mb.TensorSpec((1,), dtype=types.int32),
        ],
        opset_version=ct.target.iOS18,
    )
    def prog(x, i, p):
        outs = [mb.identity(x=f(x, i, p), name=n) for n, (f, _) in CASES.items()]
        outs += [mb.identity(x=f(x), name=n) for n, (f, _) in INT_CASES.items()]
        outs += [
            mb.layer_norm(x=x, axes=[-2, -1], gamma=GAMMA, beta=BETA, epsilon=1e-3, name="ln"),
            mb.layer_norm(x=x, axes=[1], name="ln_axis1"),
        ]
        parts = mb.split(x=x, num_splits=2, axis=0)
        sized = mb.split(x=x, split_sizes=[1, 3, 1], axis=-1)
        outs += [mb.identity(x=v, name=f"split_even{k}") for k, v in enumerate(parts)]
        outs += [mb.identity(x=v, name=f"split_sized{k}") for k, v in enumerate(sized)]
        return tuple(outs)

    return save_program(prog, tmp_path_factory.mktemp("tensor") / "tensor.mlpackage")


def test_ops_are_in_the_saved_program(model):
    saved = set(saved_op_types(model))
    for t in (
        "reshape",
        "transpose",
        "expand_dims",
        "squeeze",
        "concat",
        "stack",
        "slice_by_index",
        "slice_by_size",
        "gather",
        "gather_along_axis",
        "tile",
        "band_part",
        "fill",
        "reduce_sum",
        "reduce_argmax",
        "softmax",
        "layer_norm",
        "split",
        "reverse",
        "cumsum",
        "shape",
    ):
        assert t in saved, t


def test_tensor_ops_match_numpy(model):
    prog = load(model)
    out = prog.predict({"x": X, "i": IDX, "p": POS})
    for n, (_, f) in CASES.items():
        np.testing.assert_allclose(out[n], f(X.astype(np.float64)), rtol=2e-6, atol=2e-6, err_msg=n)
    for n, (_, f) in INT_CASES.items():
        assert out[n].dtype == np.int32, n
        np.testing.assert_array_equal(out[n], f(X), err_msg=n)
    x64 = X.astype(np.float64)
    np.testing.assert_allclose(
        out["ln"], _layer_norm(x64, (2, 3), GAMMA, BETA, 1e-3), rtol=1e-5, atol=1e-5
    )
    np.testing.assert_allclose(out["ln_axis1"], _layer_norm(x64, (1,)), rtol=1e-5, atol=1e-5)
    for k, part in enumerate(np.split(X, 2, axis=0)):
        np.testing.assert_array_equal(out[f"split_even{k}"], part)
    for k, part in enumerate(np.split(X, [1, 4], axis=-1)):
        np.testing.assert_array_equal(out[f"split_sized{k}"], part)


def test_runtime_slice_position_moves(model):
    """The slice begin/end computed from an input follow that input on every call."""
    prog = load(model)
    for pos in (0, 2):
        out = prog.predict({"x": X, "i": IDX, "p": np.array([pos], np.int32)})
        np.testing.assert_array_equal(out["slice_by_index_runtime_begin"], X[:, pos : pos + 1])


def test_gather_out_of_range_index_is_an_error(model):
    from anemll_spec.errors import InputError

    with pytest.raises(InputError, match=r"gather.*index out of range"):
        load(model).predict({"x": X, "i": np.array([[4, 0], [0, 0]], np.int32), "p": POS})


def test_ios16_gather_wraps_negative_indices(tmp_path):
    @mb.program(
        input_specs=[
            mb.TensorSpec((3, 4), dtype=types.fp32),
            mb.TensorSpec((2,), dtype=types.int32),
        ],
        opset_version=ct.target.iOS16,
    )
    def prog(x, i):
        return mb.gather(x=x, indices=i, axis=1, name="g")

    path = save_program(prog, tmp_path / "g16.mlpackage", target=ct.target.iOS16)
    x = RNG.standard_normal((3, 4)).astype(np.float32)
    out = load(path).predict({"x": x, "i": np.array([-1, -4], np.int32)})["g"]
    np.testing.assert_array_equal(out, x[:, [3, 0]])


def test_begin_mask_wins_over_begin_on_a_squeezed_axis(tmp_path):
    """iOS15 slice_by_index: begin_mask[i] ignores begin[i] (0), and squeeze_mask[i] then
    indexes at that begin: x[0, :, 2:3, :], not x[1, ...]. slice_update reads the same."""
    x = np.arange(120, dtype=np.float32).reshape(2, 3, 4, 5)
    upd = -np.ones((3, 1, 5), np.float32)
    kw = dict(
        begin=np.array([1, 0, 2, 0], np.int32),
        end=np.array([2, 3, 3, 5], np.int32),
        begin_mask=np.array([True, False, False, False]),
        squeeze_mask=np.array([True, False, False, False]),
    )

    @mb.program(input_specs=[mb.TensorSpec((2, 3, 4, 5), dtype=types.fp32)],
                opset_version=ct.target.iOS18)  # fmt: skip
    def prog(x):
        return (
            mb.slice_by_index(x=x, name="sliced", **kw),
            mb.slice_update(x=x, update=upd, name="updated", **kw),
        )

    out = load(save_program(prog, tmp_path / "s.mlpackage")).predict({"x": x})
    np.testing.assert_array_equal(out["sliced"], x[0, :, 2:3, :])
    expected = x.copy()
    expected[0, :, 2:3, :] = upd
    np.testing.assert_array_equal(out["updated"], expected)


def test_pad_may_be_a_runtime_vector(tmp_path):
    """iOS15 pad: 'If pad is not a constant, it must be a vector of length 2 * rank(x)'."""

    @mb.program(input_specs=[mb.TensorSpec((1, 2, 3), dtype=types.fp32),
                             mb.TensorSpec((6,), dtype=types.int32)],
                opset_version=ct.target.iOS18)  # fmt: skip
    def prog(x, p):
        return mb.pad(x=x, pad=p, constant_val=7.0, name="padded")

    model = load(save_program(prog, tmp_path / "p.mlpackage"))
    x = np.arange(6, dtype=np.float32).reshape(1, 2, 3)
    for pads in ([0, 0, 1, 0, 2, 1], [1, 1, 0, 0, 0, 3]):
        got = model.predict({"x": x, "p": np.array(pads, np.int32)})["padded"]
        want = np.pad(x, list(zip(pads[::2], pads[1::2], strict=True)), constant_values=7.0)
        np.testing.assert_array_equal(got, want)
