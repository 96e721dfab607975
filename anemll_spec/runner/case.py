"""One case through every stage (stages.py, timing.py), in order."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from anemll_spec.runner.measurement import Measurement, Variant
from anemll_spec.runner.stages import (
    CaseRun,
    Env,
    build,
    close,
    dispatch_floor,
    err,
    open_variants,
    reference,
)
from anemll_spec.runner.timing import time_variants
from anemll_spec.spec import Case

STAGES: tuple[Callable[[CaseRun], None], ...] = (
    build,
    reference,
    open_variants,
    time_variants,
    close,
    dispatch_floor,
)


def run_case(
    env: Env, case: Case, variants: list[Variant], notes: Sequence[str] = ()
) -> list[Measurement]:
    """Every stage in turn; an unexpected error fails the case's remaining variants.
    notes: the case's own (how its variants were resolved), kept with every result."""
    cr = CaseRun(env, case, [Measurement(v, notes=list(notes)) for v in variants])
    try:
        for stage in STAGES:
            if not cr.live and stage is not close:
                continue
            stage(cr)
    except KeyboardInterrupt:  # after a variant's statistics (the floor, closing): kept
        if not any(m.summary is not None for m in cr.measurements):
            raise
        for m in cr.measurements:
            m.interrupted = True  # bench stores the summarised ones, then stops
    except Exception as exc:
        for m in cr.live:
            m.fail(f"internal error: {err(exc)}")
    finally:
        close(cr)
    return cr.measurements
