"""Weight compression as the spec declares it: `none`, {palettize: {...}} or {quantize: {...}},
and the rules of what Core ML can express (checked once, here; the builder trusts them)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, Any, ClassVar, Literal

from pydantic import BeforeValidator, Discriminator, Field, Tag, model_validator
from pydantic_core import PydanticKnownError

from anemll_spec.spec.base import TARGET_VERSION, Rules, SpecModel, WeightDecl

SIZE_MAX = 1 << 20


def _integer(value: Any) -> Any:
    """pydantic matches `true` to Literal[1] (and 4.0 to 4) even in strict mode."""
    if isinstance(value, bool | float):
        raise PydanticKnownError("int_type")
    return value


class _Sized(SpecModel):
    SIZE: ClassVar[tuple[str, str]]  # the size field, the one granularity that uses it

    @model_validator(mode="before")
    @classmethod
    def _unused_at_default(cls, data: Any) -> Any:
        """A size the chosen granularity does not use is held at its default: it would give
        one package two keys (and `group_size: 16` with per_tensor is sweepable that way)."""
        field, used_with = cls.SIZE
        default = cls.model_fields["granularity"].default
        if isinstance(data, dict) and data.get("granularity", default) != used_with:
            value = data.get(field)
            valid = type(value) is int and 0 < value <= SIZE_MAX  # else its problem is reported
            return {k: v for k, v in data.items() if k != field or not valid}
        return data


class Palettize(_Sized):
    SIZE = ("group_size", "per_grouped_channel")
    nbits: Annotated[Literal[1, 2, 3, 4, 6, 8], BeforeValidator(_integer)]
    """bits per index"""
    granularity: Literal["per_tensor", "per_grouped_channel"] = "per_tensor"
    """LUT sharing"""
    group_size: Annotated[int, Field(gt=0, le=SIZE_MAX)] = 8
    """output channels per LUT (per_grouped_channel)"""
    mode: Literal["kmeans", "uniform"] = "kmeans"
    """how the LUT is found"""


class Quantize(_Sized):
    SIZE = ("block_size", "per_block")
    dtype: Literal["int8", "int4"]
    """weight dtype"""
    granularity: Literal["per_channel", "per_block"] = "per_channel"
    """scale sharing"""
    block_size: Annotated[int, Field(gt=0, le=SIZE_MAX)] = 32
    """input channels per scale (per_block)"""


class PalettizeForm(SpecModel):
    palettize: Palettize


class QuantizeForm(SpecModel):
    quantize: Quantize


FORMS = ("palettize", "quantize")


def _form(value: Any) -> str | None:
    """Which form a compression value is: the discriminator of the union."""
    if value == "none":
        return "none"
    if isinstance(value, dict) and len(value) == 1:
        (key,) = value
        return key if key in FORMS else None
    if isinstance(value, PalettizeForm | QuantizeForm):
        return next(iter(type(value).model_fields))
    return None


Compression = Annotated[
    Annotated[Literal["none"], Tag("none")]
    | Annotated[PalettizeForm, Tag("palettize")]
    | Annotated[QuantizeForm, Tag("quantize")],
    Discriminator(
        _form,
        custom_error_type="compression_form",
        custom_error_message="must be 'none', {palettize: {...}} or {quantize: {...}}",
    ),
]


def config(compression: Compression) -> Palettize | Quantize | None:
    """The palettize or quantize settings, or None for `none`."""
    if isinstance(compression, PalettizeForm):
        return compression.palettize
    if isinstance(compression, QuantizeForm):
        return compression.quantize
    return None


def describe(compression: Compression) -> str:
    """One line for people: 'palettize 6-bit kmeans (groups of 8)'."""
    cfg = config(compression)
    if isinstance(cfg, Palettize):
        text = f"palettize {cfg.nbits}-bit {cfg.mode}"
        grouped = cfg.granularity == "per_grouped_channel"
        return text + (f" (groups of {cfg.group_size})" if grouped else "")
    if isinstance(cfg, Quantize):
        text = f"quantize {cfg.dtype} {cfg.granularity}"
        return text + (f" (blocks of {cfg.block_size})" if cfg.granularity == "per_block" else "")
    return "none"


def check(
    rules: Rules, compression: Compression, target: str, weights: Sequence[WeightDecl]
) -> None:
    """Compression forms exist only from certain deployment targets on, and group/block
    sizes must divide the channels of every weight they apply to."""
    cfg = config(compression)
    if cfg is None:
        return
    old = TARGET_VERSION[target] < 18
    if isinstance(cfg, Palettize):
        where = ("compression", "palettize")
        if cfg.granularity == "per_grouped_channel" and old:
            rules.add(
                (*where, "granularity"), "per_grouped_channel LUTs need deployment_target iOS18"
            )
        if cfg.nbits == 3 and old:
            rules.add((*where, "nbits"), "3-bit LUTs need deployment_target iOS18")
        if cfg.granularity == "per_grouped_channel":
            _divides(rules, (*where, "group_size"), cfg.group_size, weights, "output")

    else:
        where = ("compression", "quantize")
        if (cfg.dtype == "int4" or cfg.granularity == "per_block") and old:
            rules.add(where, "int4 and per_block quantization need deployment_target iOS18")
        if cfg.granularity == "per_block":
            _divides(rules, (*where, "block_size"), cfg.block_size, weights, "input")


def _divides(
    rules: Rules, field: tuple[str, ...], size: int, weights: Sequence[WeightDecl], what: str
) -> None:
    """LUTs are shared by groups of output channels, scales by blocks of input channels."""
    channels = (w.out_channels if what == "output" else w.in_channels for w in weights)
    bad = sorted({c for c, w in zip(channels, weights, strict=True) if w.compressible and c % size})
    if bad:
        rules.add(
            field,
            f"{field[-1]} {size} does not divide the {what} channels of every weight "
            f"({', '.join(map(str, bad))})",
        )
