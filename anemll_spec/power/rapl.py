"""Linux CPU energy from RAPL counters under /sys/class/powercap (numpy, torch on CPU).

Layout (kernel Documentation/power/powercap/powercap.rst): one directory per zone,
`intel-rapl:N` (a package) and `intel-rapl:N:M` (its subzones: core, uncore, dram),
each with `name`, `energy_uj` (a counter in microjoules) and `max_energy_range_uj` (the
counter's range: it runs from 0 to that value, then wraps to 0). AMD Zen CPUs use the
same driver and names. Since the 2020 PLATYPUS fix `energy_uj` is readable by root
only, and most VMs expose no zones at all: both are reported as the reason.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from anemll_spec.power.base import DEFAULT_PERIOD_S, Energy, PowerSample, Sampler, Unavailable

ROOT = Path("/sys/class/powercap")
_ZONE = re.compile(r"^intel-rapl:(\d+)(?::(\d+))?$")  # intel-rapl-mmio duplicates package


@dataclass(frozen=True)
class Zone:
    rail: str  # 'package-0', 'package-0.core', 'package-0.dram', 'psys'
    energy_file: Path
    max_range_uj: int
    in_total: bool  # counted in the total without overlapping another zone


def counter_delta(before: int, after: int, max_range_uj: int) -> int:
    """Microjoules between two reads of a counter that wraps from max_range_uj to 0.

    The counter's values are 0..max_range_uj, so it counts modulo max_range_uj + 1
    (at most one wrap between the two reads is assumed: the sampler reads often)."""
    return (after - before) % (max_range_uj + 1)


def find_zones(root: Path = ROOT) -> list[Zone] | Unavailable:
    """The readable RAPL zones under `root`, or why there are none."""
    if not root.is_dir():
        return Unavailable(
            f"no RAPL: {root} does not exist (no powercap driver, e.g. a VM)", "rapl"
        )
    dirs = sorted(p for p in root.iterdir() if _ZONE.match(p.name))
    if not dirs:
        return Unavailable(f"no RAPL zones under {root} (this CPU or VM exposes none)", "rapl")
    names = {p.name: _read_text(p / "name") or p.name for p in dirs}
    zones: list[Zone] = []
    for p in dirs:
        m = _ZONE.match(p.name)
        assert m is not None
        name = names[p.name]
        if m.group(2) is None:
            rail = name
            in_total = not name.startswith("psys")  # psys (platform) covers the others
        else:
            parent = names.get(f"intel-rapl:{m.group(1)}", f"intel-rapl:{m.group(1)}")
            rail = f"{parent}.{name}"
            in_total = name == "dram"  # DRAM is its own domain; core/uncore are in package
        energy = p / "energy_uj"
        try:
            energy.read_text()
            max_range = int((p / "max_energy_range_uj").read_text())
        except PermissionError:
            return Unavailable(
                f"RAPL {energy} is not readable by this user (root only since the 2020 "
                "PLATYPUS fix); run as root or grant read access",
                "rapl",
            )
        except (OSError, ValueError) as exc:
            return Unavailable(f"RAPL zone {p} unreadable: {exc}", "rapl")
        zones.append(Zone(rail, energy, max_range, in_total))
    return zones


class RaplReader:
    """Energy per RAPL zone between start() and stop(), plus a power timeline."""

    method = "rapl"

    def __init__(self, zones: list[Zone], period_s: float | None = DEFAULT_PERIOD_S):
        self.zones = zones
        self._sampler = Sampler(self._read, period_s)

    def _read(self) -> tuple[int, ...]:
        return tuple(int(z.energy_file.read_text()) for z in self.zones)

    def start(self) -> None:
        self._sampler.start()

    def stop(self, *, timed_only: bool = True) -> Energy:
        points = self._sampler.stop()
        # consecutive deltas, each unwrapped: a long run may wrap a counter more than once
        rails = {z.rail: 0.0 for z in self.zones}
        timeline: list[PowerSample] = []
        for (t0, v0), (t1, v1) in zip(points, points[1:], strict=False):
            dt = (t1 - t0) / 1e9
            for z, a, b in zip(self.zones, v0, v1, strict=True):
                mj = counter_delta(a, b, z.max_range_uj) / 1e3
                rails[z.rail] += mj
                if dt > 0:
                    timeline.append(PowerSample(t1, z.rail, mj / dt / 1e3))
        return Energy(
            rails_mj=rails,
            total_rails=tuple(z.rail for z in self.zones if z.in_total),
            interval_s=(points[-1][0] - points[0][0]) / 1e9,
            method=self.method,
            samples=len(points),
            timed_only=timed_only,
            timeline=tuple(timeline),
            notes=(_note(self.zones),),
        )


def _note(zones: list[Zone]) -> str:
    """What the total holds: the package, and DRAM where its zone is exposed (counted in
    the total, so said: the label once named the package alone)."""
    dram = any(z.in_total and z.rail.endswith(".dram") for z in zones)
    held = "the whole package and its DRAM" if dram else "the whole package"
    return f"RAPL: the CPU's own energy model of {held}, all processes"


def open_rapl(
    root: Path = ROOT, period_s: float | None = DEFAULT_PERIOD_S
) -> RaplReader | Unavailable:
    zones = find_zones(root)
    return zones if isinstance(zones, Unavailable) else RaplReader(zones, period_s)


def _read_text(path: Path) -> str | None:
    try:
        return path.read_text().strip()
    except OSError:
        return None
