"""A case: one fully resolved model + run configuration, with stable keys."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from functools import cached_property
from typing import Any

from anemll_spec.hashing import canonical_json, digest
from anemll_spec.spec.base import COMPUTE_UNIT_BACKENDS
from anemll_spec.spec.compression import Palettize, config
from anemll_spec.spec.families import ModelBase
from anemll_spec.spec.run_section import MEASURED_RUN_FIELDS, Run

# The published anemll-bench models, as resolved model fields. A case whose fields equal
# one of these is the same model, and only then comparable.
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


def published_model(model: ModelBase) -> str | None:
    """The published model this case reproduces exactly, if any."""
    fields = model.to_json()
    for name, published in PUBLISHED_MODELS.items():
        if all(fields.get(k) == v for k, v in published.items()):
            return name
    return None


def compression_label(model: ModelBase) -> str:
    """A short name for a compression form: lut6/g8, lut4-uniform, int4/b32, none."""
    cfg = config(model.compression)
    if cfg is None:
        return "none"
    if isinstance(cfg, Palettize):
        label = f"lut{cfg.nbits}"
        label += f"/g{cfg.group_size}" if cfg.granularity == "per_grouped_channel" else ""
        return label + ("-uniform" if cfg.mode == "uniform" else "")
    return cfg.dtype + (f"/b{cfg.block_size}" if cfg.granularity == "per_block" else "")


@dataclass(frozen=True)
class Case:
    spec_name: str
    index: int  # position in the spec's expansion
    model: ModelBase
    run: Run
    params: dict[str, Any] = field(default_factory=dict)  # this case's swept values

    @cached_property
    def key(self) -> str:
        """What is measured: model fields + measurement-relevant run fields.

        Iteration counts and time budgets are left out on purpose: a run with more
        iterations measures the same thing, and stays comparable.
        """
        return digest({"model": self.model.key_fields(), "run": self.run.measured()})

    @cached_property
    def build_key(self) -> str:
        return digest(self.model.build_key_fields())

    def with_backend(self, backend: str | None) -> Case:
        """This case measured on `backend` instead of the spec's backends (`--backend`):
        a case of its own, whose key says what was measured."""
        if not backend:
            return self
        return replace(self, run=self.run.model_copy(update={"backends": [backend]}))

    def variant_key(self, backend: str, compute_units: str | None, device: str | None) -> str:
        """Key of one measured variant: the model, the resolved backend, compute unit and
        device, and how it runs. Not the spec's backend/compute-unit lists: the same
        variant measured by a spec that lists more (or by `--backend`) stays comparable."""
        how = {"concurrency": self.run.concurrency, "fp16_reference": self.run.fp16_reference}
        how.update({k: v for k, v in self.run.measured().items() if k not in MEASURED_RUN_FIELDS})
        variant = {"backend": backend, "cu": compute_units, "device": device, **how}
        return digest({"model": self.model.key_fields(), "variant": variant})

    @property
    def model_name(self) -> str:
        """The published model's name where the case is one (views pair on it), else the
        spec's name with the sweep's values."""
        return published_model(self.model) or self._with_params(self.spec_name)

    @property
    def label(self) -> str:
        """How the case is shown: its model name, with the sweep's values even where it is
        a published model (four sweep points that are each `llama_lm_head` looked alike)."""
        return self._with_params(published_model(self.model) or self.spec_name)

    def _with_params(self, name: str) -> str:
        if not self.params:
            return name
        inner = ",".join(f"{k.split('.')[-1]}={self._short(k, v)}" for k, v in self.params.items())
        return f"{name}[{inner}]"

    def _short(self, path: str, value: Any) -> str:
        if path == "model.compression":
            return compression_label(self.model)
        if isinstance(value, list):
            return "+".join(map(str, value))
        if isinstance(value, dict):
            return canonical_json(value)
        return str(value)

    def variants(self) -> list[tuple[str, str | None]]:
        """(backend, compute unit) pairs; compute units apply to coreml only."""
        units = self.run.compute_units
        return [
            (b, cu)
            for b in self.run.backends
            for cu in (units if b in COMPUTE_UNIT_BACKENDS else [None])
        ]

    def to_json(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "key": self.key,
            "build_key": self.build_key,
            "model_name": self.model_name,
            "params": self.params,
            "model": self.model.to_json(),
            "run": self.run.to_json(),
        }
