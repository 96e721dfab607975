"""What building gives back: the built package (`Built`) and what building would take
(`Estimate`). Their own module, so the family builders and `external` can return them
without importing the builder package (no import cycle)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class Built:
    path: Path
    key: str
    weight_bytes: int
    flops: int
    build_s: float
    cached: bool
    weights_sha256: str
    warnings: list[str] = field(default_factory=list)

    def to_json(self) -> dict:
        return {
            "path": str(self.path),
            "key": self.key,
            "weight_bytes": self.weight_bytes,
            "flops": self.flops,
            "build_s": round(self.build_s, 3),
            "cached": self.cached,
            "weights_sha256": self.weights_sha256,
            "warnings": self.warnings,
        }


@dataclass
class Estimate:
    weight_bytes: int
    flops: int
    build_peak_bytes: int
    warnings: list[str]
    tensors: int = 0  # weights, inputs, outputs and states: each costs the program bytes

    def to_json(self) -> dict:
        return {
            "weight_bytes": self.weight_bytes,
            "flops": self.flops,
            "build_peak_bytes": self.build_peak_bytes,
            "warnings": self.warnings,
        }
