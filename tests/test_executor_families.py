"""Whole families built by `anemll_spec.build`, run by the executor, checked against
hand-written numpy forward passes over the weights read back from the saved package
(decoded by coremltools' own MIL loader, not by the executor)."""

from __future__ import annotations

from pathlib import Path

import coremltools as ct
import numpy as np
import pytest
import yaml
from coremltools.converters.mil.frontend.milproto.load import load as milproto_load

from anemll_spec.build import build
from anemll_spec.executor import load
from anemll_spec.spec import expand, parse

RNG = np.random.default_rng(6)
SUFFIXES = ("_palettized", "_quantized")


def case_model(tmp: Path, **model) -> dict:
    """The resolved model fields of a one-case spec, exactly as the runner gets them."""
    spec = tmp / f"spec{len(list(tmp.glob('spec*.yaml')))}.yaml"
    spec.write_text(yaml.safe_dump({"name": "executor-test", "model": model, "run": {}}))
    (case,) = expand(parse(spec))
    return case.model


def saved_weights(path: Path) -> dict[str, np.ndarray]:
    """const and (decompressed) constexpr values by var name, compression suffix removed."""
    spec = ct.utils.load_spec(str(path))
    prog = milproto_load(
        spec,
        spec.specificationVersion,
        file_weights_dir=str(Path(path) / "Data/com.apple.CoreML/weights"),
    )
    out = {}
    for op in prog.functions["main"].operations:
        if op.op_type == "const":
            val = op.outputs[0].val
        elif op.op_type.startswith("constexpr_"):
            val = op.materialized_val_inference()
        else:
            continue
        name = op.outputs[0].name
        if not name.endswith(("weight", "cos", "sin", *SUFFIXES)):
            continue  # op parameters (strides, pad_type, ...)
        for suffix in SUFFIXES:
            name = name.removesuffix(suffix)
        out[name] = np.asarray(val, dtype=np.float64)
    return out


def as_io(x: np.ndarray, dtype: str) -> np.ndarray:
    """What the model sees of a float input: the value rounded to the I/O dtype."""
    return x.astype(dtype).astype(np.float64)


@pytest.fixture(scope="module")
def tmp(tmp_path_factory):
    return tmp_path_factory.mktemp("families")


@pytest.fixture(scope="module")
def cache(tmp):
    return tmp / "cache"


LM_HEAD = {
    "conv_none": dict(layout="conv"),
    "linear_seq2_batch2": dict(layout="linear", seq_len=2, batch=2),
    "pal4_grouped_ios18": dict(
        compression={
            "palettize": {"nbits": 4, "granularity": "per_grouped_channel", "group_size": 4}
        }
    ),
    "pal2_tensor_ios16": dict(
        deployment_target="iOS16",
        compression={"palettize": {"nbits": 2, "granularity": "per_tensor"}},
    ),
    "pal6_uniform": dict(
        compression={"palettize": {"nbits": 6, "granularity": "per_tensor", "mode": "uniform"}}
    ),
    "pal3": dict(compression={"palettize": {"nbits": 3, "granularity": "per_tensor"}}),
    "int8_channel_ios16": dict(
        deployment_target="iOS16",
        compression={"quantize": {"dtype": "int8", "granularity": "per_channel"}},
    ),
    "int4_block": dict(
        compression={"quantize": {"dtype": "int4", "granularity": "per_block", "block_size": 16}}
    ),
    "fp32": dict(dtype="float32"),
}


@pytest.mark.parametrize("variant", list(LM_HEAD))
def test_lm_head(tmp, cache, variant):
    m = case_model(
        tmp, family="lm_head", hidden_size=64, vocab_size=96, chunks=3, **LM_HEAD[variant]
    )
    path = build(m, cache_dir=cache).path
    w = saved_weights(path)
    prog = load(path)
    b, s, h = m.batch, m.seq_len, m.hidden_size
    assert prog.inputs["hidden_states"].shape == (b, s, h)
    assert list(prog.outputs) == ["logits1", "logits2", "logits3"]
    x = RNG.standard_normal((b, s, h)).astype(np.float32)
    out = prog.predict({"hidden_states": x})
    xs = as_io(x, m.dtype)
    for i in (1, 2, 3):
        wi = w[f"lm_head3_{i}_weight"].reshape(32, h)
        np.testing.assert_allclose(
            out[f"logits{i}"], xs @ wi.T, rtol=1e-5, atol=1e-5, err_msg=f"{variant} logits{i}"
        )


def ffn_reference(x, w, eps):
    xn = x / np.sqrt((x * x).mean(axis=-1, keepdims=True) + eps)
    xn = xn * w["post_attention_layernorm_weight"]
    gate = xn @ w["mlp_gate_proj_weight"].reshape(-1, x.shape[-1]).T
    up = xn @ w["mlp_up_proj_weight"].reshape(-1, x.shape[-1]).T
    silu = gate / (1 + np.exp(-gate))
    return (silu * up) @ w["mlp_down_proj_weight"].reshape(x.shape[-1], -1).T


FFN = {
    "conv_fp16": dict(),
    "linear_fp32_seq3": dict(layout="linear", dtype="float32", seq_len=3),
    "conv_int8": dict(compression={"quantize": {"dtype": "int8", "granularity": "per_channel"}}),
}


@pytest.mark.parametrize("variant", list(FFN))
def test_ffn(tmp, cache, variant):
    m = case_model(tmp, family="ffn", hidden_size=32, intermediate_size=48, **FFN[variant])
    path = build(m, cache_dir=cache).path
    w = saved_weights(path)
    x = RNG.standard_normal((m.batch, m.seq_len, 32)).astype(np.float32)
    expected = ffn_reference(as_io(x, m.dtype), w, m.rms_norm_eps)
    out = load(path).predict({"hidden_states": x})["output"]
    np.testing.assert_allclose(out, expected, rtol=1e-4, atol=1e-5)
    if m.dtype == "float16":  # fp16 mode: close, at fp16 precision, and not identical
        half = load(path, fp16=True).predict({"hidden_states": x})["output"]
        np.testing.assert_allclose(half.astype(np.float64), expected, rtol=2e-2, atol=2e-3)
        assert not np.array_equal(half.astype(np.float32), out)


def test_matmul(tmp, cache):
    m = case_model(tmp, family="matmul", m=8, k=16, n=24)
    path = build(m, cache_dir=cache).path
    w = saved_weights(path)["matmul_weight"]
    x = RNG.standard_normal((8, 16)).astype(np.float32)
    out = load(path).predict({"x": x})["y"]
    np.testing.assert_allclose(out, as_io(x, "float16") @ w, rtol=1e-5, atol=1e-5)


def attention_reference(x, pos, mask, w, cache_k, cache_v, m):
    """One LLaMA attention step (numpy, float64); updates the fp16 caches in place."""
    b, s, hid = x.shape
    heads, kv, hd = m.heads, m.kv_heads, m.head_dim
    rep = heads // kv

    def proj(name, n):
        y = x @ w[f"self_attn_{name}_weight"].reshape(n * hd, hid).T
        return y.reshape(b, s, n, hd).transpose(0, 2, 1, 3)  # (b, n, s, hd)

    q, k, v = proj("q_proj", heads), proj("k_proj", kv), proj("v_proj", kv)
    positions = pos + np.arange(s)
    cos, sin = w["rope_cos"][positions], w["rope_sin"][positions]

    def rope(t):
        half = hd // 2
        rotated = np.concatenate([-t[..., half:], t[..., :half]], axis=-1)
        return t * cos + rotated * sin

    q, k = rope(q), rope(k)
    cache_k[:, :, pos : pos + s] = k.astype(np.float16)
    cache_v[:, :, pos : pos + s] = v.astype(np.float16)
    keys, values = cache_k.astype(np.float64), cache_v.astype(np.float64)
    out = np.zeros((b, heads, s, hd))
    for h in range(heads):
        g = h // rep  # query head h reads kv head h // rep
        scores = q[:, h] @ keys[:, g].transpose(0, 2, 1) / np.sqrt(hd) + mask[0, 0]
        p = np.exp(scores - scores.max(axis=-1, keepdims=True))
        out[:, h] = (p / p.sum(axis=-1, keepdims=True)) @ values[:, g]
    flat = out.transpose(0, 2, 1, 3).reshape(b, s, heads * hd)
    return flat @ w["self_attn_o_proj_weight"].reshape(hid, heads * hd).T


@pytest.mark.parametrize("impl", ["sdpa", "matmul"])
def test_attention_with_kv_cache_across_steps(tmp, cache, impl):
    m = case_model(
        tmp,
        family="attention",
        hidden_size=32,
        heads=4,
        kv_heads=2,
        head_dim=8,
        context_length=6,
        seq_len=2,
        impl=impl,
    )
    path = build(m, cache_dir=cache).path
    w = saved_weights(path)
    prog = load(path)
    assert set(prog.states) == {"key_cache", "value_cache"}
    state = prog.make_state()
    ctx_len = 6
    cache_k = np.zeros((1, 2, ctx_len, 8), np.float16)
    cache_v = np.zeros_like(cache_k)
    for pos in (0, 2, 4):
        x = RNG.standard_normal((1, 2, 32)).astype(np.float32)
        cols, rows = np.arange(ctx_len)[None, :], pos + np.arange(2)[:, None]
        mask = np.where(cols <= rows, 0.0, -1e4).astype(np.float16).reshape(1, 1, 2, ctx_len)
        feed = {"hidden_states": x, "position": np.array([pos], np.int32), "causal_mask": mask}
        out = prog.predict(feed, state=state)["output"]
        expected = attention_reference(
            as_io(x, "float16"), pos, mask.astype(np.float64), w, cache_k, cache_v, m
        )
        np.testing.assert_allclose(out, expected, rtol=1e-3, atol=1e-4, err_msg=f"pos {pos}")
        # fp16 caches: fp32 (executor) and fp64 (here) may round a near-tie differently
        for name, ref in (("key_cache", cache_k), ("value_cache", cache_v)):
            got = state.read(name)
            assert got.dtype == np.float16
            np.testing.assert_array_max_ulp(got, ref, maxulp=1)
            ref[...] = got  # continue from the executor's state, so errors do not compound
