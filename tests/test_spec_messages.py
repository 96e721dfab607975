"""Messages for specs that are not UTF-8 text, an empty model and runaway nesting: what
is wrong and where, in words a person can act on."""

from __future__ import annotations

import pytest

TEXT = "name: a\nmodel: {family: matmul, m: 8, k: 8, n: 8}\n"


def refused(cli, tmp_path, data: bytes) -> tuple[str, str]:
    path = tmp_path / "s.yaml"
    path.write_bytes(data)
    r = cli("validate", path, cwd=tmp_path)
    assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr
    assert len(r.stderr.splitlines()) == 1, r.stderr
    return r.stderr.rstrip("\n"), str(path)


@pytest.mark.parametrize("encoding, name", [("utf-16", "UTF-16"), ("utf-32", "UTF-32")])
def test_a_spec_saved_as_utf16_is_named_so(cli, tmp_path, encoding, name):
    """Python's utf-16/utf-32 codecs write a byte-order mark first, as editors do."""
    err, path = refused(cli, tmp_path, TEXT.encode(encoding))
    assert err == f"error: {path}: {name} text: save it as UTF-8"


def test_a_byte_that_is_not_utf8_is_located_by_line_and_column(cli, tmp_path):
    data = TEXT.encode() + 'description: "ab\u00e9c'.encode() + b'\xff"\n'
    err, path = refused(cli, tmp_path, data)
    # line 3; column in characters: é is one character (two bytes)
    assert err == f"error: {path}:3:19: not UTF-8 text (byte 0xff): save it as UTF-8"


def test_an_empty_model_says_null_as_other_nulls_do(cli, tmp_path):
    err, path = refused(cli, tmp_path, b"name: a\nmodel:\n")
    assert err == f"error: {path}:2:7: model: must not be empty (null)"


def test_runaway_flow_nesting_is_located(cli, tmp_path):
    err, path = refused(cli, tmp_path, TEXT.encode() + b"description: " + b"[" * 100_000 + b"\n")
    # the 17th bracket: column 14 is the first
    assert err == f"error: {path}:3:30: nested too deeply: a spec nests at most 16 levels"
