"""NVIDIA GPU energy (torch on CUDA): NVML's board energy counter, via nvidia-ml-py.

nvmlDeviceGetTotalEnergyConsumption is the energy the board used since the driver was
loaded, in mJ (Volta and newer); its difference between start() and stop() is the
reading. A sampler thread adds nvmlDeviceGetPowerUsage (mW) for the timeline; on Ampere
and newer NVIDIA documents that figure as an average over the last second, so the
timeline is smooth and lags, while the energy counter is exact at both ends. The GPU's
enforced power limit, temperature and clock-event (throttle) reasons describe the
thermal state.
"""

from __future__ import annotations

import os
import sys
from typing import Any

from anemll_spec.power.base import DEFAULT_PERIOD_S, Energy, PowerSample, Sampler, Unavailable

# NVML clock event reasons (nvmlClocksEventReason*): bit -> name
REASONS = {
    0x1: "gpu_idle",
    0x2: "applications_clocks_setting",
    0x4: "sw_power_cap",
    0x8: "hw_slowdown",
    0x10: "sync_boost",
    0x20: "sw_thermal_slowdown",
    0x40: "hw_thermal_slowdown",
    0x80: "hw_power_brake_slowdown",
    0x100: "display_clock_setting",
}
# the reasons that mean clocks were held down by power or heat (idle/sync/settings are not)
THROTTLING = frozenset(
    {"sw_power_cap", "hw_slowdown", "sw_thermal_slowdown", "hw_thermal_slowdown",
     "hw_power_brake_slowdown"}
)  # fmt: skip


def decode_reasons(mask: int) -> list[str]:
    """An NVML clock-event bitmask -> reason names (unknown bits as 'bit_0x...')."""
    out = [name for bit, name in REASONS.items() if mask & bit]
    rest = mask & ~sum(REASONS)
    bit = 1
    while rest:
        if rest & bit:
            out.append(f"bit_{bit:#x}")
            rest &= ~bit
        bit <<= 1
    return out


def nvml_target(device: str, visible: str | None) -> int | str | Unavailable:
    """torch's 'cuda' / 'cuda:N' -> the NVML index (or 'GPU-...' UUID) of that GPU.

    CUDA numbers only the GPUs in CUDA_VISIBLE_DEVICES, in that order; NVML numbers
    them all. MIG instances have no energy counter of their own."""
    dev = device.strip().lower()
    if dev in ("cuda", "auto", "gpu"):
        n = 0
    elif dev.startswith("cuda:") and dev[5:].isdigit():
        n = int(dev[5:])
    else:
        return Unavailable(f"NVML: {device!r} is not a CUDA device", "nvml")
    if visible is None:
        return n
    ids = [v.strip() for v in visible.split(",") if v.strip()]
    if n >= len(ids):
        return Unavailable(f"NVML: {device} is not in CUDA_VISIBLE_DEVICES={visible!r}", "nvml")
    v = ids[n]
    if v.startswith("MIG-"):
        return Unavailable(
            f"NVML: {device} is a MIG instance ({v}): no per-instance energy", "nvml"
        )
    return int(v) if v.isdigit() else v


def _torch_uuid(device: str) -> str | None:
    """The UUID torch reports for `device`, when torch is already loaded (exact even
    where CUDA and NVML order GPUs differently)."""
    torch = sys.modules.get("torch")
    if torch is None:
        return None
    try:
        idx = torch.device(device).index or 0
        uuid = str(torch.cuda.get_device_properties(idx).uuid)
    except Exception:  # no CUDA, or an old torch without .uuid
        return None
    return uuid if uuid.startswith("GPU-") else f"GPU-{uuid}"


def thermal_state(nv: Any, handle: Any) -> dict:
    """Temperature, power, limit and clock-event reasons of one GPU, right now. Each is
    read on its own: one a board does not support (NVML raises NotSupported) is None,
    and never costs the others or the energy reading around it."""

    def read(name: str, *args: Any) -> Any:
        try:
            return getattr(nv, name)(handle, *args)
        except Exception:  # pynvml.NVMLError, or a call this nvidia-ml-py lacks
            return None

    events = "nvmlDeviceGetCurrentClocksEventReasons"
    if not hasattr(nv, events):
        events = "nvmlDeviceGetCurrentClocksThrottleReasons"  # nvidia-ml-py < 12.535
    mask = read(events)
    reasons = [] if mask is None else decode_reasons(int(mask))
    temperature = read("nvmlDeviceGetTemperature", getattr(nv, "NVML_TEMPERATURE_GPU", 0))
    power, limit = read("nvmlDeviceGetPowerUsage"), read("nvmlDeviceGetEnforcedPowerLimit")
    return {
        "temperature_c": None if temperature is None else float(temperature),
        "power_w": None if power is None else power / 1e3,
        "power_limit_w": None if limit is None else limit / 1e3,
        "clock_event_reasons": reasons,
        "throttled": None if mask is None else bool(THROTTLING.intersection(reasons)),
    }


class NvmlReader:
    """Board energy between start() and stop(); power samples for the timeline."""

    method = "nvml"

    def __init__(self, nv: Any, handle: Any, period_s: float | None = DEFAULT_PERIOD_S):
        self.nv, self.handle = nv, handle
        self.name = nv.nvmlDeviceGetName(handle)
        self.name = self.name.decode() if isinstance(self.name, bytes) else str(self.name)
        self._sampler = Sampler(self._read, period_s)

    def _read(self) -> tuple[int, int | None]:
        """The energy counter (mJ) and, for the timeline, the power (mW; None where the
        board does not report it: the energy stands without it)."""
        nv, h = self.nv, self.handle
        energy = nv.nvmlDeviceGetTotalEnergyConsumption(h)
        try:
            return energy, nv.nvmlDeviceGetPowerUsage(h)
        except Exception:  # pynvml.NVMLError (NotSupported on some boards)
            return energy, None

    def start(self) -> None:
        self._sampler.start()

    def stop(self, *, timed_only: bool = True) -> Energy:
        points = self._sampler.stop()
        (t0, (e0, _)), (t1, (e1, _)) = points[0], points[-1]
        state = thermal_state(self.nv, self.handle)
        return Energy(
            rails_mj={"gpu": float(e1 - e0)},
            total_rails=("gpu",),
            interval_s=(t1 - t0) / 1e9,
            method=self.method,
            samples=len(points),
            timed_only=timed_only,
            timeline=tuple(
                PowerSample(t, "gpu", p / 1e3) for t, (_, p) in points[1:-1] if p is not None
            ),
            notes=(
                "NVML total energy counter of the whole board (all processes on this GPU)",
                "timeline: nvmlDeviceGetPowerUsage, averaged over 1 s on Ampere and newer",
            ),
            extra={
                "gpu_name": self.name,
                "power_limit_w": state["power_limit_w"],
                "temperature_c": state["temperature_c"],
                "clock_event_reasons": ",".join(state["clock_event_reasons"]),
            },
        )


def open_nvml(
    device: str = "cuda", period_s: float | None = DEFAULT_PERIOD_S
) -> NvmlReader | Unavailable:
    try:
        import pynvml as nv
    except ImportError:
        return Unavailable("nvidia-ml-py is not installed (pip install nvidia-ml-py)", "nvml")
    try:
        nv.nvmlInit()
    except nv.NVMLError as exc:
        return Unavailable(f"NVML init failed: {exc} (no NVIDIA driver here)", "nvml")
    target = _torch_uuid(device) or nvml_target(device, os.environ.get("CUDA_VISIBLE_DEVICES"))
    if isinstance(target, Unavailable):
        return target
    try:
        if isinstance(target, str):
            handle = nv.nvmlDeviceGetHandleByUUID(target)
        else:
            handle = nv.nvmlDeviceGetHandleByIndex(target)
        nv.nvmlDeviceGetTotalEnergyConsumption(handle)
    except nv.NVMLError as exc:
        return Unavailable(f"NVML energy counter of {device} ({target}): {exc}", "nvml")
    return NvmlReader(nv, handle, period_s)
