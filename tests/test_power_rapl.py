"""RAPL reader over a real sysfs-shaped tree in tmp_path (the kernel's documented powercap
layout), with counter wraps; and what this machine itself says."""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import pytest

from anemll_spec.power.base import Unavailable
from anemll_spec.power.rapl import ROOT, counter_delta, find_zones, open_rapl

MAX = 262143328850  # a real package counter's max_energy_range_uj (Intel Skylake-SP)


def _zone(root: Path, name: str, label: str, energy: int, max_range: int = MAX) -> Path:
    d = root / name
    d.mkdir()
    (d / "name").write_text(label + "\n")
    (d / "energy_uj").write_text(f"{energy}\n")
    (d / "max_energy_range_uj").write_text(f"{max_range}\n")
    return d


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    root = tmp_path / "powercap"
    root.mkdir()
    (root / "intel-rapl").mkdir()  # the control-type directory: not a zone
    _zone(root, "intel-rapl:0", "package-0", MAX - 1_000)
    _zone(root, "intel-rapl:0:0", "core", 5_000_000)
    _zone(root, "intel-rapl:0:1", "dram", 7_000_000, 65712999613)
    _zone(root, "intel-rapl:1", "psys", 10_000_000)
    _zone(root, "intel-rapl-mmio:0", "package-0", 1)  # MMIO view of the same package
    return root


def _write(root: Path, zone: str, value: int) -> None:
    """Atomically, as sysfs does: the sampler thread never reads a half-written file."""
    tmp = root / zone / "energy_uj.tmp"
    tmp.write_text(f"{value}\n")
    os.replace(tmp, root / zone / "energy_uj")


def test_counter_delta_wraps_modulo_range_plus_one():
    assert counter_delta(100, 400, MAX) == 300
    # MAX-850 -> MAX (850 uJ), MAX -> 0 (1 uJ), 0 -> 500 (500 uJ)
    assert counter_delta(MAX - 850, 500, MAX) == 1351


def test_zones_and_what_counts_in_the_total(tree: Path):
    zones = find_zones(tree)
    assert not isinstance(zones, Unavailable)
    assert [(z.rail, z.in_total) for z in zones] == [
        ("package-0", True),
        ("package-0.core", False),  # inside the package domain
        ("package-0.dram", True),  # a domain of its own
        ("psys", False),  # the platform: covers the others
    ]


def test_energy_between_two_reads_hand_computed(tree: Path):
    reader = open_rapl(tree, period_s=None)
    assert not isinstance(reader, Unavailable)
    reader.start()
    _write(tree, "intel-rapl:0", 2_999_000)  # wrapped: 1_000 + 1 + 2_999_000 = 3_000_001 uJ
    _write(tree, "intel-rapl:0:0", 6_500_000)  # 1.5 J
    _write(tree, "intel-rapl:0:1", 7_400_000)  # 0.4 J
    _write(tree, "intel-rapl:1", 14_000_000)  # 4 J
    e = reader.stop()
    assert e.method == "rapl" and e.samples == 2
    assert e.rails_mj == pytest.approx(
        {"package-0": 3000.001, "package-0.core": 1500.0, "package-0.dram": 400.0, "psys": 4000.0}
    )
    assert e.total_mj == pytest.approx(3400.001)  # package + dram
    assert e.per_inference_mj(100)["total"] == pytest.approx(34.00001)
    assert e.per_inference_mj(100)["package-0.dram"] == pytest.approx(4.0)
    assert e.mean_power_w()["total"] == pytest.approx(3.400001 / e.interval_s)
    # the label says what the total holds: the package's DRAM too (it said the package)
    assert e.notes == (
        "RAPL: the CPU's own energy model of the whole package and its DRAM, all processes",
    )


def test_without_a_dram_zone_the_label_names_the_package_alone(tree: Path):
    shutil.rmtree(tree / "intel-rapl:0:1")
    reader = open_rapl(tree, period_s=None)
    assert not isinstance(reader, Unavailable)
    reader.start()
    e = reader.stop()
    assert e.total_rails == ("package-0",)
    assert e.notes == ("RAPL: the CPU's own energy model of the whole package, all processes",)


def test_sampler_catches_more_than_one_wrap(tree: Path):
    reader = open_rapl(tree, period_s=0.002)
    assert not isinstance(reader, Unavailable)
    reader.start()
    sampler = reader._sampler
    # three writes, each seen by the sampler thread before the next: two wraps in total
    for value in (MAX - 10, 20, MAX - 5):
        _write(tree, "intel-rapl:0", value)
        seen = len(sampler.points)
        deadline = time.perf_counter() + 5
        while len(sampler.points) < seen + 2 and time.perf_counter() < deadline:
            time.sleep(0.001)
    _write(tree, "intel-rapl:0", 30)
    e = reader.stop()
    # MAX-1000 -> MAX-10: 990; -> 20: 10+1+20 = 31; -> MAX-5: MAX-25; -> 30: 5+1+30 = 36
    assert e.rails_mj["package-0"] == pytest.approx((990 + 31 + (MAX - 25) + 36) / 1e3)
    assert e.samples >= 5
    assert {p.rail for p in e.timeline} == {"package-0", "package-0.core", "package-0.dram", "psys"}


def test_missing_or_unreadable_zones_say_why(tmp_path: Path):
    out = find_zones(tmp_path / "nope")
    assert isinstance(out, Unavailable) and "does not exist" in out.reason
    empty = tmp_path / "empty"
    empty.mkdir()
    out = find_zones(empty)
    assert isinstance(out, Unavailable) and "no RAPL zones" in out.reason
    bad = tmp_path / "bad"
    bad.mkdir()
    z = bad / "intel-rapl:0"
    z.mkdir()
    (z / "name").write_text("package-0\n")
    (z / "energy_uj").mkdir()  # not a file
    out = find_zones(bad)
    assert isinstance(out, Unavailable) and "unreadable" in out.reason


def test_this_machine():
    out = open_rapl()
    if not ROOT.exists():  # this VM: no powercap at all
        assert isinstance(out, Unavailable) and str(ROOT) in out.reason
    else:
        assert out.method == "rapl"
