"""The model a spec builds: one class per family, each owning its fields, its rules and its
weights (declared once: validation checks compression against them, the builder draws them).

`Model` is the union of the families, told apart by `family`.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal, get_args

from pydantic import Discriminator, Field, Tag, ValidationInfo, field_validator, model_validator

from anemll_spec.spec import compression
from anemll_spec.spec.base import Dtype, Rules, SpecModel, Target, WeightDecl
from anemll_spec.spec.compression import Compression
from anemll_spec.text import quoted

# Upper bounds keep a typo (an extra zero or three) from becoming an hour-long build or a
# MemoryError: far above any real LLM layer, far below what would exhaust a machine.
DIM_MAX = 1 << 20
Dim = Annotated[int, Field(gt=0, le=DIM_MAX)]
Tokens = Annotated[int, Field(gt=0, le=1 << 16)]
Count = Annotated[int, Field(gt=0, le=1024)]
Layout = Literal["conv", "linear"]
FP16_ROUNDS_TO_ZERO = 2.0**-25  # half the smallest float16 above 0: this and below are 0
CONV_HELP = "conv: conv 1x1 heads on (B,C,1,S), fed (B,S,C) like the published model | linear"


class ModelBase(SpecModel):
    """Fields every family has."""

    # model fields that do not change the built package (they enter no build key)
    NON_BUILD_FIELDS: ClassVar[frozenset[str]] = frozenset()

    family: str
    """what to build"""
    dtype: Dtype = "float16"
    """I/O dtype (weights are stored in compute_precision)"""
    compute_precision: Dtype | None = None
    """precision Core ML computes in (default: same as dtype)"""
    deployment_target: Target = "iOS18"
    """minimum deployment target"""
    compression: Compression = "none"
    """none | {palettize: {...}} | {quantize: {...}} (see README)"""
    seed: Annotated[int, Field(ge=0, le=2**32 - 1)] = 0
    """seed of the weights (same seed, byte-identical weights)"""
    weight_std: Annotated[float, Field(gt=0, le=100)] = 0.02
    """std of the N(0, std) weights"""
    batch: Annotated[int, Field(gt=0, le=4096)] = 1
    """batch size"""

    @model_validator(mode="before")
    @classmethod
    def _resolve_precision(cls, data: Any) -> Any:
        """compute_precision defaults to the dtype (resolved here, so keys see it)."""
        if isinstance(data, dict) and data.get("compute_precision") is None:
            dtype = data.get("dtype", "float16")
            if dtype in ("float16", "float32"):
                data = {**data, "compute_precision": dtype}
        return data

    @model_validator(mode="after")
    def _rules(self) -> ModelBase:
        rules = Rules()
        self.check_rules(rules)
        compression.check(rules, self.compression, self.deployment_target, self.weights())
        rules.check()
        return self

    def check_rules(self, rules: Rules) -> None:
        """The family's cross-field rules (run only once every field is valid)."""

    def weights(self) -> list[WeightDecl]:
        """Every weight the family builds, in build order."""
        return []

    def shapes(self) -> str:
        """The family's key shapes in one line (what `plan` shows)."""
        return "-"

    def int_ranges(self) -> dict[str, tuple[int, int]]:
        """Integer inputs -> the inclusive range the runner draws them from (others:
        [0, 1], model_io.synth_inputs)."""
        return {}

    def bandwidth_caveat(self) -> str | None:
        """Where GB/s (weight-file bytes / latency) is not the bytes a call reads: said
        on each case, so the figure is never read as more than it is."""
        return None

    @property
    def precision(self) -> Dtype:
        return self.compute_precision or self.dtype

    def build_fields(self) -> dict[str, Any]:
        """The resolved fields that make the package (what the build cache hashes)."""
        return self.model_dump(mode="json", exclude=set(self.NON_BUILD_FIELDS))

    def key_fields(self) -> dict[str, Any]:
        """What case and variant keys hash: the resolved fields (an external model swaps
        its path for its content)."""
        return self.to_json()

    def build_key_fields(self) -> dict[str, Any]:
        """What build keys hash: the build fields (an external model: its content)."""
        return self.build_fields()


class LmHead(ModelBase):
    family: Literal["lm_head"]
    hidden_size: Dim = 4096
    """input features"""
    vocab_size: Dim = 128256
    """output logits (split across chunks)"""
    chunks: Count = 8
    """number of heads the vocab is split into (ANE: rows <= 16384)"""
    layout: Annotated[Layout, Field(description=CONV_HELP)] = "conv"
    seq_len: Tokens = 1
    """tokens per call"""

    def check_rules(self, rules: Rules) -> None:
        v, c = self.vocab_size, self.chunks
        if v % c:
            rules.add(
                "chunks",
                f"vocab_size {v} does not split into {c} equal chunks ({v} % {c} = {v % c})",
            )

    def shapes(self) -> str:
        rows = self.vocab_size // self.chunks
        return (
            f"{self.hidden_size} -> {self.vocab_size} as {self.chunks} x {rows} "
            f"({self.layout}), seq {self.seq_len}, batch {self.batch}"
        )

    def weights(self) -> list[WeightDecl]:
        rows, c = self.vocab_size // self.chunks, self.chunks
        conv = self.layout == "conv"
        return [
            WeightDecl(f"lm_head{c}_{i}.weight", (rows, self.hidden_size), bias=not conv)
            for i in range(1, c + 1)
        ]


class Ffn(ModelBase):
    family: Literal["ffn"]
    hidden_size: Dim = 4096
    """model width"""
    intermediate_size: Dim = 14336
    """MLP width"""
    seq_len: Tokens = 1
    """tokens per call: 1 decode, e.g. 64 prefill"""
    rms_norm_eps: Annotated[float, Field(gt=0, le=1)] = 1e-5
    """RMSNorm epsilon"""
    layout: Annotated[Layout, Field(description=CONV_HELP)] = "conv"

    def check_rules(self, rules: Rules) -> None:
        if self.precision == "float16" and self.rms_norm_eps <= FP16_ROUNDS_TO_ZERO:
            rules.add(
                "rms_norm_eps",
                f"rms_norm_eps {self.rms_norm_eps:g} rounds to 0 in float16 (as does anything "
                f"<= {FP16_ROUNDS_TO_ZERO:.3g}), and 0 divides by zero on a zero input: "
                "compute_precision float32 keeps it",
            )

    def shapes(self) -> str:
        h, i = self.hidden_size, self.intermediate_size
        return f"{h} -> {i} -> {h} ({self.layout}), seq {self.seq_len}, batch {self.batch}"

    def weights(self) -> list[WeightDecl]:
        h, i, bias = self.hidden_size, self.intermediate_size, self.layout != "conv"
        return [
            WeightDecl("post_attention_layernorm.weight", (h,), compressible=False),
            WeightDecl("mlp.gate_proj.weight", (i, h), bias=bias),
            WeightDecl("mlp.up_proj.weight", (i, h), bias=bias),
            WeightDecl("mlp.down_proj.weight", (h, i), bias=bias),
        ]


class Attention(ModelBase):
    family: Literal["attention"]
    hidden_size: Dim = 4096
    """model width"""
    heads: Count = 32
    """query heads"""
    kv_heads: Count = 8
    """key/value heads (grouped-query attention)"""
    head_dim: Annotated[int, Field(gt=0, le=4096)] = 128
    """per-head width"""
    context_length: Annotated[int, Field(gt=0, le=1 << 18)] = 512
    """KV cache length (tokens)"""
    impl: Literal["sdpa", "matmul"] = "sdpa"
    """sdpa: scaled_dot_product_attention | matmul: matmul+softmax"""
    rope_theta: Annotated[float, Field(gt=0, le=1e12)] = 500000.0
    """rotary embedding base"""
    seq_len: Tokens = 1
    """tokens per call (a decode step is 1)"""

    def check_rules(self, rules: Rules) -> None:
        if self.heads % self.kv_heads:
            rules.add(
                "kv_heads", f"heads ({self.heads}) must be a multiple of kv_heads ({self.kv_heads})"
            )
        if self.seq_len > self.context_length:
            rules.add("seq_len", "seq_len must not exceed context_length")
        if self.deployment_target != "iOS18":
            rules.add("deployment_target", "attention uses a stateful KV cache, which needs iOS18")
        if self.head_dim % 2:
            rules.add("head_dim", f"head_dim ({self.head_dim}) must be even: RoPE rotates halves")

    def int_ranges(self) -> dict[str, tuple[int, int]]:
        """The step's position: its `seq_len` rows must fit the cache from there (at
        seq_len == context_length only position 0 does; [0, 1] read past the cache)."""
        return {"position": (0, min(1, self.context_length - self.seq_len))}

    def shapes(self) -> str:
        return (
            f"hidden {self.hidden_size}, {self.heads}/{self.kv_heads} heads x {self.head_dim}, "
            f"context {self.context_length} ({self.impl}), seq {self.seq_len}, batch {self.batch}"
        )

    def bandwidth_caveat(self) -> str | None:
        rope = 2 * self.context_length * self.head_dim * (2 if self.precision == "float16" else 4)
        kv = 2 * self.batch * self.kv_heads * self.context_length * self.head_dim * 2  # fp16
        # the tables stay dense under compression (coremltools' own pass, over 2048
        # elements, would compress them too): said, as they may be much of the file
        dense = ", dense under the compression" if self.compression != "none" else ""
        return (
            f"GB/s counts the weight file: the projections and the whole RoPE tables "
            f"({rope / 1e6:.3g} MB{dense}, of which a call reads {self.seq_len} row(s)), not "
            f"the {kv / 1e6:.3g} MB fp16 KV cache each call reads"
        )

    def weights(self) -> list[WeightDecl]:
        q, kv, h = self.heads * self.head_dim, self.kv_heads * self.head_dim, self.hidden_size
        return [
            WeightDecl("self_attn.q_proj.weight", (q, h)),
            WeightDecl("self_attn.k_proj.weight", (kv, h)),
            WeightDecl("self_attn.v_proj.weight", (kv, h)),
            WeightDecl("rope.cos", (self.context_length, self.head_dim), compressible=False),
            WeightDecl("rope.sin", (self.context_length, self.head_dim), compressible=False),
            WeightDecl("self_attn.o_proj.weight", (h, q)),
        ]


class Matmul(ModelBase):
    family: Literal["matmul"]
    m: Dim = 4096
    """rows of x (an input)"""
    k: Dim = 4096
    """shared dimension"""
    n: Dim = 4096
    """columns of the weight (a constant)"""

    def check_rules(self, rules: Rules) -> None:
        if self.batch != 1:  # the builder draws x as (m, k): a batch would change nothing
            rules.add(
                "batch",
                f"matmul has no batch dimension: fold batch {self.batch} into m (the rows of x)",
            )

    def shapes(self) -> str:
        return f"({self.m} x {self.k}) @ ({self.k} x {self.n})"

    def weights(self) -> list[WeightDecl]:
        return [WeightDecl("matmul.weight", (self.k, self.n), out_axis=1)]


Range = Annotated[list[int], Field(min_length=2, max_length=2)]
# ModelBase fields that only a builder uses: an external model refuses them where set to
# anything but their default (they changed every key while describing nothing of the file)
_BUILT_ONLY = ("dtype", "compute_precision", "deployment_target", "batch", "weight_std")
_DEFAULTS = {name: ModelBase.model_fields[name].default for name in _BUILT_ONLY}


class External(ModelBase):
    NON_BUILD_FIELDS: ClassVar[frozenset[str]] = frozenset({"input_ranges"})

    family: Literal["external"]
    path: str
    """.mlpackage or .mlmodelc, relative to the spec file"""
    input_ranges: dict[str, Range] = {}
    """integer inputs: name -> [low, high] (inclusive; default [0, 1])"""

    @field_validator("path")
    @classmethod
    def _exists(cls, value: str, info: ValidationInfo) -> str:
        if not value:
            raise ValueError("must be a path string")
        try:
            p = Path(value).expanduser()
        except RuntimeError:  # `~name/...` for a user this machine does not have
            user = value.split("/", 1)[0]
            raise ValueError(
                f"cannot expand {quoted(user)}: no such user (~/ is your home)"
            ) from None
        if not p.is_absolute():
            p = Path((info.context or {}).get("base", ".")) / p
        if p.suffix not in (".mlpackage", ".mlmodelc"):
            raise ValueError(f"must be a .mlpackage or .mlmodelc, got {p.name or str(p)!r}")
        try:
            if not p.exists():
                raise ValueError(f"no such model: {p}")
            if not p.is_dir():  # both forms are folders
                raise ValueError(f"{p}: a {p.suffix} is a folder, this is a file")
            if p.suffix == ".mlpackage" and not (p / "Manifest.json").is_file():
                raise ValueError(f"{p}: not an .mlpackage (Manifest.json missing)")
            return str(p.parent.resolve() / p.name)  # a link's own suffix: what Core ML sees
        except (OSError, RuntimeError) as exc:  # a name too long, a symlink loop: unusable
            raise ValueError(
                f"cannot use this path: {getattr(exc, 'strerror', None) or exc}"
            ) from None

    def int_ranges(self) -> dict[str, tuple[int, int]]:
        return {name: (low, high) for name, (low, high) in self.input_ranges.items()}

    def key_fields(self) -> dict[str, Any]:
        """The path swapped for the package's content: the same package in another folder,
        or on another Mac, keys (and pairs in `compare`) as the same model."""
        return _by_content(self.to_json(), self.path)

    def build_key_fields(self) -> dict[str, Any]:
        return _by_content(self.build_fields(), self.path)

    def check_rules(self, rules: Rules) -> None:
        if self.compression != "none":
            rules.add(
                "compression", "compression applies to built families, not to an external model"
            )
        for name in _BUILT_ONLY:  # they describe what a builder makes, not the user's file
            # compute_precision defaults to the dtype (a dtype set is reported at dtype)
            default = self.dtype if name == "compute_precision" else _DEFAULTS[name]
            if getattr(self, name) != default:
                rules.add(
                    name,
                    f"{name} applies to built families; an external model's own dtype, "
                    "target and shapes are used",
                )
        if not self.input_ranges:  # else it names the model's inputs: read them (not its weights)
            return
        import numpy as np

        from anemll_spec.text import did_you_mean

        # Each range names an integer input and fits its dtype (a value beyond it wrapped
        # silently when the inputs were cast; a float input's range was ignored).
        inputs = _input_dtypes(self.path)  # None: unreadable, and bench's preflight says why
        for name, (low, high) in self.input_ranges.items():
            where = ("input_ranges", name)
            if low > high:
                rules.add(where, f"must be [low, high] with low <= high, got {[low, high]}")
            if inputs is None:
                continue
            if name not in inputs:
                hint = did_you_mean(name, list(inputs))
                rules.add(where, f"the model has no input {name!r}{hint}")
            elif np.dtype(inputs[name]).kind not in "iu":
                rules.add(
                    where,
                    f"input {name!r} is {inputs[name]}: ranges apply to integer inputs "
                    "(a float input is drawn from N(0, 1))",
                )
            else:
                info = np.iinfo(np.dtype(inputs[name]))
                if low < info.min or high > info.max:
                    rules.add(
                        where,
                        f"must lie within {inputs[name]} [{info.min}, {info.max}], "
                        f"got {[low, high]}",
                    )


def _by_content(fields: dict[str, Any], path: str) -> dict[str, Any]:
    from anemll_spec.spec.content import content_sha256

    out = {k: v for k, v in fields.items() if k != "path"}
    out["content_sha256"] = content_sha256(path)
    return out


@functools.lru_cache(maxsize=64)
def _input_dtypes(path: str) -> dict[str, str] | None:
    """An external model's inputs, name -> dtype (None: unreadable), read once per path
    and process: every sweep point of a spec validates its model again."""
    from anemll_spec.errors import InputError
    from anemll_spec.model_io import describe

    try:
        return {t.name: t.dtype for t in describe(path).inputs}
    except InputError:
        return None


FAMILIES: dict[str, type[ModelBase]] = {
    get_args(cls.model_fields["family"].annotation)[0]: cls
    for cls in (LmHead, Ffn, Attention, Matmul, External)
}
BUILT_FAMILIES = tuple(name for name in FAMILIES if name != "external")


def _family(value: Any) -> str | None:
    family = value.get("family") if isinstance(value, dict) else getattr(value, "family", None)
    return family if isinstance(family, str) else None


Model = Annotated[
    Annotated[LmHead, Tag("lm_head")]
    | Annotated[Ffn, Tag("ffn")]
    | Annotated[Attention, Tag("attention")]
    | Annotated[Matmul, Tag("matmul")]
    | Annotated[External, Tag("external")],
    Discriminator(_family),
]
