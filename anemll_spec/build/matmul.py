"""A compute-bound matmul: x (m, k) input times a const weight (k, n); 2mkn FLOPs."""

from __future__ import annotations

from anemll_spec.build.graph import Ctx, Plan, TensorDecl
from anemll_spec.spec.families import Matmul


def plan(mdl: Matmul) -> Plan:
    m, k, n = mdl.m, mdl.k, mdl.n
    io = mdl.dtype

    def emit(ctx: Ctx, inputs: dict) -> list:
        x = ctx.to_compute(inputs["x"])
        return [ctx.to_io(ctx.matmul_const(x, "matmul", k, n), "y")]

    return Plan(
        inputs=[TensorDecl("x", (m, k), io)],
        outputs=[TensorDecl("y", (m, n), io)],
        weights=mdl.weights(),
        flops=2 * m * k * n,
        emit=emit,
        ane_dims=[("x", (m, k)), ("weight", (k, n)), ("y", (m, n))],
    )
