"""One attention step with a stateful KV cache (iOS18 states), LLaMA style.

Inputs: hidden_states (batch, seq, hidden), position (1,) int32 = index of the
first token of this step, causal_mask (1, 1, seq, context) fp16, additive.
States: key_cache and value_cache, (batch, kv_heads, context, head_dim) fp16.

q/k/v/o are 1x1 convs on (b, hidden, 1, seq) as in ANEMLL. Rotary embedding the
ANEMLL way: cos/sin tables (context, head_dim) are consts, gathered by
position + arange(seq). The new k/v are written with slice_update at the position,
each coreml_update_state emitted right after its slice_update (coremltools raises
KeyError in a graph pass otherwise). Grouped-query attention without repeating the
cache: q is viewed as (b, kv_heads, n_rep * seq, head_dim), so every kv head
serves its n_rep query heads in one matmul; the mask is tiled n_rep times.
impl sdpa: scaled_dot_product_attention; impl matmul: matmul, scale, mask, softmax,
matmul.
"""

from __future__ import annotations

import numpy as np

from anemll_spec.build.graph import Ctx, Plan, TensorDecl, from_conv_layout, to_conv_layout
from anemll_spec.spec.families import Attention

# rows of the RoPE tables computed at a time in float64: about 8 MB of scratch per table
_ROPE_SLICE_ELEMENTS = 1 << 20


def rope_tables(
    context: int, head_dim: int, theta: float, dtype: np.dtype | type = np.float64
) -> tuple[np.ndarray, np.ndarray]:
    """cos and sin of position x inv_freq, (context, head_dim), in `dtype`: computed in
    float64 a slice of rows at a time and cast straight into the tables, so the values
    are those of the whole float64 tables cast once, without their float64 copies (a
    context of 32768 x head_dim 4096 held about 3.2 GB of them while building)."""
    half = head_dim // 2
    inv_freq = 1.0 / (theta ** (np.arange(0, head_dim, 2, dtype=np.float64) / head_dim))
    cos = np.empty((context, head_dim), dtype=dtype)
    sin = np.empty((context, head_dim), dtype=dtype)
    rows = max(1, _ROPE_SLICE_ELEMENTS // max(1, half))
    for r0 in range(0, context, rows):
        r1 = min(context, r0 + rows)
        freqs = np.outer(np.arange(r0, r1, dtype=np.float64), inv_freq)
        for table, fn in ((cos, np.cos), (sin, np.sin)):
            part = fn(freqs)
            table[r0:r1, :half] = part  # the two halves repeat, as concatenating did
            table[r0:r1, half:] = part
    return cos, sin


def plan(m: Attention) -> Plan:
    b, s, hid = m.batch, m.seq_len, m.hidden_size
    heads, kv, hd, ctx_len = m.heads, m.kv_heads, m.head_dim, m.context_length
    rep = heads // kv
    io = m.dtype
    cache_shape = (b, kv, ctx_len, hd)

    def emit(ctx: Ctx, inputs: dict) -> list:
        from coremltools.converters.mil import Builder as mb

        cd = ctx.np_compute
        x = to_conv_layout(ctx.to_compute(inputs["hidden_states"]))
        q = ctx.conv1x1(x, "self_attn.q_proj", heads * hd, hid)
        k = ctx.conv1x1(x, "self_attn.k_proj", kv * hd, hid)
        v = ctx.conv1x1(x, "self_attn.v_proj", kv * hd, hid)
        # (b, n*hd, 1, s) -> (b, n, s, hd)
        q = mb.transpose(x=mb.reshape(x=q, shape=[b, heads, hd, s]), perm=[0, 1, 3, 2])
        k = mb.transpose(x=mb.reshape(x=k, shape=[b, kv, hd, s]), perm=[0, 1, 3, 2])
        v = mb.transpose(x=mb.reshape(x=v, shape=[b, kv, hd, s]), perm=[0, 1, 3, 2])

        pos = inputs["position"]  # (1,) int32
        positions = mb.add(x=pos, y=np.arange(s, dtype=np.int32))
        cos_t, sin_t = rope_tables(ctx_len, hd, m.rope_theta, cd)
        cos = mb.gather(x=ctx.const("rope.cos", cos_t), indices=positions, axis=0)
        sin = mb.gather(x=ctx.const("rope.sin", sin_t), indices=positions, axis=0)
        cos = mb.reshape(x=cos, shape=[1, 1, s, hd])
        sin = mb.reshape(x=sin, shape=[1, 1, s, hd])

        def rotate(t, n):
            x1 = mb.slice_by_size(x=t, begin=[0, 0, 0, 0], size=[b, n, s, hd // 2])
            x2 = mb.slice_by_size(x=t, begin=[0, 0, 0, hd // 2], size=[b, n, s, hd // 2])
            rot = mb.concat(values=[mb.mul(x=x2, y=np.array(-1.0, dtype=cd)), x1], axis=-1)
            return mb.add(x=mb.mul(x=t, y=cos), y=mb.mul(x=rot, y=sin))

        q = rotate(q, heads)
        k = rotate(k, kv)

        zero3 = np.zeros(3, dtype=np.int32)
        begin = mb.concat(values=[zero3[:2], pos, zero3[:1]], axis=0)
        end = mb.concat(
            values=[
                np.array([b, kv], np.int32),
                mb.add(x=pos, y=np.int32(s)),
                np.array([hd], np.int32),
            ],
            axis=0,
        )

        def update(state, new):
            if ctx.compute != "float16":
                new = mb.cast(x=new, dtype="fp16")
            cache = mb.read_state(input=state)
            cache = mb.slice_update(x=cache, update=new, begin=begin, end=end)
            mb.coreml_update_state(state=state, value=cache)  # right after its slice_update
            return cache if ctx.compute == "float16" else mb.cast(x=cache, dtype="fp32")

        k_all = update(inputs["key_cache"], k)
        v_all = update(inputs["value_cache"], v)

        qg = mb.reshape(x=q, shape=[b, kv, rep * s, hd])
        mask = inputs["causal_mask"]  # always fp16 (ANEMLL's causal mask)
        if ctx.compute != "float16":
            mask = mb.cast(x=mask, dtype="fp32")
        if rep > 1:
            mask = mb.tile(x=mask, reps=[1, 1, rep, 1])
        if m.impl == "sdpa":
            att = mb.scaled_dot_product_attention(query=qg, key=k_all, value=v_all, attn_mask=mask)
        else:
            scores = mb.matmul(x=qg, y=k_all, transpose_y=True)
            scores = mb.mul(x=scores, y=np.array(1.0 / np.sqrt(hd), dtype=cd))
            probs = mb.softmax(x=mb.add(x=scores, y=mask), axis=-1)
            att = mb.matmul(x=probs, y=v_all)
        # (b, kv, rep*s, hd) -> (b, heads, s, hd) -> (b, heads*hd, 1, s)
        att = mb.transpose(x=mb.reshape(x=att, shape=[b, heads, s, hd]), perm=[0, 1, 3, 2])
        att = mb.reshape(x=att, shape=[b, heads * hd, 1, s])
        y = from_conv_layout(ctx.conv1x1(att, "self_attn.o_proj", hid, heads * hd))
        return [ctx.to_io(y, "output")]

    proj = 2 * b * s * hid * (2 * heads * hd + 2 * kv * hd)
    attn = 4 * b * heads * s * ctx_len * hd
    return Plan(
        inputs=[
            TensorDecl("hidden_states", (b, s, hid), io),
            TensorDecl("position", (1,), "int32"),
            TensorDecl("causal_mask", (1, 1, s, ctx_len), "float16"),
        ],
        outputs=[TensorDecl("output", (b, s, hid), io)],
        states=[
            TensorDecl("key_cache", cache_shape, "float16"),
            TensorDecl("value_cache", cache_shape, "float16"),
        ],
        weights=m.weights(),
        flops=proj + attn,
        emit=emit,
        ane_dims=[("kv cache", cache_shape), ("scores", (b, kv, rep * s, ctx_len))],
    )
