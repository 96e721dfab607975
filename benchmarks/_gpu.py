"""What the GPU benchmarks share: a timed variant (wall and CUDA-event samples) and the
wrapper that makes a callable end with a device sync."""

from __future__ import annotations

import statistics
import time


class Variant:
    """One timed callable (which ends with a device sync) and its samples."""

    def __init__(self, name: str, fn, event_ns=None):
        self.name, self.fn, self.event_ns = name, fn, event_ns
        self.wall: list[int] = []
        self.device: list[int] = []

    def run(self, n: int) -> None:
        pc = time.perf_counter_ns
        for _ in range(n):
            t0 = pc()
            self.fn()
            t1 = pc()
            self.wall.append(t1 - t0)
            if self.event_ns is not None:
                self.device.append(self.event_ns())

    def medians_us(self) -> tuple[float, float | None]:
        wall = statistics.median(self.wall) / 1e3
        dev = statistics.median(self.device) / 1e3 if self.device else None
        return wall, dev


def synced(torch, device, fn, events: bool):
    """fn + sync as one call; with CUDA events recorded around fn (the device time)."""
    sync = (lambda: torch.cuda.synchronize(device)) if device.type == "cuda" else (lambda: None)
    if not events:

        def call():
            fn()
            sync()

        return call, None
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)

    def timed():
        start.record()
        fn()
        end.record()
        sync()

    return timed, lambda: int(start.elapsed_time(end) * 1e6)


def run_interleaved(variants: list[Variant], warmup: int, iters: int, rounds: int) -> None:
    """Warm every variant up, then time them in `rounds` interleaved blocks, so that drift
    (clocks, temperature) hits all alike."""
    for v in variants:
        v.run(warmup)
        v.wall.clear()
        v.device.clear()
    per_round = max(1, iters // rounds)
    for _ in range(rounds):
        for v in variants:
            v.run(per_round)


def provenance(benchmark: str, device: str) -> dict:
    """The head of a GPU benchmark's JSON line: what ran where, and when."""
    import datetime

    from anemll_spec.backends.torch_ import torch_info

    info = torch_info(device)
    return {
        "benchmark": benchmark,
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "device": info.get("gpu") or device,
        "gpu_driver": info.get("gpu_driver"),
        "torch": info["torch_version"],
        "cuda": info["cuda_version"],
        "triton": info.get("triton_version"),
    }
