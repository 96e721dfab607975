"""Energy per inference of an LM-head-sized GEMV on CUDA, from NVML's board energy counter.

The LM head of anemll-bench's llama_lm_head: fp16 weights 128256 x 4096 (1.05 GB), one
token (x: 4096). Each timed call is `w @ x` then a device sync, as the harness times a
torch call. The same process first reads the idle board for IDLE_S (the baseline), then
runs the GEMV for BUSY_S with the NVML reader started before and stopped after.

Then, separately (a load thread keeps the GEMV running while the main thread polls),
how often NVML's energy counter and power reading change: the counter's resolution in
time, which bounds how short an interval the energy figure can be trusted over.

Figures: mJ per inference (board energy over the busy interval / calls), inferences
per joule, mean board power busy and idle, their ratio, and the GPU's enforced power
limit for scale. Board energy is everything the card drew, not just this kernel.
Prints one JSON line. Needs torch with CUDA and nvidia-ml-py.
"""

from __future__ import annotations

import json
import statistics
import threading
import time

from anemll_spec.power import Unavailable
from anemll_spec.power.nvml import open_nvml

VOCAB, HIDDEN = 128256, 4096
IDLE_S, BUSY_S = 3.0, 10.0


def read_cost_us(nv, handle, n: int = 200) -> float:
    """Median cost of one energy + one power read, main thread alone (no GIL waits)."""
    cost = []
    for _ in range(n):
        t0 = time.perf_counter()
        nv.nvmlDeviceGetTotalEnergyConsumption(handle)
        nv.nvmlDeviceGetPowerUsage(handle)
        cost.append(time.perf_counter() - t0)
    return round(statistics.median(cost) * 1e6, 1)


def cadence(nv, handle, work, setup, seconds: float = 2.0) -> dict:
    """Median time between changes of the energy counter and of the power reading,
    polled by the main thread while `work` runs in another thread."""
    stop = threading.Event()

    def load():
        setup()
        while not stop.is_set():
            work()

    th = threading.Thread(target=load, daemon=True)
    th.start()
    time.sleep(0.3)
    gaps: dict[str, list[float]] = {"energy": [], "power": []}
    last = {"energy": None, "power": None}
    when = {"energy": time.perf_counter(), "power": time.perf_counter()}
    polls = 0
    until = time.perf_counter() + seconds
    while time.perf_counter() < until:
        value = {
            "energy": nv.nvmlDeviceGetTotalEnergyConsumption(handle),
            "power": nv.nvmlDeviceGetPowerUsage(handle),
        }
        now = time.perf_counter()
        polls += 1
        for k, v in value.items():
            if last[k] is not None and v != last[k]:
                gaps[k].append(now - when[k])
                when[k] = now
            last[k] = v
    stop.set()
    th.join()

    def med_ms(x: list[float]) -> float | None:
        return round(statistics.median(x[1:]) * 1e3, 1) if len(x) > 2 else None

    return {
        "energy_counter_update_ms_median": med_ms(gaps["energy"]),
        "power_reading_update_ms_median": med_ms(gaps["power"]),
        "cadence_polls": polls,
    }


def main() -> None:
    import torch

    if not torch.cuda.is_available():
        raise SystemExit("gpu_energy: torch sees no CUDA GPU")
    reader = open_nvml("cuda:0", period_s=0.1)
    if isinstance(reader, Unavailable):
        raise SystemExit(f"gpu_energy: {reader.reason}")
    dev = torch.device("cuda:0")
    w = torch.randn(VOCAB, HIDDEN, device=dev, dtype=torch.float16) * 0.02
    x = torch.randn(HIDDEN, device=dev, dtype=torch.float16)
    for _ in range(50):
        w @ x
    torch.cuda.synchronize(dev)

    time.sleep(1.0)  # let the board settle after the warm-up
    reader.start()
    time.sleep(IDLE_S)
    idle = reader.stop()

    pc = time.perf_counter_ns
    samples: list[int] = []
    reader.start()
    until = pc() + int(BUSY_S * 1e9)
    t1 = 0
    while t1 < until:
        t0 = pc()
        w @ x
        torch.cuda.synchronize(dev)
        t1 = pc()
        samples.append(t1 - t0)
    busy = reader.stop()

    def work():
        w @ x
        torch.cuda.synchronize(dev)

    read_us = read_cost_us(reader.nv, reader.handle)
    updates = cadence(reader.nv, reader.handle, work, lambda: torch.cuda.set_device(dev))
    calls = len(samples)
    median_ms = statistics.median(samples) / 1e6
    per_mj = busy.per_inference_mj(calls)["total"]
    busy_w, idle_w = busy.mean_power_w()["total"], idle.mean_power_w()["total"]
    limit = busy.extra["power_limit_w"]
    print(
        json.dumps(
            {
                "benchmark": "gpu_energy",
                "what": f"fp16 GEMV {VOCAB}x{HIDDEN} @ x + sync, NVML board energy counter",
                "gpu": busy.extra["gpu_name"],
                "calls": calls,
                "busy_interval_s": round(busy.interval_s, 3),
                "median_ms": round(median_ms, 4),
                "weight_gbs": round(VOCAB * HIDDEN * 2 / (median_ms * 1e-3) / 1e9, 1),
                "energy_mj_per_inference": round(per_mj, 3),
                "inferences_per_joule": round(1e3 / per_mj, 1),
                "mean_power_w_busy": round(busy_w, 1),
                "mean_power_w_idle": round(idle_w, 1),
                "busy_over_idle_power": round(busy_w / idle_w, 2) if idle_w > 0 else None,
                "power_limit_w": round(limit, 1),
                "busy_power_over_limit": round(busy_w / limit, 3),
                "temperature_c_end": busy.extra["temperature_c"],
                "clock_event_reasons_end": busy.extra["clock_event_reasons"],
                "counter_reads": busy.samples,
                "nvml_read_us_median": read_us,
                **updates,
            }
        )
    )


if __name__ == "__main__":
    main()
