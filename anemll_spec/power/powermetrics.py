"""macOS fallback: `sudo -n powermetrics --samplers cpu_power,gpu_power,ane_power`.

powermetrics needs root, so it runs only where sudo needs no password for it. It prints
one sample per interval (-i ms); with `-f plist` each sample is a plist document and
documents are separated by a NUL byte (asitop splits its stream the same way), written
just before the next document: the live reader keeps a document when its `</plist>` line
arrives (as cubestat does), so it is stamped when its window ends. A sample's
`processor` dict holds `<rail>_energy` (mJ over the sample) and/or `<rail>_power` (mW
averaged over it), and `elapsed_ns` its length. The text format ("*** Sampled system
activity (... ) (104.51ms elapsed) ***" ... "ANE Power: 0 mW") is parsed too.

Samples cover fixed windows that do not line up with the timed region, so a reading
from here is never `timed_only`. Its manual warns its estimates "should not be used for
any comparison between devices".
"""

from __future__ import annotations

import plistlib
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from anemll_spec.power.base import DEFAULT_PERIOD_S, Energy, PowerSample, Unavailable

CMD = ("powermetrics", "--samplers", "cpu_power,gpu_power,ane_power", "-f", "plist")
RAILS = ("cpu", "gpu", "ane", "dram")  # summed into the total; 'package' overlaps them
_TEXT_SAMPLE = re.compile(
    r"^\*\*\* Sampled system activity \(.*\) \(([\d.]+)\s*ms elapsed\) \*\*\*"
)
_TEXT_POWER = re.compile(r"^(CPU|GPU|ANE|DRAM|Package) Power:\s*([\d.]+)\s*mW", re.MULTILINE)


@dataclass
class PMSample:
    """One powermetrics sample: its length and the energy of each rail over it."""

    elapsed_s: float
    rails_mj: dict[str, float]
    thermal_pressure: str | None = None
    t_ns: int = 0  # perf_counter_ns when it arrived (the end of its window), live only
    extra: dict = field(default_factory=dict)


def parse_plist_sample(doc: dict) -> PMSample:
    """One plist document -> energy per rail: `<rail>_energy` (mJ) where given, else
    `<rail>_power` (mW) x elapsed s (mW x s = mJ)."""
    elapsed = float(doc["elapsed_ns"]) / 1e9
    proc = doc.get("processor", {})
    rails: dict[str, float] = {}
    for rail in (*RAILS, "package"):
        if f"{rail}_energy" in proc:
            rails[rail] = float(proc[f"{rail}_energy"])
        elif f"{rail}_power" in proc:
            rails[rail] = float(proc[f"{rail}_power"]) * elapsed
    gpu = doc.get("gpu")
    if "gpu" not in rails and isinstance(gpu, dict) and "gpu_energy" in gpu:
        rails["gpu"] = float(gpu["gpu_energy"])  # macOS 26: the gpu sampler's own dict, mJ
    return PMSample(elapsed, rails, doc.get("thermal_pressure"))


def parse_plist_stream(data: bytes) -> list[PMSample]:
    """NUL-separated plist documents (a cut-off last one is dropped)."""
    out = []
    for chunk in data.split(b"\x00"):
        chunk = chunk.strip()
        if not chunk:
            continue
        try:
            doc = plistlib.loads(chunk)
        except Exception:  # plistlib raises several types for a cut-off document
            continue  # an incomplete document at the end of the stream
        if isinstance(doc, dict) and "elapsed_ns" in doc:
            out.append(parse_plist_sample(doc))
    return out


def parse_text(text: str) -> list[PMSample]:
    """powermetrics' text output -> one sample per '*** Sampled system activity' block."""
    out = []
    blocks = re.split(r"(?m)^(?=\*\*\* Sampled system activity)", text)
    for block in blocks:
        head = _TEXT_SAMPLE.match(block)
        if not head:
            continue
        elapsed = float(head.group(1)) / 1e3
        rails = {
            name.lower(): float(mw) * elapsed for name, mw in _TEXT_POWER.findall(block)
        }  # mW x s = mJ
        if rails:
            out.append(PMSample(elapsed, rails))
    return out


def parse(data: bytes) -> list[PMSample]:
    head = data.lstrip(b"\x00 \t\r\n")[:64]
    if head.startswith(b"<?xml") or head.startswith(b"<plist"):
        return parse_plist_stream(data)
    return parse_text(data.decode("utf-8", "replace"))


MIN_WINDOWS = 2  # the shortest timed region read, in sample windows


def energy_from_samples(
    samples: list[PMSample], t_start_ns: int | None = None, t_stop_ns: int | None = None
) -> Energy | Unavailable:
    """The energy of the samples whose window's midpoint falls in [t_start, t_stop] (all
    of them, summed, when no bounds are given: a capture read back from disk).

    Within bounds, the windows' mean power times the region's length: the windows never
    line up with the region, and their sum charged a 30 ms loop a whole 100 ms window
    (3.3x its energy). A region shorter than two windows is no reading: its windows
    hold mostly other time."""
    chosen = []
    for s in samples:
        mid = s.t_ns - s.elapsed_s * 5e8
        if t_start_ns is None or t_stop_ns is None or t_start_ns <= mid <= t_stop_ns:
            chosen.append(s)
    if not chosen:
        return Unavailable("powermetrics gave no sample within the timed region", "powermetrics")
    if not any(r in s.rails_mj for s in chosen for r in RAILS):  # 0 mJ would be a figure
        return Unavailable(
            f"powermetrics' samples hold no {'/'.join(RAILS)} energy or power (an Intel "
            "Mac's report has none of them)",
            "powermetrics",
        )
    windows_s = sum(s.elapsed_s for s in chosen)
    bounded = t_start_ns is not None and t_stop_ns is not None
    region_s = windows_s
    if t_start_ns is not None and t_stop_ns is not None:
        region_s = (t_stop_ns - t_start_ns) / 1e9
    window_s = windows_s / len(chosen)
    if bounded and region_s < MIN_WINDOWS * window_s:  # a capture from disk: its own windows
        return Unavailable(
            f"powermetrics reading over {region_s:.3g} s, shorter than {MIN_WINDOWS} of its "
            f"{window_s:.3g} s sample windows: they hold mostly time outside the timed "
            "region (run.energy_s sets a longer reading)",
            "powermetrics",
        )
    scale = region_s / windows_s if windows_s > 0 else 1.0
    rails: dict[str, float] = {}
    for s in chosen:
        for r, mj in s.rails_mj.items():
            rails[r] = rails.get(r, 0.0) + mj * scale
    timeline = tuple(
        PowerSample(s.t_ns, r, mj / s.elapsed_s / 1e3)
        for s in chosen
        for r, mj in s.rails_mj.items()
        if s.elapsed_s > 0
    )
    pressure = [s.thermal_pressure for s in chosen if s.thermal_pressure]
    return Energy(
        rails_mj=rails,
        total_rails=tuple(r for r in RAILS if r in rails),
        interval_s=region_s,
        method="powermetrics",
        samples=len(chosen),
        timed_only=False,
        timeline=timeline,
        notes=(
            "powermetrics: estimates; its manual says they should not be used to compare devices",
            "its sample windows do not line up with the timed region: energy = the mean "
            "power of the windows around it x its length",
        ),
        extra={"thermal_pressure": pressure[-1] if pressure else None},
    )


class PowermetricsReader:
    """Runs powermetrics between start() and stop() and sums its samples."""

    method = "powermetrics"

    def __init__(self, period_s: float = DEFAULT_PERIOD_S):
        self.period_ms = max(10, int(period_s * 1e3))
        self._proc: subprocess.Popen | None = None
        self._samples: list[PMSample] = []
        self._thread: threading.Thread | None = None
        self._stderr: Any = None  # a temporary file while powermetrics runs
        self._t_start = 0

    def _pump(self, stdout) -> None:
        """Keep each document when its `</plist>` line arrives, as cubestat does: the NUL
        that separates documents comes just before the next one, on a line that ends only
        with that next document, so waiting for it stamped every sample a period late."""
        buf = b""
        for line in stdout:
            buf += line.replace(b"\x00", b"")
            if line.rstrip(b"\x00\r\n\t ").endswith(b"</plist>"):  # a document ended
                self._take(buf)
                buf = b""
        self._take(buf)  # a cut-off last document is dropped by the parser

    def _take(self, doc: bytes) -> None:
        now = time.perf_counter_ns()
        for s in parse_plist_stream(doc):
            s.t_ns = now
            self._samples.append(s)

    def start(self) -> None:
        """Start powermetrics and wait for its first sample; raises (RuntimeError) with
        its exit status and what it wrote to stderr where it exits before giving one
        (`Guarded` makes that the reading's reason)."""
        self._samples = []
        # a file, not a pipe: a chatty stderr cannot block it; closed by stop()
        self._stderr = tempfile.TemporaryFile()  # noqa: SIM115
        cmd = ["sudo", "-n", *CMD, "-i", str(self.period_ms)]
        self._proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=self._stderr)
        self._thread = threading.Thread(target=self._pump, args=(self._proc.stdout,), daemon=True)
        self._thread.start()
        # the first sample ends one period after powermetrics starts: wait for it, so
        # the timed region does not begin before sampling does
        deadline = time.perf_counter() + 5.0
        while not self._samples and time.perf_counter() < deadline:
            if self._proc.poll() is not None:  # it exited: nothing more will come
                self._thread.join(timeout=5)  # what it printed before exiting
                if not self._samples:
                    raise RuntimeError(self._exited())
                break
            time.sleep(self.period_ms / 4e3)
        self._t_start = time.perf_counter_ns()

    def _exited(self) -> str:
        """powermetrics (or sudo) exited on its own: its status and its stderr, one line."""
        assert self._proc is not None
        code = self._proc.returncode
        how = f"was killed by signal {-code}" if code < 0 else f"exited with status {code}"
        self._stderr.seek(0)
        said = " ".join(self._stderr.read(4096).decode("utf-8", "replace").split())
        return f"sudo -n powermetrics {how} before its first sample" + (
            f": {said[:300]}" if said else " (nothing on stderr)"
        )

    def stop(self, *, timed_only: bool = True) -> Energy | Unavailable:
        t_stop = time.perf_counter_ns()
        assert self._proc is not None and self._thread is not None
        if self._proc.poll() is None:
            time.sleep(self.period_ms * 1.5e-3)  # let the window holding t_stop arrive
        self._proc.terminate()  # sudo relays SIGTERM to powermetrics
        try:
            self._proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self._proc.kill()
        self._thread.join(timeout=5)
        self._stderr.close()
        return energy_from_samples(self._samples, self._t_start, t_stop)


def open_powermetrics(period_s: float = DEFAULT_PERIOD_S) -> PowermetricsReader | Unavailable:
    if sys.platform != "darwin":
        return Unavailable("powermetrics exists on macOS only", "powermetrics")
    path = shutil.which("powermetrics") or "/usr/bin/powermetrics"
    if not shutil.which("sudo"):
        return Unavailable("powermetrics needs root and sudo is missing", "powermetrics")
    try:
        ok = (
            subprocess.run(["sudo", "-n", "-l", path], capture_output=True, timeout=5).returncode
            == 0
        )
    except (OSError, subprocess.SubprocessError) as exc:
        return Unavailable(f"sudo -n -l {path} failed: {exc}", "powermetrics")
    if not ok:
        return Unavailable(
            f"powermetrics needs root: `sudo -n {path}` is not allowed without a password",
            "powermetrics",
        )
    return PowermetricsReader(period_s)
