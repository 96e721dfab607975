"""Fast k-means palettization with exactly the stock coremltools result.

What stock coremltools does (coremltools 9, `_quantization_passes.palettize_weights`
-> `models/neural_network/quantization_utils._get_kmeans_lookup_table_and_weight`):
per channel group, `np.unique(w, return_inverse=True, return_counts=True)` over the
fp16 values, then the vendored `kmeans1d` C library (an exact dynamic program for
weighted 1-D k-means, so no initialisation or iterations are involved) with the
counts as weights; the LUT is the centroids cast to fp16 (zero-filled when a group
has fewer distinct values than entries), each weight's index is its value's cluster.
It does one group at a time, in one process, through Python lists of ctypes doubles.

What we do: the same exact optimum on the same (values, counts), so the clusters and
the indices are identical (tests/test_build_palettize.py proves it against the stock
palettizer), and so is the LUT, but for a centroid exactly halfway between two fp16
values, which our exact mean may round the other way than kmeans1d's float sums. The speed comes from
- the histogram: fp16 bit patterns map to order-preserving 16-bit keys, and a
  65,536-bin `bincount` replaces `np.unique`'s sort of fp16 values (numpy sorts
  fp16 by converting every comparison; per tensor this was most of the time);
- the DP: kmeans1d costs ~0.1 s for a 32,768-weight group (about 10,800 distinct fp16
  values, 64 clusters), and the 6-bit per_grouped_channel LLaMA head has 16,032 such
  groups (~27 CPU-minutes). Our compiled DP (build/kmeans1d.py) prunes the split
  search with the previous row's bounds: ~5x less per group;
- threads: the DP releases the GIL, so groups run on every core we may use
  (`workers()`); a `GroupTally` reports groups done / total as they finish.
Lloyd iterations over the histogram would be faster still but land in local optima
3-50% worse in squared error on these weights (the sparse tails make many), so they are
not used: the result must equal stock's. Without numba we fall back to kmeans1d itself.

Stock uses scikit-learn instead of kmeans1d when a group holds fewer than 10,000
weights or the weights are not fp16; we always use the exact DP (no worse than
scikit-learn's local k-means++ optimum: it is the global optimum).
"""

from __future__ import annotations

import ctypes
import os
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from anemll_spec.errors import InputError

ENV_WORKERS = "ANEMLL_SPEC_KMEANS_WORKERS"
_DOUBLE_P = ctypes.POINTER(ctypes.c_double)
_ULONG_P = ctypes.POINTER(ctypes.c_ulong)
_dll = None


def _kmeans1d_dll():
    global _dll
    if _dll is None:
        from coremltools._deps import kmeans1d  # the library stock coremltools uses

        _dll = kmeans1d.core._DLL
    return _dll


def kmeans1d_weighted(
    values: np.ndarray, counts: np.ndarray, k: int
) -> tuple[np.ndarray, np.ndarray]:
    """Optimal weighted 1-D k-means: (cluster of each value, centroids); k <= len(values).

    Our compiled exact DP when numba is there (same optimum, several times faster, and
    parallel across groups); else the vendored kmeans1d library stock coremltools uses."""
    from anemll_spec.build import kmeans1d

    if kmeans1d.available():
        return kmeans1d.cluster(values, counts, k)
    n = len(values)
    k = min(k, n)
    v = np.ascontiguousarray(values, dtype=np.float64)
    w = np.ascontiguousarray(counts, dtype=np.float64)
    clusters = np.empty(n, dtype=np.uint64)
    centroids = np.empty(k, dtype=np.float64)
    _kmeans1d_dll().cluster_with_weights(
        v.ctypes.data_as(_DOUBLE_P),
        w.ctypes.data_as(_DOUBLE_P),
        ctypes.c_ulong(n),
        ctypes.c_ulong(k),
        clusters.ctypes.data_as(_ULONG_P),
        centroids.ctypes.data_as(_DOUBLE_P),
    )
    return clusters, centroids


def fp16_keys(x: np.ndarray) -> np.ndarray:
    """Order-preserving uint16 keys of fp16 values (-0 folded into +0, as np.unique does)."""
    bits = x.reshape(-1).view(np.uint16)
    bits = np.where(bits == 0x8000, np.uint16(0), bits)
    neg = (bits & 0x8000) != 0
    return np.where(neg, ~bits, bits | np.uint16(0x8000)).astype(np.uint16)


def _keys_to_fp16(keys: np.ndarray) -> np.ndarray:
    keys = keys.astype(np.uint16)
    pos = (keys & 0x8000) != 0
    bits = np.where(pos, keys & np.uint16(0x7FFF), ~keys).astype(np.uint16)
    return bits.view(np.float16)


def kmeans_group(data: np.ndarray, nbits: int) -> tuple[np.ndarray, np.ndarray]:
    """LUT (2**nbits, data.dtype) and uint8 indices (data.size) of one channel group."""
    lut_len = 1 << nbits
    if data.dtype == np.float16:
        keys = fp16_keys(data)
        hist = np.bincount(keys, minlength=1 << 16)
        uniq = np.flatnonzero(hist)
        values = _keys_to_fp16(uniq).astype(np.float64)
        clusters, centroids = kmeans1d_weighted(values, hist[uniq], lut_len)
        table = np.zeros(1 << 16, dtype=np.uint8)
        table[uniq] = clusters
        indices = table[keys]
    else:
        values, inverse, counts = np.unique(
            data.reshape(-1), return_inverse=True, return_counts=True
        )
        clusters, centroids = kmeans1d_weighted(values, counts, lut_len)
        indices = clusters.astype(np.uint8)[inverse.reshape(-1)]
    lut = np.zeros(lut_len, dtype=np.float64)
    lut[: len(centroids)] = centroids
    return lut.astype(data.dtype), indices


def workers() -> int:
    """Threads for the groups: $ANEMLL_SPEC_KMEANS_WORKERS, else the cores this process may
    run on. os.cpu_count() counts the host's cores, not the ones a container or `taskset`
    leaves us: more threads than cores only adds GIL hand-offs (docs/performance.md)."""
    env = os.environ.get(ENV_WORKERS)
    if env:
        if not env.strip().isdigit() or int(env) < 1:
            raise InputError(f"${ENV_WORKERS}={env!r} is not a whole number >= 1")
        return int(env)
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # macOS has no affinity call
        return max(1, os.cpu_count() or 1)


class GroupsDone(str):
    """A build progress message that carries its numbers: k-means groups done of the build's
    total, seconds since the build's k-means started, and the ETA at the rate so far.

    It is a str, so a consumer of plain messages (`build --progress`, the runner's line)
    shows "k-means 1,234/16,032 groups  40 s  ETA 8 min" unchanged; one that wants the
    numbers reads .done / .total / .elapsed_s / .eta_s."""

    done: int
    total: int
    elapsed_s: float
    eta_s: float | None

    def __new__(cls, done: int, total: int, elapsed_s: float) -> GroupsDone:
        eta = elapsed_s / done * (total - done) if done else None
        text = f"k-means {done:,}/{total:,} groups  {_secs(elapsed_s)}"
        if eta is not None and done < total:
            text += f"  ETA {_secs(eta)}"
        obj = super().__new__(cls, text)
        obj.done, obj.total, obj.elapsed_s, obj.eta_s = done, total, elapsed_s, eta
        return obj


def _secs(s: float) -> str:
    return f"{s:.0f} s" if s < 90 else f"{s / 60:.0f} min"


class GroupTally:
    """Counts the k-means groups of one build across every grouped_kmeans call (a streamed
    head makes ~125 calls of 128 groups) and calls `callback(done, total)` at most once per
    `every_s` seconds, and always for the last group: the LUT6 head's 16,032 groups take
    minutes, and a line per group would be 16,032 lines in a log.

    The callback runs on the thread that called grouped_kmeans, never a worker thread.
    `total` is what the build declared; should more groups arrive, it grows with them."""

    def __init__(
        self,
        total: int,
        callback: Callable[[int, int], None],
        every_s: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.total, self.done = total, 0
        self._callback, self._every, self._clock = callback, every_s, clock
        self.started = clock()
        self._last = -float("inf")
        self._lock = threading.Lock()

    def add(self, n: int = 1) -> None:
        with self._lock:
            self.done += n
            self.total = max(self.total, self.done)
            now = self._clock()
            if self.done < self.total and now - self._last < self._every:
                return
            self._last = now
            done, total = self.done, self.total
        self._callback(done, total)


def grouped_kmeans(
    weight: np.ndarray,
    nbits: int,
    channel_axis: int,
    group_size: int,
    n_workers: int | None = None,
    tally: GroupTally | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """(indices, lut) in coremltools' iOS18 LutParams layout, for one weight.

    indices: same shape as `weight`, uint8 values < 2**nbits. lut: rank(weight)+2,
    shape[channel_axis] = number of groups, then (2**nbits, 1). group_size 0 means
    one group (per tensor). `tally` counts each finished group (build progress).
    """
    rank = weight.ndim
    channel_axis %= rank
    channels = weight.shape[channel_axis]
    group_size = group_size or channels
    if channels % group_size:
        raise ValueError(f"{channels} channels do not split into groups of {group_size}")
    moved = np.swapaxes(weight, 0, channel_axis) if channel_axis else weight
    n_groups = channels // group_size
    lut_len = 1 << nbits
    luts = np.empty((n_groups, lut_len), dtype=weight.dtype)
    indices = np.empty(moved.shape, dtype=np.uint8)
    flat_idx = indices.reshape(n_groups, -1)

    def run(g: int) -> None:
        part = np.ascontiguousarray(moved[g * group_size : (g + 1) * group_size])
        luts[g], flat_idx[g] = kmeans_group(part, nbits)

    def count() -> None:
        if tally is not None:
            tally.add(1)

    n_workers = n_workers or workers()
    if n_workers == 1 or n_groups == 1:
        for g in range(n_groups):
            run(g)
            count()
    else:
        with ThreadPoolExecutor(max_workers=n_workers) as pool:
            for _ in pool.map(run, range(n_groups)):  # counted here, on the caller's thread
                count()
    lut_shape = [1] * (rank + 2)
    lut_shape[0], lut_shape[-2], lut_shape[-1] = n_groups, lut_len, 1
    lut = luts.reshape(lut_shape)
    if channel_axis:
        lut = np.swapaxes(lut, 0, channel_axis)
        indices = np.swapaxes(indices, 0, channel_axis)
    return indices, lut
