"""Our compiled exact 1-D k-means against the kmeans1d library stock coremltools uses."""

from __future__ import annotations

import numpy as np
import pytest

from anemll_spec.build import kmeans1d


def _stock(values, weights, k):
    from coremltools._deps import kmeans1d as stock

    r = stock.cluster(values, k, weights=weights)
    return np.array(r.clusters), np.array(r.centroids)


def _sse(values, weights, labels, centroids):
    return float((weights * (values - centroids[labels]) ** 2).sum())


CASES = [
    ("gaussian fp16 group", 0, 64, lambda rng: rng.standard_normal(32768) * 0.02),
    ("few distinct values", 1, 64, lambda rng: rng.integers(0, 40, 5000) / 7.0),
    ("k equals n", 2, 16, lambda rng: np.arange(16.0)),
    ("two clusters", 3, 2, lambda rng: np.r_[rng.normal(-1, 0.1, 300), rng.normal(1, 0.1, 300)]),
    ("heavy tails", 4, 16, lambda rng: rng.standard_t(2, 20000)),
]


@pytest.mark.parametrize("name,seed,k,draw", CASES, ids=[c[0] for c in CASES])
def test_same_optimum_as_stock_kmeans1d(name, seed, k, draw):
    rng = np.random.default_rng(seed)
    data = draw(rng).astype(np.float16)
    values, counts = np.unique(data, return_counts=True)
    values, counts = values.astype(np.float64), counts.astype(np.float64)
    labels, centroids = kmeans1d.cluster(values, counts, k)
    s_labels, s_centroids = _stock(values, counts, min(k, len(values)))
    np.testing.assert_array_equal(labels, s_labels)
    np.testing.assert_allclose(centroids, s_centroids, rtol=1e-12, atol=1e-15)
    # and it is the optimum: no single boundary move lowers the squared error
    best = _sse(values, counts, labels, centroids)
    for b in np.flatnonzero(np.diff(labels))[:50]:
        moved = labels.copy()
        moved[b] = labels[b + 1]  # the last value of a cluster joins the next one
        if np.any(np.bincount(moved, minlength=len(centroids)) == 0):
            continue
        cent = np.bincount(moved, weights=counts * values) / np.bincount(moved, weights=counts)
        assert _sse(values, counts, moved, cent) >= best - 1e-15
