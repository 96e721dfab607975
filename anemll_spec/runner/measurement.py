"""What one variant measures, kept apart from what came out of measuring it
(torch.utils.benchmark keeps TaskSpec apart from Measurement the same way).

`Variant` is frozen: the case on one backend and compute unit. `Measurement` collects
the outcome stage by stage (build, open, time, floor, energy). Both expose their figures
under the names the store declares for them, so the store makes its rows from the
schema's column list (store.rows.row_from) and no column name is spelled out here.
"""

from __future__ import annotations

from dataclasses import MISSING, dataclass, field, fields
from typing import Any

import numpy as np

from anemll_spec import stats
from anemll_spec.spec import Case
from anemll_spec.verify import Verdict


@dataclass(frozen=True)
class Variant:
    """One variant of a case: what is measured (docs/architecture.md, "Words"). The
    device (torch) is resolved when the session opens, so it is kept on the Measurement,
    and the variant key takes it from there."""

    case: Case
    backend: str  # resolved: coreml | numpy | torch
    compute_units: str | None  # Core ML only

    @property
    def label(self) -> str:
        return self.backend + (f"/{self.compute_units}" if self.compute_units else "")

    # -- under the store's names
    @property
    def case_key(self) -> str:
        return self.case.key

    @property
    def case_index(self) -> int:
        return self.case.index

    @property
    def model_name(self) -> str:
        return self.case.model_name

    @property
    def params(self) -> dict:
        return self.case.params

    @property
    def model_family(self) -> str:
        return self.case.model.family

    @property
    def build_key(self) -> str:
        return self.case.build_key

    @property
    def concurrency(self) -> int:
        return self.case.run.concurrency

    @property
    def instances(self) -> str | None:
        return self.case.run.instances if self.case.run.concurrency > 1 else None


@dataclass
class Measurement:
    """What came out of measuring one variant; filled in by the stages, in order."""

    variant: Variant
    status: str = "ok"  # ok | failed
    error: str | None = None
    device: str | None = None  # torch's resolved device
    built: Any = None  # build.Built
    phases_ms: dict[str, float | None] = field(default_factory=dict)
    wall_ns: np.ndarray | None = None  # per-call latency
    starts_ns: np.ndarray | None = None  # when each call started
    runtime_ns: np.ndarray | None = None  # the runtime's own duration (NaN: unknown)
    window_of: np.ndarray | None = None  # each sample's sustained window
    summary: stats.Summary | None = None
    timing: Any = None  # harness.Timing (warm-up, stop rule)
    throughput_ips: float | None = None
    verdict: Verdict | None = None
    placements: list[dict] = field(default_factory=list)
    dispatch_floor_ms: float | None = None
    dispatch_floor_after: int | None = None  # the case (index) the floor was timed after
    compile_cached: bool | None = None
    energy: Any = None  # power.Energy | power.Unavailable | None (not read)
    reading_calls: int | None = None  # the calls the energy reading covers (its divisor)
    energy_t0_ns: int | None = None  # perf_counter_ns the power timeline counts from
    sustained: Any = None  # sustained.Sustained
    interrupted: bool = False  # Ctrl-C ended it early: stored as far as it got, then the run stops
    notes: list[str] = field(default_factory=list)
    case_id: str | None = None
    factors: dict | None = None  # store.factors.for_run's row for this case

    def fail(self, error: str) -> None:
        """The first error wins: it is the cause, what follows is a consequence."""
        self.status = "failed"
        self.error = self.error or error

    def note(self, text: str) -> None:
        if text not in self.notes:
            self.notes.append(text)

    # what a failed case keeps when its figures cannot be stored: what it is, why it
    # failed, and the facts about how it got there (build, device, phase times)
    KEPT_ON_DISCARD = frozenset(
        {"variant", "status", "error", "device", "built", "phases_ms", "compile_cached",
         "notes", "case_id"}
    )  # fmt: skip

    def discard_figures(self) -> None:
        """Every measured figure back to its default (a field added later included)."""
        for f in fields(self):
            if f.name not in self.KEPT_ON_DISCARD:
                fresh = f.default_factory() if f.default_factory is not MISSING else f.default
                setattr(self, f.name, fresh)

    # -- under the store's names
    @property
    def n_samples(self) -> int:
        return 0 if self.wall_ns is None else len(self.wall_ns)

    @property
    def model_sha256(self) -> str | None:
        return getattr(self.built, "weights_sha256", None)

    @property
    def weight_bytes(self) -> int | None:
        return getattr(self.built, "weight_bytes", None)

    @property
    def flops(self) -> int | None:
        return getattr(self.built, "flops", None)

    @property
    def build_cached(self) -> bool | None:
        return getattr(self.built, "cached", None)

    @property
    def build_ms(self) -> float | None:
        return self.phases_ms.get("build")

    @property
    def compile_ms(self) -> float | None:
        return self.phases_ms.get("compile")

    @property
    def load_ms(self) -> float | None:
        return self.phases_ms.get("load")

    @property
    def first_predict_ms(self) -> float | None:
        return self.phases_ms.get("first_predict")

    @property
    def bandwidth_gbps(self) -> float | None:
        if self.summary is None:
            return None
        return stats.bandwidth_gbps(self.weight_bytes, self.summary.median_ms)

    @property
    def tflops(self) -> float | None:
        if self.summary is None:
            return None
        return stats.tflops(self.flops, self.summary.median_ms)

    @property
    def runtime_median_ms(self) -> float | None:
        if self.runtime_ns is None:
            return None
        known = self.runtime_ns[np.isfinite(self.runtime_ns)]
        return float(np.median(known)) / 1e6 if known.size else None

    @property
    def variant_key(self) -> str:
        v = self.variant
        return v.case.variant_key(v.backend, v.compute_units, self.device)

    @property
    def samples(self) -> np.ndarray:
        """(n, 2): wall_ns and runtime_ns (NaN where the runtime reports nothing)."""
        if self.wall_ns is None:
            return np.zeros(0, dtype=np.int64)
        runtime = self.runtime_ns
        if runtime is None:
            runtime = np.full(len(self.wall_ns), np.nan)
        return np.column_stack([np.asarray(self.wall_ns, np.float64), runtime])

    def energy_json(self) -> dict | None:
        """The energy figures as stored (columns of the case), or None when not read."""
        if self.energy is None:
            return None
        from anemll_spec.store.energy import energy_rows

        return energy_rows(self.energy, self.reading_calls, t0_ns=self.energy_t0_ns or 0)["case"]

    def to_json(self) -> dict[str, Any]:
        """The result as `bench --json` reports it."""
        v, t, s = self.variant, self.timing, self.summary
        return {
            "case_id": self.case_id,
            "case_key": v.case_key,
            "variant_key": self.variant_key,  # what `compare` pairs runs on
            "case_index": v.case_index,
            "model_name": v.model_name,
            "params": v.params,
            "backend": v.backend,
            "compute_units": v.compute_units,
            "device": self.device,
            "status": self.status,
            "error": self.error,
            "stats": s.to_dict() if s else None,
            "bandwidth_gbps": self.bandwidth_gbps,
            "tflops": self.tflops,
            "throughput_ips": self.throughput_ips,
            "dispatch_floor_ms": self.dispatch_floor_ms,
            "runtime_median_ms": self.runtime_median_ms,
            "phases_ms": self.phases_ms,
            "warmup": None if t is None else {"n": t.warmup_n, "s": t.warmup_s},
            "stop": None if t is None else t.stop,
            "verify": self.verdict.to_dict() if self.verdict else None,
            "placement_shares": _shares(self.placements),
            "placement_basis": _basis(self.placements),
            "factors": self.factors,
            "energy": self.energy_json(),
            "sustained": _sustained_json(self.sustained),
            "weight_bytes": self.weight_bytes,
            "flops": self.flops,
            "notes": self.notes,
        }


def _shares(placements: list[dict]) -> dict[str, float] | None:
    if not placements:
        return None
    from anemll_spec.backends.coreml import placement_shares

    return placement_shares(placements)


def _basis(placements: list[dict]) -> str | None:
    from anemll_spec.backends.coreml import placement_basis

    return placement_basis(placements) if placements else None


def _sustained_json(sus: Any) -> dict | None:
    if sus is None:
        return None
    from dataclasses import asdict

    v = sus.verdict
    return {
        **asdict(v),
        "windows": [
            {"index": w.index, "calls": w.calls, "median_ms": w.median_ms, "wall_s": w.wall_s}
            for w in sus.windows
        ],
    }
