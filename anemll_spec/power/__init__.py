"""Energy per inference: one power reader per platform behind one small interface.

    reader = open_reader(backend, device)       # a Guarded reader, or Unavailable(reason)
    reader.start(); ...timed calls...; e = reader.stop()   # Energy, or Unavailable
    reader.close()                              # where timing failed: ends the reading
    e.per_inference_mj(calls)["total"], e.mean_power_w(), e.method, e.samples

Which reader runs where:
- macOS (coreml; numpy / torch on CPU or MPS): IOReport "Energy Model" counters, no
  root; else `sudo -n powermetrics` where allowed; else Unavailable with both reasons.
- torch on CUDA: NVML's board energy counter.
- Linux CPU (numpy, torch on CPU): RAPL under /sys/class/powercap where readable.
Every figure is the hardware's own energy estimate (SoC model, GPU board counter,
RAPL), not wall power. Heavy or platform-specific modules load only when chosen.
"""

from __future__ import annotations

import sys

from anemll_spec.power.base import (
    DEFAULT_PERIOD_S,
    Energy,
    Guarded,
    PowerSample,
    Reader,
    Unavailable,
    guard,
)

__all__ = ["Energy", "PowerSample", "Reader", "Unavailable", "open_reader"]


def open_reader(
    backend: str, device: str = "auto", *, period_s: float | None = DEFAULT_PERIOD_S
) -> Guarded | Unavailable:
    """The reader for a backend/device here, or Unavailable saying exactly why not.

    period_s: the timeline's sampling period (None: no sampler thread, energy only).
    Never raises for an ordinary "not here"; the reader is Guarded (its start and stop
    raise nothing, and close() ends a reading that timing left running)."""
    reader = _open(backend, device, period_s)
    return reader if isinstance(reader, Unavailable) else guard(reader)


def _open(backend: str, device: str, period_s: float | None):
    device = (device or "auto").lower()
    if backend == "torch" and device.startswith("cuda"):
        from anemll_spec.power.nvml import open_nvml

        return open_nvml(device, period_s)
    if backend == "torch" and device == "auto" and sys.platform != "darwin":
        # 'auto' is CUDA where torch sees a GPU; the runner should pass the resolved device
        from anemll_spec.power.nvml import open_nvml

        reader = open_nvml("cuda", period_s)
        if not isinstance(reader, Unavailable):
            return reader
    if backend not in ("coreml", "numpy", "torch"):
        return Unavailable(f"no power reader for backend {backend!r}")
    if sys.platform == "darwin":
        return _open_macos(period_s)
    if sys.platform.startswith("linux"):
        from anemll_spec.power.rapl import open_rapl

        return open_rapl(period_s=period_s)
    return Unavailable(f"no power reader on {sys.platform}")


def _open_macos(period_s: float | None):
    from anemll_spec.power.ioreport import open_ioreport
    from anemll_spec.power.powermetrics import open_powermetrics

    # one IOReportCreateSamples of the whole group takes ~3.7 ms (all-smi's M1 Ultra
    # trace): sample at most 4 times a second, so the sampler stays ~1.5% of one core
    first = open_ioreport(None if period_s is None else max(period_s, 0.25))
    if not isinstance(first, Unavailable):
        return first
    second = open_powermetrics(period_s or DEFAULT_PERIOD_S)
    if not isinstance(second, Unavailable):
        return second
    return Unavailable(f"{first.reason}; {second.reason}")
