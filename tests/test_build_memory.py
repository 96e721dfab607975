"""Attention's RoPE tables, computed a slice at a time to bound the build's peak memory,
are the bytes the whole float64 tables gave. (The estimate of a build's peak against the
peak real builds reach is measured by benchmarks/build_estimate.py: a peak varies from
run to run, by a third on a busy machine, which a unit test cannot hold to a bound.)"""

from __future__ import annotations

import numpy as np
import pytest
from build_util import attention, matmul

from anemll_spec.build import estimate
from anemll_spec.build.attention import rope_tables


def _rope_float64(context: int, head_dim: int, theta: float):
    """The tables as the builder made them before: whole float64 tables."""
    inv_freq = 1.0 / (theta ** (np.arange(0, head_dim, 2, dtype=np.float64) / head_dim))
    freqs = np.outer(np.arange(context, dtype=np.float64), inv_freq)
    emb = np.concatenate([freqs, freqs], axis=-1)
    return np.cos(emb), np.sin(emb)


@pytest.mark.parametrize("dtype", [np.float16, np.float32])
@pytest.mark.parametrize(("context", "head_dim"), [(64, 8), (3000, 1024)])  # 1 and 2 slices
def test_rope_tables_are_the_float64_tables_cast_once(context, head_dim, dtype):
    cos, sin = rope_tables(context, head_dim, 500000.0, dtype)
    cos64, sin64 = _rope_float64(context, head_dim, 500000.0)
    assert cos.dtype == sin.dtype == dtype
    assert cos.tobytes() == cos64.astype(dtype).tobytes()
    assert sin.tobytes() == sin64.astype(dtype).tobytes()


def test_the_estimate_counts_what_the_review_found_it_missed():
    """Its rules, exactly (the peaks they cover are benchmarks/build_estimate.py's): the
    RoPE tables (2 x context x head_dim fp16) count three times, dense or compressed
    (twice without the rule), and a matmul weight compressed whole counts four times its
    dense size."""

    def peak(m) -> int:
        return estimate(m).build_peak_bytes

    tables = 2 * 16384 * 1024 * 2  # cos and sin, fp16, of the 16384 positions added
    for comp in (None, {"quantize": {"dtype": "int8"}}):
        kw = {} if comp is None else {"compression": comp}
        small, large = (attention(hidden_size=64, heads=1, kv_heads=1, head_dim=1024,
                                  context_length=c, **kw) for c in (16384, 32768))  # fmt: skip
        assert peak(large) - peak(small) == 3 * tables, comp
    dense = 8192 * 8192 * 2
    int8 = matmul(m=1, k=8192, n=8192, compression={"quantize": {"dtype": "int8"}})
    assert peak(int8) >= 4 * dense
