"""Planning a bench: which variants each case measures. Builds and runs nothing, so `plan`
previews exactly what `bench` would do."""

from __future__ import annotations

import dataclasses

from anemll_spec import backends
from anemll_spec.errors import InputError
from anemll_spec.spec import Case
from anemll_spec.spec.base import COMPUTE_UNIT_BACKENDS
from anemll_spec.spec.families import LmHead, ModelBase


def override_backend(cases: list[Case], backend: str | None) -> list[Case]:
    """--backend replaces the spec's backends (so the case keys say what was measured)."""
    if not backend:
        return cases
    return [
        dataclasses.replace(c, run=c.run.model_copy(update={"backends": [backend]})) for c in cases
    ]


def check_backends(cases: list[Case], *, preview: bool = False) -> list[str]:
    """Refuse explicitly named backends that are not available here, or that cannot run a
    case (a deployment target newer than this macOS), before anything is built; `preview`
    (plan) notes them instead: it runs nothing."""
    notes: list[str] = []
    named = dict.fromkeys(b for c in cases for b in c.run.backends if b != "auto")
    for name in named:
        a = backends.availability(name)
        problems = (
            [f"backend {name} is not available here ({a.reason})"]
            if not a.available
            else [
                f"backend {name} cannot run {c.model_name} ({why})"
                for c in cases
                if name in c.run.backends and (why := backends.why_not(name, c.model))
            ]
        )
        if problems and not preview:
            raise InputError(problems[0])
        notes += [
            f"{p}: bench would refuse" for p in problems if f"{p}: bench would refuse" not in notes
        ]
    return notes


def resolve_auto(case: Case) -> tuple[str, str]:
    """`auto` for this case: the first backend that is available and can run it."""
    return backends.resolve_auto(case.model)


def resolve_variants(
    case: Case, auto: str | None = None
) -> tuple[list[tuple[str, str | None]], list[str]]:
    """(backend, compute units) to measure, `auto` resolved for this case (or to `auto`
    when given); compute units collapse where they do not apply."""
    notes: list[str] = []
    if auto is None and "auto" in case.run.backends:
        auto, why = resolve_auto(case)
        notes.append(f"backend {why}")
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
    notes += [
        f"{b}: compute units do not apply; {n} compute-unit variants collapsed into one"
        for b, n in collapsed.items()
        if n > 1
    ]
    return out, notes


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
    """The most timing can take for one case (warm-up and timed calls are each capped by
    max_time_s; the dispatch floor by a second): what `plan` and progress estimate with."""
    r = case.run
    per_variant = r.max_time_s + (r.duration_s or r.max_time_s)  # warm-up, then timing
    floor = 1.0 if r.dispatch_floor else 0.0
    return n_variants * (per_variant + floor) + r.cooldown_s
