"""runs.writer_machine_id: the hash of this machine's own id (issue: same-hostname writers of
one store). The stored form is re-derived here with hashlib from the documented rule."""

from __future__ import annotations

import hashlib
import re
import subprocess
import sys
from pathlib import Path

import pytest

from anemll_spec import machine_id as mid

HOST = Path(__file__).parent / "fixtures" / "host"


def expected(raw: str) -> str:
    return hashlib.sha256(b"anemll-spec writer machine\0" + raw.lower().encode()).hexdigest()[:16]


def test_the_stored_form_is_a_salted_sha256_prefix():
    assert mid.hashed("3D1219C7C4C5404AAA1F6D2A48ADFDA4\n") == expected(
        "3d1219c7c4c5404aaa1f6d2a48adfda4"
    )
    assert mid.hashed("a") != mid.hashed("b")


def test_linux_reads_the_first_machine_id_file_with_text(tmp_path):
    empty, real = tmp_path / "empty", tmp_path / "machine-id"
    empty.write_text("\n")
    real.write_text("0f1e2d3c4b5a69788796a5b4c3d2e1f0\n")
    missing = str(tmp_path / "missing")
    assert mid.linux_raw((missing, str(empty), str(real))) == "0f1e2d3c4b5a69788796a5b4c3d2e1f0"
    assert mid.linux_raw((missing, str(empty))) is None
    assert mid.linux_raw((str(tmp_path),)) is None  # a folder, not a file


def test_ioregs_platform_uuid_is_parsed():
    text = (HOST / "m4max_ioreg_platform.txt").read_text()
    assert mid.parse_ioreg_uuid(text) == "5D1C3F0E-8B2A-4C7D-9E61-0A2B3C4D5E6F"
    assert mid.parse_ioreg_uuid('"IOPlatformSerialNumber" = "X"') is None


@pytest.mark.skipif(sys.platform != "linux", reason="Linux's machine-id")
def test_this_linux_machine():
    raw = next(
        (t for n in mid.LINUX_FILES if Path(n).is_file() and (t := Path(n).read_text().strip())),
        None,
    )
    assert mid.machine_id() == (None if raw is None else expected(raw))


@pytest.mark.macos
def test_this_mac_is_its_hardware_uuid():
    out = subprocess.run(
        ["ioreg", "-rd1", "-c", "IOPlatformExpertDevice"], capture_output=True, text=True
    ).stdout
    (uuid,) = re.findall(r'"IOPlatformUUID" = "([0-9A-F-]{36})"', out)
    assert mid.machine_id() == expected(uuid)
