"""Stateful programs (iOS18): a KV cache written at a runtime position across calls."""

from __future__ import annotations

import coremltools as ct
import numpy as np
import pytest
from coremltools.converters.mil.mil import types
from fixtures.executor.mil_models import mb, save_program, saved_op_types

from anemll_spec.errors import InputError
from anemll_spec.executor import State, load

CTX, DIM = 4, 3
RNG = np.random.default_rng(4)


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    @mb.program(
        input_specs=[
            mb.TensorSpec((1, DIM), dtype=types.fp16),
            mb.TensorSpec((1,), dtype=types.int32),
            mb.StateTensorSpec((CTX, DIM), dtype=types.fp16),
        ],
        opset_version=ct.target.iOS18,
    )
    def prog(x, pos, cache):
        old = mb.read_state(input=cache)
        begin = mb.concat(values=[pos, np.array([0], np.int32)], axis=0)
        end = mb.concat(values=[mb.add(x=pos, y=1), np.array([DIM], np.int32)], axis=0)
        new = mb.slice_update(x=old, update=x, begin=begin, end=end)
        new = mb.coreml_update_state(state=cache, value=new)
        scores = mb.matmul(x=x, y=new, transpose_y=True)  # (1, CTX)
        valid = mb.less_equal(x=np.arange(CTX, dtype=np.int32), y=pos)
        scores = mb.select(cond=valid, a=scores, b=np.float16(-1e4))
        attn = mb.matmul(x=mb.softmax(x=scores, axis=-1), y=new, name="attn")
        return attn, mb.reduce_sum(x=new, axes=[1], name="row_sums")

    return save_program(prog, tmp_path_factory.mktemp("state") / "kv.mlpackage", precision="fp16")


def test_saved_program_has_state_ops(model):
    saved = set(saved_op_types(model))
    assert {"read_state", "write_state", "slice_update"} <= saved


def test_specs(model):
    prog = load(model)
    assert set(prog.inputs) == {"x", "pos"}
    assert prog.states["cache"].shape == (CTX, DIM)
    assert prog.states["cache"].dtype == "float16"
    state = prog.make_state()
    assert isinstance(state, State) and list(state) == ["cache"]
    np.testing.assert_array_equal(state.read("cache"), np.zeros((CTX, DIM), np.float16))


def test_cache_accumulates_across_calls(model):
    prog = load(model)
    state = prog.make_state()
    cache = np.zeros((CTX, DIM), np.float64)
    for pos in range(CTX):
        x = RNG.standard_normal((1, DIM)).astype(np.float32)
        out = prog.predict({"x": x, "pos": np.array([pos], np.int32)}, state=state)
        cache[pos] = x.astype(np.float16)[0]  # fp16 input, fp16 state
        scores = (x.astype(np.float16).astype(np.float64) @ cache.T)[0]
        scores[pos + 1 :] = -1e4
        w = np.exp(scores - scores.max())
        w /= w.sum()
        np.testing.assert_allclose(out["attn"][0], w @ cache, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(out["row_sums"], cache.sum(axis=1), rtol=1e-6, atol=1e-6)
        np.testing.assert_array_equal(state.read("cache"), cache.astype(np.float16))


def test_state_write_is_used_and_rounded_to_fp16(model):
    prog = load(model)
    state = prog.make_state()
    custom = np.full((CTX, DIM), 0.1, np.float32)  # 0.1 is not an fp16 value
    state["cache"] = custom
    assert state["cache"].dtype == np.float16
    assert state["cache"][0, 0] == np.float16(0.1)
    x = np.ones((1, DIM), np.float32)
    out = prog.predict({"x": x, "pos": np.array([2], np.int32)}, state=state)
    expected = np.full(CTX, 3 * np.float64(np.float16(0.1)))
    expected[2] = 3.0
    np.testing.assert_allclose(out["row_sums"], expected, rtol=1e-6)
    with pytest.raises(InputError, match="shape"):
        state.write("cache", np.zeros((2, 2)))
    with pytest.raises(InputError, match="no state named"):
        state.read("kv")


def test_no_state_means_a_fresh_zero_state_each_call(model):
    prog = load(model)
    x = np.ones((1, DIM), np.float32)
    for _ in range(2):
        out = prog.predict({"x": x, "pos": np.array([1], np.int32)})
        np.testing.assert_array_equal(out["row_sums"], [0, 3, 0, 0])


def test_foreign_state_is_rejected(model, tmp_path):
    prog = load(model)
    with pytest.raises(InputError, match="make_state"):
        prog.predict({"x": np.ones((1, DIM)), "pos": np.array([0], np.int32)}, state={"cache": 0})
