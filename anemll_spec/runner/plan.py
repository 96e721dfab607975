"""Planning a bench: which variants each case measures. Builds and runs nothing, so `plan`
previews exactly what `bench` would do."""

from __future__ import annotations

from dataclasses import dataclass, field

from anemll_spec import backends
from anemll_spec.hashing import digest
from anemll_spec.runner.measurement import Variant
from anemll_spec.spec import Case, points_text, same_case_settings
from anemll_spec.spec.base import COMPUTE_UNIT_BACKENDS
from anemll_spec.spec.families import LmHead, ModelBase
from anemll_spec.vocab import Instances


def override_backend(cases: list[Case], backend: str | None) -> list[Case]:
    """--backend replaces the spec's backends (so the case keys say what was measured)."""
    return [c.with_backend(backend) for c in cases]


@dataclass
class PlannedCase:
    """One case and the variants it measures, with the notes about this case alone."""

    case: Case
    variants: list[Variant]
    notes: list[str] = field(default_factory=list)


def plan_cases(cases: list[Case], *, preview: bool = False) -> tuple[list[PlannedCase], list[str]]:
    """Each case's variants, and the run-wide notes, said once rather than per case: where
    `auto` went and, for `plan` (`preview`: it runs nothing), what bench would refuse."""
    cases, run_notes = measured_once(cases)
    run_notes += (refusals(cases) if preview else []) + shared_keys(cases)
    planned: list[PlannedCase] = []
    for case in cases:
        auto = None
        if "auto" in case.run.backends:
            auto, why = backends.resolve_auto(case.model)
            if f"backend {why}" not in run_notes:
                run_notes.append(f"backend {why}")
        pairs, notes = resolve_variants(case, auto)
        caveat = case.model.bandwidth_caveat()  # what its GB/s counts: a fact of the case
        notes += [caveat] if caveat else []
        planned.append(PlannedCase(case, [Variant(case, b, cu) for b, cu in pairs], notes))
    return planned, run_notes


def measured_once(cases: list[Case]) -> tuple[list[Case], list[str]]:
    """Sweep points that measure the same variants as an earlier point once the backends
    are resolved (compute units where none is coreml, as `auto` -> numpy; a device where
    none is torch) are measured once, as `expand` does with a repeated point: the later
    ones are dropped (their budgets too must match), with a note. plan, validate, bench."""
    seen: set[str] = set()
    kept: list[Case] = []
    dropped: list[Case] = []
    for case in cases:
        auto = backends.resolve_auto(case.model)[0] if "auto" in case.run.backends else None
        pairs = resolve_variants(case, auto)[0]
        run = case.run.settings() | {"backends": pairs, "compute_units": None}
        run["device"] = run["device"] if any(b == "torch" for b, _ in pairs) else None
        key = digest([case.model.to_json(), same_case_settings(run)])  # variants as a set
        (dropped if key in seen else kept).append(case)
        seen.add(key)
    if not dropped:
        return kept, []
    what = (
        "point measures the same variants as another"
        if len(dropped) == 1
        else ("points measure the same variants as others")
    )
    why = (
        "once backends are resolved, in any order; compute units apply to coreml only, "
        "device to torch only"
    )
    return kept, [
        f"{len(dropped)} sweep {what} here, measured once: {points_text(dropped)} ({why})"
    ]


def shared_keys(cases: list[Case]) -> list[str]:
    """Cases that differ in the spec but share a key, which says they measure the same
    thing: an external model's key hashes its files' content (two copies of one package),
    and budgets are in no key. Both are measured; compare pools their samples."""
    by_key: dict[str, list[Case]] = {}
    for c in cases:
        by_key.setdefault(c.key, []).append(c)
    return [
        f"cases {', '.join(f'#{c.index} {c.label}' for c in same)} have one key (the same "
        "model content and measurement; budgets are in no key): each is measured, and "
        "compare pools their samples as repeats of one case"
        for same in by_key.values()
        if len(same) > 1
    ]


def refusals(cases: list[Case]) -> list[str]:
    """The explicitly named backends that bench would refuse before building anything
    (not available here, or a case they cannot run), as `plan` notes them."""
    found = (
        backends.why_refused(b, c.model, c.model_name)
        for c in cases
        for b in c.run.backends
        if b != "auto"
    )
    return [f"{it} ({why}): bench would refuse" for it, why in dict.fromkeys(f for f in found if f)]


SUSTAINED_IN_TURN = (
    "not interleaved: a sustained run times each variant for its whole duration, one "
    "after the other"
)


CONCURRENT_IN_TURN = (
    "not interleaved: concurrent instances are timed one variant at a time (every instance "
    "of a variant at once, then the next variant's)"
)


def resolve_variants(
    case: Case, auto: str | None
) -> tuple[list[tuple[str, str | None]], list[str]]:
    """(backend, compute units) to measure, with `auto` standing for the backend it
    resolved to (None where the case names no `auto`); compute units collapse where they
    do not apply (the notes)."""
    out: list[tuple[str, str | None]] = []
    collapsed: dict[str, int] = {}
    for b, cu in case.variants():
        rb = auto if b == "auto" else b
        assert rb is not None
        if rb not in COMPUTE_UNIT_BACKENDS and cu is not None:
            collapsed[rb] = collapsed.get(rb, 0) + 1
            cu = None
        if (rb, cu) not in out:
            out.append((rb, cu))
    notes = [
        f"{b}: compute units do not apply; {n} compute-unit variants collapsed into one"
        for b, n in collapsed.items()
        if n > 1
    ]
    if case.run.interleave and len(out) > 1:
        if case.run.duration_s is not None:
            notes.append(SUSTAINED_IN_TURN)
        elif case.run.concurrency > 1:
            notes.append(CONCURRENT_IN_TURN)
    return out, notes


@dataclass(frozen=True)
class InstancePlan:
    """What each concurrent instance loads: `models[k]` is instance k's (0 is the case's)."""

    instances: Instances
    models: list[ModelBase]
    distinct_weights: bool
    note: str


def plan_instances(model: ModelBase, n: int, instances: Instances) -> InstancePlan:
    """The model of each of n instances. shared: the case's model n times (one package,
    one compiled model). distinct: instance k gets seed + k: n packages whose weights all
    differ, so no instance can reuse another's weights. An external model cannot be
    re-seeded: refused for distinct (ValueError)."""
    if n < 1:
        raise ValueError("instances must be >= 1")
    if instances == "shared":
        return InstancePlan("shared", [model] * n, False, f"{n} instances of one model")
    if instances != "distinct":
        raise ValueError(f"instances must be 'shared' or 'distinct', not {instances!r}")
    if model.family == "external":
        raise ValueError(
            "distinct instances need a built family (each gets its own seeded weights); an "
            "external model can only run shared"
        )
    models = [model.model_copy(update={"seed": model.seed + k}) for k in range(n)]
    note = f"{n} instances with distinct weights (seeds {model.seed}..)"
    return InstancePlan("distinct", models, True, note)


def tiny_model(like: ModelBase) -> LmHead:
    """The dispatch-floor model: one 64 -> 64 linear op in the case's dtype and target."""
    return LmHead(
        family="lm_head",
        hidden_size=64,
        vocab_size=64,
        chunks=1,
        layout="linear",
        dtype=like.dtype,
        compute_precision=like.precision,
        deployment_target=like.deployment_target,
    )


def time_bound_s(case: Case, n_variants: int) -> float:
    """The most timing can take for one case, what `plan` and progress estimate with:
    per variant, warm-up and timed calls each capped by max_time_s (the timed ones by a
    sustained run's duration), the dispatch floor by a second, and where energy is read
    one pass of energy_s (a loop shorter than that, or interleaved variants, get one;
    sustained and concurrent runs read theirs while timing); then the cooldown (and one
    between a sustained case's variants). Only min_iterations calls that outlast
    max_time_s take longer; the statistics of a sustained run's samples are not counted."""
    r = case.run
    per_variant = r.max_time_s + (r.duration_s or r.max_time_s)  # warm-up, then timing
    floor = 1.0 if r.dispatch_floor else 0.0
    energy_pass = r.energy_s if r.power and not r.duration_s and r.concurrency == 1 else 0.0
    cooldowns = 1 + (max(0, n_variants - 1) if r.duration_s else 0)  # sustained: between too
    return n_variants * (per_variant + floor + energy_pass) + cooldowns * r.cooldown_s
