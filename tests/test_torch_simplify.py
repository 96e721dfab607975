"""Load-time simplifications (executor/simplify.py): what the lowered program looks like,
and that it computes what the original computes, on numpy (no torch needed) and torch."""

from __future__ import annotations

import numpy as np
import pytest
from build_util import attention, ffn, lm_head

from anemll_spec.build import build
from anemll_spec.executor import decompress, load
from anemll_spec.executor.simplify import (
    drop_dead_constants,
    merge_parallel_matmuls,
    pointwise_to_matmul,
    simplify,
)

RNG = np.random.default_rng(9)
HEAD = dict(hidden_size=64, vocab_size=128, chunks=8)


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return tmp_path_factory.mktemp("simplify-models")


def feed_for(prog) -> dict:
    return {n: RNG.standard_normal(s.shape).astype(np.float32) for n, s in prog.inputs.items()}


def pooled_shapes(prog) -> list[tuple[int, ...]]:
    return [tuple(np.shape(v)) for v in prog._pool.values()]


@pytest.mark.parametrize("layout", ["conv", "linear"])
def test_an_n_chunk_head_becomes_one_matmul_over_the_merged_weight(cache, layout):
    path = build(lm_head(**HEAD, layout=layout), cache_dir=cache).path
    plain = load(path)
    assert plain.op_counts[layout] == 8 and "matmul" not in plain.op_counts
    prog = load(path, passes=[simplify])
    assert prog.op_counts["matmul"] == 1
    assert "conv" not in prog.op_counts and "linear" not in prog.op_counts
    assert prog.op_counts["split"] == 1
    assert (128, 64) in pooled_shapes(prog)  # one (vocab, hidden) weight...
    assert (16, 64) not in pooled_shapes(prog)  # ...and no chunk weights left
    assert list(prog.outputs) == list(plain.outputs) and prog.inputs == plain.inputs


@pytest.mark.parametrize("layout", ["conv", "linear"])
def test_merged_matmul_equals_the_unmerged_ones(cache, layout):
    path = build(lm_head(**HEAD, layout=layout, batch=2, seq_len=3), cache_dir=cache).path
    unmerged = load(path, passes=[pointwise_to_matmul, drop_dead_constants])
    assert unmerged.op_counts["matmul"] == 8
    merged = load(path, passes=[simplify])
    original = load(path)
    feed = feed_for(original)
    a, b, c = merged.predict(feed), unmerged.predict(feed), original.predict(feed)
    for k in c:
        np.testing.assert_allclose(a[k], b[k], rtol=1e-6, atol=1e-7)
        np.testing.assert_allclose(a[k], c[k], rtol=1e-6, atol=1e-7)
        # and the chunk is the slice of x @ W.T it should be, from the merged weight
    w = next(v for v in merged._pool.values() if np.shape(v) == (128, 64))
    x = feed["hidden_states"].astype(np.float16).astype(np.float64)
    logits = x @ np.asarray(w, np.float64).T
    for i, k in enumerate(c):
        np.testing.assert_allclose(a[k], logits[..., 16 * i : 16 * (i + 1)], rtol=1e-5, atol=1e-6)


def test_parallel_projections_merge_and_the_rest_stay(cache):
    f = load(
        build(ffn(hidden_size=32, intermediate_size=48), cache_dir=cache).path, passes=[simplify]
    )
    assert f.op_counts["matmul"] == 2  # gate+up merged (2 x 48 rows), down alone
    assert (96, 32) in pooled_shapes(f) and (32, 48) in pooled_shapes(f)
    m = attention(hidden_size=32, heads=4, kv_heads=2, head_dim=8, context_length=6)
    a = load(build(m, cache_dir=cache).path, passes=[simplify])
    assert a.op_counts["matmul"] == 2  # q, k, v merged (32 + 16 + 16 rows), o_proj alone
    assert (64, 32) in pooled_shapes(a)


def test_ffn_and_attention_compute_the_same_after_lowering(cache):
    fp = build(ffn(hidden_size=32, intermediate_size=48, seq_len=2), cache_dir=cache).path
    feed = feed_for(load(fp))
    want, got = load(fp).predict(feed), load(fp, passes=[simplify]).predict(feed)
    np.testing.assert_allclose(got["output"], want["output"], rtol=1e-5, atol=1e-7)
    m = attention(hidden_size=32, heads=4, kv_heads=2, head_dim=8, context_length=6, seq_len=2)
    ap = build(m, cache_dir=cache).path
    ref, low = load(ap), load(ap, passes=[simplify])
    rs, ls = ref.make_state(), low.make_state()
    for pos in (0, 2):
        feed = feed_for(ref)
        feed["position"] = np.array([pos], np.int32)
        feed["causal_mask"] = np.zeros((1, 1, 2, 6), np.float32)
        np.testing.assert_allclose(
            low.predict(feed, ls)["output"], ref.predict(feed, rs)["output"], rtol=1e-5, atol=1e-7
        )
        np.testing.assert_array_equal(ls.read("key_cache"), rs.read("key_cache"))


def test_compressed_weights_are_decoded_once(cache, monkeypatch):
    comp = {"palettize": {"nbits": 4, "granularity": "per_grouped_channel", "group_size": 4}}
    path = build(lm_head(**HEAD, compression=comp), cache_dir=cache).path
    calls = []
    real = decompress._DECOMPRESS["constexpr_lut_to_dense"]
    monkeypatch.setitem(
        decompress._DECOMPRESS,
        "constexpr_lut_to_dense",
        lambda arg, fp16: calls.append(1) or real(arg, fp16),
    )
    prog = load(path, passes=[simplify])
    assert len(calls) == 8  # one decode per chunk, none again when the program is prepared
    assert not any(t.startswith("constexpr_") for t in prog.op_counts)
    assert prog.op_counts["matmul"] == 1
    calls.clear()
    ref = load(path)
    assert len(calls) == 8  # a plain load (no passes) decodes each chunk once too
    feed = feed_for(ref)
    np.testing.assert_allclose(
        prog.predict(feed)["logits1"], ref.predict(feed)["logits1"], rtol=1e-6, atol=1e-7
    )


def test_single_matmuls_are_left_alone(cache):
    path = build(lm_head(hidden_size=64, vocab_size=32, chunks=1), cache_dir=cache).path
    prog = load(path, passes=[pointwise_to_matmul, merge_parallel_matmuls])
    assert prog.op_counts["matmul"] == 1 and "split" not in prog.op_counts


@pytest.mark.torch
def test_torch_merged_equals_unmerged(cache):
    from anemll_spec.executor.torch_runner import load_torch

    path = build(lm_head(**HEAD), cache_dir=cache).path
    feed = feed_for(load(path))
    merged = load_torch(path, device="cpu", dtype="float32")
    unmerged = load_torch(path, device="cpu", dtype="float32", simplify_graph=False)
    assert merged.program.op_counts["matmul"] == 1 and unmerged.program.op_counts["conv"] == 8
    a, b = merged.predict(feed), unmerged.predict(feed)
    for k in a:
        np.testing.assert_allclose(a[k], b[k], rtol=1e-6, atol=1e-7)
