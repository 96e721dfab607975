"""Which power reader a variant gets, or why it gets none (docs/power.md).

A reader covers the whole chip or board, so the runner reads it around one variant's
calls at a time: its timed loop when variants run one after another, a separate pass of
back-to-back calls when they were interleaved, the instances' common timed phase for
concurrency, each window of a sustained run."""

from __future__ import annotations

from typing import Any

from anemll_spec.power.base import Guarded, Unavailable, guard

__all__ = ["Guarded", "Unavailable", "concurrent_energy", "reader", "reading", "thermal"]


def reader(run: Any, backend: str, device: str | None) -> Any:
    """A started-on-demand power reader for this variant, or Unavailable(why)."""
    if not run.power:
        return Unavailable("not read: run.power is false in the spec")
    from anemll_spec.power import open_reader

    return open_reader(backend, device or "auto")


def reading(run: Any, backend: str, device: str | None) -> Guarded | Unavailable:
    """This variant's reader, Guarded (a counter that fails costs the energy, not the
    timing, and close() ends a reading that timing left running), or why there is none."""
    found = reader(run, backend, device)  # looked up here: tests swap in their own
    return found if isinstance(found, Unavailable) else guard(found)


def thermal(backend: str, device: str | None) -> Any:
    """A callable reading the thermal state at a sustained window's end (it returns
    Unavailable where the platform has no source)."""
    from anemll_spec.power.thermal import thermal_reader

    return thermal_reader(backend, device or "auto")


# A concurrent reading runs from the instances' release to their last result: it is kept
# as the calls' energy only where that is at most this much longer than the calls' span.
SPAN_SLACK = 1.1


def concurrent_energy(energy: Any, res: Any, energy_s: float, apart: str | None) -> Any:
    """The concurrent phase's reading, or why it is no figure: instances that did not all
    run at once (no energy of N at once was measured), a phase shorter than run.energy_s
    (as a plain loop's), or a reading much longer than the calls (the instances' release
    and the hand-back of their results, not the calls: 13x the calls' span for 20 fast
    calls, 1.2x for 3,000)."""
    interval = getattr(energy, "interval_s", None)
    if interval is None:
        return energy
    if interval < energy_s:
        return Unavailable(
            f"not read: the instances' timed phase lasted {interval:.2g} s, under run.energy_s "
            f"({energy_s:g} s), and concurrent instances get no separate energy pass"
        )
    if apart:
        return Unavailable(
            f"not kept: the instances did not all run at once ({apart}), so the reading is "
            "no energy of them running together"
        )
    span = getattr(res, "wall_s", 0.0)
    if span <= 0 or interval > SPAN_SLACK * span:
        return Unavailable(
            f"not kept: the reading lasted {interval:.2g} s, {interval / max(span, 1e-9):.2g}x "
            f"the instances' calls ({span:.2g} s): it counts their release and the hand-back "
            "of their results, not only the calls; more iterations or a longer max_time_s "
            "make that share small"
        )
    return energy
