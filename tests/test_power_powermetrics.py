"""powermetrics parsing on a real M1 capture (and its plist re-serialisation), plus the
live reader where sudo allows it (tests/fixtures/power/README.md)."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import pytest

from anemll_spec.power.base import Unavailable
from anemll_spec.power.powermetrics import (
    energy_from_samples,
    open_powermetrics,
    parse,
    parse_text,
)

FIX = Path(__file__).parent / "fixtures" / "power"
# typed by hand from powermetrics_m1_macbookair10_1.txt: elapsed ms, CPU, GPU, ANE, DRAM,
# Package Power (mW) of each of its ten samples
ROWS = [
    (104.51, 947, 153, 0, 220, 1473),
    (104.81, 420, 67, 0, 162, 773),
    (105.93, 208, 28, 0, 66, 396),
    (108.22, 102, 9, 0, 37, 120),
    (109.24, 156, 9, 0, 64, 284),
    (108.45, 369, 46, 0, 148, 618),
    (108.38, 231, 28, 0, 83, 434),
    (106.72, 272, 19, 0, 94, 450),
    (108.88, 202, 18, 0, 64, 303),
    (108.92, 239, 9, 0, 83, 321),
]


def test_text_capture_samples_hand_checked():
    samples = parse_text((FIX / "powermetrics_m1_macbookair10_1.txt").read_text())
    assert len(samples) == len(ROWS)
    for s, (ms, cpu, gpu, ane, dram, pkg) in zip(samples, ROWS, strict=True):
        assert s.elapsed_s == pytest.approx(ms / 1e3)
        # mW x s = mJ
        assert s.rails_mj == pytest.approx(
            {"cpu": cpu * ms / 1e3, "gpu": gpu * ms / 1e3, "ane": ane * ms / 1e3,
             "dram": dram * ms / 1e3, "package": pkg * ms / 1e3}
        )  # fmt: skip
    assert samples[0].rails_mj["cpu"] == pytest.approx(98.97097)  # 947 mW x 0.10451 s


def test_energy_over_the_capture():
    e = energy_from_samples(parse((FIX / "powermetrics_m1_macbookair10_1.txt").read_bytes()))
    assert not isinstance(e, Unavailable)
    assert e.samples == 10 and e.method == "powermetrics"
    assert e.interval_s == pytest.approx(sum(r[0] for r in ROWS) / 1e3)  # 1.07406 s
    cpu = sum(r[0] * r[1] for r in ROWS) / 1e3
    dram = sum(r[0] * r[4] for r in ROWS) / 1e3
    gpu = sum(r[0] * r[2] for r in ROWS) / 1e3
    assert e.rails_mj["cpu"] == pytest.approx(cpu)
    # the total is CPU + GPU + ANE + DRAM; 'package' overlaps them and stays out
    assert e.total_rails == ("cpu", "gpu", "ane", "dram")
    assert e.total_mj == pytest.approx(cpu + gpu + dram)
    assert e.timed_only is False  # its windows never line up with the timed region
    assert any("not be used to compare devices" in n for n in e.notes)
    # 10 samples x 5 rails on the timeline, each the sample's mean power
    assert len(e.timeline) == 50
    assert next(p for p in e.timeline if p.rail == "cpu").watts == pytest.approx(0.947)


def test_plist_stream_gives_the_same_energies_and_drops_a_cut_off_document():
    plist = parse((FIX / "powermetrics_m1_derived.plist").read_bytes())
    text = parse_text((FIX / "powermetrics_m1_macbookair10_1.txt").read_text())
    assert len(plist) == 3  # the fourth document is cut off mid-way
    for p, t in zip(plist, text, strict=False):
        assert p.elapsed_s == pytest.approx(t.elapsed_s)
        for rail in ("cpu", "gpu", "ane"):
            assert p.rails_mj[rail] == pytest.approx(t.rails_mj[rail])


def test_only_samples_inside_the_timed_region_count():
    samples = parse_text((FIX / "powermetrics_m1_macbookair10_1.txt").read_text())
    t = 0
    for s in samples:  # arrival times: back to back, each at the end of its window
        t += int(s.elapsed_s * 1e9)
        s.t_ns = t
    # a region from the middle of sample 2 to the middle of sample 5 (0-based) holds the
    # midpoints of samples 2, 3, 4 and 5
    start = samples[2].t_ns - int(samples[2].elapsed_s * 6e8)
    stop = samples[5].t_ns - int(samples[5].elapsed_s * 4e8)
    e = energy_from_samples(samples, start, stop)
    assert e.samples == 4
    # the four windows' mean power times the region's length (their sum charged the
    # region the windows' ends outside it too), and the region as the interval
    windows_s = sum(s.elapsed_s for s in samples[2:6])
    region_s = (stop - start) / 1e9
    cpu_mj = sum(r[0] * r[1] for r in ROWS[2:6]) / 1e3
    assert e.interval_s == pytest.approx(region_s) and region_s < windows_s
    assert e.rails_mj["cpu"] == pytest.approx(cpu_mj * region_s / windows_s)
    none = energy_from_samples(samples, 0, 10)
    assert isinstance(none, Unavailable) and "no sample" in none.reason


def test_a_region_shorter_than_two_windows_is_no_reading():
    """A 30 ms loop inside one 100 ms window was charged the whole window (3.3x its
    energy per inference); a region must hold two windows' time."""
    samples = parse_text((FIX / "powermetrics_m1_macbookair10_1.txt").read_text())
    t = 0
    for s in samples:
        t += int(s.elapsed_s * 1e9)
        s.t_ns = t
    mid = samples[3].t_ns - int(samples[3].elapsed_s * 5e8)
    short = energy_from_samples(samples, mid - 15_000_000, mid + 15_000_000)
    assert isinstance(short, Unavailable), short
    assert "reading over 0.03 s, shorter than 2 of its" in short.reason
    assert "run.energy_s sets a longer reading" in short.reason
    # a capture read back from disk (no bounds) is its windows' sum, one window too
    one = energy_from_samples(samples[3:4])
    assert not isinstance(one, Unavailable) and one.rails_mj == samples[3].rails_mj
    two = int(2.01 * samples[3].elapsed_s * 1e9)  # two windows' time: read
    assert not isinstance(energy_from_samples(samples, mid - two // 2, mid + two // 2), Unavailable)


@pytest.mark.skipif(sys.platform == "darwin", reason="macOS: the live test below")
def test_off_macos_it_says_why():
    out = open_powermetrics()
    assert isinstance(out, Unavailable) and "macOS only" in out.reason


@pytest.mark.macos
def test_live_powermetrics_where_sudo_allows_it():
    reader = open_powermetrics(0.1)
    if isinstance(reader, Unavailable):
        pytest.skip(reader.reason)
    reader.start()
    until = time.perf_counter() + 1.5
    while time.perf_counter() < until:
        pass
    e = reader.stop()
    assert not isinstance(e, Unavailable), e.reason
    assert e.samples >= 5 and e.rails_mj["cpu"] > 0


def test_samples_with_no_rail_are_no_reading_not_zero():
    """An Intel Mac's cpu_power sample has package_joules and cpu_watts, none of the rails
    read here: that is no reading, never 0 mJ per inference."""
    import plistlib

    doc = {"elapsed_ns": 100_000_000, "processor": {"package_joules": 1.5, "cpu_watts": 9.0}}
    samples = parse(plistlib.dumps(doc) + b"\x00")
    assert len(samples) == 1 and samples[0].rails_mj == {}
    out = energy_from_samples(samples)
    assert isinstance(out, Unavailable) and "hold no cpu/gpu/ane/dram energy" in out.reason


def test_the_gpu_samplers_own_energy_is_read_where_processor_lacks_it():
    """macOS 26 reports the GPU's energy (mJ) in the gpu sampler's dict, not processor's."""
    import plistlib

    doc = {
        "elapsed_ns": 200_000_000,
        "processor": {"cpu_energy": 40, "ane_power": 50.0},
        "gpu": {"gpu_energy": 12, "idle_ratio": 0.5},
    }
    (s,) = parse(plistlib.dumps(doc) + b"\x00")
    assert s.rails_mj == {"cpu": 40.0, "ane": 50.0 * 0.2, "gpu": 12.0}
    doc["processor"]["gpu_energy"] = 7  # where both are given, processor's is kept
    (s,) = parse(plistlib.dumps(doc) + b"\x00")
    assert s.rails_mj["gpu"] == 7.0


@pytest.mark.parametrize("nul", ["before", "after"])
def test_live_samples_chosen_are_the_windows_inside_the_timed_region(tmp_path, monkeypatch, nul):
    """A sample is stamped when its document ends (`</plist>`), not when the NUL before the
    next one arrives a period later: the windows summed are those whose real midpoint lies
    between start() and stop(), not the ones a period earlier (an idle window before the
    region counted, the last one in it dropped)."""
    import os

    from power_util import fake_powermetrics, windows

    from anemll_spec.power.powermetrics import PowermetricsReader

    log = tmp_path / "windows.log"
    fake_powermetrics(tmp_path / "bin", log, nul)
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}{os.pathsep}{os.environ['PATH']}")
    period_ns = 100_000_000
    reader = PowermetricsReader(0.1)
    reader.start()
    t_start = reader._t_start  # after the first sample arrived
    t0 = windows(log)[1][0]
    k = (t_start - t0) // period_ns + 10  # ten windows on, a quarter into a window:
    target = t0 + k * period_ns + period_ns // 4  # far from any window's midpoint
    while time.perf_counter_ns() < target:
        time.sleep(0.001)
    t_stop = time.perf_counter_ns()
    e = reader.stop()
    assert not isinstance(e, Unavailable), e.reason
    inside = [k for k, (a, b) in windows(log).items() if t_start <= (a + b) / 2 <= t_stop]
    assert 9 <= len(inside) <= 11 and inside == list(range(inside[0], inside[-1] + 1))
    # the chosen windows are contiguous too: their count and the sum of their ids name
    # them (cpu_energy of window k is k mJ), scaled to the region by their mean power
    win = windows(log)
    windows_s = sum(win[k][1] - win[k][0] for k in inside) / 1e9
    assert e.samples == len(inside)
    assert t_stop - t_start <= e.interval_s * 1e9 < t_stop - t_start + 50_000_000
    assert e.rails_mj["cpu"] == pytest.approx(sum(inside) * e.interval_s / windows_s)


def test_powermetrics_that_exits_at_once_says_why_without_waiting(tmp_path, monkeypatch):
    """`sudo -n -l` allowed it, then powermetrics exited before its first sample: start()
    waited 5 s (each window of a sustained run) and stop() said "no sample within the
    timed region". Now the reading's reason is its exit status and stderr, at once."""
    import os

    from power_util import fake_sudo

    from anemll_spec.power.base import guard
    from anemll_spec.power.powermetrics import PowermetricsReader

    fake_sudo(
        tmp_path / "bin",
        "#!/bin/sh\necho 'powermetrics: must be invoked' >&2\necho '  as the superuser' >&2\n"
        "exit 3\n",
    )
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}{os.pathsep}{os.environ['PATH']}")
    reader = guard(PowermetricsReader(0.1))
    t = time.perf_counter()
    reader.start()
    out = reader.stop()
    assert time.perf_counter() - t < 2.0  # was 5 s: the wait for a first sample
    assert out == Unavailable(
        "the energy reading failed to start: RuntimeError: sudo -n powermetrics exited with "
        "status 3 before its first sample: powermetrics: must be invoked as the superuser",
        "powermetrics",
    )
