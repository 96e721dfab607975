"""A stable, anonymous id of this machine: what tells apart two writers of one store that
share a hostname (lab Macs all named 'MacBook-Pro').

A bench marks the runs its host left 'running' as 'interrupted' when their process is gone;
a hostname alone would let one Mac mark another's live run. The id is a hash of the
machine's own identity, so a shared store never holds the hardware UUID itself:
- macOS: the hardware UUID (IOPlatformUUID, which System Information shows), read with
  `ioreg` once per process;
- Linux: systemd's /etc/machine-id (or D-Bus's copy).
None where neither exists: such a writer is told apart by hostname alone, as before v5.
(An id made and kept in the home folder was tried and dropped: a container restarted with
a fresh home would make a new one, and its predecessor's dead runs, matched by neither,
would stay 'running' for good. Containers usually differ by hostname anyway.)
"""

from __future__ import annotations

import functools
import hashlib
import re
import socket
import subprocess
import sys
from pathlib import Path

from anemll_spec.text import store_line

LINUX_FILES = ("/etc/machine-id", "/var/lib/dbus/machine-id")
SALT = b"anemll-spec writer machine\0"
LENGTH = 16  # hex digits kept: 64 bits, no collision among a lab's machines


def hashed(raw: str) -> str:
    """The stored form of a machine's identity (its first LENGTH hex digits)."""
    return hashlib.sha256(SALT + raw.strip().lower().encode()).hexdigest()[:LENGTH]


def linux_raw(files: tuple[str, ...] = LINUX_FILES) -> str | None:
    """The first machine-id file that holds an id (machine-id(5): 32 hex digits); None
    where there is none. An image's 'uninitialized' (systemd writes it until first boot)
    or other text is no id: every machine built from that image would share it."""
    for name in files:
        try:
            text = Path(name).read_text().strip()
        except (OSError, UnicodeDecodeError):
            continue
        if re.fullmatch(r"[0-9a-fA-F]{32}", text):
            return text
    return None


def parse_ioreg_uuid(text: str) -> str | None:
    """The IOPlatformUUID in `ioreg -rd1 -c IOPlatformExpertDevice`'s output."""
    m = re.search(r'"IOPlatformUUID"\s*=\s*"([^"]+)"', text)
    return m.group(1) if m else None


def macos_raw() -> str | None:
    """The hardware UUID (IOPlatformUUID) as ioreg prints it; None where ioreg fails."""
    try:
        res = subprocess.run(
            ["/usr/sbin/ioreg", "-rd1", "-c", "IOPlatformExpertDevice"],
            capture_output=True, text=True, timeout=10,
        )  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        return None
    return parse_ioreg_uuid(res.stdout) if res.returncode == 0 else None


@functools.lru_cache(maxsize=1)
def machine_id() -> str | None:
    """This machine's id as the store keeps it (`runs.writer_machine_id`); None if unknown."""
    raw = macos_raw() if sys.platform == "darwin" else linux_raw()
    return None if raw is None else hashed(raw)


def hostname() -> str | None:
    """This machine's name as the store keeps it (hosts.hostname, runs.writer_hostname):
    the kernel's name made store text (text.store_line). Linux takes any bytes as a name
    (sethostname); a raw one with ESC was refused by the store, so bench could not run,
    and one that is no UTF-8 crashed it. Writing and matching use this one form."""
    try:
        raw = socket.gethostname()
    except OSError:
        return None
    return store_line(raw) or None
