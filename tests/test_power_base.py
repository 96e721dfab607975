"""The shared parts of the power readers: Energy arithmetic, the sampler thread, and
which reader open_reader picks (or why none)."""

from __future__ import annotations

import sys
import time

import pytest
from power_util import rapl_zone

from anemll_spec.power import open_reader
from anemll_spec.power.base import Energy, Sampler, Unavailable, to_mj


def test_energy_arithmetic_hand_computed():
    e = Energy(
        {"cpu": 1200.0, "dram": 300.0, "package": 1700.0}, ("cpu", "dram"), 2.5, "x", 3, True
    )
    assert e.total_mj == 1500.0  # 'package' is not in the total
    w = e.mean_power_w()
    assert w == pytest.approx({"cpu": 0.48, "dram": 0.12, "package": 0.68, "total": 0.6})
    per = e.per_inference_mj(300)
    assert per == pytest.approx({"cpu": 4.0, "dram": 1.0, "package": 1700 / 300, "total": 5.0})
    assert e.per_inference_mj(0) == {}
    assert Energy({}, (), 0.0, "x", 1, True).mean_power_w() == {}
    assert to_mj(2, "J") == 2000.0 and to_mj(3, " mJ ") == 3.0


def test_sampler_reads_at_both_ends_and_in_between():
    count = iter(range(10_000))
    s = Sampler(lambda: next(count), period_s=0.005)
    s.start()
    time.sleep(0.1)
    points = s.stop()
    values = [v for _, v in points]
    assert values == list(range(len(values)))  # every read kept, in order
    assert len(points) >= 4  # first, >= 2 by the thread, last
    times = [t for t, _ in points]
    assert times == sorted(times)


def test_sampler_stop_does_not_wait_for_a_long_period():
    s = Sampler(lambda: 0, period_s=30.0)
    s.start()
    t0 = time.perf_counter()
    points = s.stop()
    assert time.perf_counter() - t0 < 1.0
    assert len(points) == 2


def test_sampler_without_period_has_no_thread():
    s = Sampler(lambda: 1, period_s=None)
    s.start()
    assert s._thread is None
    assert [v for _, v in s.stop()] == [1, 1]


def test_open_reader_never_raises_for_not_here():
    out = open_reader("onnx", "cpu")
    assert isinstance(out, Unavailable) and "onnx" in out.reason
    for backend, device in (
        ("numpy", "cpu"),
        ("torch", "cpu"),
        ("torch", "cuda"),
        ("coreml", "auto"),
    ):
        out = open_reader(backend, device)
        assert isinstance(out, Unavailable) or hasattr(out, "start")
        if isinstance(out, Unavailable):
            assert out.reason  # always says why


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux dispatch")
def test_linux_cpu_backends_use_rapl_and_cuda_uses_nvml():
    assert open_reader("numpy", "cpu").method == "rapl"
    assert open_reader("torch", "cpu").method == "rapl"
    assert open_reader("torch", "cuda:0").method == "nvml"


def _rapl_that_breaks(tmp_path):
    """A real RAPL reader over a sysfs-shaped tree whose counter is gone by stop()."""
    from anemll_spec.power.rapl import open_rapl

    counter = rapl_zone(tmp_path / "powercap")
    reader = open_rapl(tmp_path / "powercap", period_s=None)
    assert not isinstance(reader, Unavailable)
    return reader, counter


def test_a_reading_that_fails_is_missing_with_its_error_not_a_failed_timing(tmp_path):
    """Counters that cannot be read at stop() (a zone gone, NVML's NotSupported, a unit
    IOReport never used) cost the energy, not the calls timed meanwhile."""
    from anemll_spec.harness import Budget, time_concurrent
    from anemll_spec.power.base import guard

    reader, counter = _rapl_that_breaks(tmp_path)
    guarded = guard(reader)
    guarded.start()
    counter.unlink()
    got = guarded.stop()
    assert isinstance(got, Unavailable) and got.method == "rapl"
    assert got.reason.startswith("the energy reading failed: ") and "energy_uj" in got.reason

    reader, counter = _rapl_that_breaks(tmp_path / "again")
    budget = Budget(warmup=1, warmup_s=0.0, iterations=12, min_iterations=12, max_time_s=10)

    calls = []

    def call() -> None:
        time.sleep(0.001)
        calls.append(1)
        if len(calls) > 6:  # both warm-up calls done, and the reader started
            counter.unlink(missing_ok=True)  # gone while the calls are timed

    res = time_concurrent([call, call], budget, reader=reader)
    # every call timed is kept: one instance ran its 12, the other the same or stopped
    # with it after its call in flight (stop "peer": instances stop together)
    done = sorted((t.n, t.stop) for t in res.per_instance)
    assert done[1] == (12, "iterations") and (done[0][0] == 12 or done[0][1] == "peer"), done
    assert done[0][0] >= 1
    assert isinstance(res.energy, Unavailable) and "energy_uj" in res.energy.reason


def test_nvml_state_a_board_cannot_read_is_none_not_an_error():
    """pynvml raises for a call the board does not support; thermal_state reads each
    value on its own, and the window's thermal state says it cannot be read."""
    from anemll_spec.power.nvml import thermal_state
    from anemll_spec.power.thermal import from_nvml_state

    class NotSupported(Exception):
        pass

    class Board:  # a driver that supports none of the calls (each raises, as pynvml does)
        NVML_TEMPERATURE_GPU = 0

        def __getattr__(self, name: str):
            def call(*args):
                raise NotSupported(name)

            return call

    state = thermal_state(Board(), handle=object())
    assert state == {
        "temperature_c": None,
        "power_w": None,
        "power_limit_w": None,
        "clock_event_reasons": [],
        "throttled": None,
    }
    assert isinstance(from_nvml_state(state), Unavailable)


def test_a_reader_that_fails_to_start_is_missing_with_its_error_and_released(tmp_path):
    """A counter unreadable at start() (gone since open, a driver refusing) costs the
    reading: stop() answers why, and never raises; what the partial start made is
    released (the reader's own stop is called)."""
    from anemll_spec.power.base import guard

    reader, counter = _rapl_that_breaks(tmp_path)
    counter.unlink()
    stops = []
    real_stop = reader.stop
    reader.stop = lambda **kw: stops.append(kw) or real_stop(**kw)
    guarded = guard(reader)
    guarded.start()  # raises nothing
    got = guarded.stop()
    assert isinstance(got, Unavailable) and got.method == "rapl"
    assert got.reason.startswith("the energy reading failed to start: FileNotFoundError")
    assert len(stops) == 1  # the release
    guarded.close()  # and nothing is running to close
    assert len(stops) == 1


def test_a_counter_that_fails_in_the_sampler_thread_fails_the_reading_not_the_thread():
    """A read in the sampler thread that raises ends the thread (no traceback on
    stderr, no thread left); stop() raises it, so the reading says why."""
    import threading

    from anemll_spec.power.base import guard

    count = iter(range(10_000))

    def read() -> int:
        n = next(count)
        if n == 3:
            raise OSError("counter gone")
        return n

    class Reader:
        method = "test"

        def __init__(self) -> None:
            self.sampler = Sampler(read, period_s=0.002)

        def start(self) -> None:
            self.sampler.start()

        def stop(self, *, timed_only: bool = True):
            return self.sampler.stop()

    r = guard(Reader())
    r.start()
    thread = r.reader.sampler._thread
    assert isinstance(thread, threading.Thread)
    thread.join(timeout=5)  # it ends on its own at the failed read
    assert not thread.is_alive() and isinstance(r.reader.sampler.error, OSError)
    got = r.stop()
    assert isinstance(got, Unavailable)
    assert got.reason == "the energy reading failed: OSError: counter gone"


def test_close_stops_a_reading_left_running_and_only_that():
    from power_util import ClockReader

    from anemll_spec.power.base import guard

    r = guard(ClockReader())
    r.start()
    r.close()  # timing failed: the reading ends, its result dropped
    assert hasattr(r.reader, "t1")
    del r.reader.t1
    r.close()  # nothing running: nothing to stop
    assert not hasattr(r.reader, "t1")
    r.start()
    assert r.stop() == ("read", True)
    assert isinstance(r.stop(), Unavailable)  # stopped once only: a second says so
