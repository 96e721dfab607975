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


def test_kmeans_of_fp32_weights_counts_its_dp_table():
    """The exact k-means DP holds an int64 table of 2**nbits x distinct values per group
    (and five float64 rows): at most 65,536 distinct values in fp16, every weight in fp32.
    The estimate missed it: an 8-bit LUT of a 1024 x 1024 fp32 weight peaked at 2.37 GB
    against an estimate of 0.37 GB (benchmarks/build_estimate.py holds the peak to it:
    2.63 GB measured there, 2.69 GB estimated)."""

    def peak(mode: str, precision: str, kn: int = 1024) -> int:
        comp = {"palettize": {"nbits": 8, "mode": mode}}
        m = matmul(m=8, k=kn, n=kn, compute_precision=precision, compression=comp)
        return estimate(m).build_peak_bytes

    weights = 1024 * 1024  # one group: per tensor, on one thread
    assert peak("kmeans", "float32") - peak("uniform", "float32") == (
        8 * (256 + 5) * weights + 128 * weights
    )
    assert peak("kmeans", "float16") - peak("uniform", "float16") == 8 * (256 + 5) * 65536
    assert peak("kmeans", "float32", 4096) > 32e9  # refused on a 24 GB machine


@pytest.mark.parametrize("granularity", ["per_tensor", "per_grouped_channel"])
def test_kmeans_scratch_is_the_largest_weights_not_a_sum_over_weights(monkeypatch, granularity):
    """grouped_kmeans clusters one weight at a time (its groups on up to workers() threads;
    a per-tensor weight is one group): an fp32 FFN's three per-tensor weights were counted
    as min(cores, 3) at once, 7.3 GB on 16 cores against a 2.4 GB peak, and refused."""
    from build_util import ffn

    from anemll_spec.build.compress import kmeans_scratch_bytes

    comp = {"palettize": {"nbits": 8, "mode": "kmeans", "granularity": granularity,
                          "group_size": 256}}  # fmt: skip
    model = ffn(hidden_size=1024, intermediate_size=1024, compute_precision="float32",
                compression=comp)  # fmt: skip
    got = {}
    for n in (1, 2, 16):
        monkeypatch.setenv("ANEMLL_SPEC_KMEANS_WORKERS", str(n))
        got[n] = kmeans_scratch_bytes(model.compression, model.weights(), 4)
    if granularity == "per_tensor":  # one 1024 x 1024 group at a time, whatever the cores
        assert got[1] == got[2] == got[16] == (8 * (256 + 5) + 128) * 1024 * 1024
    else:  # 4 groups of 256 x 1024 per weight, on up to 4 threads
        one = (8 * (256 + 5) + 128) * 256 * 1024
        assert (got[1], got[2], got[16]) == (one, 2 * one, 4 * one)


def test_a_kmeans_build_too_big_for_memory_is_refused_up_front(tmp_path, cli):
    import psutil

    spec = tmp_path / "km.yaml"
    spec.write_text(
        "name: km\nmodel: {family: matmul, m: 8, k: 4096, n: 4096, compute_precision: "
        "float32, compression: {palettize: {nbits: 8, mode: kmeans}}}\n"
        "run: {backends: [numpy]}\n"
    )
    need = estimate(matmul(m=8, k=4096, n=4096, compute_precision="float32",
                           compression={"palettize": {"nbits": 8, "mode": "kmeans"}}))  # fmt: skip
    if psutil.virtual_memory().available >= 8 * 256 * 4096 * 4096:  # the DP's table alone
        pytest.skip("this machine has the memory for it")
    r = cli("build", spec, "--cache-dir", tmp_path / "cache")
    assert r.returncode == 2, r.stderr
    assert "Traceback" not in r.stderr
    assert f"building needs about {need.build_peak_bytes / 1e9:.2f} GB" in r.stderr
    assert not (tmp_path / "cache").exists() or not list((tmp_path / "cache").iterdir())
