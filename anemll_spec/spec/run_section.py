"""The spec's `run` section: where a model runs and how long and how carefully it is timed."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import Field, ValidationInfo, field_validator, model_validator

from anemll_spec.spec.base import Rules, SpecModel, listed, repeats
from anemll_spec.text import brief
from anemll_spec.vocab import BackendName, ComputeUnit, Instances, TorchDevice

# Run fields that decide *what* is measured (and so enter the case key). The rest only
# decide how long and how carefully; runs that differ only in those stay comparable.
MEASURED_RUN_FIELDS = ("backends", "device", "compute_units", "concurrency", "fp16_reference")
# Measured too, but added later: they enter a key only when set to something other than
# their default, so every key made before them stays what it was.
MEASURED_IF_SET = {"instances": "shared", "duration_s": None}

Seconds = Annotated[float, Field(ge=0, le=86_400)]
Share = Annotated[float, Field(ge=0, le=1)]


class Tolerance(SpecModel):
    """How close outputs must be to the reference executor's fp32 result (fp16 defaults)."""

    max_abs_error: Annotated[float, Field(ge=0)] = 0.05
    """max |out - ref| over all outputs"""
    rel_l2_error: Annotated[float, Field(ge=0)] = 0.01
    """||out - ref|| / ||ref||"""
    min_cosine: Share = 0.999
    """cosine similarity of flattened outputs"""
    min_top1_agreement: Share = 1.0
    """share of positions with the same argmax (LM heads)"""


class Run(SpecModel):
    backends: Annotated[list[BackendName], Field(min_length=1)] = ["auto"]
    """where to run: auto = coreml if available else numpy"""
    device: TorchDevice = "auto"
    """torch device"""
    compute_units: Annotated[list[ComputeUnit], Field(min_length=1)] = ["CPU_AND_NE"]
    """Core ML compute units (coreml backend)"""
    warmup: Annotated[int, Field(ge=0, le=1_000_000)] = 20
    """untimed calls before timing (warm-up never runs longer than max_time_s)"""
    warmup_s: Seconds = 0.0
    """and warm up for at least this long (seconds)"""
    iterations: Annotated[int, Field(gt=0, le=1_000_000)] = 300
    """timed calls (at most)"""
    min_iterations: Annotated[int, Field(gt=0, le=1_000_000)] = 10
    """timed calls (at least, even past max_time_s; capped at iterations)"""
    max_time_s: Annotated[float, Field(gt=0, le=86_400)] = 120.0
    """stop timing after this long (seconds)"""
    target_ci_pct: Annotated[float, Field(gt=0, le=100)] | None = None
    """stop once the 95% CI of the median is within +-this % (null: off)"""
    cooldown_s: Seconds = 0.0
    """sleep between cases, and between the variants of a sustained case (seconds)"""
    concurrency: Annotated[int, Field(gt=0, le=64)] = 1
    """model instances run at once"""
    interleave: bool = True
    """alternate repeats across backends/compute units (A B A B)"""
    dispatch_floor: bool = True
    """also time a tiny model on the same backend (call overhead)"""
    verify: bool = True
    """compare outputs with the fp32 reference executor"""
    tolerance: Tolerance = Tolerance()
    """verify tolerances (fp16 defaults)"""
    fp16_reference: bool = False
    """round each reference-executor op to fp16 (the numpy and torch backends run, and are
    timed, that way too)"""
    instances: Instances = "shared"
    """with concurrency > 1: shared = every instance loads the one compiled model; distinct =
    each its own weights (seed + k), so Core ML can share nothing between them"""
    duration_s: Annotated[float, Field(gt=0, le=86_400)] | None = None
    """sustained run: time in windows for this long (e.g. 600) instead of `iterations`"""
    window_s: Annotated[float, Field(ge=0.001, le=3_600)] = 10.0
    """a sustained run's window length (seconds; SoC energy counters want >= 10)"""
    power: bool = True
    """read the energy counters around the timed calls where the platform allows"""
    energy_s: Seconds = 10.0
    """an energy reading covers at least this many seconds of calls (SoC counters want >= 10):
    where the timed loop is shorter, or variants were interleaved (a chip-wide counter
    cannot split their calls), it is read over a separate pass of back-to-back calls after
    timing; 0: no such pass"""

    @field_validator("backends", "compute_units", mode="before")
    @classmethod
    def _one_is_a_list(cls, value: Any) -> Any:
        """`compute_units: CPU_ONLY` means [CPU_ONLY] (and so for backends)."""
        return [value] if isinstance(value, str) else value

    @field_validator("backends", "compute_units")
    @classmethod
    def _once_each(cls, values: list[str]) -> list[str]:
        """A value listed twice would be measured twice under one key: said where it is."""
        rules = Rules()
        for i, _, times in repeats(values):
            rules.add((i,), listed(brief(values[i]), times))
        rules.check()
        return values

    @model_validator(mode="after")
    def _rules(self, info: ValidationInfo) -> Run:
        rules = Rules()
        if self.instances == "distinct" and (info.context or {}).get("family") == "external":
            # the family comes from the document, so this holds even where the model is bad
            rules.add(
                "instances",
                "distinct instances get their own seeded weights; an external model can only "
                "run shared",
            )
        if self.warmup_s > self.max_time_s:  # the harness stops warming up at max_time_s
            rules.add(
                "warmup_s",
                f"warmup_s ({self.warmup_s:g}) exceeds max_time_s ({self.max_time_s:g}), which "
                "caps the warm-up: raise max_time_s or lower warmup_s",
            )
        if self.duration_s is not None and self.duration_s < 2 * self.window_s:
            rules.add(
                "duration_s",
                f"duration_s ({self.duration_s:g}) must hold two windows of window_s "
                f"({self.window_s:g}): a sustained run compares its first and last window",
            )
        if self.duration_s is not None and self.concurrency > 1:
            rules.add(
                "concurrency",
                "a sustained run (duration_s) times one instance: concurrency must be 1",
            )
        if "min_iterations" in self.model_fields_set and self.min_iterations > self.iterations:
            # given both, the user expects both to hold; alone, the default is capped
            rules.add(
                "min_iterations",
                f"min_iterations ({self.min_iterations}) exceeds iterations ({self.iterations})",
            )
        rules.check()
        return self

    def settings(self) -> dict[str, Any]:
        """The resolved section as it acts: `instances` applies with concurrency > 1 only
        (one instance, distinct or shared, is the same one model), so at 1 it reads as the
        default. Two sweep points with equal settings are one case."""
        values = self.to_json()
        if self.concurrency == 1:
            values["instances"] = MEASURED_IF_SET["instances"]
        return values

    def measured(self) -> dict[str, Any]:
        """The fields that decide what is measured, as the case key hashes them."""
        values = self.settings()
        out = {k: values[k] for k in MEASURED_RUN_FIELDS}
        out.update({k: values[k] for k, d in MEASURED_IF_SET.items() if values[k] != d})
        if self.duration_s is not None:
            out["window_s"] = self.window_s
        return out
