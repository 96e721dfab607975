"""Test doubles for power readers (no counters: nothing here pretends to measure energy)."""

from __future__ import annotations

import time
from pathlib import Path


class ClockReader:
    """A power reader that only records when it was started and stopped (perf_counter_ns,
    one clock for every process on the machine), so a test can check which phase a
    reading covered against the samples' own start times."""

    method = "clock"

    def start(self) -> None:
        self.t0 = time.perf_counter_ns()

    def stop(self, *, timed_only: bool = True):
        self.t1 = time.perf_counter_ns()
        return ("read", timed_only)


def rapl_zone(root: Path, energy_uj: int = 1000, max_range_uj: int = 262143328850) -> Path:
    """One package zone of a sysfs-shaped powercap tree under `root` (the kernel's
    documented layout, which the real RAPL reader reads); returns its energy_uj file."""
    zone = root / "intel-rapl:0"
    zone.mkdir(parents=True)
    (zone / "name").write_text("package-0\n")
    (zone / "energy_uj").write_text(f"{energy_uj}\n")
    (zone / "max_energy_range_uj").write_text(f"{max_range_uj}\n")
    return zone / "energy_uj"


class ClockedRapl:
    """A RAPL tree whose counter stands where `watts` since it was made says, written
    (atomically, as sysfs does) whenever the real reader reads it."""

    def __init__(self, root: Path, watts: float) -> None:
        self.counter = rapl_zone(root)
        self.root, self.watts, self.t0 = root, watts, time.perf_counter()
        self._write()

    def _write(self) -> None:
        uj = int((time.perf_counter() - self.t0) * self.watts * 1e6)
        tmp = self.counter.with_name("energy_uj.tmp")
        tmp.write_text(f"{uj}\n")
        tmp.replace(self.counter)

    def reader(self, *args):
        """A real RAPL reader over the tree (the runner's `energy.reader` signature)."""
        from anemll_spec.power.rapl import open_rapl

        self._write()
        r = open_rapl(self.root, period_s=None)
        read = r._sampler._read

        def sampled():
            self._write()  # the counter is where the clock says
            return read()

        r._sampler._read = sampled
        return r


# A stand-in for `sudo -n powermetrics ... -f plist -i MS` (no counters: it measures
# nothing). Document k covers the k-th period since it started and is written when that
# period ends; its cpu_energy is k, the window's id, not energy. The NUL between documents
# goes before each one after the first (as powermetrics writes it: cubestat's
# platforms/macos.py) or after each one (NUL=after). Each window's real start and end
# (perf_counter_ns, one clock for every process) go to LOG, one line per window.
_FAKE_POWERMETRICS = """#!{python}
import plistlib, sys, time
ms = int(sys.argv[sys.argv.index("-i") + 1])
log, out, nul = open({log!r}, "w"), sys.stdout.buffer, {nul!r}
t0 = time.perf_counter_ns()
for k in range(1, 10**6):
    end = t0 + k * ms * 1_000_000
    while time.perf_counter_ns() < end:
        time.sleep(0.0005)
    now, start = time.perf_counter_ns(), t0 + (k - 1) * ms * 1_000_000
    doc = plistlib.dumps({{"elapsed_ns": now - start, "processor": {{"cpu_energy": float(k)}}}})
    log.write(f"{{k}} {{start}} {{now}}\\n")
    log.flush()
    lead = b"\\x00" if nul == "before" and k > 1 else b""
    out.write(lead + doc + (b"\\x00" if nul == "after" else b""))
    out.flush()
"""


def fake_sudo(bin_dir: Path, script: str) -> Path:
    """An executable `sudo` in `bin_dir` (put it first on PATH) running `script`."""
    bin_dir.mkdir(parents=True, exist_ok=True)
    sudo = bin_dir / "sudo"
    sudo.write_text(script)
    sudo.chmod(0o755)
    return sudo


def fake_powermetrics(bin_dir: Path, log: Path, nul: str = "before") -> Path:
    import sys

    return fake_sudo(
        bin_dir, _FAKE_POWERMETRICS.format(python=sys.executable, log=str(log), nul=nul)
    )


def windows(log: Path) -> dict[int, tuple[int, int]]:
    """The fake powermetrics' log: window id -> (start, end) in perf_counter_ns."""
    out = {}
    for line in log.read_text().splitlines():
        k, a, b = (int(x) for x in line.split())
        out[k] = (a, b)
    return out
