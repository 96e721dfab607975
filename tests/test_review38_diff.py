"""Review of 2026-12-07's executor changes (endless while_loops, runtime sizes,
slice_by_size bounds): programs built with coremltools' MIL builder, saved, and run by the
executor; expected values from plain Python loops and numpy slicing written from the defs."""

from __future__ import annotations

import coremltools as ct
import numpy as np
import pytest
from coremltools.converters.mil.mil import types
from deadline_util import deadline
from fixtures.executor.mil_models import mb, save_program
from torch_util import torch_devices

from anemll_spec.errors import InputError
from anemll_spec.executor import load


def _n(value: int) -> dict[str, np.ndarray]:
    return {"n": np.array([value], np.int32)}


def _loop(body):
    """while i < n: (i, j) = body(i, j), from (0, 0); i and j are runtime zeros (constant
    loop variables would be folded by coremltools' value inference)."""

    @mb.program(input_specs=[mb.TensorSpec((1,), dtype=types.int32)], opset_version=ct.target.iOS18)
    def prog(n):
        limit = mb.squeeze(x=n)
        zero = mb.sub(x=limit, y=limit)

        def cond(i, j):
            return mb.less(x=i, y=limit)

        i, j = mb.while_loop(_cond=cond, _body=body, loop_vars=(zero, zero))
        return mb.identity(x=i, name="i"), mb.identity(x=j, name="j")

    return prog


def _stride(i, j):
    """i moves on every third trip only: j counts 0, 1, 2, 0, ... and i += (j == 2)."""
    step = mb.cast(x=mb.equal(x=j, y=np.int32(2)), dtype="int32")
    return mb.add(x=i, y=step), mb.mod(x=mb.add(x=j, y=np.int32(1)), y=np.int32(3))


def _capped(i, j):
    """i = min(j + 1, 5), j = min(j + 1, 6): i is computed from j, which stops at 6 on
    trip 6; from trip 7 on no trip changes either."""
    nxt = mb.add(x=j, y=np.int32(1))
    return mb.minimum(x=nxt, y=np.int32(5)), mb.minimum(x=nxt, y=np.int32(6))


def _python(body, n: int) -> tuple[int, int, int]:
    """(i, j, trips) of the loop run as plain Python."""
    i = j = trips = 0
    while i < n:
        i, j = body(i, j)
        trips += 1
    return i, j, trips


@pytest.fixture(scope="module")
def loops(tmp_path_factory):
    folder = tmp_path_factory.mktemp("loops")
    return {
        name: save_program(_loop(body), folder / f"{name}.mlpackage")
        for name, body in (("stride", _stride), ("capped", _capped))
    }


def _backends():
    yield "numpy", None
    torch_arrays = pytest.importorskip("anemll_spec.executor.torch_arrays")
    for device in torch_devices():
        yield f"torch-{device}", torch_arrays.TorchOps(device, "float32")


@pytest.mark.parametrize("n", [1, 4, 7])
def test_a_loop_whose_condition_variable_rests_for_some_trips_still_ends(loops, n):
    """The condition reads i only, and a trip may leave i as it was while j (which i is
    computed from) moves on: refused at trip 1 as 'never ends' before, on both backends."""
    want_i, want_j, trips = _python(lambda i, j: (i + (j == 2), (j + 1) % 3), n)
    assert trips == 3 * n  # the loop's own rest trips: two of every three
    for name, xp in _backends():
        prog = load(loops["stride"]) if xp is None else load(loops["stride"], xp=xp)
        with deadline(20):
            out = prog.predict(_n(n))
        assert (int(out["i"]), int(out["j"])) == (want_i, want_j), name


def test_a_loop_stuck_after_some_trips_is_refused_by_twice_its_trips(loops):
    """i = min(j + 1, 5), j = min(j + 1, 6): for n > 5 nothing the condition depends on
    moves after trip 6 (i = 5, j = 6): trip 7 changes nothing, refused at the next
    check, trip 8 (checks on trips 1, 2, 4, 8, ...); n = 5 ends as Python's loop does."""
    want_i, want_j, _ = _python(lambda i, j: (min(j + 1, 5), min(j + 1, 6)), 5)
    for name, xp in _backends():
        prog = load(loops["capped"]) if xp is None else load(loops["capped"], xp=xp)
        out = prog.predict(_n(5))
        assert (int(out["i"]), int(out["j"])) == (want_i, want_j), name
        with deadline(20), pytest.raises(InputError) as err:
            prog.predict(_n(9))
        assert "never ends: trip 8 " in str(err.value), name


def test_a_long_loop_copies_its_variables_to_the_host_a_logarithmic_number_of_times(loops):
    """On the torch backend each check copies the loop variables to the host (a device
    sync on CUDA): per trip, only the condition's one read remains. Going from n to 2n
    (3n more trips) costs 3n condition reads and at most one more check of 2 copies of 2
    variables; before, 2 copies of the condition's variable were made on every trip."""
    torch_arrays = pytest.importorskip("anemll_spec.executor.torch_arrays")
    ops = torch_arrays.TorchOps("cpu", "float32")
    prog = load(loops["stride"], xp=ops)
    reads = []
    for n in (64, 128):
        before = ops.host_reads
        prog.predict(_n(n))
        reads.append(ops.host_reads - before)
    extra_trips = 3 * 128 - 3 * 64
    assert extra_trips <= reads[1] - reads[0] <= extra_trips + 2 * 2


# -- slice_by_size: a begin at the end of the dimension ------------------------------------

X = np.arange(6, dtype=np.float32).reshape(2, 3)


@pytest.fixture(scope="module")
def sliced(tmp_path_factory):
    @mb.program(
        input_specs=[
            mb.TensorSpec((2, 3)),
            mb.TensorSpec((2,), dtype=types.int32),
            mb.TensorSpec((2,), dtype=types.int32),
        ],
        opset_version=ct.target.iOS18,
    )
    def prog(x, b, s):
        return mb.slice_by_size(x=x, begin=b, size=s, name="y")

    return load(save_program(prog, tmp_path_factory.mktemp("slice") / "s.mlpackage"))


@pytest.mark.parametrize(
    ("begin", "size", "index"),
    [
        ((0, 3), (-1, -1), np.s_[0:, 3:]),  # the rest from the end: empty
        ((0, 3), (2, 0), np.s_[0:2, 3:3]),  # TF's Slice(begin = D, size = 0)
        ((2, 0), (0, 3), np.s_[2:2, 0:3]),
    ],
)
def test_slice_by_size_takes_the_empty_slice_at_the_end(sliced, begin, size, index):
    """coremltools' type and value inference give shape (2, 0) for begin 3 on a dimension
    of 3 (x[0:, 3:]); the executor had refused begin 3 as outside [-3, 3)."""
    feed = {"x": X, "b": np.array(begin, np.int32), "s": np.array(size, np.int32)}
    out = sliced.predict(feed)["y"]
    assert out.shape == X[index].shape and out.size == 0
    feed["b"] = np.array([0, 3], np.int32)
    feed["s"] = np.array([2, 1], np.int32)  # one element past the end: still refused
    with pytest.raises(InputError, match=r"\(slice_by_size\).*size 1 on axis 1"):
        sliced.predict(feed)
