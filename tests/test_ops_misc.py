"""Bad input fails at load, before anything runs, in one line naming the op, its index and
why: random ops are refused; attribute values outside their documented range (written
into saved programs the builder would have refused) are refused. List ops run here;
classify has its own file (tests/test_ops_classify.py)."""

from __future__ import annotations

import coremltools as ct
import numpy as np
import pytest
from coremltools.converters.mil.mil import types
from fixtures.executor.mil_models import mb, patch_const_input, save_program, set_attribute

from anemll_spec.cli import main
from anemll_spec.errors import InputError
from anemll_spec.executor import load
from anemll_spec.executor.kernels.coverage import op_coverage


def _one_op_program(build, shape=(2, 3, 4, 5), dtype=types.fp32):
    @mb.program(input_specs=[mb.TensorSpec(shape, dtype=dtype)], opset_version=ct.target.iOS18)
    def prog(x):
        return build(x)

    return prog


RANDOM = {
    "random_uniform": lambda x: mb.add(x=x, y=mb.random_uniform(shape=[2, 3, 4, 5])),
    "random_normal": lambda x: mb.add(x=x, y=mb.random_normal(shape=[2, 3, 4, 5])),
    "random_bernoulli": lambda x: mb.add(x=x, y=mb.random_bernoulli(shape=[2, 3, 4, 5])),
    "random_categorical": lambda x: mb.random_categorical(x=x, size=2),
}


@pytest.mark.parametrize("op", sorted(RANDOM))
def test_random_ops_are_refused_at_load(tmp_path, op):
    path = save_program(_one_op_program(RANDOM[op]), tmp_path / f"{op}.mlpackage")
    with pytest.raises(
        InputError, match=rf"^op \d+ '\w+' \({op}\).*not supported: random ops"
    ) as err:
        load(path)
    assert "\n" not in str(err.value)
    assert op_coverage(op).numpy.status == op_coverage(op).torch.status == "refused"


def test_refused_model_exits_2_with_one_line(tmp_path, capsys):
    path = save_program(_one_op_program(RANDOM["random_normal"]), tmp_path / "r.mlpackage")
    capsys.readouterr()  # the builder's progress lines
    assert main(["predict", str(path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "(random_normal)" in err[0] and "cannot be reproduced" in err[0]


def test_refusal_names_the_function(tmp_path):
    path = save_program(_one_op_program(RANDOM["random_uniform"]), tmp_path / "r.mlpackage")
    with pytest.raises(InputError, match=r"\(random_uniform\) in function 'main'"):
        load(path)


# (program, op type, input, hostile value, what the error says)
HOSTILE = [
    (
        lambda x: mb.scatter(
            data=x, indices=np.array([1], np.int32), updates=np.ones((1, 3, 4, 5), np.float32)
        ),
        "scatter",
        "mode",
        "bogus",
        r"mode 'bogus' is not one of update, add",
    ),
    (
        lambda x: mb.resize_bilinear(x=x, target_size_height=3, target_size_width=3),
        "resize_bilinear",
        "sampling_mode",
        "SIDEWAYS",
        r"sampling_mode 'SIDEWAYS' is not one of",
    ),
    (lambda x: mb.topk(x=x, k=2), "topk", "k", np.int32(0), r"k 0 must be >= 1"),
    (
        lambda x: mb.crop(x=x, crop_height=[0, 1], crop_width=[1, 1]),
        "crop",
        "crop_height",
        np.array([-1, 1], np.int32),
        r"crop amounts must be >= 0",
    ),
    (
        lambda x: mb.max_pool(x=x, kernel_sizes=[2, 2], pad_type="valid"),
        "max_pool",
        "kernel_sizes",
        np.array([0, 2], np.int32),
        r"kernel_sizes and strides must be >= 1",
    ),
    (
        lambda x: mb.clip(x=x, alpha=-1.0, beta=1.0),
        "clip",
        "alpha",
        np.float32(2.0),
        r"alpha 2.0 must be below beta 1.0",
    ),
    (
        lambda x: mb.conv_transpose(x=x, weight=np.ones((3, 2, 2, 2), np.float32)),
        "conv_transpose",
        "pad_type",
        "same_lower",
        r"pad_type 'same_lower' is not one of valid, same, custom",
    ),
    (lambda x: mb.topk(x=x, k=2), "topk", "k", np.int32(9), r"k 9 exceeds the 5 elements"),
    (
        lambda x: mb.crop(x=x, crop_height=[0, 1], crop_width=[1, 1]),
        "crop",
        "crop_height",
        np.array([2, 2], np.int32),
        r"leave nothing of \(4, 5\)",
    ),
    (
        lambda x: mb.pixel_shuffle(x=x, upscale_factor=1),
        "pixel_shuffle",
        "upscale_factor",
        np.int32(2),
        r"channels 3 is not divisible by 4",
    ),
    (
        lambda x: mb.avg_pool(x=x, kernel_sizes=[2, 2], pad_type="valid"),
        "avg_pool",
        "kernel_sizes",
        np.array([5, 2], np.int32),
        r"kernel 5 does not fit a padded dimension of 4",
    ),
    (
        lambda x: mb.cumsum(x=x, axis=1),
        "cumsum",
        "axis",
        np.int32(4),
        r"axis 4 is outside \[-4, 3\]",
    ),
]


@pytest.mark.parametrize(
    ("build", "op", "param", "value", "message"), HOSTILE, ids=[h[1] for h in HOSTILE]
)
def test_attribute_out_of_range_fails_at_load(tmp_path, build, op, param, value, message):
    path = save_program(_one_op_program(build), tmp_path / f"{op}.mlpackage")
    load(path)  # as built, it loads
    patch_const_input(path, op, param, value)
    with pytest.raises(InputError, match=rf"^op \d+ '\w+' \({op}\).*{message}"):
        load(path)


def test_lstm_unknown_activation_fails_at_load(tmp_path):
    h = 2

    def build(x):
        return mb.lstm(
            x=x,
            initial_h=np.zeros((1, h), np.float32),
            initial_c=np.zeros((1, h), np.float32),
            weight_ih=np.ones((4 * h, 3), np.float32),
            weight_hh=np.ones((4 * h, h), np.float32),
        )[0]

    path = save_program(_one_op_program(build, shape=(2, 1, 3)), tmp_path / "lstm.mlpackage")
    patch_const_input(path, "lstm", "activation", "softmax")
    with pytest.raises(InputError, match=r"\(lstm\).*activation 'softmax' is not one of"):
        load(path)


# Attributes no kernel check covers, which crashed preparation with a traceback (exit 1):
# (program, op type, input, hostile value, what the error says)
UNCHECKED = [
    (lambda x: mb.sliding_windows(x=x, axis=1, size=2), "sliding_windows", "axis", np.int32(7)),
    (
        lambda x: mb.max_pool(x=x, kernel_sizes=[2, 2], strides=[1, 1], pad_type="valid"),
        "max_pool",
        "strides",
        np.array([1], np.int32),
    ),
    (
        lambda x: mb.layer_norm(x=x, axes=[-1], gamma=np.ones(5, np.float32)),
        "layer_norm",
        "axes",
        np.array([9], np.int32),
    ),
    (
        lambda x: mb.batch_norm(x=x, mean=np.zeros(3, np.float32), variance=np.ones(3, np.float32)),
        "batch_norm",
        "epsilon",
        np.array([1e-5, 1e-5], np.float32),
    ),
]
REASON = {
    "sliding_windows": "IndexError",
    "max_pool": "ValueError",
    "layer_norm": "IndexError",
    "batch_norm": r"input 'epsilon' must be a scalar, got shape \(2,\)",
}


@pytest.mark.parametrize(
    ("build", "op", "param", "value"), UNCHECKED, ids=[u[1] for u in UNCHECKED]
)
def test_unchecked_attribute_is_one_line_exit_2(tmp_path, capsys, build, op, param, value):
    """A kernel factory's own exception (an attribute its checks missed) refuses the op at
    load, naming it, as a runtime failure names its op; a scalar attribute given several
    values is refused as such."""
    path = save_program(_one_op_program(build), tmp_path / f"{op}.mlpackage")
    load(path)  # as built, it loads
    patch_const_input(path, op, param, value)
    with pytest.raises(
        InputError, match=rf"^op \d+ '\w+' \({op}\) in function 'main': .*{REASON[op]}"
    ):
        load(path)
    capsys.readouterr()
    assert main(["predict", str(path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and f"({op})" in err[0] and "Traceback" not in err[0]


@pytest.mark.torch
def test_a_non_scalar_transpose_is_refused_by_name_before_the_torch_merge(tmp_path):
    """The torch runner's matmul merge read transpose_y itself, before any op was prepared:
    [True, False] raised a raw ValueError there (a traceback). It leaves such a matmul to
    the kernel, whose check names it."""
    from anemll_spec.executor.torch_runner import load_torch

    weight = np.arange(15, dtype=np.float32).reshape(3, 5)
    build = lambda x: mb.matmul(x=x, y=weight, transpose_y=True)  # noqa: E731
    path = save_program(_one_op_program(build, shape=(2, 5)), tmp_path / "mm.mlpackage")
    x = np.linspace(-1, 1, 10, dtype=np.float32).reshape(2, 5)
    (got,) = load_torch(path, device="cpu").predict({"x": x}).values()  # as built, it runs
    np.testing.assert_allclose(got, x @ weight.T, rtol=1e-6)
    patch_const_input(path, "matmul", "transpose_y", np.array([True, False]))
    for loader in (load, lambda p: load_torch(p, device="cpu")):
        with pytest.raises(InputError, match=r"\(matmul\).*'transpose_y' must be a scalar"):
            loader(path)


def _list_program():
    @mb.program(input_specs=[mb.TensorSpec((1, 3))], opset_version=ct.target.iOS18)
    def prog(x):
        ls = mb.make_list(init_length=2, elem_shape=[1, 3], dtype="fp32")
        ls = mb.list_write(ls=ls, index=0, value=x)
        ls = mb.list_write(ls=ls, index=3, value=mb.mul(x=x, y=2.0))  # grows: dynamic length
        scattered = mb.list_scatter(ls=ls, indices=[1, 2], value=mb.stack(values=[x, x], axis=0))
        return (
            mb.list_read(ls=ls, index=3, name="read"),
            mb.list_gather(ls=ls, indices=[3, 0, 1], name="gather"),  # 1 was never written
            mb.list_length(ls=ls, name="length"),
            mb.list_gather(ls=scattered, indices=[0, 1, 2, 3], name="scattered"),
        )

    return prog


@pytest.mark.parametrize("executor", ["numpy", pytest.param("torch", marks=pytest.mark.torch)])
def test_list_ops(tmp_path, executor):
    """A list grows when written past its end, reads unwritten elements of a known shape
    as zeros, and every list op returns a new list (list_scatter leaves `ls` alone)."""
    path = save_program(_list_program(), tmp_path / "list.mlpackage")
    if executor == "numpy":
        prog = load(path)
    else:
        from anemll_spec.executor.torch_runner import load_torch

        prog = load_torch(path, device="cpu")
    x = np.array([[1.0, -2.0, 3.5]], np.float32)
    out = prog.predict({"x": x})
    np.testing.assert_array_equal(out["read"], 2 * x)
    np.testing.assert_array_equal(out["gather"], np.stack([2 * x, x, 0 * x]))
    assert int(out["length"]) == 4
    np.testing.assert_array_equal(out["scattered"], np.stack([x, x, x, 2 * x]))


def test_const_symbolic_runs_from_its_val_attribute(tmp_path):
    """coremltools saves a _const_symbolic (a MIL-internal constant) without its value:
    such a program names what is missing at load; one whose op holds `val` as an
    attribute, as a const does, runs and yields it."""
    value = np.array([[1.5, -2.0, 0.25]], np.float32)
    prog = _one_op_program(lambda x: mb.add(x=x, y=mb._const_symbolic(val=value)), shape=(2, 3))
    path = save_program(prog, tmp_path / "m.mlpackage")
    with pytest.raises(InputError, match=r"\(_const_symbolic\).*missing required input 'val'"):
        load(path)
    set_attribute(path, "_const_symbolic", "val", value)
    x = RNG_MISC.standard_normal((2, 3)).astype(np.float32)
    (out,) = load(path).predict({"x": x}).values()
    np.testing.assert_array_equal(out, x + value)


RNG_MISC = np.random.default_rng(41)
