"""Torch backend numerics: every family and compression mode, built small by
`anemll_spec.build`, run on torch (CPU here; CUDA on a GPU machine) in fp32 and fp16, against
the numpy reference executor in fp32 (itself checked against hand-written forward passes
in test_executor_families)."""

from __future__ import annotations

import numpy as np
import pytest
from build_util import attention, ffn, lm_head, matmul

from anemll_spec.build import build
from anemll_spec.executor import load

pytestmark = pytest.mark.torch

RNG = np.random.default_rng(8)
DTYPES = ("float32", "float16")


def device() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return tmp_path_factory.mktemp("torch-models")


def check(out: dict, ref: dict, dtype: str, *, top1_chunks: bool = False) -> None:
    """fp32: equal to the reference up to summation order; fp16: fp16-sized errors."""
    assert list(out) == list(ref)
    o = np.concatenate([np.asarray(out[k], np.float64).ravel() for k in ref])
    r = np.concatenate([np.asarray(ref[k], np.float64).ravel() for k in ref])
    scale = float(np.max(np.abs(r)))
    assert scale > 0
    for k in ref:
        assert out[k].shape == ref[k].shape and out[k].dtype == ref[k].dtype, k
    rel_l2 = np.linalg.norm(o - r) / np.linalg.norm(r)
    if dtype == "float32":
        np.testing.assert_allclose(o, r, rtol=1e-5, atol=1e-6 * scale)
        return
    assert rel_l2 < 3e-3, rel_l2
    assert np.max(np.abs(o - r)) < 4e-3 * scale
    assert rel_l2 > 0  # really computed in fp16, not a copy of the fp32 result
    if top1_chunks:  # argmax over the concatenated logits, per position
        rows = ref[next(iter(ref))].shape[-1]
        a = np.concatenate([np.asarray(out[k]).reshape(-1, rows) for k in ref], axis=1)
        b = np.concatenate([np.asarray(ref[k]).reshape(-1, rows) for k in ref], axis=1)
        np.testing.assert_array_equal(a.argmax(axis=1), b.argmax(axis=1))


def run_both(path, feed: dict, dtype: str):
    import torch

    from anemll_spec.executor.torch_runner import load_torch

    runner = load_torch(path, device=device(), dtype=dtype)
    assert runner.float_dtype == dtype
    dev_out = runner.run(runner.convert(feed))
    want = torch.float16 if dtype == "float16" else torch.float32
    assert all(v.dtype == want for v in dev_out.values())  # computed in that dtype
    return runner.predict(feed), load(path).predict(feed)


LM_HEAD_SIZES = dict(hidden_size=64, vocab_size=96, chunks=3)
FAMILIES = {
    "lm_head_conv": lm_head(**LM_HEAD_SIZES),
    "lm_head_linear_b2_s2": lm_head(**LM_HEAD_SIZES, layout="linear", batch=2, seq_len=2),
    "ffn_conv_s3": ffn(hidden_size=32, intermediate_size=48, seq_len=3),
    "ffn_linear": ffn(hidden_size=32, intermediate_size=48, layout="linear"),
    "matmul": matmul(m=8, k=16, n=24),
    "lm_head_fp32_model": lm_head(**LM_HEAD_SIZES, dtype="float32", compute_precision="float32"),
}


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("family", list(FAMILIES))
def test_family_matches_numpy_reference(cache, family, dtype):
    m = FAMILIES[family]
    path = build(m, cache_dir=cache).path
    io = load(path)
    feed = {n: RNG.standard_normal(s.shape).astype(np.float32) for n, s in io.inputs.items()}
    out, ref = run_both(path, feed, dtype)
    check(out, ref, dtype, top1_chunks=m.family == "lm_head")


def test_auto_dtype_is_the_models_precision(cache):
    from anemll_spec.executor.torch_runner import load_torch

    for m, want in (
        (FAMILIES["lm_head_conv"], "float16"),
        (FAMILIES["lm_head_fp32_model"], "float32"),
    ):
        assert load_torch(build(m, cache_dir=cache).path, device="cpu").float_dtype == want


def pal(nbits, granularity, mode="kmeans", **kw):
    return {"palettize": {"nbits": nbits, "granularity": granularity, "mode": mode, **kw}}


def quant(dtype, granularity, **kw):
    return {"quantize": {"dtype": dtype, "granularity": granularity, **kw}}


COMPRESSION = {
    "pal4_per_tensor_kmeans": pal(4, "per_tensor"),
    "pal2_per_tensor_uniform": pal(2, "per_tensor", "uniform"),
    "pal6_grouped_kmeans": pal(6, "per_grouped_channel", group_size=8),
    "pal3_grouped_uniform": pal(3, "per_grouped_channel", "uniform", group_size=4),
    "int8_per_channel": quant("int8", "per_channel"),
    "int8_per_block": quant("int8", "per_block", block_size=16),
    "int4_per_channel": quant("int4", "per_channel"),
    "int4_per_block": quant("int4", "per_block", block_size=16),
    "int8_per_channel_ios16": quant("int8", "per_channel") | {"target": "iOS16"},
    "pal4_per_tensor_ios16": pal(4, "per_tensor") | {"target": "iOS16"},
}


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("mode", list(COMPRESSION))
def test_compressed_weights_match_numpy_reference(cache, mode, dtype):
    compression = dict(COMPRESSION[mode])
    target = compression.pop("target", "iOS18")
    m = lm_head(**LM_HEAD_SIZES, compression=compression, deployment_target=target)
    path = build(m, cache_dir=cache).path
    assert any(t.startswith("constexpr_") for t in load(path).op_counts)  # really compressed
    feed = {"hidden_states": RNG.standard_normal((1, 1, 64)).astype(np.float32)}
    out, ref = run_both(path, feed, dtype)
    check(out, ref, dtype, top1_chunks=True)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("impl", ["sdpa", "matmul"])
def test_attention_with_kv_cache_across_steps(cache, impl, dtype):
    from anemll_spec.executor.torch_runner import load_torch

    ctx, s = 6, 2
    m = attention(
        hidden_size=32, heads=4, kv_heads=2, head_dim=8, context_length=ctx, seq_len=s, impl=impl
    )
    path = build(m, cache_dir=cache).path
    ref_prog = load(path)
    runner = load_torch(path, device=device(), dtype=dtype)
    ref_state, state = ref_prog.make_state(), runner.make_state()
    for pos in (0, 2, 4):
        cols, rows = np.arange(ctx)[None, :], pos + np.arange(s)[:, None]
        mask = np.where(cols <= rows, 0.0, -1e4).astype(np.float16).reshape(1, 1, s, ctx)
        feed = {
            "hidden_states": RNG.standard_normal((1, s, 32)).astype(np.float32),
            "position": np.array([pos], np.int32),
            "causal_mask": mask,
        }
        ref = ref_prog.predict(feed, ref_state)
        out = runner.predict(feed, state)
        check(out, ref, dtype)
        for name in ("key_cache", "value_cache"):
            got, want = state.read(name), ref_state.read(name)
            assert got.dtype == np.float16
            if dtype == "float32":  # both round the same fp32 values to fp16
                np.testing.assert_array_max_ulp(got, want, maxulp=1)
            else:
                scale = np.max(np.abs(want.astype(np.float32)))
                np.testing.assert_allclose(got, want, atol=4e-3 * scale)
            assert np.any(got[:, :, pos : pos + s] != 0)  # this step's keys were written
            assert not np.any(got[:, :, pos + s :])  # and nothing past them
            state.write(name, want)  # continue from the reference: errors do not compound


def test_fp16_norms_of_large_activations_do_not_overflow(tmp_path):
    """Hidden states of 300 (LLaMA's outlier channels) square past fp16's 65504: torch in
    fp16 returned zeros for layer_norm and inf for reduce_l2_norm. The statistics are
    taken in fp32, the result rounded once, like the numpy reference."""
    import coremltools as ct
    from coremltools.converters.mil.mil import types
    from fixtures.executor.mil_models import mb, save_program

    from anemll_spec.executor.torch_runner import load_torch

    x = (np.random.default_rng(8).standard_normal((1, 4, 64)) * 300).astype(np.float16)

    @mb.program(
        input_specs=[mb.TensorSpec(x.shape, dtype=types.fp16)], opset_version=ct.target.iOS18
    )
    def prog(v):
        return (
            mb.layer_norm(x=v, axes=[-1], epsilon=1e-5, name="ln"),
            mb.l2_norm(x=v, name="l2"),
            mb.reduce_l2_norm(x=v, axes=[-1], name="rl2"),
            mb.instance_norm(x=mb.reshape(x=v, shape=[1, 4, 8, 8]), name="inorm"),
        )

    path = save_program(prog, tmp_path / "norms.mlpackage", precision="fp16")
    out = load_torch(path, device=device()).predict({"v": x})
    f = x.astype(np.float64)
    centered = f - f.mean(-1, keepdims=True)
    want = {
        "ln": centered / np.sqrt((centered**2).mean(-1, keepdims=True) + 1e-5),
        "l2": f / np.sqrt((f**2).sum() + 1e-6),
        "rl2": np.sqrt((f**2).sum(-1)),
    }
    sq = f.reshape(1, 4, 64)
    c4 = sq - sq.mean(-1, keepdims=True)
    want["inorm"] = (c4 / np.sqrt((c4**2).mean(-1, keepdims=True) + 1e-5)).reshape(1, 4, 8, 8)
    for k, w in want.items():
        got = np.asarray(out[k], np.float64)
        assert np.isfinite(got).all(), k
        np.testing.assert_allclose(got, w, rtol=2e-3, atol=2e-3 * np.abs(w).max(), err_msg=k)
