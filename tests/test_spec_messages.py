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


CR = b"name: t\rmodel:\r  family: lm_head\r"  # an old Mac's line endings: \r alone


@pytest.mark.parametrize(
    "data, expected",
    [
        (CR + b"description: a\x07b\r", "4:15: YAML syntax error: character U+0007 is not allowed"),
        (CR + b"description: \xc3\xa9\xffb\r", "4:15: not UTF-8 text (byte 0xff)"),
        (CR + b"description: " + b"[" * 100_000 + b"\r", "4:30: nested too deeply"),
        (CR.replace(b"  family", b"\tfamily"), "3:1: YAML syntax error: a tab indents this line"),
        (CR + b"\r\n\n  seed: \x00\r", "6:9: binary file (contains NUL bytes), not a YAML spec"),
        (TEXT.encode() + b"description: a\x00", "3:15: binary file (contains NUL bytes)"),
    ],
    ids=["control", "utf8", "nesting", "tab", "nul_mixed", "nul_lf"],
)
def test_positions_count_every_line_break_yaml_does(cli, tmp_path, data, expected):
    """\\r alone breaks a line, as PyYAML reads it: positions counted \\n only, so every
    error of a CR-only file was on line 1 (1:48), a tab indenting one of its lines was
    taken for a separating tab and accepted, and a NUL byte had no line:col at all."""
    err, path = refused(cli, tmp_path, data)
    assert err.startswith(f"error: {path}:{expected}"), err
