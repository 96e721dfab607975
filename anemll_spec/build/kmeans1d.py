"""Exact weighted 1-D k-means (globally optimal), compiled with numba.

The same optimum as the `kmeans1d` library that stock coremltools vendors (an exact
dynamic program), found faster: the DP row for m clusters is filled by divide and
conquer over the monotone split points, and each split is bounded below by the row
before's (opt[m-1][i] <= opt[m][i], as Ckmeans.1d.dp does). That prunes most candidate
splits. It releases the GIL, so channel groups run in parallel threads.

Ties go to the leftmost split, which reproduces kmeans1d's clusters exactly on our
weights (tests/test_build_palettize.py compares LUTs and indices byte for byte).
"""

from __future__ import annotations

import numpy as np


def _dp(x, w, k):
    n = x.size
    wsum = np.zeros(n + 1)
    s1 = np.zeros(n + 1)
    s2 = np.zeros(n + 1)
    for i in range(n):
        wsum[i + 1] = wsum[i] + w[i]
        s1[i + 1] = s1[i] + w[i] * x[i]
        s2[i + 1] = s2[i] + w[i] * x[i] * x[i]
    prev = np.empty(n)  # cost of the best (m)-cluster split of x[0..i]
    cur = np.empty(n)
    opt = np.zeros((k, n), np.int64)  # start of the last cluster
    for i in range(n):
        s = s1[i + 1]
        prev[i] = s2[i + 1] - s * s / wsum[i + 1]
    stack = np.empty((256, 4), np.int64)
    for m in range(1, k):
        stack[0, 0], stack[0, 1], stack[0, 2], stack[0, 3] = m, n - 1, m, n - 1
        top = 1
        while top > 0:
            top -= 1
            lo, hi, olo, ohi = stack[top, 0], stack[top, 1], stack[top, 2], stack[top, 3]
            if lo > hi:
                continue
            mid = (lo + hi) // 2
            jlo = max(olo, m, opt[m - 1, mid] if m > 1 else 0)
            best = np.inf
            bj = jlo
            for j in range(jlo, min(mid, ohi) + 1):
                ws = wsum[mid + 1] - wsum[j]
                s = s1[mid + 1] - s1[j]
                c = prev[j - 1] + (s2[mid + 1] - s2[j]) - s * s / ws
                if c < best:
                    best = c
                    bj = j
            cur[mid] = best
            opt[m, mid] = bj
            stack[top, 0], stack[top, 1], stack[top, 2], stack[top, 3] = lo, mid - 1, olo, bj
            stack[top + 1, 0], stack[top + 1, 1] = mid + 1, hi
            stack[top + 1, 2], stack[top + 1, 3] = bj, ohi
            top += 2
        prev, cur = cur, prev
    labels = np.empty(n, np.int64)
    centroids = np.empty(k)
    i = n - 1
    for m in range(k - 1, -1, -1):
        j = opt[m, i] if m > 0 else 0
        labels[j : i + 1] = m
        centroids[m] = (s1[i + 1] - s1[j]) / (wsum[i + 1] - wsum[j])
        i = j - 1
    return labels, centroids


def _compile():
    """The DP compiled (lazily, on first call; cached on disk), or None without numba."""
    try:
        from numba import njit
    except ImportError:  # pragma: no cover - numba is a dependency; this keeps imports safe
        return None
    return njit(nogil=True, cache=True)(_dp)


_compiled = _compile()


def available() -> bool:
    return _compiled is not None


def cluster(values: np.ndarray, weights: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """(cluster of each value, centroids) for sorted distinct `values`; k <= len(values)."""
    if _compiled is None:
        raise RuntimeError("numba is not installed")
    x = np.ascontiguousarray(values, dtype=np.float64)
    w = np.ascontiguousarray(weights, dtype=np.float64)
    return _compiled(x, w, min(k, x.size))
