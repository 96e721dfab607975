"""Host capture parsers on saved command outputs (tests/fixtures/host/README.md)."""

from __future__ import annotations

import errno
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from anemll_spec import host

FIX = Path(__file__).parent / "fixtures" / "host"


def _read(name: str) -> str:
    return (FIX / name).read_text()


def _mac(prefix: str, translated: bool | None = None) -> dict:
    return host.macos_fields(
        host.parse_sysctl(_read(f"{prefix}_sysctl.txt")),
        host.parse_sw_vers(_read(f"{prefix}_sw_vers.txt")),
        host.parse_pmset_batt(_read(f"{prefix}_pmset_batt.txt")),
        host.parse_pmset_settings(_read(f"{prefix}_pmset_g.txt")),
        host.parse_pmset_therm(_read(f"{prefix}_pmset_therm.txt")),
        translated=translated,
    )


def test_m4_max_capture():
    h = _mac("m4max", translated=False)
    assert h["chip"] == "Apple M4 Max" and h["model_identifier"] == "Mac16,5"
    assert (h["cores_p"], h["cores_e"], h["cores_total"]) == (12, 4, 16)
    assert h["memory_bytes"] == 128 * 1024**3
    assert (h["os_name"], h["os_version"], h["os_build"]) == ("macOS", "15.1.1", "24B91")
    assert h["power_source"] == "AC" and h["battery_pct"] == 100
    assert h["low_power_mode"] is False and h["energy_mode"] == "high power"
    assert h["thermal_state"] == "nominal"
    assert h["translated"] is False


def test_m1_on_battery_in_low_power_under_rosetta():
    h = _mac("m1", translated=True)
    assert h["chip"] == "Apple M1" and h["model_identifier"] == "MacBookAir10,1"
    assert (h["cores_p"], h["cores_e"]) == (4, 4)
    assert h["memory_bytes"] == 16 * 1024**3
    assert h["os_version"] == "14.6.1" and h["os_build"] == "23G93"
    assert h["power_source"] == "Battery" and h["battery_pct"] == 76
    assert h["low_power_mode"] is True and h["energy_mode"] is None  # no High Power Mode
    assert h["thermal_state"] == "throttled: CPU_Speed_Limit 80"
    assert h["translated"] is True


@pytest.mark.parametrize(
    ("lines", "low", "mode"),
    [
        # a Mac with High Power Mode shows powermode alone: its Energy Mode, Low Power
        # Mode read from it (it was NULL: only lowpowermode was read)
        (" powermode 0\n", False, "automatic"),
        (" powermode 1\n", True, "low power"),
        (" powermode 2\n", False, "high power"),
        (" powermode 7\n", None, "pmset powermode 7"),  # not known: kept, no claim
        (" lowpowermode 1\n", True, None),
        (" lowpowermode 0\n", False, None),
        (" lowpowermode 0\n powermode 1\n", False, "low power"),  # lowpowermode first
        (" standby 1\n", None, None),
    ],
)
def test_energy_mode_and_low_power_mode(lines, low, mode):
    settings = host.parse_pmset_settings("Currently in use:\n" + lines)
    h = host.macos_fields({}, {}, {}, settings, {})
    assert (h["low_power_mode"], h["energy_mode"]) == (low, mode)


def test_pmset_settings_prefers_currently_in_use():
    text = "Battery Power:\n lowpowermode 1\nAC Power:\n lowpowermode 0\n"
    assert host.parse_pmset_settings(text)["lowpowermode"] == "1"  # no 'in use': first
    text += "Currently in use:\n lowpowermode 0\n standby 1\n"
    assert host.parse_pmset_settings(text) == {"lowpowermode": "0", "standby": "1"}


def test_thermal_warning_levels():
    assert host.parse_pmset_therm("")["thermal_state"] is None
    assert host.parse_pmset_therm("Thermal warning level: 2\n")["thermal_state"] == (
        "throttled: thermal warning level 2"
    )
    assert host.parse_pmset_therm("CPU_Speed_Limit \t= 100\n")["thermal_state"] == "nominal"


def test_translation_state_is_the_processs_own_not_a_sysctl_childs():
    """The captured sysctl text may hold `sysctl.proc_translated: 1` (the m1 fixture was
    taken by a translated shell); the host row must take only the in-process answer."""
    assert "sysctl.proc_translated" not in host.SYSCTL_KEYS
    assert _read("m1_sysctl.txt").count("sysctl.proc_translated: 1") == 1
    assert _mac("m1")["translated"] is None  # not read from the text
    assert _mac("m1", translated=False)["translated"] is False


@pytest.mark.parametrize(
    ("rc", "value", "err", "expect"),
    [
        (0, 1, 0, True),  # translated
        (0, 0, 0, False),  # native Apple silicon
        (-1, 0, errno.ENOENT, False),  # no such oid: an Intel Mac, native
        (-1, 0, errno.EPERM, None),  # any other failure: unknown
    ],
)
def test_translated_from_sysctlbyname(rc, value, err, expect):
    assert host.translated_from(rc, value, err) is expect


@pytest.mark.skipif(sys.platform == "darwin", reason="the Linux answer")
def test_no_sysctlbyname_off_macos():
    assert host.proc_translated() is None
    assert host.sysctl_int("sysctl.proc_translated") is None  # glibc has no sysctlbyname
    assert host.sysctl_str("kern.osversion") is None


@pytest.mark.macos
def test_proc_translated_in_process_on_a_mac():
    """The in-process answer agrees with the kernel's per-process flag as `arch` sees it."""
    import platform

    got = host.sysctl_int("sysctl.proc_translated")
    assert got is not None
    t = host.proc_translated()
    # a translated process reports an x86_64 machine; a native arm64 one is never translated
    if platform.machine() == "arm64":
        assert t is False
    assert host.sysctl_str("kern.osversion")  # e.g. 24B91


def test_linux_cpuinfo_and_meminfo():
    cpu = host.parse_cpuinfo(_read("linux_epyc_cpuinfo.txt"))
    assert cpu == {"chip": "AMD EPYC", "cores_logical": 2, "cores_physical": 2}
    assert host.parse_meminfo(_read("linux_epyc_meminfo.txt")) == 24684092 * 1024


@pytest.mark.parametrize(
    ("fixture", "chip", "n"),
    [
        ("neoverse_v2", "ARM Neoverse V2", 4),  # Graviton4, Grace: implementer 0x41 part 0xd4f
        ("rk3588", "ARM Cortex-A55 + ARM Cortex-A76", 8),  # big.LITTLE: each kind once
        ("asahi_m1", "Apple M1", 8),  # Asahi Linux: both core kinds name the one SoC
    ],
)
def test_arm64_cpuinfo_names_the_cores_not_their_part_number(fixture, chip, n):
    """arm64 Linux has no 'model name': the chip was stored as '0xd4f' (the CPU part)."""
    text = _read(f"linux_arm64_{fixture}_cpuinfo.txt")
    assert host.parse_cpuinfo(text) == {"chip": chip, "cores_logical": n, "cores_physical": None}


def test_arm64_cpuinfo_of_a_core_the_table_lacks_keeps_both_numbers():
    text = _read("linux_arm64_neoverse_v2_cpuinfo.txt")
    unknown = text.replace("CPU part\t: 0xd4f", "CPU part\t: 0xdff")
    assert host.parse_cpuinfo(unknown)["chip"] == "ARM implementer 0x41 part 0xdff"
    other = text.replace("CPU implementer\t: 0x41", "CPU implementer\t: 0x99")
    assert host.parse_cpuinfo(other)["chip"] == "ARM implementer 0x99 part 0xd4f"
    # a 32-bit board's kernel without the IDs: its Hardware line, as before
    board = "processor\t: 0\nmodel\t\t: ARMv7 Processor rev 4 (v7l)\n\nHardware\t: BCM2835\n"
    assert host.parse_cpuinfo(board)["chip"] == "BCM2835"


def test_nvidia_smi():
    assert host.parse_nvidia_smi(_read("linux_nvidia_smi.txt")) == [
        {"name": "NVIDIA H100 80GB HBM3", "driver": "550.54.15"}
    ]
    assert host.parse_nvidia_smi("") == []


def test_power_source_names():
    assert host.power_source("AC Power") == "AC"
    assert host.power_source("Battery Power") == "Battery"
    assert host.power_source(None) is None


def test_capture_here_has_versions_and_store_columns():
    from anemll_spec.store import schema

    h = host.capture()
    assert h["python_version"] == ".".join(map(str, sys.version_info[:3]))
    assert h["numpy_version"] and h["duckdb_version"] and h["coremltools_version"]
    common = {
        "hostname",
        "chip",
        "cpu_model",
        "os_name",
        "os_version",
        "kernel",
        "cores_total",
        "memory_bytes",
        "python_version",
        "coremltools_version",
        "numpy_version",
        "duckdb_version",
        "torch_version",
    }
    assert common <= set(h) and common <= set(schema.HOSTS.names)
    if sys.platform.startswith("linux"):
        assert h["os_name"] == "Linux" and h["memory_bytes"] > 0 and h["cores_total"] >= 1


def test_capture_imports_nothing_heavy():
    import subprocess

    code = (
        "import sys; from anemll_spec import host; host.capture(); "
        "print(sorted(m for m in ('coremltools', 'torch', 'numpy', 'duckdb') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_a_git_archive_of_the_package_knows_its_commit(tmp_path):
    """`git archive` (a release tarball, or a wheel built from one) has no .git: runs
    from it stored git_commit NULL. export-subst (.gitattributes) writes the archived
    commit into anemll_spec/_commit.txt, which git_info reads there; a real archive of
    HEAD, imported by a fresh process, reports HEAD (dirty: unknown). A checkout's own
    copy is the placeholder, never taken for a commit."""
    root = Path(host.__file__).resolve().parents[1]
    if not (root / ".git").exists() or not shutil.which("git"):
        pytest.skip("not run from a git checkout")
    head = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"],
                          capture_output=True, text=True, check=True).stdout.strip()  # fmt: skip
    archive = subprocess.run(["git", "-C", str(root), "archive", "HEAD", "anemll_spec"],
                             capture_output=True, check=True).stdout  # fmt: skip
    subprocess.run(["tar", "-x", "-C", str(tmp_path)], input=archive, check=True)
    assert not (tmp_path / ".git").exists()
    code = "import json; from anemll_spec import host; print(json.dumps(host.git_info()))"
    env = {**os.environ, "PYTHONPATH": str(tmp_path)}
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                       cwd=tmp_path, env=env, check=True)  # fmt: skip
    assert json.loads(r.stdout) == {"git_commit": head, "git_dirty": None}
    assert (root / "anemll_spec" / "_commit.txt").read_text().strip() == "$Format:%H$"
    assert host.archived_commit(root) is None
    (tmp_path / "anemll_spec" / "_commit.txt").write_text("not a commit\n")
    assert host.archived_commit(tmp_path) is None


def test_git_info_of_a_checkout(tmp_path):
    import subprocess

    info = host.git_info(tmp_path)
    assert info == {"git_commit": None, "git_dirty": None}
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    # no commit yet: `git rev-parse HEAD` fails and prints 'HEAD', which was stored
    assert host.git_info(tmp_path) == {"git_commit": None, "git_dirty": None}
    env = ["-c", "user.email=a@b", "-c", "user.name=t"]
    (tmp_path / "f.txt").write_text("1")
    subprocess.run(["git", "-C", str(tmp_path), "add", "f.txt"], check=True)
    subprocess.run(["git", *env, "-C", str(tmp_path), "commit", "-qm", "x"], check=True)
    clean = host.git_info(tmp_path)
    head = subprocess.run(
        ["git", "-C", str(tmp_path), "rev-parse", "HEAD"], capture_output=True, text=True
    ).stdout.strip()
    assert clean == {"git_commit": head, "git_dirty": False}
    # untracked files (charts/, report.html written by the tool) do not make it dirty
    (tmp_path / "charts").mkdir()
    (tmp_path / "charts" / "factors.html").write_text("<html>")
    (tmp_path / "report.html").write_text("<html>")
    assert host.git_info(tmp_path)["git_dirty"] is False
    (tmp_path / "f.txt").write_text("2")  # a tracked file changed
    assert host.git_info(tmp_path)["git_dirty"] is True
    subprocess.run(["git", "-C", str(tmp_path), "add", "f.txt"], check=True)
    assert host.git_info(tmp_path)["git_dirty"] is True  # staged, not committed
    # a status git cannot give (a damaged index) is unknown, never a clean tree
    (tmp_path / ".git" / "index").write_bytes(b"DIRC\x00\x00")
    assert host.git_info(tmp_path) == {"git_commit": None, "git_dirty": None}


def test_the_host_row_keeps_a_gpus_torch_facts_where_the_run_used_one():
    """A sweep over run.device [cpu, cuda] asked torch about the CPU (the first name in
    order), and the host row kept none of the GPU's memory, SMs or capability."""
    from anemll_spec.runner.bench import facts_device

    assert facts_device({"cpu", "cuda"}) == "cuda"
    assert facts_device({"cpu", "mps"}) == "mps"
    assert facts_device({"auto", "cpu"}) == "auto"
    assert facts_device({"cpu"}) == "cpu"
