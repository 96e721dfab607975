"""A spec's text can never forge terminal lines: each problem is one stderr line with its
control characters escaped, and `plan` escapes the spec's path."""

from __future__ import annotations

import pytest

FORGED = "anemll-spec plan: error: specs/lm_head.yaml:1:1: name"
TEXT = f'name: a\nmodel: {{family: matmul, m: 8, k: 8, n: 8}}\nrun:\n  "warmup\\n{FORGED}": 3\n'


@pytest.mark.parametrize("command", ["plan", "bench", "build", "validate"])
def test_a_key_with_a_newline_is_one_error_line(cli, tmp_path, command):
    spec = tmp_path / "s.yaml"
    spec.write_text(TEXT)
    extra = ["--store", str(tmp_path / "r.duckdb")] if command == "bench" else []
    r = cli(command, spec, *extra, cwd=tmp_path)
    assert r.returncode == 2, r.stderr
    lines = r.stderr.splitlines()
    assert len(lines) == 1, r.stderr
    assert (
        lines[0].startswith(("anemll-spec", "error: ")) and f"{spec}:4:3: run.warmup\\n" in lines[0]
    )
    assert not (tmp_path / "r.duckdb").exists()


def test_plan_escapes_the_spec_path(cli, tmp_path):
    folder = tmp_path / "evil\x1b[2J\nx"
    folder.mkdir()
    spec = folder / "s.yaml"
    spec.write_text(
        "name: a\nmodel: {family: matmul, m: 8, k: 8, n: 8}\nrun: {backends: [numpy]}\n"
    )
    r = cli("plan", spec, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "\x1b" not in r.stdout
    first = r.stdout.splitlines()[0]
    assert first == f"a: 1 case  ({tmp_path}/evil\\x1b[2J\\nx/s.yaml)"
