"""Shared graph pieces: the build context, projections, and program assembly.

A family module describes its inputs, states and weights (`Plan`) and emits ops
with these helpers; `assemble` turns that into a pymil Program. Weights are
generated as each projection is emitted and compressed right after, so at most one
uncompressed weight is alive at a time.
"""

from __future__ import annotations

import gc
import math
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from anemll_spec.build import weights as wgen
from anemll_spec.build.compress import Compressor, kmeans_groups
from anemll_spec.spec.base import TARGET_VERSION, WeightDecl
from anemll_spec.spec.compression import Palettize, Quantize, config
from anemll_spec.spec.families import ModelBase

if TYPE_CHECKING:
    from anemll_spec.build.palettize import GroupTally

# a weight compressed row-wise is drawn and compressed in slices of about this many
# elements (16 MB of float32), so a big weight never exists whole uncompressed
SLICE_ELEMENTS = 1 << 22


@dataclass
class TensorDecl:
    name: str
    shape: tuple[int, ...]
    dtype: str  # numpy name


@dataclass
class Plan:
    inputs: list[TensorDecl]
    outputs: list[TensorDecl]
    weights: list[WeightDecl]
    flops: int
    emit: Callable  # emit(ctx, inputs: dict[str, Var]) -> list[Var] (outputs, in order)
    states: list[TensorDecl] = field(default_factory=list)
    ane_dims: list[tuple[str, tuple[int, ...]]] = field(default_factory=list)  # tensors to check


def _kmeans_tally(
    model: ModelBase, declared: list[WeightDecl], progress: Callable[[str], None]
) -> GroupTally | None:
    """The k-means group counter of a build, reporting to `progress` as GroupsDone messages
    (a str with .done, .total, .elapsed_s, .eta_s); None unless k-means palettizes."""
    total = kmeans_groups(model.compression, declared)
    if not total:
        return None
    from anemll_spec.build.palettize import GroupsDone, GroupTally

    tally: GroupTally

    def report(done: int, total: int) -> None:
        progress(GroupsDone(done, total, time.monotonic() - tally.started))

    tally = GroupTally(total, report)
    return tally


def mil_dtype(name: str):
    from coremltools.converters.mil.mil import types

    return {"float16": types.fp16, "float32": types.fp32, "int32": types.int32}[name]


class Ctx:
    """What a family's emit() needs: seeded weights, compression, dtypes."""

    def __init__(
        self,
        model: ModelBase,
        progress: Callable[[str], None] | None = None,
        declared: list[WeightDecl] | None = None,
    ):
        self.model = model
        self.io_dtype = model.dtype
        self.compute = model.precision
        self.np_compute = np.dtype(self.compute)
        self.seed = model.seed
        self.std = model.weight_std
        self.progress = progress or (lambda msg: None)
        self.tally = _kmeans_tally(model, declared or [], self.progress)
        self.compressor = Compressor(config(model.compression), self.tally)
        # A dense build draws its weights on background threads ahead of use (all are held
        # until saving anyway). A compressed build draws each weight when needed, so only
        # one uncompressed weight is ever in memory.
        dense = self.compressor.config is None
        self._order = [w.name for w in (declared or []) if w.compressible] if dense else []
        self._shapes = {w.name: w.shape for w in (declared or [])}
        self._ahead = len(self._order)
        self._futures: dict[str, Future[np.ndarray]] = {}
        self._pool: ThreadPoolExecutor | None = None

    def _draw(self, name: str, shape: tuple[int, ...]) -> np.ndarray:
        return wgen.normal(name, shape, seed=self.seed, std=self.std, dtype=self.compute)

    def _prefetch(self, after: str | None) -> None:
        if not self._order:
            return
        if self._pool is None:
            import os

            n = min(4, os.cpu_count() or 1)
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
        if self.compressor.config is not None:
            self.progress(f"compress {w.name}")
            self.compressor.apply(w)
            # The replaced const op and its output Var reference each other: only the cycle
            # collector frees the dense weight. Collect now, not chunks later.
            gc.collect()

    def streamed(self, name: str, shape: tuple[int, ...]):
        """A compressed projection weight drawn and compressed a slice of rows at a time.

        The dense weight never exists whole: rows come from the weight's seeded stream in
        slices of whole groups (the same values as drawing it at once), each slice goes
        through the compressor (our exact k-means, or stock coremltools' own uniform-LUT /
        linear-quantization functions, which work row by row for these granularities), and
        only indices/LUTs or integers/scales are kept. The constexpr op and its name are
        what stock compression makes of the const. Returns None where compression needs the
        whole tensor (per_tensor), or there is none; the const path handles those.
        Output-channel axis 0 (conv and linear weights) only.
        """
        c = self.compressor.config
        if isinstance(c, Palettize) and c.granularity == "per_grouped_channel":
            rows_unit = c.group_size
        elif isinstance(c, Quantize):
            rows_unit = 1
        else:
            return None
        kind = "palettize" if isinstance(c, Palettize) else "quantize"
        if shape[0] % rows_unit:
            return None
        self.progress(f"weights+{kind} {name} {'x'.join(map(str, shape))}")
        out, row = shape[0], math.prod(shape[1:])
        gen = wgen.stream(self.seed, name)
        rows_per = rows_unit * max(1, SLICE_ELEMENTS // (rows_unit * row))
        scratch = np.empty(min(rows_per, out) * row, dtype=np.float32)
        parts = []
        for r0 in range(0, out, rows_per):
            r = min(rows_per, out - r0)
            buf = scratch[: r * row]
            gen.standard_normal(out=buf, dtype=np.float32)
            buf *= np.float32(self.std)
            part = buf.astype(self.np_compute).reshape((r,) + tuple(shape[1:]))
            parts.append(self._compress_rows(c, part))
        if isinstance(c, Palettize):
            return self._emit_lut(name, shape, c.nbits, parts)
        return self._emit_quant(name, shape, parts)

    def _compress_rows(self, c: Palettize | Quantize, part: np.ndarray):
        if isinstance(c, Palettize):
            nbits, gs = c.nbits, c.group_size
            if c.mode == "kmeans":
                from anemll_spec.build.palettize import grouped_kmeans

                idx, lut = grouped_kmeans(part, nbits, 0, gs, tally=self.tally)
                return idx, lut
            from coremltools.optimize.coreml._quantization_passes import palettize_weights

            params = palettize_weights.grouped_channelwise_compress(part, "UNIFORM", nbits, 0, gs)
            return np.asarray(params.indices, dtype=np.uint8), params.lut
        from coremltools.optimize.coreml._quantization_passes import linear_quantize_weights

        from anemll_spec.build.compress import op_config

        cfg = op_config(c)
        block = [1] + [0] * (part.ndim - 1)
        if c.granularity == "per_block":
            block[1] = c.block_size
        q = linear_quantize_weights.blockwise_compress_by_dtype(part, cfg.dtype, cfg.mode, block)
        return q

    def _emit_lut(self, name: str, shape, nbits: int, parts: list):
        from coremltools.converters.mil import Builder as mb
        from coremltools.converters.mil.mil import types

        indices = np.empty(shape, dtype=np.uint8)
        r0 = 0
        for idx, _ in parts:
            indices[r0 : r0 + idx.shape[0]] = idx
            r0 += idx.shape[0]
        lut = np.concatenate([lut for _, lut in parts], axis=0)
        del parts[:]
        uint_n = types.nptype_from_builtin(types.string_to_builtin(f"uint{nbits}"))
        return mb.constexpr_lut_to_dense(
            indices=indices.view(uint_n), lut=lut, name=f"{name}_palettized"
        )

    def _emit_quant(self, name: str, shape, parts: list):
        from coremltools.converters.mil import Builder as mb
        from coremltools.optimize import _utils as optimize_utils

        data = _joined([q.data for q in parts])
        scale = _joined([q.scale for q in parts])
        offset = None if parts[0].offset is None else _joined([q.offset for q in parts])
        params = optimize_utils.QuantParams(
            data=data, scale=scale, offset=offset, nbits=parts[0].nbits
        )
        del parts[:]
        if TARGET_VERSION[self.model.deployment_target] < 18:
            p16 = optimize_utils.ios18_quant_params_to_ios16(params)
            return mb.constexpr_affine_dequantize(
                quantized_data=p16.quantized_data,
                zero_point=p16.zero_point,
                scale=p16.scale,
                axis=p16.axis,
                name=f"{name}_quantized",
            )
        return mb.constexpr_blockwise_shift_scale(
            data=params.data, scale=params.scale, offset=params.offset, name=f"{name}_quantized"
        )

    def _projection_weight(self, name: str, shape: tuple[int, ...]):
        """(weight var, needs const compression) of a projection with output axis 0."""
        streamed = self.streamed(name, shape)
        if streamed is not None:
            return streamed, False
        return self.const(name, self.weight(name, shape)), True

    def conv1x1(self, x, name: str, out_ch: int, in_ch: int, out_name: str | None = None):
        """1x1 conv on (b, in_ch, 1, s): ANEMLL's ANE-friendly projection."""
        from coremltools.converters.mil import Builder as mb

        w, pending = self._projection_weight(f"{name}.weight", (out_ch, in_ch, 1, 1))
        kw = {"name": out_name} if out_name else {}
        y = mb.conv(x=x, weight=w, **kw)
        if pending:
            self._compress(w)
        return y

    def linear(self, x, name: str, out_f: int, in_f: int, out_name: str | None = None):
        from coremltools.converters.mil import Builder as mb

        w, pending = self._projection_weight(f"{name}.weight", (out_f, in_f))
        kw = {"name": out_name} if out_name else {}
        y = mb.linear(x=x, weight=w, **kw)
        if pending:
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


def _joined(arrays: list[np.ndarray]) -> np.ndarray:
    """Slices joined along rows in the first one's dtype, metadata included: coremltools
    marks int4/uint4 data as int8 arrays whose dtype carries `true_dtype`, which
    np.concatenate drops (a weight compressed in slices was stored as int8, twice its
    size, under an int4 label)."""
    return np.concatenate(arrays, axis=0).view(arrays[0].dtype)
