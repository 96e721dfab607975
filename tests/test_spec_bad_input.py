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
        r"unknown key 'vocab_szie'; 'vocab_size' is set already",  # not "did you mean" it
    ),
    "unknown_top_key": (GOOD + "runs: {}\n", "runs", "runs:", r"unknown key 'runs'"),
    # a toy model named like a published one was stored and charted as it, with its factors
    "published_name": (
        GOOD.replace("name: t", "name: llama_lm_head"),
        "name",
        "name:",
        r"'llama_lm_head' is a published model's name, which a case takes by itself",
    ),
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
        "sweep.model.chunks[2]",
        "model.chunks: [1",
        r"2 is listed twice",
    ),
    "sweep_key_not_a_path": (
        GOOD + "sweep:\n  m: [1, 2]\n",
        "sweep.m",
        "m: [1",
        r"sweep path 'm' must start with model. or run.",
    ),
    "sweep_inside_a_value": (
        GOOD + "sweep:\n  model.chunks.max: [1, 2]\n",
        "sweep.model.chunks.max",
        "chunks.max",
        r"goes inside model.chunks, which is a value, not a section",
    ),
    "sweep_nested_typo": (
        GOOD + "sweep:\n  run.tolerance.min_cos: [0.5]\n",
        "sweep.run.tolerance.min_cos",
        "min_cos",
        r"no field 'min_cos' in run.tolerance; did you mean 'min_cosine'",
    ),
    "sweep_same_case": (
        GOOD + "sweep:\n  run.compute_units: [CPU_ONLY, [CPU_ONLY]]\n",
        "sweep.run.compute_units[1]",
        "compute_units",
        r"\['CPU_ONLY'\] makes the same case as 'CPU_ONLY'",
    ),
    "sweep_default_written_out": (
        GOOD + "sweep:\n  model.compute_precision: [null, float16]\n",
        "sweep.model.compute_precision[1]",
        "compute_precision",
        r"'float16' makes the same case as None",
    ),
    "yaml_1_1_boolean": (
        GOOD + "  verify: yes\n",
        "run.verify",
        "verify",
        r"must be true or false, got 'yes'",
    ),
    "yaml_1_1_sexagesimal": (
        GOOD.replace("iterations: 5", "iterations: 1:30"),
        "run.iterations",
        "iterations",
        r"must be an integer, got a string '1:30'",
    ),
    "null_value": (
        GOOD.replace("iterations: 5", "iterations: null"),
        "run.iterations",
        "iterations",
        r"must not be empty \(null\)",
    ),
    "control_character": (
        GOOD.replace("name: t", "name: t\x07"),
        "",
        "name",
        r"character U\+0007 is not allowed in YAML text",
    ),
    "sustained_concurrency": (
        GOOD + "  duration_s: 20\n  concurrency: 2\n",
        "run.concurrency",
        "concurrency",
        r"a sustained run \(duration_s\) times one instance: concurrency must be 1",
    ),
    "matmul_batch": (  # the builder draws x as (m, k): batch was silently ignored
        "name: t\nmodel:\n  family: matmul\n  m: 4\n  k: 8\n  n: 16\n  batch: 3\n",
        "model.batch",
        "batch",
        r"matmul has no batch dimension: fold batch 3 into m \(the rows of x\)",
    ),
    "odd_head_dim": (
        "name: t\nmodel:\n  family: attention\n  hidden_size: 64\n  heads: 2\n  kv_heads: 2\n"
        "  head_dim: 33\n  context_length: 16\n",
        "model.head_dim",
        "head_dim",
        r"head_dim \(33\) must be even: RoPE rotates halves",
    ),
    "fp16_epsilon_zero": (
        "name: t\nmodel:\n  family: ffn\n  hidden_size: 64\n  intermediate_size: 128\n"
        "  rms_norm_eps: 1.0e-8\n",
        "model.rms_norm_eps",
        "rms_norm_eps",
        r"rms_norm_eps 1e-08 rounds to 0 in float16",
    ),
    "alias_to_a_bad_value": (  # the alias's line, not its anchor's
        GOOD.replace("name: t", "name: t\ndescription: &text x").replace(
            "chunks: 2", "chunks: *text"
        ),
        "model.chunks",
        "chunks",
        r"must be an integer, got a string 'x'",
    ),
    "sweep_overlap": (  # a path inside another swept one: refused at the later entry
        GOOD
        + "sweep:\n  model.compression: [none, {palettize: {nbits: 8}}]\n"
        + "  model.compression.palettize.nbits: [4, 6]\n",
        "sweep.model.compression.palettize.nbits",
        "palettize.nbits",
        r"sweep path 'model.compression.palettize.nbits' lies inside 'model.compression', "
        r"which is swept too: sweep one of them",
    ),
    "sweep_overlap_reversed": (  # the same in the other order
        GOOD
        + "sweep:\n  run.tolerance.min_cosine: [0.5, 0.9]\n"
        + "  run.tolerance: [{min_cosine: 0.1}, {}]\n",
        "sweep.run.tolerance",
        "run.tolerance: [",
        r"sweep path 'run.tolerance.min_cosine' lies inside 'run.tolerance', "
        r"which is swept too: sweep one of them",
    ),
    "warmup_over_max_time": (  # the harness caps the warm-up at max_time_s
        GOOD + "  warmup_s: 300\n  max_time_s: 5\n",
        "run.warmup_s",
        "warmup_s",
        r"warmup_s \(300\) exceeds max_time_s \(5\), which caps the warm-up: "
        r"raise max_time_s or lower warmup_s",
    ),
    "huge_hex_integer": (  # 5,000 hex digits: repr() of it crashed (Python's 4,300 limit)
        GOOD.replace("chunks: 2", "chunks: 0x" + "f" * 5000),
        "model.chunks",
        "chunks",
        r"integer too large for a spec: '0xf{57}…'$",
    ),
    "huge_decimal_integer": (
        GOOD.replace("chunks: 2", "chunks: " + "9" * 5000),
        "model.chunks",
        "chunks",
        r"integer too large for a spec: '9{59}…'$",
    ),
    "integer_over_64_bits": (
        GOOD.replace("chunks: 2", "chunks: " + str(2**64)),
        "model.chunks",
        "chunks",
        r"integer too large for a spec: '18446744073709551616'$",
    ),
    "integral_float": (  # 2.0 is no integer to validate; JSON Schema's "integer" takes it
        GOOD.replace("chunks: 2", "chunks: 2.0"),
        "model.chunks",
        "chunks",
        r"must be an integer, got float 2\.0",
    ),
    "non_finite_float": (
        GOOD + "  tolerance: {max_abs_error: .inf}\n",
        "run.tolerance.max_abs_error",
        "max_abs_error",
        r"must be finite, got inf",
    ),
    # a family that is no string, in a spec with a sweep: a traceback (unhashable) before
    "family_list_with_sweep": (
        GOOD.replace("family: lm_head", "family: [lm_head]") + "sweep: {run.iterations: [3, 4]}\n",
        "model.family",
        "family:",
        r"unknown value \['lm_head'\]; choose one of lm_head, ffn",
    ),
    "swept_family_list": (
        GOOD + "sweep: {model.family: [lm_head, {x: 1}]}\n",
        "model.family",
        "sweep:",
        r"unknown value \{'x': 1\}; .* \(at sweep point model\.family=\{'x': 1\}\)",
    ),
    "palette_bits": (
        GOOD.replace("chunks: 2", "chunks: 2\n  compression: {palettize: {nbits: 5}}"),
        "model.compression.palettize.nbits",
        "compression",
        r"unknown value 5",
    ),
    "palette_bits_bool": (  # pydantic's strict Literal[1, ...] took true as 1 (1-bit)
        GOOD.replace("chunks: 2", "chunks: 2\n  compression: {palettize: {nbits: true}}"),
        "model.compression.palettize.nbits",
        "compression",
        r"nbits: must be an integer, got a boolean True$",
    ),
    "palette_bits_float": (  # and 4.0 as 4, where every other integer field refuses 4.0
        GOOD.replace("chunks: 2", "chunks: 2\n  compression: {palettize: {nbits: 4.0}}"),
        "model.compression.palettize.nbits",
        "compression",
        r"nbits: must be an integer, got float 4\.0$",
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
    over = cli("validate", path, "--max-cases", "100", cwd=tmp_path)  # 256 is the default
    assert "over the limit of 100; pass --max-cases 400" in over.stderr, over.stderr
    for n in ("0", "-1"):  # -1 was told "must be >= 0", which 0 is not either
        bad = cli("validate", path, "--max-cases", n, cwd=tmp_path)
        assert bad.returncode == 2 and f"--max-cases: must be > 0, got {n}" in bad.stderr


def test_missing_file(cli, tmp_path):
    err = refused(cli, tmp_path, tmp_path / "nope.yaml")
    assert "no such file" in err


def test_directory(cli, tmp_path):
    (tmp_path / "d").mkdir()
    assert "is a directory" in refused(cli, tmp_path, tmp_path / "d")


def test_binary_garbage(cli, tmp_path):
    p = tmp_path / "garbage.yaml"
    p.write_bytes(b"\x01" + os.urandom(4096) + b"\x00")  # \x01: never a UTF-16/32 BOM
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


def test_every_value_listed_twice_is_said_where_it_is_listed_again(cli, tmp_path):
    """Each at every later time it is listed: the error pointed at the list (run) or at
    its first value (sweep), and named only the first repeated value."""
    text = GOOD.replace(
        "backends: [numpy]",
        "backends: [numpy]\n  compute_units:\n    - ALL\n    - CPU_ONLY\n    - ALL\n"
        "    - CPU_ONLY\n    - ALL",
    )
    text += "sweep:\n  model.seed: [1, 2, 3, 2, 1.0, 1]\n"
    path = write(tmp_path, text)
    lines = text.split("\n")
    at = [(n, ln.index("- ") + 3) for n, ln in enumerate(lines, 1) if ln.startswith("    - ")]
    col = lines[-2].index("2, 1.0") + 1
    assert refused(cli, tmp_path, path).splitlines() == [
        f"error: {path}:{at[2][0]}:{at[2][1]}: run.compute_units[2]: 'ALL' is listed 3 times",
        f"error: {path}:{at[3][0]}:{at[3][1]}: run.compute_units[3]: 'CPU_ONLY' is listed twice",
        f"error: {path}:{at[4][0]}:{at[4][1]}: run.compute_units[4]: 'ALL' is listed 3 times",
        f"error: {path}:{len(lines) - 1}:{col}: sweep.model.seed[3]: 2 is listed twice: "
        "each value makes its cases once",
        f"error: {path}:{len(lines) - 1}:{col + 8}: sweep.model.seed[5]: 1 is listed twice: "
        "each value makes its cases once",
    ]


def test_every_duplicate_key_at_once(cli, tmp_path):
    text = GOOD.replace("chunks: 2", "chunks: 2\n  chunks: 4") + "  iterations: 6\n"
    err = refused(cli, tmp_path, write(tmp_path, text))
    lines = [ln for ln in err.splitlines() if ln.startswith("error:")]
    assert len(lines) == 2 and all("duplicate key" in ln for ln in lines), err
    assert ":7:3: model.chunks:" in lines[0] and ":11:3: run.iterations:" in lines[1], err


def test_merge_keys_are_refused_by_name(cli, tmp_path):
    text = "base: &b {family: lm_head}\n" + GOOD.replace("  family: lm_head", "  <<: *b")
    err = refused(cli, tmp_path, write(tmp_path, text))
    assert ":4:3: model.<<: YAML merge keys (<<) are not supported" in err, err


def test_yaml_1_2_numbers(tmp_path):
    """Plain scalars resolve by YAML 1.2's core schema, as an editor's language server
    reads them: 017 is 17 (not octal 15), 0o17 is 15, 0x10 is 16."""
    from anemll_spec.spec import load_cases

    text = GOOD.replace("hidden_size: 64", "hidden_size: 0x40").replace("chunks: 2", "chunks: 02")
    text = text.replace("iterations: 5", "iterations: 017\n  warmup: 0o17")
    (case,) = load_cases(write(tmp_path, text))[1]
    assert (case.model.hidden_size, case.model.chunks) == (64, 2)
    assert (case.run.iterations, case.run.warmup) == (17, 15)


def test_yaml_1_2_separating_tabs_are_white_space_but_not_indentation(cli, tmp_path):
    """A tab between tokens (before a comment, after `key:`, left at a line's end) is white
    space in YAML 1.2, as an editor reads it; PyYAML refused it, so a file the editor showed
    clean failed validate. Positions hold (one character for one), and a tab that indents
    a line is still refused, plainly."""
    from anemll_spec.spec import load_cases

    text = GOOD.replace("chunks: 2", "chunks:\t2\t# two heads\t")
    text = text.replace("iterations: 5", "iterations: 5 \t") + "sweep: {model.seed: [1,\t2]}\n"
    cases = load_cases(write(tmp_path, text))[1]
    assert [(c.model.chunks, c.run.iterations, c.model.seed) for c in cases] == [
        (2, 5, 1),
        (2, 5, 2),
    ]
    bad = text.replace("chunks:\t2", "chunks:\t3")  # 128 does not split into 3: located
    err = refused(cli, tmp_path, write(tmp_path, bad))
    assert f":{line_of(bad, 'chunks:')}:11: model.chunks: " in err, err  # at the 3
    indented = GOOD.replace("  chunks: 2", "\tchunks: 2")
    err = refused(cli, tmp_path, write(tmp_path, indented))
    assert (
        f":{line_of(indented, 'chunks')}:1: YAML syntax error: a tab indents this line: "
        "YAML indents with spaces only"
    ) in err, err


def test_a_misspelt_family_is_named(cli, tmp_path):
    text = GOOD.replace("family: lm_head", "famly: lm_head")
    err = refused(cli, tmp_path, write(tmp_path, text))
    assert ":2:1: model: missing required field 'family'" in err, err
    assert ":3:3: model.famly: unknown key 'famly'; did you mean 'family'?" in err, err


def test_control_characters_in_keys_reach_no_terminal(cli, tmp_path):
    err = refused(cli, tmp_path, write(tmp_path, GOOD + '"\\e[31mx\\rOK": 1\n'))
    assert "\x1b" not in err and "\r" not in err, repr(err)
    assert "unknown key '\\x1b[31mx\\rOK'" in err, err


@pytest.mark.parametrize("kind", ["device", "fifo"])
def test_a_spec_that_is_not_a_regular_file(cli, tmp_path, kind):
    path = Path("/dev/zero") if kind == "device" else tmp_path / "fifo.yaml"
    if kind == "fifo":
        os.mkfifo(path)  # no writer: reading it would block forever
    assert "not a regular file" in refused(cli, tmp_path, path)


def test_sweep_over_the_flags_limit_says_so(cli, tmp_path):
    values = ", ".join(map(str, range(1, 401)))
    text = GOOD + f"sweep:\n  model.seed: [{values}]\n  run.iterations: [{values}]\n"
    err = refused(cli, tmp_path, write(tmp_path, text))
    assert "160,000 cases" in err and "--max-cases allows at most 100,000" in err, err
    assert "pass --max-cases" not in err


def test_external_paths_that_are_no_model(cli, tmp_path):
    (tmp_path / "file.mlpackage").write_text("x")
    (tmp_path / "empty.mlpackage").mkdir()
    text = "name: e\nmodel:\n  family: external\n  path: {}\n"
    expect = {
        "file.mlpackage": "a .mlpackage is a folder, this is a file",
        "empty.mlpackage": "not an .mlpackage (Manifest.json missing)",
        "a" * 300 + ".mlpackage": "cannot use this path: File name too long",
        "/": "must be a .mlpackage or .mlmodelc, got '/'",
    }
    for i, (name, message) in enumerate(expect.items()):
        err = refused(cli, tmp_path, write(tmp_path, text.format(name), f"e{i}.yaml"))
        assert ":4:9: model.path: " in err and message in err, err


def test_distinct_instances_of_an_external_model_are_refused_with_its_other_problems(cli, tmp_path):
    """The rule needs the family and the run: it is reported even where the model has a
    problem of its own (every problem at once), and at the sweep entry that causes it."""
    text = "name: e\nmodel:\n  family: external\n  path: missing.mlpackage\nrun:\n"
    err = refused(cli, tmp_path, write(tmp_path, text + "  instances: distinct\n"))
    assert ":4:9: model.path: no such model" in err, err
    assert ":6:14: run.instances: distinct instances get their own seeded weights" in err, err
    swept = (
        text.replace("missing", "m")
        + "  concurrency: 2\nsweep:\n  run.instances: [shared, distinct]\n"
    )
    (tmp_path / "m.mlpackage").mkdir()
    (tmp_path / "m.mlpackage" / "Manifest.json").write_text("{}")
    err = refused(cli, tmp_path, write(tmp_path, swept, "s.yaml"))
    assert (
        ":8:27: run.instances: distinct instances" in err and "run.instances='distinct'" in err
    ), err
    assert len([ln for ln in err.splitlines() if ln.startswith("error:")]) == 1, err
