"""The machine's thermal state at one moment, for sustained runs' windows.

macOS: `pmset -g therm` (the kernel's recorded thermal/performance warning levels and
CPU speed limit, parsed by anemll_spec.host). NVIDIA: NVML temperature, power limit and
clock-event reasons (anemll_spec.power.nvml). Elsewhere nothing is read, and the
reason says so.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field

from anemll_spec.power.base import Unavailable


@dataclass(frozen=True)
class Thermal:
    source: str  # pmset | nvml
    state: str  # 'nominal' or what limits the machine (e.g. 'throttled: sw_power_cap')
    throttled: bool
    detail: dict = field(default_factory=dict)


def from_pmset(text: str) -> Thermal | Unavailable:
    """`pmset -g therm` output -> Thermal (throttled when a warning level or a CPU speed
    limit below 100 has been recorded)."""
    from anemll_spec.host import parse_pmset_therm

    parsed = parse_pmset_therm(text)
    state = parsed["thermal_state"]
    if state is None:
        return Unavailable("pmset -g therm printed nothing", "pmset")
    return Thermal("pmset", state, state != "nominal", parsed)


def from_nvml_state(state: dict) -> Thermal | Unavailable:
    if state["throttled"] is None:
        return Unavailable("NVML cannot read this GPU's clock-event reasons", "nvml")
    reasons = [r for r in state["clock_event_reasons"] if r != "gpu_idle"]
    label = "throttled: " + ", ".join(reasons) if state["throttled"] else "nominal"
    return Thermal("nvml", label, bool(state["throttled"]), state)


def thermal_reader(backend: str, device: str = "auto") -> Callable[[], Thermal | Unavailable]:
    """A callable that reads the thermal state of the hardware running (backend, device)."""
    if sys.platform == "darwin":
        return _pmset
    if backend == "torch" and device.startswith(("cuda", "auto")):
        return lambda: _nvml(device)
    return lambda: Unavailable(f"no thermal state source for {backend} on {sys.platform}")


def _pmset() -> Thermal | Unavailable:
    try:
        res = subprocess.run(["pmset", "-g", "therm"], capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.SubprocessError) as exc:
        return Unavailable(f"pmset -g therm failed: {exc}", "pmset")
    return from_pmset(res.stdout)


def _nvml(device: str) -> Thermal | Unavailable:
    from anemll_spec.power import nvml

    target = nvml.open_nvml(device if device != "auto" else "cuda", period_s=None)
    if isinstance(target, Unavailable):
        return target
    return from_nvml_state(nvml.thermal_state(target.nv, target.handle))
