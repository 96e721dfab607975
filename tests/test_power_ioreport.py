"""IOReport Energy Model parsing on channel lists and a delta trace captured on an M1 Ultra
and an M5 Max (tests/fixtures/power/README.md); the ctypes calls on a Mac only."""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest

from anemll_spec.power.base import Energy, Unavailable, to_mj
from anemll_spec.power.ioreport import (
    GROUP,
    TOTAL_RAILS,
    Channel,
    check_reading,
    open_ioreport,
    rail_of,
    rails_from_channels,
)

FIX = Path(__file__).parent / "fixtures" / "power"


def _channels(name: str) -> list[tuple[str, str]]:
    rows = []
    for line in (FIX / name).read_text().splitlines():
        if line and not line.startswith("#"):
            ch, unit = line.split("\t")
            rows.append((ch, unit))
    return rows


def _by_rail(rows: list[tuple[str, str]]) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for ch, _ in rows:
        rail = rail_of(GROUP, ch)
        if rail:
            out.setdefault(rail, set()).add(ch)
    return out


def test_m1_ultra_channels_map_to_rails_as_macmon_does():
    rows = _channels("ioreport_m1_ultra_energy_model.tsv")
    assert len(rows) == 321  # the capture's own count
    assert _by_rail(rows) == {
        "cpu": {"DIE_0_CPU Energy", "DIE_1_CPU Energy"},  # not DIE_n_EACC_CPU / PACC*_CPU
        "gpu": {"GPU Energy"},  # the nJ channel; GPU0_0 (mJ) is not summed
        "ane": {"ANE0_0", "ANE0_1"},  # the two dies' ANEs
        "dram": {"DRAM0_0", "DRAM0_1"},
        "gpu_sram": {"GPU SRAM0_0"},
    }
    units = dict(rows)
    assert units["GPU Energy"] == "nJ" and units["ANE0_0"] == "mJ"


def test_m5_max_channels_map_to_rails():
    rows = _channels("ioreport_m5_max_energy_model.tsv")
    assert len(rows) == 364
    assert _by_rail(rows) == {
        "cpu": {"CPU Energy"},
        "gpu": {"GPU Energy"},
        "ane": {"ANE0"},
        "dram": {"DRAM0"},
    }


def test_other_groups_are_ignored():
    assert rail_of("CPU Stats", "CPU Energy") is None
    assert rail_of(GROUP, "PCIe Port 0 Energy") is None


def _trace_line() -> tuple[list[Channel], dict[str, float], float]:
    line = next(
        ln
        for ln in (FIX / "ioreport_m1_ultra_trace.txt").read_text().splitlines()
        if ln.startswith("040 ")
    )
    body, printed = line.split("||")
    chans, dts = [], {}
    for m in re.finditer(
        r"(?:\| |\d{3} \S+ \S+ )([A-Za-z0-9_ ]+?) dv=(\d+)([mun]J) dts=([\d.]+)ms", body
    ):
        name, value, unit, span = m.group(1), int(m.group(2)), m.group(3), float(m.group(4))
        chans.append(Channel(GROUP, "", name, unit, value))
        dts[name] = span / 1e3
    watts = {k: float(v) for k, v in re.findall(r"(\w+)=([\d.]+)W", printed)}
    return chans, watts, dts["ANE0_0"]


def test_trace_deltas_sum_per_rail_hand_computed():
    chans, _, _ = _trace_line()
    assert len(chans) == 8
    rails, parts = rails_from_channels(chans)
    # by hand from the trace: 4606 + 573, 46 + 11, 646 + 638 mJ; 32912460 nJ = 32.91246 mJ
    assert rails == pytest.approx({"cpu": 5179.0, "ane": 57.0, "dram": 1284.0, "gpu": 32.91246})
    # each die's ANE and DRAM kept apart: the evidence for whether the second ANE ran
    assert parts == {
        "cpu/DIE_0_CPU Energy": 4606.0,
        "cpu/DIE_1_CPU Energy": 573.0,
        "ane/ANE0_0": 46.0,
        "ane/ANE0_1": 11.0,
        "dram/DRAM0_0": 646.0,
        "dram/DRAM0_1": 638.0,
        "gpu/GPU Energy": pytest.approx(32.91246),
    }  # GPU0_0's 17 mJ left out, as macmon does


def test_trace_mean_power_matches_the_watts_all_smi_printed():
    chans, watts, span_s = _trace_line()
    rails, _ = rails_from_channels(chans)
    mj_rails = {r: v for r, v in rails.items() if r != "gpu"}  # GPU Energy had its own span
    e = Energy(mj_rails, ("cpu", "ane", "dram"), span_s, "ioreport", 2, True)
    w = e.mean_power_w()
    for rail in ("cpu", "ane", "dram"):
        assert round(w[rail], 2) == watts[rail]  # all-smi: cpu=15.87 ane=0.17 dram=3.94
    assert e.total_mj == pytest.approx(5179 + 57 + 1284)
    assert e.per_inference_mj(1000)["total"] == pytest.approx(6.52)
    assert e.per_inference_mj(1000)["ane"] == pytest.approx(0.057)


def test_unit_conversion_matches_macmons_own_test():
    # macmon's converts_energy_using_the_exact_sample_duration: 1e6 uJ over 250.5 ms
    e = Energy({"cpu": to_mj(1_000_000, "uJ")}, ("cpu",), 0.2505, "ioreport", 2, True)
    assert e.mean_power_w()["cpu"] == pytest.approx(3.992016, abs=1e-6)
    assert to_mj(5, "nJ") == pytest.approx(5e-6)
    with pytest.raises(ValueError, match="not an energy unit"):
        to_mj(1, "24Mticks")


def test_zeroed_counters_are_not_a_reading():
    # macOS 27 on M5 publishes 0 for every mJ channel: CPU and DRAM can never both be 0
    out = check_reading({"cpu": 0.0, "dram": 0.0, "ane": 0.0, "gpu": 3.1}, 4.0)
    assert isinstance(out, Unavailable) and "read 0 mJ" in out.reason
    assert isinstance(check_reading({}, 2.0), Unavailable)
    assert check_reading({"cpu": 10.0, "dram": 2.0}, 12.0) == []
    notes = check_reading({"cpu": 10.0, "dram": 2.0}, 3.4)
    assert isinstance(notes, list) and "short" in notes[0] and "~50%" in notes[0]  # 1.7 / 3.4
    # not capped at 100%: one update in 0.85 s can hold twice its energy (the store takes
    # no such reading as a figure: test_store_energy)
    (note,) = check_reading({"cpu": 10.0, "dram": 2.0}, 0.85)
    assert note.endswith("the error can reach ~200% of the figure"), note
    assert set(TOTAL_RAILS) == {"cpu", "gpu", "ane", "dram"}


@pytest.mark.parametrize("seconds", [1.2, 1.69, 3.39])
def test_zero_within_twice_the_publication_gap_is_a_reading_not_unpublished(seconds):
    """IOReport's mJ counters can go 1.7 s without an update (all-smi's M1 Ultra trace):
    0 mJ over 1.2 s is a reading between updates (the store takes no 0 mJ figure), not
    "this macOS does not publish the counters", which at 1.0 s cost a 1.2 s loop its
    energy pass. The verdict starts at twice the gap: 3.4 s."""
    zero = {"cpu": 0.0, "dram": 0.0, "ane": 0.0, "gpu": 0.0}
    notes = check_reading(zero, seconds)
    assert isinstance(notes, list) and len(notes) == 1
    assert notes[0].startswith(f"interval {seconds:.2f} s is short: IOReport updates")
    out = check_reading(zero, 3.41)
    assert isinstance(out, Unavailable)
    assert out.reason == (
        "IOReport Energy Model read 0 mJ for CPU and DRAM over 3.41 s: this macOS does not "
        "publish the counters (seen on macOS 27 with M5)"
    )


def test_off_macos_it_says_why():
    import sys

    if sys.platform == "darwin":
        pytest.skip("macOS: the real reader is tested below")
    out = open_ioreport()
    assert isinstance(out, Unavailable) and "macOS only" in out.reason


@pytest.mark.macos
def test_real_ioreport_reading_of_a_busy_cpu():
    reader = open_ioreport(period_s=0.2)
    assert not isinstance(reader, Unavailable), reader.reason
    reader.start()
    until = time.perf_counter() + 2.5
    x = 0
    while time.perf_counter() < until:
        x += 1
    e = reader.stop()
    reader.close()
    assert not isinstance(e, Unavailable), e.reason
    assert e.method == "ioreport" and e.samples >= 3
    assert 2.4 < e.interval_s < 3.5
    assert e.rails_mj["cpu"] > 0  # a core was busy for 2.5 s
    assert 0 < e.mean_power_w()["total"] < 500
    assert any(s.rail == "cpu" for s in e.timeline)
