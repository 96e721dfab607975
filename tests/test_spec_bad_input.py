"""Every class of malformed spec is refused by the real CLI: exit 2, file:line:col,
the field path, no traceback, nothing written."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

GOOD = """\
name: t
model:
  family: lm_head
  hidden_size: 64
  vocab_size: 256
  chunks: 2
run:
  backends: [numpy]
  iterations: 5
"""


def write(tmp_path: Path, text: str, name: str = "spec.yaml") -> Path:
    p = tmp_path / name
    p.write_text(text)
    return p


def snapshot(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")}


def refused(cli, tmp_path: Path, path: Path) -> str:
    before = snapshot(tmp_path)
    r = cli("validate", path, cwd=tmp_path)
    assert r.returncode == 2, r.stdout + r.stderr
    assert "Traceback" not in r.stderr
    assert snapshot(tmp_path) == before, "validate must write nothing"
    return r.stderr


def line_of(text: str, needle: str) -> int:
    return next(i for i, line in enumerate(text.splitlines(), 1) if needle in line)


CASES = {
    "group_size": (
        GOOD.replace(
            "chunks: 2",
            "chunks: 2\n  compression: {palettize: {nbits: 4, granularity: per_grouped_channel, group_size: 48}}",
        ),
        "model.compression.palettize.group_size",
        "compression",
        r"group_size 48 does not divide the output channels of every weight \(128\)",
    ),
    "block_size": (
        GOOD.replace(
            "chunks: 2",
            "chunks: 2\n  compression: {quantize: {dtype: int4, granularity: per_block, block_size: 48}}",
        ),
        "model.compression.quantize.block_size",
        "compression",
        r"block_size 48 does not divide the input channels of every weight \(64\)",
    ),
    # id: (yaml text, field path, line needle or None, message regex)
    "syntax": (GOOD.replace("chunks: 2", "chunks: 2: 3"), "", "chunks", r"YAML syntax error"),
    "wrong_type": (
        GOOD.replace("vocab_size: 256", "vocab_size: lots"),
        "model.vocab_size",
        "vocab_size",
        r"must be an integer",
    ),
    "unknown_key": (
        GOOD.replace("chunks: 2", "chunks: 2\n  vocab_szie: 3"),
        "model.vocab_szie",
        "vocab_szie",
        r"unknown key .*did you mean 'vocab_size'",
    ),
    "unknown_top_key": (GOOD + "runs: {}\n", "runs", "runs:", r"unknown key 'runs'"),
    "zero_size": (
        GOOD.replace("hidden_size: 64", "hidden_size: 0"),
        "model.hidden_size",
        "hidden_size",
        r"must be > 0",
    ),
    "negative_size": (
        GOOD.replace("iterations: 5", "iterations: -3"),
        "run.iterations",
        "iterations",
        r"must be > 0",
    ),
    "chunks_split": (
        GOOD.replace("chunks: 2", "chunks: 3"),
        "model.chunks",
        "chunks",
        r"does not split into 3",
    ),
    "compute_unit": (
        GOOD + "  compute_units: [CPU_AND_NPU]\n",
        "run.compute_units[0]",
        "CPU_AND_NPU",
        r"unknown value 'CPU_AND_NPU'",
    ),
    "backend": (
        GOOD.replace("[numpy]", "[metal]"),
        "run.backends[0]",
        "metal",
        r"unknown value 'metal'",
    ),
    "family": (
        GOOD.replace("family: lm_head", "family: mlp"),
        "model.family",
        "family",
        r"unknown value 'mlp'",
    ),
    "sweep_path": (
        GOOD + "sweep:\n  model.vocab: [1, 2]\n",
        "sweep.model.vocab",
        "model.vocab",
        r"does not exist",
    ),
    "sweep_empty": (
        GOOD + "sweep:\n  model.vocab_size: []\n",
        "sweep.model.vocab_size",
        "model.vocab_size",
        r"empty sweep list",
    ),
    "swept_value_bad": (
        GOOD + "sweep:\n  model.vocab_size: [256, 255]\n",
        "model.chunks",
        "chunks: 2",
        r"does not split .*at sweep point model.vocab_size=255",
    ),
    "missing_family": (
        GOOD.replace("  family: lm_head\n", ""),
        "model",
        "model:",
        r"missing required field 'family'",
    ),
    "bool_for_int": (
        GOOD.replace("iterations: 5", "iterations: true"),
        "run.iterations",
        "iterations",
        r"must be an integer",
    ),
    "compression": (
        GOOD.replace("chunks: 2", "chunks: 2\n  compression: {zip: {}}"),
        "model.compression.zip",
        "compression",
        r"unknown key 'zip'",
    ),
    "yaml_tag": (
        GOOD.replace("chunks: 2", "chunks: 2\n  layout: !foo conv"),
        "model.layout",
        "layout",
        r"unsupported YAML tag '!foo'",
    ),
    "yaml_python_tag": (
        GOOD.replace("name: t", "name: !!python/name:os.system t"),
        "name",
        "name:",
        r"unsupported YAML tag 'tag:yaml.org,2002:python/name:os.system'",
    ),
    "yaml_tagged_mapping": (
        GOOD.replace("run:", "run: !!omap"),
        "run",
        "run:",
        r"unsupported YAML tag",
    ),
    "cosine_above_one": (
        GOOD + "  tolerance: {min_cosine: 1.5}\n",
        "run.tolerance.min_cosine",
        "tolerance",
        r"must be <= 1, got 1.5",
    ),
    "top1_above_one": (
        GOOD + "  tolerance: {min_top1_agreement: 3}\n",
        "run.tolerance.min_top1_agreement",
        "tolerance",
        r"must be <= 1, got 3",
    ),
    "min_iterations_over_iterations": (
        GOOD + "  min_iterations: 50\n",
        "run.min_iterations",
        "min_iterations",
        r"min_iterations \(50\) exceeds iterations \(5\)",
    ),
    "sweep_not_a_mapping": (
        GOOD + "sweep: []\n",
        "sweep",
        "sweep:",
        r"must map field paths",
    ),
    "sweep_value_twice": (
        GOOD + "sweep:\n  model.chunks: [1, 2, 2]\n",
        "sweep.model.chunks",
        "model.chunks: [1",
        r"2 is listed twice",
    ),
    "palette_bits": (
        GOOD.replace("chunks: 2", "chunks: 2\n  compression: {palettize: {nbits: 5}}"),
        "model.compression.palettize.nbits",
        "compression",
        r"unknown value 5",
    ),
}


@pytest.mark.parametrize("case_id", list(CASES))
def test_bad_spec_is_refused_with_location(cli, tmp_path, case_id):
    text, field, needle, pattern = CASES[case_id]
    path = write(tmp_path, text)
    err = refused(cli, tmp_path, path)
    assert re.search(pattern, err), err
    line = line_of(text, needle)
    # file:line[:col]: field: message
    loc = re.search(rf"{re.escape(str(path))}:(\d+)(?::(\d+))?: ", err)
    assert loc, err
    assert int(loc.group(1)) == line, err
    if field:
        assert f" {field}: " in err, err


def test_validate_reports_every_problem_in_a_file(cli, tmp_path):
    text = GOOD.replace("hidden_size: 64", "hidden_size: -1").replace(
        "chunks: 2", "chunks: 2\n  colour: red"
    )
    text += "  compute_units: [GPU]\nsweep:\n  run.nope: [1]\n"
    err = refused(cli, tmp_path, write(tmp_path, text))
    for expected in ("model.hidden_size", "model.colour", "run.compute_units[0]", "sweep.run.nope"):
        assert expected in err, err
    assert len([ln for ln in err.splitlines() if ln.startswith("error:")]) == 4


def test_sweep_over_limit_names_the_flag(cli, tmp_path):
    text = GOOD + "sweep:\n  model.seed: [" + ", ".join(map(str, range(20))) + "]\n"
    text += "  run.iterations: [" + ", ".join(map(str, range(1, 21))) + "]\n"
    path = write(tmp_path, text)
    err = refused(cli, tmp_path, path)
    assert "400 cases" in err and "--max-cases 400" in err
    ok = cli("validate", path, "--max-cases", "400", cwd=tmp_path)
    assert ok.returncode == 0, ok.stderr
    assert "400 cases" in ok.stdout


def test_missing_file(cli, tmp_path):
    err = refused(cli, tmp_path, tmp_path / "nope.yaml")
    assert "no such file" in err


def test_directory(cli, tmp_path):
    (tmp_path / "d").mkdir()
    assert "is a directory" in refused(cli, tmp_path, tmp_path / "d")


def test_binary_garbage(cli, tmp_path):
    p = tmp_path / "garbage.yaml"
    p.write_bytes(os.urandom(4096) + b"\x00")
    assert "binary file" in refused(cli, tmp_path, p)


def test_huge_file(cli, tmp_path):
    p = tmp_path / "huge.yaml"
    p.write_text(GOOD + "# " + "x" * (2 << 20) + "\n")
    assert "a spec must be under" in refused(cli, tmp_path, p)


def test_yaml_bomb(cli, tmp_path):
    lines = ["a: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    for prev, cur in zip("abcdefgh", "bcdefghi", strict=True):
        lines.append(f"{cur}: &{cur} [" + ", ".join([f"*{prev}"] * 9) + "]")
    p = write(tmp_path, "\n".join(lines) + "\n")
    err = refused(cli, tmp_path, p)
    assert "alias bomb" in err


def test_json_output_lists_problems(cli, tmp_path):
    import json

    path = write(tmp_path, GOOD.replace("chunks: 2", "chunks: 3"))
    r = cli("validate", "--json", path, cwd=tmp_path)
    assert r.returncode == 2
    (result,) = json.loads(r.stdout)
    assert result["ok"] is False
    (problem,) = result["problems"]
    assert problem["path"] == "model.chunks" and problem["line"] == line_of(GOOD, "chunks")


def test_shipped_specs_are_valid(cli):
    specs = sorted(str(p) for p in (Path(__file__).parents[1] / "specs").glob("*.yaml"))
    r = cli("validate", *specs)
    assert r.returncode == 0, r.stderr
    names = {
        "lm_head",
        "lm_head_lut6",
        "ffn",
        "attention",
        "matmul",
        "sweep_vocab",
        "compute_units",
        "smoke",
    }
    assert {Path(s).stem for s in specs} >= names


def test_a_sweep_problem_is_reported_once_in_file_order(cli, tmp_path):
    text = GOOD.replace("hidden_size: 64", "hidden_size: 64\n  colour: red")
    text += "sweep:\n  model.chunks: [1, 2]\n  model.vocab_size: [256, -5]\n"
    err = refused(cli, tmp_path, write(tmp_path, text))
    errors = [ln for ln in err.splitlines() if ln.startswith("error:")]
    assert len(errors) == 2, err  # -5 fails at 2 sweep points: one line, saying so
    assert "model.colour" in errors[0] and "at 2 sweep points" in errors[1], err
