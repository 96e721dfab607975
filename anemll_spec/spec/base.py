"""What every spec model shares: strict, frozen pydantic models; the spec's vocabulary;
cross-field rules that report every problem at once.

Strict means a YAML string "4096" or `true` is not an int and `1` is not a bool: a spec
says what it means. Frozen means a resolved case never changes after validation, so the
keys computed from it stay true.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict
from pydantic_core import PydanticCustomError

from anemll_spec.hashing import canonical_json
from anemll_spec.vocab import (  # noqa: F401 - the spec's vocabulary, re-exported
    COMPUTE_UNIT_BACKENDS,
    TARGET_VERSION,
    BackendName,
    ComputeUnit,
    Dtype,
    Target,
    TorchDevice,
)


class SpecModel(BaseModel):
    """Base of every spec section: strict types, unknown keys refused, immutable."""

    model_config = ConfigDict(
        strict=True, frozen=True, extra="forbid", allow_inf_nan=False, use_attribute_docstrings=True
    )

    def to_json(self) -> dict[str, Any]:
        """The resolved section as plain JSON values (what keys and the store see)."""
        return self.model_dump(mode="json")


@dataclass(frozen=True)
class WeightDecl:
    """One weight a family builds: declared once, read by validation (compression group
    and block sizes must divide its channels) and by the builder (what to draw)."""

    name: str
    shape: tuple[int, ...]
    compressible: bool = True  # projections; norm weights and RoPE tables stay dense
    bias: bool = False  # mb.linear always stores a bias (zeros) next to its weight
    out_axis: int = 0  # output-channel axis (matmul's const y is (k, n): axis 1)

    @property
    def out_channels(self) -> int:
        return self.shape[self.out_axis]

    @property
    def in_channels(self) -> int:
        return self.shape[1 - self.out_axis] if len(self.shape) > 1 else 1


def repeats(values: list) -> list[tuple[int, int, int]]:
    """Every value listed before, each time it is listed again: (its index, the first
    one's index, how many times it is listed). 1 and 1.0 differ, as in the model."""
    first: dict[str, int] = {}
    times: dict[str, int] = {}
    later: list[tuple[int, str]] = []
    for i, v in enumerate(values):
        typed = canonical_json([type(v).__name__, v])
        times[typed] = times.get(typed, 0) + 1
        if typed in first:
            later.append((i, typed))
        first.setdefault(typed, i)
    return [(i, first[typed], times[typed]) for i, typed in later]


def listed(value: str, times: int, first: str | None = None) -> str:
    """'2 is listed twice', 'TRUE (the same as true) is listed 3 times': a repeated
    value as the spec wrote it, and as it was written first where that differs."""
    same = f" (the same as {first})" if first is not None and first != value else ""
    return f"{value}{same} is listed {'twice' if times == 2 else f'{times} times'}"


class Rules:
    """Collects a model's cross-field problems, then raises them together.

    Each problem names the field it is about (a path below the model), so the error points
    at that field's line, not at the section."""

    def __init__(self) -> None:
        self.problems: list[tuple[tuple[str | int, ...], str]] = []

    def add(self, field: str | tuple[str | int, ...], message: str) -> None:
        self.problems.append(((field,) if isinstance(field, str) else field, message))

    def check(self) -> None:
        if self.problems:
            raise PydanticCustomError(
                "spec_rules",
                "{detail}",
                {"detail": "; ".join(m for _, m in self.problems), "problems": self.problems},
            )
