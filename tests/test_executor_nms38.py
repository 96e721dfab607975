"""non_maximum_suppression's selection (kernels/sort.nms_select) compares each candidate
with the boxes kept so far, not through a pairwise IoU matrix of every box: a detector's
~25,000 boxes made each temporary of that matrix ~5 GB (the process killed). The result
must be the pairwise formula's, box for box."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest

from anemll_spec.executor.kernels.sort import nms_select


def _pairwise_iou(boxes: np.ndarray) -> np.ndarray:
    """IoU of every pair of (x, y, w, h) centre-size boxes, written out independently."""
    b = boxes.astype(np.float64)
    x1, x2 = b[:, 0] - b[:, 2] / 2, b[:, 0] + b[:, 2] / 2
    y1, y2 = b[:, 1] - b[:, 3] / 2, b[:, 1] + b[:, 3] / 2
    lx, hx = np.minimum(x1, x2), np.maximum(x1, x2)
    ly, hy = np.minimum(y1, y2), np.maximum(y1, y2)
    iw = np.clip(np.minimum.outer(hx, hx) - np.maximum.outer(lx, lx), 0, None)
    ih = np.clip(np.minimum.outer(hy, hy) - np.maximum.outer(ly, ly), 0, None)
    inter = iw * ih
    area = (hx - lx) * (hy - ly)
    union = area[:, None] + area[None, :] - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1), 0.0)


def _reference(boxes, scores, iou_max, score_min, per_class, limit):
    """TensorFlow's greedy NMS over the full IoU matrix (what the kernel did before)."""
    best, classes = scores.max(axis=1), scores.argmax(axis=1)
    iou = _pairwise_iou(boxes)
    kept: list[int] = []
    for i in np.argsort(-best.astype(np.float64), kind="stable"):
        if score_min is not None and not best[i] > score_min:
            continue
        if all(not iou[i, j] > iou_max for j in kept if not per_class or classes[j] == classes[i]):
            kept.append(int(i))
    if not kept:
        kept = [int(np.argsort(-best.astype(np.float64), kind="stable")[0])]
    return kept[:limit]


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("per_class", [False, True])
def test_the_selection_is_the_pairwise_formulas(seed, per_class):
    rng = np.random.default_rng(seed)
    n, k = 300, 3
    boxes = np.column_stack(
        [rng.uniform(0, 50, n), rng.uniform(0, 50, n), rng.uniform(-8, 12, n), rng.uniform(0, 9, n)]
    ).astype(np.float32)  # negative widths and empty boxes among them
    boxes[::17, 2:] = 0
    scores = rng.uniform(0, 1, (n, k)).astype(np.float32)
    scores[10:20] = scores[0:10]  # ties in score
    for iou_max, score_min, limit in ((0.3, None, 1000), (0.5, 0.4, 20), (0.0, 0.99, 5)):
        want = _reference(boxes, scores, iou_max, score_min, per_class, limit)
        got = nms_select(boxes, scores, iou_max, score_min, per_class, limit)
        assert got == want, (iou_max, score_min, limit)


def test_nothing_above_the_score_floor_keeps_the_best_box():
    boxes = np.array([[0, 0, 1, 1], [5, 5, 1, 1]], np.float32)
    scores = np.array([[0.1], [0.2]], np.float32)
    assert nms_select(boxes, scores, 0.5, 0.9, False, 3) == [1]


def test_memory_grows_with_the_boxes_not_their_square():
    """2,000 boxes: the pairwise matrix's temporaries were 32 MB each (about 200 MB at
    the peak); comparing with the kept boxes needs a few rows of 16 kB."""
    rng = np.random.default_rng(1)
    n = 2000
    boxes = np.column_stack(
        [rng.uniform(0, 1000, n), rng.uniform(0, 1000, n), np.full(n, 4.0), np.full(n, 4.0)]
    ).astype(np.float32)
    scores = rng.uniform(0, 1, (n, 1)).astype(np.float32)
    tracemalloc.start()
    try:
        kept = nms_select(boxes, scores, 0.5, None, False, n)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 4 * 1024 * 1024, peak
    assert len(kept) > n // 2  # sparse small boxes: most are kept
