"""The spec's fields, declared once as data: name, kind, default, unit, help.

Validation (`validate.py`), the README's spec reference and `plan` all read these
declarations; nothing else lists fields. Units go in names (`_s`, `_ms`, `_bytes`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

COMPUTE_UNITS = ("CPU_ONLY", "CPU_AND_GPU", "CPU_AND_NE", "ALL")
BACKENDS = ("auto", "coreml", "numpy", "torch")
FAMILIES = ("lm_head", "ffn", "attention", "matmul", "external")
DTYPES = ("float16", "float32")
TARGETS = ("iOS16", "iOS17", "iOS18")
PALETTE_BITS = (1, 2, 3, 4, 6, 8)


@dataclass(frozen=True)
class Field:
    name: str
    kind: (
        str  # int | float | str | bool | enum | enum_list | compression | tolerance | ranges | path
    )
    default: Any
    help: str
    choices: tuple = ()
    min: float | None = None  # inclusive lower bound
    max: float | None = None  # inclusive upper bound
    positive: bool = False  # strictly > 0
    nullable: bool = False
    required: bool = False


def _size(name: str, default: int, help: str) -> Field:
    return Field(name, "int", default, help, positive=True)


COMMON_MODEL = (
    Field("family", "enum", None, "what to build", FAMILIES, required=True),
    Field("dtype", "enum", "float16", "weight and I/O dtype", DTYPES),
    Field(
        "compute_precision",
        "enum",
        None,
        "precision Core ML computes in (default: same as dtype)",
        DTYPES,
        nullable=True,
    ),
    Field("deployment_target", "enum", "iOS18", "minimum deployment target", TARGETS),
    Field(
        "compression",
        "compression",
        "none",
        "none | {palettize: {...}} | {quantize: {...}} (see README)",
    ),
    Field("seed", "int", 0, "seed of the weights (same seed, byte-identical weights)", min=0),
    Field("weight_std", "float", 0.02, "std of the N(0, std) weights", positive=True),
    Field("batch", "int", 1, "batch size", positive=True),
)

FAMILY_FIELDS: dict[str, tuple[Field, ...]] = {
    "lm_head": (
        _size("hidden_size", 4096, "input features"),
        _size("vocab_size", 128256, "output logits (split across chunks)"),
        _size("chunks", 8, "number of heads the vocab is split into (ANE: rows <= 16384)"),
        Field(
            "layout",
            "enum",
            "conv",
            "conv: conv 1x1 heads on (B,C,1,S), fed (B,S,C) like the published model | linear",
            ("conv", "linear"),
        ),
        _size("seq_len", 1, "tokens per call"),
    ),
    "ffn": (
        _size("hidden_size", 4096, "model width"),
        _size("intermediate_size", 14336, "MLP width"),
        _size("seq_len", 1, "tokens per call: 1 decode, e.g. 64 prefill"),
        Field("rms_norm_eps", "float", 1e-5, "RMSNorm epsilon", positive=True),
        Field(
            "layout",
            "enum",
            "conv",
            "conv: conv 1x1 heads on (B,C,1,S), fed (B,S,C) like the published model | linear",
            ("conv", "linear"),
        ),
    ),
    "attention": (
        _size("hidden_size", 4096, "model width"),
        _size("heads", 32, "query heads"),
        _size("kv_heads", 8, "key/value heads (grouped-query attention)"),
        _size("head_dim", 128, "per-head width"),
        _size("context_length", 512, "KV cache length (tokens)"),
        Field(
            "impl",
            "enum",
            "sdpa",
            "sdpa: scaled_dot_product_attention | matmul: matmul+softmax",
            ("sdpa", "matmul"),
        ),
        Field("rope_theta", "float", 500000.0, "rotary embedding base", positive=True),
        _size("seq_len", 1, "tokens per call (a decode step is 1)"),
    ),
    "matmul": (
        _size("m", 4096, "rows of x (an input)"),
        _size("k", 4096, "shared dimension"),
        _size("n", 4096, "columns of the weight (a constant)"),
    ),
    "external": (
        Field(
            "path",
            "path",
            None,
            ".mlpackage (or .mlmodelc: coreml backend only), relative to the spec file",
            required=True,
        ),
        Field(
            "input_ranges",
            "ranges",
            {},
            "integer inputs: name -> [low, high] (inclusive; default [0, 1])",
        ),
    ),
}

PALETTIZE_FIELDS = (
    Field("nbits", "enum", None, "bits per index", PALETTE_BITS, required=True),
    Field(
        "granularity", "enum", "per_tensor", "LUT sharing", ("per_tensor", "per_grouped_channel")
    ),
    Field("group_size", "int", 8, "output channels per LUT (per_grouped_channel)", positive=True),
    Field("mode", "enum", "kmeans", "how the LUT is found", ("kmeans", "uniform")),
)

QUANTIZE_FIELDS = (
    Field("dtype", "enum", None, "weight dtype", ("int8", "int4"), required=True),
    Field("granularity", "enum", "per_channel", "scale sharing", ("per_channel", "per_block")),
    Field("block_size", "int", 32, "input channels per scale (per_block)", positive=True),
)

TOLERANCE_FIELDS = (
    Field("max_abs_error", "float", 0.05, "max |out - ref| over all outputs", min=0),
    Field("rel_l2_error", "float", 0.01, "||out - ref|| / ||ref||", min=0),
    Field("min_cosine", "float", 0.999, "cosine similarity of flattened outputs", min=0, max=1),
    Field(
        "min_top1_agreement",
        "float",
        1.0,
        "share of positions with the same argmax (LM heads)",
        min=0,
        max=1,
    ),
)

RUN_FIELDS = (
    Field(
        "backends",
        "enum_list",
        ["auto"],
        "where to run: auto = coreml if available else numpy",
        BACKENDS,
    ),
    Field("device", "enum", "auto", "torch device", ("auto", "cuda", "mps", "cpu")),
    Field(
        "compute_units",
        "enum_list",
        ["CPU_AND_NE"],
        "Core ML compute units (coreml backend)",
        COMPUTE_UNITS,
    ),
    Field("warmup", "int", 20, "untimed calls before timing", min=0),
    Field("warmup_s", "float", 0.0, "and warm up for at least this long (seconds)", min=0),
    Field("iterations", "int", 300, "timed calls (at most)", positive=True),
    Field(
        "min_iterations",
        "int",
        10,
        "timed calls (at least, even past max_time_s; capped at iterations)",
        positive=True,
    ),
    Field("max_time_s", "float", 120.0, "stop timing after this long (seconds)", positive=True),
    Field(
        "target_ci_pct",
        "float",
        None,
        "stop once the 95% CI of the median is within +-this % (null: off)",
        positive=True,
        nullable=True,
    ),
    Field("cooldown_s", "float", 0.0, "sleep between cases (seconds)", min=0),
    Field("concurrency", "int", 1, "model instances run at once in threads", positive=True),
    Field("interleave", "bool", True, "alternate repeats across backends/compute units (A B A B)"),
    Field(
        "dispatch_floor", "bool", True, "also time a tiny model on the same backend (call overhead)"
    ),
    Field("verify", "bool", True, "compare outputs with the fp32 reference executor"),
    Field("tolerance", "tolerance", None, "verify tolerances (fp16 defaults)"),
    Field("fp16_reference", "bool", False, "round each reference op to fp16"),
)

TOP_FIELDS = ("name", "description", "model", "run", "sweep")

# Run fields that decide *what* is measured (and so enter the case key). The rest
# only decide how long/how carefully we measure; runs that differ only in those
# stay comparable.
MEASURED_RUN_FIELDS = ("backends", "device", "compute_units", "concurrency", "fp16_reference")

# Model fields that do not change the built package (they enter no build key).
NON_BUILD_MODEL_FIELDS = ("input_ranges",)


def model_fields(family: str | None) -> tuple[Field, ...]:
    return COMMON_MODEL + FAMILY_FIELDS.get(family or "", ())


def by_name(fields: tuple[Field, ...]) -> dict[str, Field]:
    return {f.name: f for f in fields}
