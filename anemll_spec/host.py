"""What machine a run ran on: chip, cores, memory, OS, power, thermal state, versions.

Parsers are pure functions over the text the commands print (tested on captures in
tests/fixtures/host/); `capture()` runs the commands. Versions come from package
metadata, so nothing heavy (coremltools, torch) is imported.

Whether THIS process runs under Rosetta is asked in-process (`sysctlbyname` through
ctypes): a `sysctl` child process would report its own (native) translation state.
The checkout's commit and dirty flag come from `checkout`.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import functools
import importlib.metadata
import os
import platform
import re
import shutil
import subprocess
import sys
from pathlib import Path

from anemll_spec.checkout import archived_commit, git_info  # noqa: F401 (host.git_info)
from anemll_spec.machine_id import hostname
from anemll_spec.text import store_line

SYSCTL_KEYS = (
    "machdep.cpu.brand_string",
    "hw.model",
    "hw.physicalcpu",
    "hw.perflevel0.physicalcpu",
    "hw.perflevel1.physicalcpu",
    "hw.memsize",
)
VERSIONED = ("coremltools", "numpy", "duckdb")


# -- parsers (pure) ----------------------------------------------------------------------
def parse_sysctl(text: str) -> dict[str, str]:
    """`sysctl a b c` output ('name: value' lines) -> {name: value}."""
    out: dict[str, str] = {}
    for line in text.splitlines():
        name, sep, value = line.partition(":")
        if sep and name.strip() and " " not in name.strip():
            out[name.strip()] = value.strip()
    return out


def parse_sw_vers(text: str) -> dict[str, str]:
    """`sw_vers` -> {ProductName, ProductVersion, BuildVersion}."""
    return {
        k.strip(): v.strip()
        for k, sep, v in (line.partition(":") for line in text.splitlines())
        if sep
    }


def parse_pmset_batt(text: str) -> dict:
    """`pmset -g batt` -> power source ('AC Power' | 'Battery Power' | ...) and battery %."""
    m = re.search(r"drawing from '([^']+)'", text)
    pct = re.search(r"\t(\d+)%;\s*([a-zA-Z ]+);", text)
    return {
        "power_source": m.group(1) if m else None,
        "battery_pct": int(pct.group(1)) if pct else None,
        "battery_state": pct.group(2).strip() if pct else None,
    }


def parse_pmset_settings(text: str) -> dict[str, str]:
    """`pmset -g` -> the settings 'Currently in use' (falls back to every section)."""
    lines = text.splitlines()
    try:
        start = next(i for i, line in enumerate(lines) if line.startswith("Currently in use"))
        lines = lines[start + 1 :]
    except StopIteration:
        pass
    out: dict[str, str] = {}
    for line in lines:
        if not line.startswith(" "):
            if out:
                break  # the next section
            continue
        m = re.match(r"\s+(\S+)\s+(\S+)", line)
        if m:
            out.setdefault(m.group(1), m.group(2))
    return out


def parse_pmset_therm(text: str) -> dict:
    """`pmset -g therm` -> thermal state: 'nominal' unless a warning level, or a CPU
    speed limit below 100, has been recorded."""
    warnings: list[str] = []
    for kind in ("thermal", "performance"):
        if re.search(rf"No {kind} warning level has been recorded", text):
            continue
        m = re.search(rf"{kind} warning level\D*(\d+)", text, re.IGNORECASE)
        if m and m.group(1) != "0":
            warnings.append(f"{kind} warning level {m.group(1)}")
    limit = re.search(r"CPU_Speed_Limit\s*=\s*(\d+)", text)
    speed = int(limit.group(1)) if limit else None
    if speed is not None and speed < 100:
        warnings.append(f"CPU_Speed_Limit {speed}")
    if not text.strip():
        state = None
    else:
        state = "nominal" if not warnings else "throttled: " + ", ".join(warnings)
    return {"thermal_state": state, "cpu_speed_limit": speed}


def translated_from(rc: int, value: int, err: int) -> bool | None:
    """The result of sysctlbyname("sysctl.proc_translated") -> translated?

    Apple's rule ("About the Rosetta translation environment"): 1 translated, 0 native;
    a failure with ENOENT means the oid does not exist (an Intel Mac): native. Any other
    failure: unknown (None).
    """
    if rc == 0:
        return value == 1
    return False if err == errno.ENOENT else None


def parse_cpuinfo(text: str) -> dict:
    """/proc/cpuinfo -> CPU model and logical/physical core counts."""
    models = re.findall(r"^model name\s*:\s*(.+)$", text, re.MULTILINE)
    if not models:  # arm64 Linux has no 'model name': its cores are numbered (arm_cpus)
        from anemll_spec.arm_cpus import chip_name

        ids = []
        for block in re.split(r"\n\s*\n", text):  # a processor's lines, or all of them
            impl = re.search(r"^CPU implementer\s*:\s*0x([0-9a-f]+)\s*$", block, re.M | re.I)
            part = re.search(r"^CPU part\s*:\s*0x([0-9a-f]+)\s*$", block, re.M | re.I)
            if impl and part:
                ids.append((int(impl.group(1), 16), int(part.group(1), 16)))
        name = chip_name(ids)
        models = [name] if name else re.findall(r"^Hardware\s*:\s*(.+)$", text, re.MULTILINE)
    logical = len(re.findall(r"^processor\s*:", text, re.MULTILINE))
    cores = {
        (p, c)
        for p, c in re.findall(
            r"^physical id\s*:\s*(\d+)$.*?^core id\s*:\s*(\d+)$", text, re.MULTILINE | re.DOTALL
        )
    }
    return {
        "chip": models[0].strip() if models else None,
        "cores_logical": logical or None,
        "cores_physical": len(cores) or None,
    }


def parse_meminfo(text: str) -> int | None:
    """/proc/meminfo -> total memory in bytes."""
    m = re.search(r"^MemTotal:\s*(\d+)\s*kB", text, re.MULTILINE)
    return int(m.group(1)) * 1024 if m else None


def parse_nvidia_smi(text: str) -> list[dict]:
    """`nvidia-smi --query-gpu=name,driver_version --format=csv,noheader` -> GPUs."""
    gpus = []
    for line in text.splitlines():
        parts = [p.strip() for p in line.split(",")]
        if len(parts) >= 2 and parts[0]:
            gpus.append({"name": parts[0], "driver": parts[1]})
    return gpus


def macos_fields(
    sysctl: dict[str, str],
    sw_vers: dict[str, str],
    batt: dict,
    settings: dict,
    therm: dict,
    translated: bool | None = None,
) -> dict:
    """The host fields of a Mac, from the parsed command outputs; `translated` is this
    process's own Rosetta state (proc_translated()), not a command's."""

    def num(key: str) -> int | None:
        v = sysctl.get(key)
        return int(v) if v and v.isdigit() else None

    mode = energy_mode(settings.get("powermode"))
    brand = sysctl.get("machdep.cpu.brand_string")
    return {
        "os_name": "macOS",
        "os_version": sw_vers.get("ProductVersion"),
        "os_build": sw_vers.get("BuildVersion"),
        "chip": brand,
        "cpu_model": brand,
        "model_identifier": sysctl.get("hw.model"),
        "cores_p": num("hw.perflevel0.physicalcpu"),
        "cores_e": num("hw.perflevel1.physicalcpu"),
        "cores_total": num("hw.physicalcpu"),
        "memory_bytes": num("hw.memsize"),
        "power_source": power_source(batt.get("power_source")),
        "battery_pct": batt.get("battery_pct"),
        "low_power_mode": low_power_mode(settings, mode),
        "energy_mode": mode,
        "thermal_state": therm.get("thermal_state"),
        "translated": translated,
    }


# pmset's `powermode` (Macs with High Power Mode) -> System Settings' Energy Mode.
ENERGY_MODES = {"0": "automatic", "1": "low power", "2": "high power"}


def energy_mode(raw: str | None) -> str | None:
    """pmset's `powermode` as its Energy Mode ('automatic', 'low power', 'high power');
    a value not known here is kept as pmset says it; None on a Mac without the setting
    (no High Power Mode: it has `lowpowermode` alone)."""
    if raw is None:
        return None
    return ENERGY_MODES.get(raw, f"pmset powermode {raw}")


def low_power_mode(settings: dict, mode: str | None) -> bool | None:
    """Low Power Mode on: pmset's `lowpowermode`, or, on a Mac that shows only
    `powermode` (those with High Power Mode), its Energy Mode 'low power'."""
    raw = settings.get("lowpowermode")
    if raw is not None:
        return raw == "1"
    if mode in ENERGY_MODES.values():
        return mode == "low power"
    return None


# -- in-process sysctl (macOS) ---------------------------------------------------------
def _sysctlbyname():
    """libc's sysctlbyname as a ctypes function, or None where there is none (Linux)."""
    name = ctypes.util.find_library("c")
    try:
        fn = ctypes.CDLL(name, use_errno=True).sysctlbyname
    except (OSError, AttributeError):
        return None
    fn.argtypes = [
        ctypes.c_char_p,
        ctypes.c_void_p,
        ctypes.POINTER(ctypes.c_size_t),
        ctypes.c_void_p,
        ctypes.c_size_t,
    ]
    fn.restype = ctypes.c_int
    return fn


def sysctl_int(name: str) -> tuple[int, int, int] | None:
    """(rc, value, errno) of an int-valued sysctlbyname in THIS process; None without one."""
    fn = _sysctlbyname()
    if fn is None:
        return None
    value = ctypes.c_int(0)
    size = ctypes.c_size_t(ctypes.sizeof(value))
    rc = fn(name.encode(), ctypes.byref(value), ctypes.byref(size), None, 0)
    return rc, value.value, ctypes.get_errno() if rc != 0 else 0


def sysctl_str(name: str) -> str | None:
    """A string-valued sysctl (e.g. kern.osversion) read in-process; None if unavailable."""
    fn = _sysctlbyname()
    if fn is None:
        return None
    size = ctypes.c_size_t(0)
    if fn(name.encode(), None, ctypes.byref(size), None, 0) != 0 or size.value == 0:
        return None
    buf = ctypes.create_string_buffer(size.value)
    if fn(name.encode(), buf, ctypes.byref(size), None, 0) != 0:
        return None
    return buf.value.decode(errors="replace") or None


def proc_translated() -> bool | None:
    """True when this Python runs translated by Rosetta; None off macOS or if unknown."""
    if sys.platform != "darwin":
        return None
    got = sysctl_int("sysctl.proc_translated")
    return None if got is None else translated_from(*got)


# -- capture ---------------------------------------------------------------------------
def _cmd(*args: str, timeout: float = 5.0) -> str | None:
    """stdout of a command, or None where it is missing, fails or prints nothing."""
    return _output(*args, timeout=timeout) or None


def _output(*args: str, timeout: float = 5.0) -> str | None:
    """stdout of a command that succeeded (exit 0; "" when it printed nothing), or None
    where it is missing, fails or times out: a failed `git status` is not a clean tree."""
    if not shutil.which(args[0]):
        return None
    try:
        res = subprocess.run(args, capture_output=True, text=True, timeout=timeout)
    except (OSError, subprocess.SubprocessError):
        return None
    return res.stdout if res.returncode == 0 else None


def _read(path: str) -> str | None:
    """A file's text; bytes that are no UTF-8 (an odd os-release) kept as surrogates for
    capture() to show as \\xNN, not a UnicodeDecodeError out of bench and info."""
    try:
        return Path(path).read_text(encoding="utf-8", errors="surrogateescape")
    except OSError:
        return None


def capture_macos() -> dict:
    # one sysctl per key: an unknown oid (perflevel1 on Intel) must not hide the others
    lines = []
    for key in SYSCTL_KEYS:
        value = _cmd("sysctl", "-n", key)
        if value is not None:
            lines.append(f"{key}: {value.strip()}")
    return macos_fields(
        parse_sysctl("\n".join(lines)),
        parse_sw_vers(_cmd("sw_vers") or ""),
        parse_pmset_batt(_cmd("pmset", "-g", "batt") or ""),
        parse_pmset_settings(_cmd("pmset", "-g") or ""),
        parse_pmset_therm(_cmd("pmset", "-g", "therm") or ""),
        translated=proc_translated(),
    )


@functools.cache
def nvidia_gpus() -> tuple[dict[str, str], ...]:
    """The GPUs `nvidia-smi` lists (name, driver), asked once per process; () without it.
    The host capture and the torch backend's facts both read this one answer."""
    query = ("nvidia-smi", "--query-gpu=name,driver_version", "--format=csv,noheader")
    return tuple(parse_nvidia_smi(_cmd(*query) or ""))


def capture_linux() -> dict:
    cpu = parse_cpuinfo(_read("/proc/cpuinfo") or "")
    gpus = list(nvidia_gpus())
    return {
        "os_name": "Linux",
        "os_version": _os_release(),
        "chip": cpu["chip"],
        "cpu_model": cpu["chip"],
        "cores_total": cpu["cores_physical"] or os.cpu_count(),
        "cores_logical": cpu["cores_logical"] or os.cpu_count(),
        "memory_bytes": parse_meminfo(_read("/proc/meminfo") or ""),
        "gpu": "; ".join(g["name"] for g in gpus) or None,
        "gpu_driver": gpus[0]["driver"] if gpus else None,
    }


_OS_RELEASE_LINE = re.compile(r"""^([A-Za-z0-9_]+)=(["']?)(.*)\2$""")


def parse_os_release(text: str) -> dict[str, str]:
    """os-release(5) -> {key: value}: a value may be in double or single quotes, and
    \\ escapes $ " ' ` and \\ itself (as platform.freedesktop_os_release reads it;
    a single-quoted PRETTY_NAME was stored with its quotes, an escaped quote cut it)."""
    out: dict[str, str] = {}
    for line in text.splitlines():
        m = _OS_RELEASE_LINE.match(line.strip())
        if m:
            out[m.group(1)] = re.sub(r"\\([\\$\"'`])", r"\1", m.group(3))
    return out


def _os_release() -> str | None:
    """PRETTY_NAME of /etc/os-release, or of /usr/lib/os-release where the first is
    missing (os-release(5): a system may ship only the second)."""
    text = _read("/etc/os-release")
    if text is None:
        text = _read("/usr/lib/os-release") or ""
    return parse_os_release(text).get("PRETTY_NAME") or None


def versions() -> dict:
    """Python and library versions from metadata (torch only if installed)."""
    out: dict[str, str | None] = {"python_version": platform.python_version()}
    for name in (*VERSIONED, "torch"):
        try:
            out[f"{name}_version"] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            out[f"{name}_version"] = None
    from anemll_spec import __version__

    out["tool_version"] = __version__
    return out


def power_source(raw: str | None) -> str | None:
    """pmset's 'AC Power' / 'Battery Power' / 'UPS Power' -> 'AC' / 'Battery' / 'UPS'."""
    if not raw:
        return None
    return raw.removesuffix(" Power").strip() or raw


def capture() -> dict:
    """Everything known about this host, as one flat dict.

    Its keys are the store's `hosts` columns where one exists (plus tool_version and
    git_* for `runs`, and a few extras that `info` shows). Text values are store lines
    (text.store_line): printable, UTF-8, within the store's name limit.
    """
    base = capture_macos() if sys.platform == "darwin" else capture_linux()
    info = {
        **base,
        "hostname": hostname(),
        "platform": sys.platform,
        "machine": platform.machine(),
        "kernel": platform.release(),
        **versions(),
        **git_info(),
    }
    return store_lines(info)


def store_lines(info: dict) -> dict:
    """Every text of `info` as one store line: a control character in a name read from
    /etc/os-release or cpuinfo (or a driver's GPU name) made the store refuse the host,
    so bench could not run."""
    return {k: store_line(v) if isinstance(v, str) else v for k, v in info.items()}
