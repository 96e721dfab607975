"""A case: one fully resolved model + run configuration, with stable keys."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field

from anemll_spec.spec.schema import MEASURED_RUN_FIELDS, NON_BUILD_MODEL_FIELDS

# The published anemll-bench models, as resolved model fields. A case whose build
# fields equal one of these is the same model, and only then comparable.
_LLAMA_LM_HEAD = {
    "family": "lm_head",
    "hidden_size": 4096,
    "vocab_size": 128256,
    "chunks": 8,
    "layout": "conv",
    "seq_len": 1,
    "batch": 1,
    "dtype": "float16",
    "compute_precision": "float16",
    "deployment_target": "iOS18",
    "compression": "none",
}
_LUT6 = {
    "palettize": {
        "nbits": 6,
        "granularity": "per_grouped_channel",
        "group_size": 8,
        "mode": "kmeans",
    }
}
PUBLISHED_MODELS = {
    "llama_lm_head": _LLAMA_LM_HEAD,
    "llama_lm_head_lut6": {**_LLAMA_LM_HEAD, "compression": _LUT6},
}


def canonical_json(value) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)


def digest(value, n: int = 16) -> str:
    return hashlib.sha256(canonical_json(value).encode()).hexdigest()[:n]


def published_model(model: dict) -> str | None:
    """The published model this case reproduces exactly, if any."""
    for name, fields in PUBLISHED_MODELS.items():
        if all(model.get(k) == v for k, v in fields.items()):
            return name
    return None


@dataclass(frozen=True)
class Case:
    spec_name: str
    index: int
    model: dict
    run: dict
    params: dict = field(default_factory=dict)

    @property
    def build_fields(self) -> dict:
        return {k: v for k, v in self.model.items() if k not in NON_BUILD_MODEL_FIELDS}

    @property
    def key(self) -> str:
        """What is measured: model fields + measurement-relevant run fields.

        Iteration counts and time budgets are left out on purpose: a run with more
        iterations measures the same thing, and stays comparable.
        """
        measured = {k: self.run[k] for k in MEASURED_RUN_FIELDS}
        return digest({"model": self.model, "run": measured})

    @property
    def build_key(self) -> str:
        return digest(self.build_fields)

    def variant_key(self, backend: str, compute_units: str | None, device: str | None) -> str:
        """Key of one measured variant: the model, the resolved backend, compute unit and
        device, and how it runs. Not the spec's backend/compute-unit lists: the same
        variant measured by a spec that lists more (or by `--backend`) stays comparable."""
        how = {k: self.run[k] for k in ("concurrency", "fp16_reference")}
        variant = {"backend": backend, "cu": compute_units, "device": device, **how}
        return digest({"model": self.model, "variant": variant})

    @property
    def model_name(self) -> str:
        published = published_model(self.model)
        if published:
            return published
        if not self.params:
            return self.spec_name
        inner = ",".join(f"{k.split('.')[-1]}={_short(v)}" for k, v in self.params.items())
        return f"{self.spec_name}[{inner}]"

    def variants(self) -> list[tuple[str, str | None]]:
        """(backend, compute unit) pairs; compute units apply to coreml only."""
        out: list[tuple[str, str | None]] = []
        for backend in self.run["backends"]:
            if backend in ("coreml", "auto"):
                out += [(backend, cu) for cu in self.run["compute_units"]]
            else:
                out.append((backend, None))
        return out

    def to_json(self) -> dict:
        return {
            "index": self.index,
            "key": self.key,
            "build_key": self.build_key,
            "model_name": self.model_name,
            "params": self.params,
            "model": self.model,
            "run": self.run,
        }


def _short(value) -> str:
    if isinstance(value, list):
        return "+".join(map(str, value))
    if isinstance(value, dict):
        return canonical_json(value)
    return str(value)
