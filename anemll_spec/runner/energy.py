"""Which power reader a variant gets, or why it gets none (docs/power.md).

A reader covers the whole chip or board, so the runner reads it around one variant's
calls at a time: its timed loop when variants run one after another, a separate pass of
back-to-back calls when they were interleaved, the instances' common timed phase for
concurrency, each window of a sustained run."""

from __future__ import annotations

from typing import Any

from anemll_spec.power.base import Guarded, Unavailable, guard

__all__ = ["Guarded", "Unavailable", "reader", "reading", "thermal"]


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
