"""Sorting and selection kernels: topk, argsort, one_hot, non_zero,
non_maximum_suppression.

Sorts are stable (ties keep index order, in both directions) and take NaN as the largest
value (first descending, last ascending), as reduce_argmax and reduce_max do. non_zero and
non_maximum_suppression produce data-dependent results: they compute on the host (numpy)
whatever the array library, which a device library pays for with a read-back.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from anemll_spec.executor.kernels.base import Prep, Run, kernel, norm_axis


@kernel("topk")
def _topk(p: Prep) -> Run:
    xp, x = p.xp, p.ref("x")
    k, axis = p.int("k", 1), p.int("axis", -1)
    descending = not p.bool("ascending", False)
    with_indices = p.bool("return_indices", True)
    p.check(k >= 1 or k == -1, f"k {k} must be >= 1 (or -1: all)")
    p.check(len(p.op.outputs) == (2 if with_indices else 1), "outputs do not match return_indices")
    rank = p.rank("x")
    p.check(-rank <= axis < rank, f"axis {axis} is outside [-{rank}, {rank - 1}]")
    a = norm_axis(axis, rank)

    def count(size: int) -> int:
        if k > size:
            raise p.fail(f"k {k} exceeds the {size} elements along axis {axis}")
        return size if k == -1 else k

    dims = p.dims("x")
    if dims is not None:
        count(dims[a])

    def topk(env):
        v = env[x]
        n = count(xp.shape(v)[a])
        order = xp.argsort(v, a, descending)  # sorted: the def's `sort` allows any order
        index = tuple(slice(0, n) if i == a else slice(None) for i in range(rank))
        idx = xp.astype(xp.getitem(order, index), "int32")
        values = xp.take_along_axis(v, idx, a)
        return (values, idx) if with_indices else values

    return topk


@kernel("argsort")
def _argsort(p: Prep) -> Run:
    xp, x = p.xp, p.ref("x")
    axis, descending = p.int("axis", -1), not p.bool("ascending", False)
    rank = p.rank("x")
    p.check(-rank <= axis < rank, f"axis {axis} is outside [-{rank}, {rank - 1}]")
    a = norm_axis(axis, rank)
    return lambda env: xp.astype(xp.argsort(env[x], a, descending), "int32")


@kernel("one_hot", reads="a runtime one_hot_vector_size")
def _one_hot(p: Prep) -> Run:
    """out[..., j, ...] = on_value where indices == j (j on the new axis), else off_value;
    an index outside [0, depth) gives an all-off vector."""
    xp, ind = p.xp, p.ref("indices")
    rank = p.rank("indices") + 1
    axis = p.int("axis", -1)
    p.check(-rank <= axis < rank, f"axis {axis} is outside [-{rank}, {rank - 1}]")
    a = norm_axis(axis, rank)
    depth_const = p.int("one_hot_vector_size") if p.is_const("one_hot_vector_size") else None
    depth_key = None if depth_const is not None else p.ref("one_hot_vector_size")
    if depth_const is not None:
        p.check(depth_const >= 0, f"one_hot_vector_size {depth_const} must be >= 0")
    out = p.out().dtype
    dtype = p.xp.float_dtype if out in ("fp16", "fp32") else {"bool": "bool"}.get(out, "int32")
    on = np.asarray(p.const("on_value", 1)).astype(dtype)
    off = np.asarray(p.const("off_value", 0)).astype(dtype)

    def one_hot(env):
        depth = depth_const
        if depth is None:  # a runtime size: the output shape needs it on the host
            depth = int(xp.to_numpy(env[depth_key]).reshape(()))
            if depth < 0:  # np.arange(-2) is empty: an output with no vectors
                raise p.fail(f"one_hot_vector_size {depth} must be >= 0")
        shape = list(xp.shape(env[ind]))
        p.sized([*shape[:a], depth, *shape[a:]], "the one-hot tensor")
        positions = p.derived(
            ("positions", depth, a),
            lambda: np.arange(depth, dtype=np.int32).reshape([-1] + [1] * (rank - 1 - a)),
        )
        hit = xp.expand_dims(xp.astype(env[ind], "int32"), [a]) == positions
        return xp.where(hit, p.derived(("on",), lambda: on), p.derived(("off",), lambda: off))

    return one_hot


@kernel("non_zero", host="its output shape depends on the values")
def _non_zero(p: Prep) -> Run:
    xp, x = p.xp, p.ref("x")
    return lambda env: xp.asarray(np.argwhere(xp.to_numpy(env[x])).astype(np.int32))


def _corners(boxes: np.ndarray) -> tuple[np.ndarray, ...]:
    """lo_x, hi_x, lo_y, hi_y and area (float64) of (x, y, w, h) centre-size boxes."""
    cx, cy, w, h = (boxes[:, i].astype(np.float64) for i in range(4))
    x1, x2 = cx - w / 2, cx + w / 2
    y1, y2 = cy - h / 2, cy + h / 2
    lo_x, hi_x = np.minimum(x1, x2), np.maximum(x1, x2)
    lo_y, hi_y = np.minimum(y1, y2), np.maximum(y1, y2)
    return lo_x, hi_x, lo_y, hi_y, (hi_x - lo_x) * (hi_y - lo_y)


def _iou_with(c: tuple[np.ndarray, ...], i: int, others: np.ndarray) -> np.ndarray:
    """Intersection over union of box i with each box of `others` (0 where the union is
    empty). One row at a time: the full pairwise matrix of a detector's ~25,000 boxes
    would take ~5 GB a temporary."""
    lo_x, hi_x, lo_y, hi_y, area = c
    iw = np.minimum(hi_x[i], hi_x[others]) - np.maximum(lo_x[i], lo_x[others])
    ih = np.minimum(hi_y[i], hi_y[others]) - np.maximum(lo_y[i], lo_y[others])
    inter = np.maximum(iw, 0) * np.maximum(ih, 0)
    union = area[i] + area[others] - inter
    return np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)


def nms_select(
    boxes: np.ndarray,
    scores: np.ndarray,
    iou_max: float,
    score_min: float | None,
    per_class: bool,
    limit: int | None = None,
) -> list[int]:
    """Box indices NMS keeps, best score first (TensorFlow's non_max_suppression, which
    coremltools' reference follows): a box's score is its best class score; boxes scoring
    <= score_min are dropped; a box whose IoU with a kept box (of its class, per_class)
    exceeds iou_max is suppressed. Nothing left: the best box alone. `limit`: stop once
    that many are kept (later ones would be cut). Each candidate is compared with the
    kept boxes only: memory grows with the boxes, not their square."""
    best = scores.max(axis=1)
    classes = scores.argmax(axis=1)
    order = np.argsort(-best.astype(np.float64), kind="stable")
    corners = _corners(boxes)
    kept: list[int] = []
    for i in order:
        if limit is not None and len(kept) >= limit:
            break
        if score_min is not None and not best[i] > score_min:
            continue
        rivals = np.asarray(kept, dtype=np.int64)
        if per_class:
            rivals = rivals[classes[rivals] == classes[i]]
        if not np.any(_iou_with(corners, int(i), rivals) > iou_max):
            kept.append(int(i))
    return kept or [int(order[0])]


@kernel("non_maximum_suppression", host="a sequential selection with a data-dependent result")
def _nms(p: Prep) -> Run:
    """iOS15: boxes [n, B, 4], scores [n, B, K] -> boxes, scores, indices, counts; iOS17:
    boxes [n, 4, B], scores [n, K, B], no score_threshold, no counts. Rows past the kept
    boxes are zeros, indices -1."""
    xp, bkey, skey = p.xp, p.ref("boxes"), p.ref("scores")
    ios17 = len(p.op.outputs) == 3
    iou_max = p.scalar("iou_threshold")
    score_min = None if ios17 else p.scalar("score_threshold")
    max_boxes = p.int("max_boxes")
    per_class = p.bool("per_class_suppression", False)
    p.check(max_boxes >= 1, f"max_boxes {max_boxes} must be >= 1")

    def nms(env) -> Any:
        boxes, scores = xp.to_numpy(env[bkey]), xp.to_numpy(env[skey])
        if ios17:  # boxes last: (n, 4, B) -> (n, B, 4)
            boxes, scores = np.swapaxes(boxes, 1, 2), np.swapaxes(scores, 1, 2)
        n = boxes.shape[0]
        for width, what in ((4, "the kept boxes"), (scores.shape[2], "the kept scores")):
            p.sized([n, max_boxes, width], what)  # max_boxes: a constant the def leaves open
        out_boxes = np.zeros((n, max_boxes, 4), boxes.dtype)
        out_scores = np.zeros((n, max_boxes, scores.shape[2]), scores.dtype)
        out_idx = np.full((n, max_boxes), -1, np.int32)
        counts = np.zeros((n,), np.int32)
        for b in range(n):
            kept = nms_select(boxes[b], scores[b], iou_max, score_min, per_class, max_boxes)
            out_boxes[b, : len(kept)] = boxes[b, kept]
            out_scores[b, : len(kept)] = scores[b, kept]
            out_idx[b, : len(kept)] = kept
            counts[b] = len(kept)
        if ios17:
            out_boxes, out_scores = np.swapaxes(out_boxes, 1, 2), np.swapaxes(out_scores, 1, 2)
            return tuple(
                xp.asarray(np.ascontiguousarray(a)) for a in (out_boxes, out_scores, out_idx)
            )
        return tuple(xp.asarray(a) for a in (out_boxes, out_scores, out_idx, counts))

    return nms
