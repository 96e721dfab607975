"""The LLaMA MLP as ANEMLL builds it: ANE-safe RMSNorm, gate/up, SiLU, multiply, down.

RMSNorm the ANEMLL way: layer_norm over concat([x, -x]) along the channels. The
concatenation has mean 0, so layer_norm's centring is a no-op and its variance is
mean(x^2): layer_norm == RMSNorm, without squaring fp16 activations in a plain
reduce (values above 256 overflow). The first half is sliced back and multiplied by
the norm weight (ones, as initialised in ANEMLL). conv layout: input (batch, seq,
hidden) permuted to (batch, hidden, 1, seq) for the 1x1 conv projections, output
permuted back (ANEMLL's LlamaMLP.forward); linear layout: linear ops on (b, s, h).
"""

from __future__ import annotations

import numpy as np

from anemll_spec.build.graph import Ctx, Plan, TensorDecl, from_conv_layout, to_conv_layout
from anemll_spec.spec.families import Ffn


def rms_norm(ctx: Ctx, x, hidden: int, eps: float, name: str):
    """ANEMLL's RMSNorm on the last axis of x (b, s, hidden)."""
    from coremltools.converters.mil import Builder as mb

    doubled = mb.concat(values=[x, mb.mul(x=x, y=np.array(-1.0, dtype=ctx.np_compute))], axis=-1)
    normed = mb.layer_norm(x=doubled, axes=[-1], epsilon=np.float32(eps).astype(ctx.np_compute))
    first = mb.slice_by_size(x=normed, begin=[0, 0, 0], size=[-1, -1, hidden])
    weight = ctx.const(f"{name}.weight", np.ones(hidden, dtype=ctx.np_compute))
    return mb.mul(x=first, y=weight)


def plan(m: Ffn) -> Plan:
    b, s, h, i = m.batch, m.seq_len, m.hidden_size, m.intermediate_size
    conv = m.layout == "conv"
    io = m.dtype

    def emit(ctx: Ctx, inputs: dict) -> list:
        from coremltools.converters.mil import Builder as mb

        x = ctx.to_compute(inputs["hidden_states"])
        x = rms_norm(ctx, x, h, m.rms_norm_eps, "post_attention_layernorm")
        if conv:
            x = to_conv_layout(x)
            gate = ctx.conv1x1(x, "mlp.gate_proj", i, h)
            up = ctx.conv1x1(x, "mlp.up_proj", i, h)
            y = ctx.conv1x1(mb.mul(x=mb.silu(x=gate), y=up), "mlp.down_proj", h, i)
            y = from_conv_layout(y)
        else:
            gate = ctx.linear(x, "mlp.gate_proj", i, h)
            up = ctx.linear(x, "mlp.up_proj", i, h)
            y = ctx.linear(mb.mul(x=mb.silu(x=gate), y=up), "mlp.down_proj", h, i)
        return [ctx.to_io(y, "output")]

    return Plan(
        inputs=[TensorDecl("hidden_states", (b, s, h), io)],
        outputs=[TensorDecl("output", (b, s, h), io)],
        weights=m.weights(),
        flops=2 * b * s * 3 * h * i,
        emit=emit,
        ane_dims=[("norm concat", (b, s, 2 * h)), ("intermediate", (b, i, 1, s))],
    )
