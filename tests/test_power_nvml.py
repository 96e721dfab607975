"""NVML reader: the pure parts everywhere; the real counter on an NVIDIA GPU (skipped
without one). On the GPU machine: `python3 -m pytest tests/test_power_nvml.py`."""

from __future__ import annotations

import re
import time

import pytest

from anemll_spec.power.base import Unavailable
from anemll_spec.power.nvml import THROTTLING, decode_reasons, nvml_target, open_nvml
from anemll_spec.power.thermal import from_nvml_state


def _gpu_reader():
    """An NVML reader and torch, when this machine has both and a CUDA GPU."""
    torch = pytest.importorskip("torch")
    reader = open_nvml("cuda:0", period_s=0.05)
    if isinstance(reader, Unavailable) or not torch.cuda.is_available():
        pytest.skip(getattr(reader, "reason", "torch sees no CUDA GPU"))
    return reader, torch


def test_decode_reasons_hand_checked():
    assert decode_reasons(0) == []
    assert decode_reasons(0x1 | 0x4) == ["gpu_idle", "sw_power_cap"]
    assert decode_reasons(0x40 | 0x200) == ["hw_thermal_slowdown", "bit_0x200"]
    assert "gpu_idle" not in THROTTLING and "sw_power_cap" in THROTTLING


def test_cuda_device_to_nvml_index():
    assert nvml_target("cuda", None) == 0
    assert nvml_target("cuda:3", None) == 3
    assert nvml_target("cuda:0", "2,0") == 2  # CUDA's 0 is the first visible one
    assert nvml_target("cuda:1", "2, 0") == 0
    assert nvml_target("cuda:0", "GPU-8f2e1c3a-aaaa") == "GPU-8f2e1c3a-aaaa"
    for device, visible, words in (
        ("cuda:2", "0,1", "not in CUDA_VISIBLE_DEVICES"),
        ("cuda:0", "", "not in CUDA_VISIBLE_DEVICES"),
        ("cuda:0", "MIG-1234", "MIG"),
        ("mps", None, "not a CUDA device"),
    ):
        out = nvml_target(device, visible)
        assert isinstance(out, Unavailable) and words in out.reason


def test_thermal_label_from_nvml_state():
    state = {"clock_event_reasons": ["gpu_idle", "sw_power_cap"], "throttled": True}
    t = from_nvml_state(state)
    assert t.throttled and t.state == "throttled: sw_power_cap" and t.source == "nvml"
    t = from_nvml_state({"clock_event_reasons": ["gpu_idle"], "throttled": False})
    assert not t.throttled and t.state == "nominal"


def test_without_a_driver_it_says_why():
    pytest.importorskip("pynvml")
    import pynvml

    try:
        pynvml.nvmlInit()
    except pynvml.NVMLError:
        out = open_nvml("cuda")
        assert isinstance(out, Unavailable) and "NVML init failed" in out.reason
    else:
        pytest.skip("an NVIDIA driver is present")


def test_real_energy_of_a_gemv_on_the_gpu():
    reader, torch = _gpu_reader()
    w = torch.randn(16384, 4096, device="cuda", dtype=torch.float16)  # 128 MiB of weights
    x = torch.randn(4096, device="cuda", dtype=torch.float16)
    for _ in range(20):
        w @ x
    torch.cuda.synchronize()
    reader.start()
    calls, until = 0, time.perf_counter() + 2.0
    while time.perf_counter() < until:
        for _ in range(50):
            w @ x
        torch.cuda.synchronize()
        calls += 50
    e = reader.stop()
    limit = e.extra["power_limit_w"]
    assert e.method == "nvml" and 1.9 < e.interval_s < 3.0
    assert e.rails_mj["gpu"] > 0 and e.total_mj == e.rails_mj["gpu"]
    assert 20 < e.mean_power_w()["gpu"] < 1.2 * limit  # a busy board, under its limit
    per = e.per_inference_mj(calls)["total"]
    assert 0 < per < e.total_mj
    assert len(e.timeline) >= 10 and all(p.watts > 0 for p in e.timeline)
    assert 5 < e.extra["temperature_c"] < 110


def test_real_thermal_state():
    reader, _ = _gpu_reader()
    from anemll_spec.power.nvml import thermal_state

    s = thermal_state(reader.nv, reader.handle)
    assert 5 < s["temperature_c"] < 110 and s["power_limit_w"] > 50
    assert isinstance(s["throttled"], bool)


def test_a_board_without_power_readings_still_gives_its_energy():
    """nvmlDeviceGetPowerUsage raises NotSupported on some boards while the energy counter
    works: the reading is the counter's, with no timeline, never a failed start."""
    from anemll_spec.power.base import guard
    from anemll_spec.power.nvml import NvmlReader

    class NotSupported(Exception):
        pass

    class Board:  # energy counts 5 mJ a read; power, clocks and limits are unsupported
        NVML_TEMPERATURE_GPU = 0

        def __init__(self) -> None:
            self.mj = 1000

        def nvmlDeviceGetName(self, handle):
            return b"Board"

        def nvmlDeviceGetTotalEnergyConsumption(self, handle):
            self.mj += 5
            return self.mj

        def __getattr__(self, name: str):
            def call(*args):
                raise NotSupported(name)

            return call

    board = Board()
    reader = guard(NvmlReader(board, handle=object(), period_s=0.005))
    reader.start()
    time.sleep(0.15)  # longer than the counter's update period (0.1 s)
    e = reader.stop()
    assert not isinstance(e, Unavailable), e
    reads = (board.mj - 1005) // 5 + 1  # every read, the first (1005) included
    assert e.samples == reads and e.rails_mj == {"gpu": float(board.mj - 1005)}
    assert e.timeline == ()  # no power readings: no points, not zeros
    # a reading shorter than the counter's 100 ms steps is no figure (a 40 ms one can hold
    # 2.5x its energy, or none): said why; one window of a sustained run's sum is kept
    reader.start()
    time.sleep(0.02)
    short = reader.stop()
    assert isinstance(short, Unavailable) and short.method == "nvml", short
    assert re.fullmatch(
        r"nvml reading over 0\.0\d+ s, shorter than the counter's update period \(up to 0\.1 "
        r"s\): one update there holds up to [\d.]+ times the interval's energy, or none does "
        r"\(run\.energy_s sets a longer reading\)",
        short.reason,
    ), short.reason
    reader.start()
    time.sleep(0.02)
    window = reader.stop(alone=False)
    assert not isinstance(window, Unavailable) and window.interval_s < 0.1
