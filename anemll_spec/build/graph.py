"""Shared graph pieces: the build context, projections, and program assembly.

A family module describes its inputs, states and weights (`Plan`) and emits ops
with these helpers; `assemble` turns that into a pymil Program. Weights are
generated as each projection is emitted and compressed right after, so at most one
uncompressed weight is alive at a time.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from anemll_spec.build import weights as wgen
from anemll_spec.build.compress import Compressor

TARGETS = ("iOS16", "iOS17", "iOS18")
SPEC_VERSION = {"iOS15": 6, "iOS16": 7, "iOS17": 8, "iOS18": 9}


@dataclass
class TensorDecl:
    name: str
    shape: tuple[int, ...]
    dtype: str  # numpy name


@dataclass
class WeightDecl:
    name: str
    shape: tuple[int, ...]
    compressible: bool = True  # projections; norm weights and RoPE tables stay dense
    bias: bool = False  # mb.linear always stores a bias (zeros) next to its weight
    out_axis: int = 0  # output-channel axis (matmul's const y is (k, n): axis 1)


@dataclass
class Plan:
    inputs: list[TensorDecl]
    outputs: list[TensorDecl]
    weights: list[WeightDecl]
    flops: int
    emit: Callable  # emit(ctx, inputs: dict[str, Var]) -> list[Var] (outputs, in order)
    states: list[TensorDecl] = field(default_factory=list)
    ane_dims: list[tuple[str, tuple[int, ...]]] = field(default_factory=list)  # tensors to check


def mil_dtype(name: str):
    from coremltools.converters.mil.mil import types

    return {"float16": types.fp16, "float32": types.fp32, "int32": types.int32}[name]


class Ctx:
    """What a family's emit() needs: seeded weights, compression, dtypes."""

    def __init__(
        self,
        model: dict,
        progress: Callable[[str], None] | None = None,
        declared: list[WeightDecl] | None = None,
    ):
        self.model = model
        self.io_dtype = model.get("dtype", "float16")
        self.compute = model.get("compute_precision") or self.io_dtype
        self.np_compute = np.dtype(self.compute)
        self.seed = int(model.get("seed", 0))
        self.std = float(model.get("weight_std", 0.02))
        self.compressor = Compressor(model.get("compression", "none"))
        self.progress = progress or (lambda msg: None)
        # Weights are drawn on a background thread ahead of use: all of them for a dense
        # build (all are held until saving anyway), one ahead for a compressed build (so
        # only one uncompressed weight waits in memory).
        self._order = [w.name for w in (declared or []) if w.compressible]
        self._shapes = {w.name: w.shape for w in (declared or [])}
        self._ahead = len(self._order) if self.compressor.compression is None else 1
        self._futures: dict = {}
        self._pool = None

    def _draw(self, name: str, shape: tuple[int, ...]) -> np.ndarray:
        return wgen.normal(name, shape, seed=self.seed, std=self.std, dtype=self.compute)

    def _prefetch(self, after: str | None) -> None:
        if not self._order:
            return
        if self._pool is None:
            import os
            from concurrent.futures import ThreadPoolExecutor

            n = 1 if self.compressor.compression is not None else min(4, os.cpu_count() or 1)
            self._pool = ThreadPoolExecutor(max_workers=n, thread_name_prefix="weights")
        start = self._order.index(after) + 1 if after in self._order else 0
        for name in self._order[start : start + self._ahead]:
            if name not in self._futures:
                self._futures[name] = self._pool.submit(self._draw, name, self._shapes[name])

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None

    @property
    def cdtype(self) -> str:
        return "fp16" if self.compute == "float16" else "fp32"

    def weight(self, name: str, shape: tuple[int, ...]) -> np.ndarray:
        self.progress(f"weights {name} {'x'.join(map(str, shape))}")
        decl = name.removesuffix(".weight") + ".weight"
        if decl in self._shapes and self._order and not self._futures:
            self._prefetch(None)
        fut = self._futures.pop(decl, None)
        value = fut.result() if fut is not None else self._draw(name, shape)
        self._prefetch(decl)
        return value.reshape(shape)

    def const(self, name: str, value: np.ndarray):
        from coremltools.converters.mil import Builder as mb

        return mb.const(val=value.astype(self.np_compute, copy=False), name=name)

    def _compress(self, w) -> None:
        if self.compressor.compression is not None:
            self.progress(f"compress {w.name}")
            self.compressor.apply(w)

    def conv1x1(self, x, name: str, out_ch: int, in_ch: int, out_name: str | None = None):
        """1x1 conv on (b, in_ch, 1, s): ANEMLL's ANE-friendly projection."""
        from coremltools.converters.mil import Builder as mb

        w = self.const(f"{name}.weight", self.weight(f"{name}.weight", (out_ch, in_ch, 1, 1)))
        kw = {"name": out_name} if out_name else {}
        y = mb.conv(x=x, weight=w, **kw)
        self._compress(w)
        return y

    def linear(self, x, name: str, out_f: int, in_f: int, out_name: str | None = None):
        from coremltools.converters.mil import Builder as mb

        w = self.const(f"{name}.weight", self.weight(f"{name}.weight", (out_f, in_f)))
        kw = {"name": out_name} if out_name else {}
        y = mb.linear(x=x, weight=w, **kw)
        self._compress(w)
        return y

    def matmul_const(self, x, name: str, k: int, n: int, out_name: str | None = None):
        from coremltools.converters.mil import Builder as mb

        w = self.const(f"{name}.weight", self.weight(f"{name}.weight", (k, n)))
        kw = {"name": out_name} if out_name else {}
        y = mb.matmul(x=x, y=w, **kw)
        self._compress(w)
        return y

    def to_compute(self, x):
        """Cast an I/O tensor into the compute dtype, if they differ."""
        from coremltools.converters.mil import Builder as mb

        if self.io_dtype == self.compute:
            return x
        return mb.cast(x=x, dtype=self.cdtype)

    def to_io(self, x, name: str):
        """Name an output (casting back to the I/O dtype if needed)."""
        from coremltools.converters.mil import Builder as mb

        if self.io_dtype == self.compute:
            # Rename the producing op's output: no identity op in the saved graph.
            x.set_name(name)
            x.op.name = name
            return x
        return mb.cast(x=x, dtype="fp16" if self.io_dtype == "float16" else "fp32", name=name)


def to_conv_layout(x):
    """(b, s, hidden) -> (b, hidden, 1, s), as ANEMLL's permute(0, 2, 1).unsqueeze(2)."""
    from coremltools.converters.mil import Builder as mb

    return mb.expand_dims(x=mb.transpose(x=x, perm=[0, 2, 1]), axes=[2])


def from_conv_layout(y, name: str | None = None):
    """(b, c, 1, s) -> (b, s, c), as ANEMLL's squeeze(2).transpose(1, 2)."""
    from coremltools.converters.mil import Builder as mb

    kw = {"name": name} if name else {}
    return mb.transpose(x=mb.squeeze(x=y, axes=[2]), perm=[0, 2, 1], **kw)


def assemble(plan: Plan, ctx: Ctx, target: str):
    """The pymil Program of a plan: inputs, states, emitted body, named outputs."""
    import coremltools as ct
    from coremltools.converters.mil import Builder as mb
    from coremltools.converters.mil.mil import Function, Program
    from coremltools.converters.mil.mil import types as mtypes

    specs = {t.name: mb.TensorSpec(t.shape, dtype=mil_dtype(t.dtype)) for t in plan.inputs}
    for s in plan.states:
        specs[s.name] = mb.StateTensorSpec(s.shape, dtype=mtypes.fp16)
    opset = getattr(ct.target, target)
    with Function(specs, opset) as func:
        outs = plan.emit(ctx, dict(func.inputs))
        func.set_outputs(list(outs))
    prog = Program()
    prog.add_function("main", func)
    return prog
