"""The LM head: hidden -> vocab logits, split into equal chunks (ANEMLL's `lm_head8_*`).

conv layout (ANEMLL's): input (batch, seq, hidden), permuted in-graph to
(batch, hidden, 1, seq), `chunks` 1x1 convs of vocab/chunks rows, each squeezed back
to (batch, seq, vocab/chunks) as output `logits1..N`. The published `llama_lm_head`
takes input [1, 1, 4096] exactly so. linear layout: `chunks` linear ops on
(batch, seq, hidden). No biases: weight.bin holds the weights and nothing else.
"""

from __future__ import annotations

from anemll_spec.build.graph import Ctx, Plan, TensorDecl, from_conv_layout, to_conv_layout
from anemll_spec.spec.families import LmHead


def plan(m: LmHead) -> Plan:
    b, s, h, v, c = m.batch, m.seq_len, m.hidden_size, m.vocab_size, m.chunks
    rows = v // c
    conv = m.layout == "conv"
    io = m.dtype

    def emit(ctx: Ctx, inputs: dict) -> list:
        x = ctx.to_compute(inputs["hidden_states"])
        if conv:
            x = to_conv_layout(x)
        outs = []
        for i in range(1, c + 1):
            if conv:
                y = from_conv_layout(ctx.conv1x1(x, f"lm_head{c}_{i}", rows, h))
            else:
                y = ctx.linear(x, f"lm_head{c}_{i}", rows, h)
            outs.append(ctx.to_io(y, f"logits{i}"))
        return outs

    return Plan(
        inputs=[TensorDecl("hidden_states", (b, s, h), io)],
        outputs=[TensorDecl(f"logits{i}", (b, s, rows), io) for i in range(1, c + 1)],
        weights=m.weights(),
        flops=2 * b * s * h * v,
        emit=emit,
        ane_dims=[("lm_head chunk rows", (rows, h))],
    )
