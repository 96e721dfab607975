"""Review 38 of the reference executor: endless while_loops are refused instead of hanging
the bench, and a damaged compressed weight is refused with one line. Programs built with
coremltools' MIL builder, saved, and run by the executor; expected trip counts and values
from plain Python loops written from the op defs."""

from __future__ import annotations

import coremltools as ct
import numpy as np
import pytest
from coremltools.converters.mil.mil import types
from deadline_util import deadline
from fixtures.executor.mil_models import mb, save_program, set_attribute

from anemll_spec.errors import InputError
from anemll_spec.executor import control, load


def _int(n: int) -> np.ndarray:
    return np.array([n], np.int32)


@pytest.fixture(scope="module")
def loops(tmp_path_factory):
    """Three loops over (i, acc): `count` adds 1 to i while i < n (n trips); `stuck` adds
    0 to i (i never changes: endless for n > 0); `flip` sets i = 1 - i (0, 1, 0, ...:
    endless for n > 1, and no trip leaves i unchanged). acc += x on every trip."""
    folder = tmp_path_factory.mktemp("loops")
    return {
        name: save_program(_loop(step), folder / f"{name}.mlpackage")
        for name, step in (("count", 1), ("stuck", 0), ("flip", None))
    }


def _loop(step: int | None):
    @mb.program(
        input_specs=[mb.TensorSpec((2,)), mb.TensorSpec((1,), dtype=types.int32)],
        opset_version=ct.target.iOS18,
    )
    def prog(x, n):
        limit = mb.squeeze(x=n)

        def cond(i, acc):
            return mb.less(x=i, y=limit)

        def body(i, acc):
            nxt = mb.sub(x=np.int32(1), y=i) if step is None else mb.add(x=i, y=step)
            return nxt, mb.add(x=acc, y=x)

        i, acc = mb.while_loop(_cond=cond, _body=body, loop_vars=(np.int32(0), x))
        return mb.identity(x=i, name="i"), mb.identity(x=acc, name="acc")

    return prog


X = np.array([0.5, -1.25], np.float32)


def test_a_loop_that_changes_nothing_its_condition_reads_is_refused_at_once(loops):
    prog = load(loops["stuck"])
    with deadline(20), pytest.raises(InputError) as err:
        prog.predict({"x": X, "n": _int(3)})
    message = str(err.value)
    assert "(while_loop)" in message and "never ends" in message and "trip 1 " in message
    out = prog.predict({"x": X, "n": _int(0)})  # the condition false at once: zero trips
    assert int(out["i"]) == 0
    np.testing.assert_array_equal(out["acc"], X)


def test_a_cycling_loop_stops_at_the_trip_limit(loops, monkeypatch):
    monkeypatch.setattr(control, "MAX_TRIPS", 40)
    flip, count = load(loops["flip"]), load(loops["count"])
    with deadline(20), pytest.raises(InputError, match=r"\(while_loop\).*after 40 trips"):
        flip.predict({"x": X, "n": _int(5)})
    out = flip.predict({"x": X, "n": _int(1)})  # 0 -> 1: one trip, then i < 1 is false
    assert int(out["i"]) == 1
    # exactly the limit runs; one trip more is refused
    out = count.predict({"x": X, "n": _int(40)})
    acc = X.copy()
    for _ in range(40):
        acc = acc + X
    assert int(out["i"]) == 40
    np.testing.assert_allclose(out["acc"], acc, rtol=1e-6)
    with deadline(20), pytest.raises(InputError, match="after 40 trips"):
        count.predict({"x": X, "n": _int(41)})


def test_a_condition_on_values_fixed_during_the_loop(tmp_path):
    """The condition reads only an outer input: true once, true forever (refused after the
    first trip); false: zero trips."""

    @mb.program(input_specs=[mb.TensorSpec((2,))], opset_version=ct.target.iOS18)
    def prog(x):
        flag = mb.greater(x=mb.reduce_sum(x=x), y=0.0)

        def cond(acc):
            return flag

        def body(acc):
            return (mb.add(x=acc, y=1.0),)

        return mb.identity(x=mb.while_loop(_cond=cond, _body=body, loop_vars=(x,)), name="y")

    loaded = load(save_program(prog, tmp_path / "flag.mlpackage"))
    with deadline(20), pytest.raises(InputError, match=r"never ends.*\(none\)"):
        loaded.predict({"x": X * -4})
    np.testing.assert_array_equal(loaded.predict({"x": X})["y"], X)  # sum(X) < 0


def test_a_one_entry_lut_is_refused_with_one_line(tmp_path):
    """iOS16 constexpr_lut_to_dense takes n = log2(lut size) bits per index; a lut of one
    entry (n = 0, which the def does not allow) divided by zero while unpacking."""

    @mb.program(input_specs=[mb.TensorSpec((4,))], opset_version=ct.target.iOS16)
    def prog(x):
        w = mb.constexpr_lut_to_dense(
            indices=np.array([0b11100100], np.uint8),  # 2-bit indices 0, 1, 2, 3
            lut=np.array([1.0, 2.0, 3.0, 4.0], np.float32),
            shape=np.array([4], np.uint32),
        )
        return mb.add(x=x, y=w)

    path = save_program(prog, tmp_path / "lut.mlpackage", target=ct.target.iOS16)
    out = load(path).predict({"x": np.zeros(4, np.float32)})
    np.testing.assert_array_equal(next(iter(out.values())), [1.0, 2.0, 3.0, 4.0])
    set_attribute(path, "constexpr_lut_to_dense", "lut", np.array([1.5], np.float32))
    with pytest.raises(InputError, match=r"\(constexpr_lut_to_dense\).*lut size 1"):
        load(path)


@pytest.fixture(scope="module")
def runtime_resize(tmp_path_factory):
    @mb.program(
        input_specs=[mb.TensorSpec((1, 1, 2, 3)), mb.TensorSpec((4,), dtype=types.int32)],
        opset_version=ct.target.iOS18,
    )
    def prog(x, shape):
        return mb.resize(x=x, shape=shape, resized_dims=np.uint32(2), sampling_mode="DEFAULT")

    return load(save_program(prog, tmp_path_factory.mktemp("rs") / "resize.mlpackage"))


IMG = np.arange(6, dtype=np.float32).reshape(1, 1, 2, 3)


def test_a_runtime_resize_target_of_a_negative_size_is_refused(runtime_resize):
    """iOS17 resize reads its target from a tensor; -3 rows gave an empty output."""
    with pytest.raises(InputError, match=r"\(resize\).*shape \[1, 1, -3, 2\] holds a negative"):
        runtime_resize.predict({"x": IMG, "shape": np.array([1, 1, -3, 2], np.int32)})
    # 0 keeps the input's rows; the columns 3 -> 4 on the DEFAULT grid i * (3 - 3/4) / 3
    out = next(iter(runtime_resize.predict({"x": IMG, "shape": _int4(1, 1, 0, 4)}).values()))
    g = np.arange(4) * (3 - 3 / 4) / 3
    lo = np.floor(g).astype(int)
    hi = np.minimum(lo + 1, 2)
    want = IMG[..., lo] + (IMG[..., hi] - IMG[..., lo]) * (g - lo)
    np.testing.assert_allclose(out, want, rtol=1e-6)


def test_a_runtime_resize_target_too_large_is_refused_before_allocating(runtime_resize):
    """2**31 - 1 by 2**31 - 1 pixels: refused by the size check, nothing allocated (the
    first axis alone asked for 17 GB of grid and was killed for memory)."""
    big = 2**31 - 1
    with pytest.raises(InputError, match=r"\(resize\).*elements \(limit"):
        runtime_resize.predict({"x": IMG, "shape": _int4(1, 1, big, big)})


def _int4(*values: int) -> np.ndarray:
    return np.array(values, np.int32)
