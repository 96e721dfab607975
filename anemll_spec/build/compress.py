"""Weight compression, applied const by const while the graph is built.

Grouped, per-channel and per-block compression of conv/linear weights is streamed
(graph.Ctx.streamed: rows drawn and compressed a slice at a time, through the same
functions). Everything else goes the const way: each weight is emitted as a `const`,
and as soon as its consumer (conv,
linear, matmul) exists, coremltools' own compression pass transforms that one op
(`palettize_weights` / `linear_quantize_weights` from `coremltools.optimize.coreml`,
the very code `cto.palettize_weights(model, config)` runs). So the constexpr ops,
their names (`<weight>_palettized`, `<weight>_quantized`), block sizes, channel axes
and iOS16-vs-iOS18 forms are stock. Doing it per const keeps memory to one
uncompressed weight at a time. k-means palettization swaps in the fast palettizer
(`palettize.grouped_kmeans`), which returns stock's clusters and indices, and its LUT
up to the rounding of a centroid that falls exactly halfway between two fp16 values
(ours is computed exactly; kmeans1d's float sums can round it the other way: seen once,
one entry in 2,048, one fp16 step, same SSE). What Core ML
can express (targets, group and block sizes) is checked by the spec
(`anemll_spec.spec.compression`), once.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from anemll_spec.spec.base import WeightDecl
from anemll_spec.spec.compression import Compression, Palettize, Quantize, config

if TYPE_CHECKING:
    from anemll_spec.build.palettize import GroupTally


def kmeans_groups(compression: Compression, weights: Sequence[WeightDecl]) -> int:
    """The LUT groups k-means palettization clusters over `weights` (0: no k-means): one
    per compressible weight per tensor, else its output channels / group size. The
    build's progress counts them down; `plan` warns of them (the longest step of a first
    build: 16,032 for the LUT6 LLaMA head)."""
    c = config(compression)
    if not isinstance(c, Palettize) or c.mode != "kmeans":
        return 0
    grouped = c.granularity == "per_grouped_channel"
    return sum(w.out_channels // c.group_size if grouped else 1 for w in weights if w.compressible)


def kmeans_scratch_bytes(
    compression: Compression, weights: Sequence[WeightDecl], itemsize: int
) -> int:
    """Working memory of the exact k-means DP (build/kmeans1d.py) at its peak: per group a
    (2**nbits x distinct values) int64 table of split points and five float64 rows; in
    fp32 also np.unique's copies (sorted, permutation, inverse), the values and counts in
    float64 and the labels: about 128 bytes a weight. Distinct values are at most 65,536
    in fp16 but up to every weight of the group in fp32: an 8-bit LUT of a 1024 x 1024
    fp32 weight peaked at 2.37-2.63 GB, of a 4096 x 4096 one it needs ~37 GB, which the
    estimate must show so the build is refused, not killed. grouped_kmeans clusters one
    weight at a time, its groups on up to workers() threads (a per-tensor weight is one
    group, on one thread): the peak is the largest weight's, not a sum over weights."""
    from anemll_spec.build.palettize import workers

    c = config(compression)
    if not isinstance(c, Palettize) or c.mode != "kmeans":
        return 0
    grouped, lut = c.granularity == "per_grouped_channel", 1 << c.nbits
    peak = 0
    for w in weights:
        if not w.compressible:
            continue
        groups = w.out_channels // c.group_size if grouped else 1
        group = math.prod(w.shape) // groups
        distinct = min(group, 1 << 16) if itemsize == 2 else group
        one = 8 * (lut + 5) * distinct + (0 if itemsize == 2 else 128 * group)
        peak = max(peak, one * min(workers(), groups))
    return peak


def op_config(cfg: Palettize | Quantize):
    """The coremltools OpPalettizerConfig / OpLinearQuantizerConfig of a spec compression."""
    import coremltools.optimize.coreml as cto

    if isinstance(cfg, Palettize):
        kw: dict[str, Any] = {}
        if cfg.granularity == "per_grouped_channel":
            kw["group_size"] = cfg.group_size
        return cto.OpPalettizerConfig(
            nbits=cfg.nbits,
            mode=cfg.mode,
            granularity=cfg.granularity,
            weight_threshold=0,  # we pick the weights; every projection is compressed
            **kw,
        )
    kw = {"block_size": cfg.block_size} if cfg.granularity == "per_block" else {}
    return cto.OpLinearQuantizerConfig(
        mode="linear_symmetric",
        dtype=cfg.dtype,
        granularity=cfg.granularity,
        weight_threshold=0,
        **kw,
    )


def _fast_palettizer_class(tally: GroupTally | None = None):
    from coremltools.optimize.coreml._quantization_passes import palettize_weights

    from anemll_spec.build.palettize import grouped_kmeans

    class FastPalettizer(palettize_weights):
        """Stock palettize_weights with its k-means step replaced by the fast one."""

        @staticmethod
        def blockwise_compress(
            original_data,
            mode,
            nbits,
            block_sizes,
            lut_function=None,
            cluster_dim=1,
            channel_axis=None,
            num_kmeans_workers=1,
        ):
            if mode.upper() != "KMEANS" or cluster_dim != 1:
                return palettize_weights.blockwise_compress(
                    original_data,
                    mode,
                    nbits,
                    block_sizes,
                    lut_function,
                    cluster_dim,
                    channel_axis,
                    num_kmeans_workers,
                )
            from coremltools.converters.mil.mil import types
            from coremltools.optimize import _utils as optimize_utils

            # Same inference of the group axis as stock blockwise_compress.
            group_size, axis = 0, None
            for a, b in enumerate(block_sizes):
                if b != 0 and b != original_data.shape[a]:
                    axis, group_size = a, b
            if axis is None:
                axis = 0
            indices, lut = grouped_kmeans(original_data, int(nbits), axis, group_size, tally=tally)
            np_dtype = types.nptype_from_builtin(types.string_to_builtin(f"uint{nbits}"))
            return optimize_utils.LutParams(indices.view(np_dtype), lut, None)

    return FastPalettizer


class Compressor:
    """Transforms weight consts in place, inside an open MIL builder context."""

    def __init__(self, config: Palettize | Quantize | None, tally: GroupTally | None = None):
        self.config = config  # the spec's settings; None: no compression
        self._pass = None
        if config is None:
            return
        import coremltools.optimize.coreml as cto
        from coremltools.optimize.coreml._quantization_passes import linear_quantize_weights

        opt = cto.OptimizationConfig(global_config=op_config(config))
        if isinstance(config, Palettize):
            self._pass = _fast_palettizer_class(tally)(config=opt)
        else:
            self._pass = linear_quantize_weights(config=opt)

    def apply(self, weight_var) -> None:
        """Compress the const behind `weight_var` (call after its consumer op exists)."""
        if self._pass is None:
            return
        op = weight_var.op
        if op is None or op.op_type != "const":
            return
        self._pass.transform_op(op)
