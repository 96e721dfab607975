"""topk, argsort, one_hot, non_zero and non_maximum_suppression against numpy formulas and
coremltools' own expected values, fp32 and fp16, numpy and torch."""

from __future__ import annotations

import coremltools as ct
import numpy as np
from coremltools.converters.mil.mil import types
from fixtures.executor.mil_models import mb
from fixtures.executor.op_cases import Case, op_tests

RNG = np.random.default_rng(5)
# distinct values exact in fp16: no ties appear when the program rounds them
X = (RNG.permutation(15).reshape(3, 5) * 0.5 - 3).astype(np.float32)
XI = RNG.permutation(12).reshape(4, 3).astype(np.int32) - 6


def _key(v, descending: bool) -> tuple:
    """Sort key of one value: NaN is the largest value (np.argmax, np.max and torch.sort)."""
    if v != v:  # NaN
        return (0, 0.0) if descending else (1, 0.0)
    return (1, -v) if descending else (0, v)


def _sort_idx(x, axis, descending):
    """Indices that order x along axis; ties keep their index order (Python's sort is
    stable), NaN counts as the largest value."""
    moved = np.moveaxis(x, axis, -1)
    out = np.empty(moved.shape, np.int32)
    for pos in np.ndindex(*moved.shape[:-1]):
        row = list(moved[pos])
        out[pos] = sorted(range(len(row)), key=lambda i: _key(row[i], descending))
    return np.moveaxis(out, -1, axis)


def _topk(x, k, axis, descending):
    idx = np.take(_sort_idx(x, axis, descending), range(k), axis=axis)
    return np.take_along_axis(x, idx, axis), idx


def _one_hot(idx, depth, axis, on, off):
    out = np.full(idx.shape + (depth,), off, dtype=np.result_type(on, off))
    for pos in np.ndindex(*idx.shape):
        if 0 <= idx[pos] < depth:
            out[pos + (idx[pos],)] = on
    return np.moveaxis(out, -1, axis)


# logits with NaN (above +inf), ties and infinities, exact in fp16
LOGITS = np.array(
    [[1.0, np.nan, 3.0, -2.0, np.nan, 3.0], [np.inf, 0.5, np.nan, 2.0, 2.0, -np.inf]], np.float32
)
IDX = np.array([[0, 3, 1], [5, -1, 2]], np.int32)  # 5 and -1 are outside [0, 4): all off

CASES = [
    Case(
        "topk_default",
        {"x": X},
        lambda v, f: mb.topk(x=v["x"]),
        lambda v, f: _topk(v["x"], 1, 1, True),
    ),
    Case(
        "topk_k3_axis0_ascending",
        {"x": X},
        lambda v, f: mb.topk(x=v["x"], k=3, axis=0, ascending=True),
        lambda v, f: _topk(v["x"], 3, 0, False),
    ),
    Case(
        "topk_values_only",
        {"x": X},
        lambda v, f: mb.topk(x=v["x"], k=2, return_indices=False),
        lambda v, f: _topk(v["x"], 2, 1, True)[0],
    ),
    Case(
        "topk_uint16_indices",
        {"x": X},
        lambda v, f: mb.topk(x=v["x"], k=4, axis=-1, output_indices_dtype="uint16"),
        lambda v, f: (lambda r: (r[0], r[1].astype(np.uint16)))(_topk(v["x"], 4, 1, True)),
    ),
    Case(
        "topk_int32",
        {"x": XI},
        lambda v, f: mb.topk(x=v["x"], k=2, axis=0),
        lambda v, f: _topk(v["x"], 2, 0, True),
    ),
    Case(
        "argsort_descending",
        {"x": X},
        lambda v, f: mb.argsort(x=v["x"]),
        lambda v, f: _sort_idx(v["x"], 1, True),
    ),
    Case(
        "argsort_ascending_axis0",
        {"x": X},
        lambda v, f: mb.argsort(x=v["x"], axis=0, ascending=True),
        lambda v, f: _sort_idx(v["x"], 0, False),
    ),
    Case(
        "argsort_int32",
        {"x": XI},
        lambda v, f: mb.argsort(x=v["x"], axis=-1, ascending=True),
        lambda v, f: _sort_idx(v["x"], 1, False),
    ),
    Case(
        "topk_nan_logits",
        {"x": LOGITS},
        lambda v, f: mb.topk(x=v["x"], k=3),
        lambda v, f: (
            np.array([[np.nan, np.nan, 3.0], [np.nan, np.inf, 2.0]]),
            np.array([[1, 4, 2], [2, 0, 3]], np.int32),
        ),
    ),
    Case(
        "topk_nan_logits_ascending",
        {"x": LOGITS},
        lambda v, f: mb.topk(x=v["x"], k=6, ascending=True),
        lambda v, f: _topk(v["x"], 6, 1, False),
    ),
    Case(
        "argsort_nan_descending",
        {"x": LOGITS},
        lambda v, f: mb.argsort(x=v["x"]),
        lambda v, f: _sort_idx(v["x"], 1, True),
    ),
    Case(
        "argsort_nan_ascending",
        {"x": LOGITS},
        lambda v, f: mb.argsort(x=v["x"], ascending=True),
        lambda v, f: _sort_idx(v["x"], 1, False),
    ),
    Case(  # the top-1 index of topk is the argmax, and its value the max
        "argmax_max_nan_logits",
        {"x": LOGITS},
        lambda v, f: (
            mb.reduce_argmax(x=v["x"], axis=-1),
            mb.reduce_max(x=v["x"], axes=[-1]),
            mb.topk(x=v["x"], k=1)[1],
        ),
        lambda v, f: (
            np.argmax(v["x"], -1).astype(np.int32),
            np.max(v["x"], -1),
            np.argmax(v["x"], -1).astype(np.int32)[:, None],
        ),
    ),
    *[
        Case(
            f"one_hot_axis{a}".replace("-", "m"),
            {"i": IDX},
            lambda v, f, a=a: mb.one_hot(
                indices=v["i"], one_hot_vector_size=4, axis=a, on_value=f(2.5), off_value=f(-1.0)
            ),
            lambda v, f, a=a: _one_hot(v["i"], 4, a, 2.5, -1.0),
        )
        for a in (-1, 0, 1)
    ],
    Case(
        "one_hot_int_values",
        {"i": IDX},
        lambda v, f: mb.one_hot(indices=v["i"], one_hot_vector_size=5, on_value=7, off_value=3),
        lambda v, f: _one_hot(v["i"], 5, -1, 7, 3).astype(np.int32),
    ),
    Case(
        "non_zero",
        {"x": np.array([[0, 1.5, 0, -2], [0, 0, 0, 0], [3, 0, 0, 0.25]], np.float32)},
        lambda v, f: mb.non_zero(x=v["x"]),
        lambda v, f: np.array(
            [[i, j] for i in range(3) for j in range(4) if v["x"][i, j] != 0], np.int32
        ),
    ),
    Case(
        "nms_ios17",
        {
            "b": np.array(
                [[[0, 1, 2, 3.1], [0, 1, 2, 0.2], [2, 2, 2, 2], [2, 2, 2, 2]]], np.float32
            ),
            "s": np.array([[[0.5, 0.9, 0.4, 0.8], [0.1, 0.2, 0.95, 0.3]]], np.float32),
        },
        lambda v, f: mb.non_maximum_suppression(
            boxes=v["b"], scores=v["s"], iou_threshold=f(0.1), max_boxes=4
        ),
        # 2 x 2 boxes centred at (0,0), (1,1), (2,2), (3.1,0.2); best class scores .5 .9
        # .95 .8. Box 1 overlaps box 2 by IoU 1/7 > 0.1: suppressed; box 3 overlaps box 2
        # by 0.18/7.82: kept; box 0 only touches box 2: kept. Padding: zeros and -1
        lambda v, f: (
            np.concatenate([v["b"][:, :, [2, 3, 0]], np.zeros((1, 4, 1))], axis=2),
            np.concatenate([v["s"][:, :, [2, 3, 0]], np.zeros((1, 2, 1))], axis=2),
            np.array([[2, 3, 0, -1]], np.int32),
        ),
    ),
]

# iOS15's non_maximum_suppression (boxes before coordinates, a score threshold, counts)
CASES_15 = [
    Case(
        "nms_ios15_reference",  # coremltools' own expected values (tests/iOS14)
        {
            "b": np.array([[[0, 0, 0, 0], [1, 1, 1, 1], [2, 2, 2, 2], [3, 3, 3, 3]]], np.float32),
            "s": np.array([[[-3.5], [9.4], [2.3], [0.7]]], np.float32),
        },
        lambda v, f: mb.non_maximum_suppression(
            boxes=v["b"],
            scores=v["s"],
            iou_threshold=f(0.2),
            score_threshold=f(0.4),
            max_boxes=2,
            per_class_suppression=True,
        ),
        lambda v, f: (
            np.array([[[1.0, 1, 1, 1], [2, 2, 2, 2]]]),
            np.array([[[9.4], [2.3]]]),
            np.array([[1, 2]], np.int32),
            np.array([2], np.int32),
        ),
    ),
    Case(
        "nms_ios15_per_class",
        {
            "b": np.array(
                [[[1, 1, 2, 2], [1.2, 1, 2, 2], [5, 5, 1, 1], [1.1, 1.1, 2, 2]]], np.float32
            ),
            "s": np.array([[[0.9, 0.1], [0.2, 0.8], [0.3, 0.05], [0.6, 0.5]]], np.float32),
        },
        lambda v, f: mb.non_maximum_suppression(
            boxes=v["b"],
            scores=v["s"],
            iou_threshold=f(0.5),
            score_threshold=f(0.25),
            max_boxes=4,
            per_class_suppression=True,
        ),
        # classes 0, 1, 0, 0; best scores .9 .8 .3 .6; box 3 (class 0) overlaps box 0 by
        # > 0.5: suppressed; box 1 is class 1 (no rival); box 2 is far away: kept
        lambda v, f: (
            np.concatenate([v["b"][:, [0, 1, 2]], np.zeros((1, 1, 4))], axis=1),
            np.concatenate([v["s"][:, [0, 1, 2]], np.zeros((1, 1, 2))], axis=1),
            np.array([[0, 1, 2, -1]], np.int32),
            np.array([3], np.int32),
        ),
    ),
]


group, test_numpy, test_torch = op_tests(CASES, "ops_sort")


group15, test_ios15_numpy, test_ios15_torch = op_tests(
    CASES_15, "ops_sort15", "group15", torch_fp32_only=True, target=ct.target.iOS16
)


def test_one_hot_runtime_size(tmp_path):
    from fixtures.executor.mil_models import save_program

    from anemll_spec.executor import load

    @mb.program(
        input_specs=[
            mb.TensorSpec((2, 3), dtype=types.int32),
            mb.TensorSpec((1,), dtype=types.int32),
        ],
        opset_version=ct.target.iOS18,
    )
    def prog(i, n):
        return mb.one_hot(indices=i, one_hot_vector_size=mb.squeeze(x=n))

    path = save_program(prog, tmp_path / "oh.mlpackage")
    out = list(load(path).predict({"i": IDX, "n": np.array([6], np.int32)}).values())[0]
    np.testing.assert_array_equal(out, _one_hot(IDX, 6, -1, 1.0, 0.0))
