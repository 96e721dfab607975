"""anemll-spec build SPEC: every case built (or fetched), reported per case."""

from __future__ import annotations

import json
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_build_spec_json_then_cached(tmp_path, cli):
    r = cli("build", ROOT / "specs" / "smoke.yaml", "--json", "--cache-dir", tmp_path)
    assert r.returncode == 0, r.stderr
    rows = json.loads(r.stdout)
    assert len(rows) == 2 and not any(row["cached"] for row in rows)
    for row in rows:
        wb = Path(row["path"]) / "Data/com.apple.CoreML/weights/weight.bin"
        assert row["weight_bytes"] == wb.stat().st_size
        assert row["flops"] == 2 * 256 * 2048
    r = cli("build", ROOT / "specs" / "smoke.yaml", "--cache-dir", tmp_path)
    assert r.returncode == 0
    assert r.stdout.count("cached") == 2 and "smoke[layout=conv]" in r.stdout
    # the 16-hex case key is labelled 'case'; the path holds the 24-hex cache key (stop 27)
    lines = r.stdout.splitlines()
    for row in rows:
        at = lines.index(f"case {row['case']}  {row['model_name']}")
        assert lines[at + 1].strip() == row["path"]
        assert Path(row["path"]).parent.name == row["key"] != row["case"]
    assert "Running MIL" not in r.stderr


def test_build_bad_spec_is_exit_2(tmp_path, cli):
    spec = tmp_path / "bad.yaml"
    spec.write_text("name: bad\nmodel: {family: lm_head, vocab_size: 10, chunks: 3}\n")
    r = cli("build", spec, "--cache-dir", tmp_path / "c")
    assert r.returncode == 2 and "chunks" in r.stderr and "Traceback" not in r.stderr
