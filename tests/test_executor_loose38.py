"""Loose ends of review 38 of the reference executor: crop_resize and NMS outputs (a constant
times a runtime box count) checked before they are made; upsample scale factors that are
NaN or inf refused at load; recurrent activation names in any case (as coremltools' lstm
def reads them); iOS16 lut sizes as the def lists them; a while_loop whose body reads a
state. Programs built with coremltools' MIL builder, saved, and run by the executors
(numpy, and torch on the CPU); expected values from numpy formulas and Python loops.

No test allocates more than ~40 MB: an oversized request is refused with the memory
available reported as a few MiB and the memory check made from 2**16 elements on
(`tight_memory`), so that the check, not the machine, refuses it.
"""

from __future__ import annotations

import tracemalloc

import coremltools as ct
import numpy as np
import pytest
from coremltools.converters.mil.mil import get_new_symbol, types
from fixtures.executor.mil_models import mb, patch_const_input, save_program, set_attribute
from torch_util import torch_devices

from anemll_spec.errors import InputError
from anemll_spec.executor import control, load
from anemll_spec.mlmodel import limits

MEMORY = r"needs [\d.,]+ MiB of memory, [\d.,]+ MiB is available"
MIB = 1 << 20


def _backends():
    yield "numpy", None
    torch_arrays = pytest.importorskip("anemll_spec.executor.torch_arrays")
    for device in torch_devices():
        yield f"torch-{device}", torch_arrays.TorchOps(device, "float32")


def _programs(path):
    return {name: load(path) if xp is None else load(path, xp=xp) for name, xp in _backends()}


@pytest.fixture
def tight_memory(monkeypatch):
    """Sets the memory available (MiB) and checks runtime sizes against it from 2**16
    elements on: a request of a few MiB is then refused by the check."""
    monkeypatch.setattr(limits, "CHECK_MEMORY_FROM", 1 << 16)

    def set_available(mib: float) -> None:
        monkeypatch.setattr(limits, "available_bytes", lambda: int(mib * MIB))

    return set_available


def _refused_before_allocating(programs, feed, pattern: str) -> None:
    """Each program refuses `feed`; the numpy one with less than 1 MiB allocated (numpy
    reports its buffers to tracemalloc): the check came before the output was made."""
    for name, prog in programs.items():
        tracemalloc.start()
        try:
            with pytest.raises(InputError, match=pattern):
                prog.predict(feed)
                pytest.fail(f"{name}: not refused")
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        if name == "numpy":
            assert peak < MIB, f"{peak / MIB:.1f} MiB allocated before the refusal"


# -- crop_resize: N boxes x target_height x target_width -----------------------------------

IMG = np.arange(6, dtype=np.float32).reshape(1, 1, 2, 3)  # value 3 * row + column
T = 1024  # target height and width: a box's output is 1 Mi values (8 MiB at the check's 8 B)


@pytest.fixture(scope="module")
def crops(tmp_path_factory):
    """iOS16: roi [N, 1, 4, 1, 1] of a flexible N (1 or 2); iOS17: boxes [2, 4] with
    box_indices, x of a flexible channel count (the output shape is then not declared)."""
    d = tmp_path_factory.mktemp("crop")
    common = {"target_height": T, "target_width": T, "sampling_mode": "ALIGN_CORNERS"}

    @mb.program(
        input_specs=[mb.TensorSpec((1, 1, 2, 3)), mb.TensorSpec((get_new_symbol(), 1, 4, 1, 1))],
        opset_version=ct.target.iOS16,
    )
    def roi(x, r):
        return mb.crop_resize(x=x, roi=r, **common)

    @mb.program(
        input_specs=[
            mb.TensorSpec((1, get_new_symbol(), 2, 3)),
            mb.TensorSpec((2, 4)),
            mb.TensorSpec((2,), dtype=types.int32),
        ],
        opset_version=ct.target.iOS18,
    )
    def boxes(x, b, i):
        return mb.crop_resize(x=x, boxes=b, box_indices=i, **common)

    return {
        "roi": _programs(save_program(roi, d / "roi.mlpackage", target=ct.target.iOS16)),
        "boxes": _programs(save_program(boxes, d / "boxes.mlpackage")),
    }


BOX = [0.0, 0.0, 1.0, 2.0]  # the whole image, corners (h0, w0, h1, w1)


def _roi(n: int) -> dict[str, np.ndarray]:
    return {"x": IMG, "r": np.array([BOX] * n, np.float32).reshape(n, 1, 4, 1, 1)}


def test_crop_resize_of_more_boxes_than_memory_holds_is_refused_before_allocating(
    crops, tight_memory
):
    """A box's output takes 8 MiB (at the check's 8 bytes a value), 12 MiB are available:
    one box runs, two are refused (they ran before: the count was never checked)."""
    tight_memory(12)
    rows, cols = np.meshgrid(np.arange(T) / (T - 1), 2 * np.arange(T) / (T - 1), indexing="ij")
    want = (3 * rows + cols).astype(np.float32)  # bilinear reads of a linear image: exact
    for prog in crops["roi"].values():
        out = next(iter(prog.predict(_roi(1)).values()))
        assert out.shape == (1, 1, 1, T, T)
        np.testing.assert_allclose(out[0, 0, 0], want, rtol=1e-5, atol=1e-5)
    pattern = rf"\(crop_resize\).*the cropped tensor of shape \[2, 1, 1, {T}, {T}\] {MEMORY}"
    _refused_before_allocating(crops["roi"], _roi(2), pattern)


def test_crop_resize_with_box_indices_is_checked_before_allocating(crops, tight_memory):
    """iOS17: the output [N, C, th, tw], of a runtime channel count here, is checked too."""
    tight_memory(1)
    feed = {"x": IMG, "b": np.array([BOX, BOX], np.float32), "i": np.zeros(2, np.int32)}
    pattern = rf"\(crop_resize\).*the cropped tensor of shape \[2, 1, 1, {T}, {T}\] {MEMORY}"
    _refused_before_allocating(crops["boxes"], feed, pattern)


# -- non_maximum_suppression: n x max_boxes ------------------------------------------------

MAX_BOXES = 100_000  # a constant the def leaves open


@pytest.fixture(scope="module")
def nms(tmp_path_factory):
    n = get_new_symbol()  # the batch: 1 or 2

    @mb.program(
        input_specs=[mb.TensorSpec((n, 5, 4)), mb.TensorSpec((n, 5, 3))],
        opset_version=ct.target.iOS15,
    )
    def prog(b, s):
        return mb.non_maximum_suppression(
            boxes=b, scores=s, iou_threshold=0.5, score_threshold=0.0, max_boxes=MAX_BOXES
        )

    path = tmp_path_factory.mktemp("nms") / "nms.mlpackage"
    return _programs(save_program(prog, path, target=ct.target.iOS15))


def _detections(n: int) -> dict[str, np.ndarray]:
    """5 disjoint unit boxes (centre x = 2k: no overlap) with scores in (0.1, 1)."""
    rng = np.random.default_rng(38)
    boxes = np.zeros((n, 5, 4), np.float32)
    boxes[..., 0] = 2 * np.arange(5)
    boxes[..., 2:] = 1.0
    return {"b": boxes, "s": rng.uniform(0.1, 1.0, (n, 5, 3)).astype(np.float32)}


def test_nms_of_a_batch_past_the_memory_available_is_refused_before_allocating(nms, tight_memory):
    """[n, 100000, 4] kept boxes take 3.1 MiB per image at 8 bytes a value: with 4 MiB
    available one image runs (no box overlaps another: all 5 kept, best score first,
    the rest zeros and -1), two are refused."""
    tight_memory(4)
    feed = _detections(1)
    order = np.argsort(-feed["s"][0].max(axis=1), kind="stable")
    for prog in nms.values():
        boxes, scores, idx, count = prog.predict(feed).values()
        assert boxes.shape == (1, MAX_BOXES, 4) and int(count[0]) == 5
        np.testing.assert_array_equal(idx[0, :5], order)
        np.testing.assert_array_equal(boxes[0, :5], feed["b"][0, order])
        np.testing.assert_array_equal(scores[0, :5], feed["s"][0, order])
        assert not boxes[0, 5:].any() and (idx[0, 5:] == -1).all()
    pattern = rf"\(non_maximum_suppression\).*the kept boxes of shape \[2, {MAX_BOXES}, 4\]"
    _refused_before_allocating(nms, _detections(2), rf"{pattern} {MEMORY}")


# -- upsample scale factors ----------------------------------------------------------------


@pytest.mark.parametrize("op", ["upsample_nearest_neighbor", "upsample_bilinear"])
@pytest.mark.parametrize("param", ["scale_factor_height", "scale_factor_width"])
@pytest.mark.parametrize("value", [np.nan, np.inf])
def test_an_upsample_scale_not_finite_is_refused_at_load(tmp_path, op, param, value):
    """NaN as the width passed `min(scales) > 0` (min(2, nan) is 2), inf passed > 0: both
    failed at run with a generic error (cannot convert to integer)."""

    @mb.program(
        input_specs=[mb.TensorSpec((1, 1, get_new_symbol(), get_new_symbol()))],
        opset_version=ct.target.iOS18,
    )
    def prog(x):
        return getattr(mb, op)(x=x, scale_factor_height=2.0, scale_factor_width=3.0)

    path = save_program(prog, tmp_path / "up.mlpackage")
    out = next(iter(load(path).predict({"x": np.ones((1, 1, 2, 2), np.float32)}).values()))
    assert out.shape == (1, 1, 4, 6)
    patch_const_input(path, op, param, np.float32(value))
    with pytest.raises(InputError, match=rf"\({op}\).*{param} {value} must be finite and > 0$"):
        load(path)


# -- recurrent activation names ------------------------------------------------------------

H, IN, STEPS = 3, 2, 4
RNG = np.random.default_rng(7)
SEQ = RNG.standard_normal((STEPS, 1, IN)).astype(np.float32)
H0 = RNG.standard_normal((1, H)).astype(np.float32)


def _sigmoid(v):
    return 1 / (1 + np.exp(-v))


def _relu(v):
    return np.maximum(v, 0)


def _reference(kind: str, w_ih: np.ndarray, w_hh: np.ndarray) -> np.ndarray:
    """The last hidden state, written from the defs' equations (gate orders: gru r, o, z;
    lstm i, f, o, z), with the activations the names below ask for."""
    h, c = H0.astype(np.float64), np.zeros((1, H))  # the program's initial_c: zeros
    for xt in SEQ.astype(np.float64):
        gx, gh = xt @ w_ih.T, h @ w_hh.T
        if kind == "rnn":  # activation "RELU"
            h = _relu(gx + gh)
        elif kind == "gru":  # recurrent_activation "SIGMOID", activation "Tanh"
            r = _sigmoid(gx[:, :H] + gh[:, :H])
            z = _sigmoid(gx[:, 2 * H :] + gh[:, 2 * H :])
            o = np.tanh(gx[:, H : 2 * H] + (r * h) @ w_hh[H : 2 * H].T)
            h = (1 - z) * o + z * h
        else:  # recurrent "SIGMOID", cell "Tanh", activation "RELU"
            g = gx + gh
            i, f, o = (_sigmoid(g[:, k * H : (k + 1) * H]) for k in range(3))
            c = f * c + i * np.tanh(g[:, 3 * H :])
            h = o * _relu(c)
    return h


NAMES = {
    "rnn": {"activation": "RELU"},
    "gru": {"recurrent_activation": "SIGMOID", "activation": "Tanh"},
    "lstm": {"recurrent_activation": "SIGMOID", "cell_activation": "Tanh", "activation": "RELU"},
}


@pytest.mark.parametrize("kind", ["rnn", "gru", "lstm"])
def test_recurrent_activation_names_are_read_in_any_case(tmp_path, kind):
    """coremltools' lstm def checks `activation.lower()`; its gru and rnn defs check
    nothing: a name in capitals builds and saves, and the executor refused it."""
    gates = {"rnn": 1, "gru": 3, "lstm": 4}[kind]
    rng = np.random.default_rng(gates)  # each kind its own weights, whatever runs first
    w_ih = rng.standard_normal((gates * H, IN)).astype(np.float32)
    w_hh = rng.standard_normal((gates * H, H)).astype(np.float32)
    extra = {"initial_c": np.zeros((1, H), np.float32)} if kind == "lstm" else {}

    @mb.program(
        input_specs=[mb.TensorSpec((STEPS, 1, IN)), mb.TensorSpec((1, H))],
        opset_version=ct.target.iOS15,
    )
    def prog(x, h):
        op = getattr(mb, kind)
        return op(x=x, initial_h=h, weight_ih=w_ih, weight_hh=w_hh, **extra, **NAMES[kind])[1]

    path = save_program(prog, tmp_path / f"{kind}.mlpackage", target=ct.target.iOS15)
    want = _reference(kind, w_ih.astype(np.float64), w_hh.astype(np.float64))
    for name, loaded in _programs(path).items():
        out = next(iter(loaded.predict({"x": SEQ, "h": H0}).values()))
        np.testing.assert_allclose(out, want, rtol=1e-5, atol=1e-5, err_msg=name)
    patch_const_input(path, kind, "activation", "Softmax")
    with pytest.raises(InputError, match=rf"\({kind}\).*activation 'Softmax' is not one of"):
        load(path)


# -- iOS16 constexpr_lut_to_dense: lut sizes -----------------------------------------------


def _pack(indices: list[int], bits: int) -> np.ndarray:
    """Indices packed LSB first, as the iOS16 def draws them."""
    stream = sum(v << (k * bits) for k, v in enumerate(indices))
    return np.frombuffer(stream.to_bytes(-(-len(indices) * bits // 8), "little"), np.uint8)


@pytest.fixture
def lut_model(tmp_path):
    """w = lut[indices] of shape [8], added to x; built with a 2-bit (4-entry) lut."""

    @mb.program(input_specs=[mb.TensorSpec((8,))], opset_version=ct.target.iOS16)
    def prog(x):
        w = mb.constexpr_lut_to_dense(
            indices=_pack([0, 1, 2, 3, 3, 2, 1, 0], 2),
            lut=np.array([1.0, 2.0, 3.0, 4.0], np.float32),
            shape=np.array([8], np.uint32),
        )
        return mb.add(x=x, y=w)

    return save_program(prog, tmp_path / "lut.mlpackage", target=ct.target.iOS16)


def _with_lut(path, size: int, indices: list[int]):
    bits = size.bit_length() - 1
    set_attribute(path, "constexpr_lut_to_dense", "lut", np.arange(size, dtype=np.float32) / 2)
    set_attribute(path, "constexpr_lut_to_dense", "indices", _pack(indices, bits))
    return path


def test_a_six_bit_lut_decodes_as_the_def_packs_it(lut_model):
    indices = [63, 0, 17, 42, 5, 63, 1, 30]
    out = load(_with_lut(lut_model, 64, indices)).predict({"x": np.zeros(8, np.float32)})
    np.testing.assert_array_equal(next(iter(out.values())), np.array(indices, np.float32) / 2)


@pytest.mark.parametrize("size", [8, 32, 128])
def test_a_lut_size_the_ios16_def_does_not_list_is_refused(lut_model, size):
    """The def: NUM_PALETTES in {2, 4, 16, 64, 256} (1, 2, 4, 6, 8 bits); 3, 5 and 7-bit
    indices were decoded."""
    path = _with_lut(lut_model, size, [size - 1, 0, 1, 2, 3, 4, 5, 6])
    pattern = rf"\(constexpr_lut_to_dense\).*lut size {size} is not one of 2, 4, 16, 64, 256"
    with pytest.raises(InputError, match=pattern):
        load(path)


# -- a while_loop whose body reads a state -------------------------------------------------


@pytest.fixture(scope="module")
def state_loop(tmp_path_factory):
    """while i < n: s = read_state(s) + step (written back); i += floor(s / 3). With
    step 1, i stays 0 for the first two trips while the state moves on: the loop ends
    all the same; with step 0 nothing ever changes."""

    @mb.program(
        input_specs=[
            mb.TensorSpec((1,), dtype=types.fp16),
            mb.TensorSpec((1,), dtype=types.fp16),
            mb.StateTensorSpec((1,), dtype=types.fp16),
        ],
        opset_version=ct.target.iOS18,
    )
    def prog(n, step, s):
        def cond(i):
            return mb.less(x=mb.squeeze(x=i), y=mb.squeeze(x=n))

        def body(i):
            v = mb.add(x=mb.read_state(input=s), y=step)
            v = mb.coreml_update_state(state=s, value=v)
            return (mb.add(x=i, y=mb.floor(x=mb.real_div(x=v, y=np.float16(3)))),)

        i = mb.while_loop(_cond=cond, _body=body, loop_vars=(mb.sub(x=n, y=n),))
        return mb.identity(x=i, name="i")

    path = save_program(prog, tmp_path_factory.mktemp("sl") / "loop.mlpackage", precision="fp16")
    return _programs(path)


def _f16(v: float) -> np.ndarray:
    return np.array([v], np.float16)


def test_a_loop_whose_body_reads_a_state_runs_to_its_end(state_loop):
    i = s = trips = 0
    while i < 10:
        s += 1
        i += s // 3
        trips += 1
    for name, prog in state_loop.items():
        state = prog.make_state()
        out = prog.predict({"n": _f16(10), "step": _f16(1)}, state=state)
        assert float(out["i"][0]) == i, name
        assert float(state.read("s")[0]) == trips, name


def test_a_loop_on_a_state_that_does_not_move_stops_at_the_trip_limit(state_loop, monkeypatch):
    """A state read decides i: an unchanged trip proves nothing, the trip limit refuses."""
    monkeypatch.setattr(control, "MAX_TRIPS", 40)
    for name, prog in state_loop.items():
        state = prog.make_state()
        with pytest.raises(InputError, match=r"\(while_loop\).*after 40 trips"):
            prog.predict({"n": _f16(10), "step": _f16(0)}, state=state)
            pytest.fail(f"{name}: not refused")
