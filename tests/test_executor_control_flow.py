"""Control flow (cond, while_loop): programs built with coremltools' MIL builder, saved,
run by the executor; expected values from plain numpy loops written from the op defs
(cond runs one branch; while_loop runs the condition first, then the body while it holds)."""

from __future__ import annotations

import coremltools as ct
import numpy as np
import pytest
from coremltools.converters.mil.mil import types
from fixtures.executor.mil_models import mb, save_program

from anemll_spec.executor import load

X = np.array([[1.5, -2.0, 3.25], [-1.0, 0.5, 1.0]], np.float32)


def _reference(x: np.ndarray, n: int) -> dict[str, np.ndarray]:
    """numpy: a = 2x if sum(x) > 0 else x - 1; acc = a, n times acc = acc/2 + x; an inner
    loop counts t up to i + 1 in outer step i, and the counts are summed."""
    a = x * 2 if x.sum() > 0 else x - 1
    acc, i, inner = a, 0, 0
    while i < n:
        acc = acc * 0.5 + x
        t = 0
        while t < i + 1:
            t += 1
        inner += t
        i += 1
    return {"branch": a, "acc": acc, "steps": np.int32(i), "inner": np.int32(inner)}


@pytest.fixture(scope="module")
def program_path(tmp_path_factory):
    @mb.program(
        input_specs=[mb.TensorSpec((2, 3)), mb.TensorSpec((1,), dtype=types.int32)],
        opset_version=ct.target.iOS18,
    )
    def prog(x, n):
        pred = mb.greater(x=mb.reduce_sum(x=x), y=0.0)
        a = mb.cond(
            pred=pred,
            _true_fn=lambda: mb.mul(x=x, y=2.0),
            _false_fn=lambda: mb.sub(x=x, y=1.0),
            name="branch",
        )
        limit = mb.squeeze(x=n)

        def outer_cond(i, acc, inner):
            return mb.less(x=i, y=limit)

        def outer_body(i, acc, inner):
            def inner_cond(t):  # reads the outer loop's variable i
                return mb.less(x=t, y=mb.add(x=i, y=1))

            def inner_body(t):
                return (mb.add(x=t, y=1),)

            t_end = mb.while_loop(_cond=inner_cond, _body=inner_body, loop_vars=(np.int32(0),))
            new_acc = mb.add(x=mb.mul(x=acc, y=0.5), y=x)  # reads x from outside the block
            return mb.add(x=i, y=1), new_acc, mb.add(x=inner, y=t_end)

        steps, acc, inner = mb.while_loop(
            _cond=outer_cond, _body=outer_body, loop_vars=(np.int32(0), a, np.int32(0))
        )
        return (
            a,
            mb.identity(x=acc, name="acc"),
            mb.identity(x=steps, name="steps"),
            mb.identity(x=inner, name="inner"),
        )

    return save_program(prog, tmp_path_factory.mktemp("cf") / "cf.mlpackage")


@pytest.mark.parametrize("n", [0, 1, 4])
@pytest.mark.parametrize("sign", [1.0, -1.0])
def test_cond_and_nested_while_loops(program_path, n, sign):
    prog = load(program_path)
    assert prog.op_counts["cond"] == 1 and prog.op_counts["while_loop"] == 2
    x = X * sign
    out = prog.predict({"x": x, "n": np.array([n], np.int32)})
    ref = _reference(x, n)
    assert set(out) == set(ref)
    for k, v in ref.items():
        np.testing.assert_allclose(out[k], v, rtol=1e-6, err_msg=k)
    assert int(out["steps"]) == n and int(out["inner"]) == n * (n + 1) // 2  # n = 0: no trip


def test_fp16_mode_rounds_inside_blocks(program_path):
    out = load(program_path, fp16=True).predict({"x": X, "n": np.array([3], np.int32)})
    h = X.astype(np.float16)
    a = (h * np.float16(2)).astype(np.float16)
    acc = a
    for _ in range(3):  # every op's result rounded to fp16, as numpy's float16 does
        acc = (acc * np.float16(0.5)).astype(np.float16) + h
    assert out["acc"].dtype == np.float16
    np.testing.assert_array_equal(out["acc"], acc)


@pytest.mark.torch
def test_torch_runs_the_same_control_flow(program_path):
    from anemll_spec.executor.torch_runner import load_torch

    runner = load_torch(program_path, device="cpu", dtype="float32")
    for n in (0, 2):
        out = runner.predict({"x": X, "n": np.array([n], np.int32)})
        ref = _reference(X, n)
        for k, v in ref.items():
            np.testing.assert_allclose(out[k], v, rtol=1e-6, err_msg=k)
