"""The spec's JSON Schema (for editors) agrees with `validate`, except for what JSON Schema
cannot say: rules across fields, the sweep's own checks, and YAML-level problems."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest
from test_spec_bad_input import CASES, GOOD

from anemll_spec.errors import SpecError
from anemll_spec.spec import load_cases
from anemll_spec.spec.document import json_schema
from anemll_spec.spec.yamlsafe import load_yaml

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = sorted((ROOT / "specs").glob("*.yaml"))

# Bad specs JSON Schema cannot refuse: rules across fields and the sweep's own checks.
# (What is not a YAML document at all, a syntax error or a tag, no schema tool can load.)
KNOWN_DIFFERENCES = {
    "group_size": "cross-field: group_size against every weight's output channels",
    "block_size": "cross-field: block_size against every weight's input channels",
    "chunks_split": "cross-field: vocab_size divisible by chunks",
    "min_iterations_over_iterations": "cross-field: min_iterations <= iterations",
    "sweep_path": "the sweep's paths name fields of the model's family",
    "swept_value_bad": "a swept value meets the cross-field rules at one sweep point",
    "swept_family_list": "a swept value is checked where it lands (the sweep lists any values)",
    "sweep_value_twice": "a sweep value listed twice",
    "sweep_inside_a_value": "the sweep's paths name fields of the model's family",
    "sweep_nested_typo": "the sweep's paths name fields of the model's family",
    "sweep_overlap": "a sweep path inside another swept path",
    "sweep_overlap_reversed": "a sweep path inside another swept path",
    "sweep_same_case": "two sweep values that resolve to the same case",
    "sweep_default_written_out": "two sweep values that resolve to the same case",
    "sustained_concurrency": "cross-field: a sustained run has one instance",
    "warmup_over_max_time": "cross-field: warmup_s <= max_time_s",
    "odd_head_dim": "a rule of the attention family (RoPE rotates halves)",
    "matmul_batch": "a rule of the matmul family (x has no batch dimension)",
    "fp16_epsilon_zero": "cross-field: rms_norm_eps against the compute precision",
    "integral_float": "JSON Schema's integer type takes 2.0; validate wants an integer",
    "palette_bits_float": "JSON Schema's enum takes 4.0 for 4; validate wants an integer",
    "non_finite_float": "JSON Schema has no finite-number check for .inf and .nan",
}


def schema_agrees(text: str, tmp_path: Path) -> tuple[bool, bool]:
    """(JSON Schema accepts, validate accepts) for one spec text."""
    path = tmp_path / "s.yaml"
    path.write_text(text)
    try:
        load_cases(path)
        ours = True
    except SpecError:
        ours = False
    try:
        doc, _ = load_yaml(text, str(path))
        jsonschema.validate(doc, json_schema())
        theirs = True
    except (SpecError, jsonschema.ValidationError):
        theirs = False
    return theirs, ours


def test_schema_file_is_the_commands_output():
    out = subprocess.run(
        [sys.executable, "-m", "anemll_spec", "schema"], capture_output=True, text=True, check=True
    )
    assert json.loads(out.stdout) == json.loads((ROOT / "specs" / "spec.schema.json").read_text())
    assert out.stdout == (ROOT / "specs" / "spec.schema.json").read_text(), (
        "regenerate with: anemll-spec schema --out specs/spec.schema.json"
    )


def test_schema_out_replaces_its_own_file_and_nothing_else(cli, tmp_path):
    """`schema --out` once wrote over any file, the results store included."""
    from anemll_spec.store import open_store

    out = tmp_path / "spec.schema.json"
    out.write_text("{}")  # a user's JSON: kept
    r = cli("schema", "--out", out)
    assert r.returncode == 2 and "the file exists; give --force" in r.stderr
    assert out.read_text() == "{}"
    assert cli("schema", "--out", out, "--force").returncode == 0
    assert out.read_text() == (ROOT / "specs" / "spec.schema.json").read_text()
    assert cli("schema", "--out", out).returncode == 0  # its own output: replaced
    store = tmp_path / "results.duckdb"
    open_store(store).close()
    before = store.read_bytes()
    for args in (["--out", store], ["--out", store, "--force"]):
        r = cli("schema", *args, env={"ANEMLL_SPEC_STORE": str(store)})
        assert r.returncode == 2 and "that is the results store" in r.stderr, r.stderr
    assert store.read_bytes() == before
    assert cli("schema", "--out", "").returncode == 2


def test_schema_out_replaces_a_fifo_or_link_and_keeps_the_old_file_on_a_full_disk(cli, tmp_path):
    """`schema --out` wrote in place: a FIFO there hung it, a link there was written
    through (a link to a results store made the store JSON), and a full disk left half a
    schema where the old one was, in an error naming no file. Now it writes beside the
    file and renames: the FIFO and the link are replaced, their targets untouched."""
    import os
    import subprocess

    want = (ROOT / "specs" / "spec.schema.json").read_text()
    fifo = tmp_path / "f.json"
    os.mkfifo(fifo)
    r = cli("schema", "--out", fifo, "--force", timeout=60)
    assert r.returncode == 0 and fifo.is_file() and fifo.read_text() == want, r.stderr
    victim = tmp_path / "victim.bin"
    victim.write_bytes(b"precious")
    link = tmp_path / "v.json"
    link.symlink_to(victim)
    assert cli("schema", "--out", link, "--force").returncode == 0
    assert victim.read_bytes() == b"precious" and not link.is_symlink()
    assert link.read_text() == want
    if os.geteuid() != 0:
        return
    tiny = tmp_path / "tiny"
    tiny.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(tiny)]).returncode:
        return
    try:
        (tiny / "good.json").write_text(want)  # the old schema
        (tiny / "fill").write_bytes(b"x" * (64 * 1024 - len(want.encode()) - 4096))
        r = cli("schema", "--out", tiny / "good.json", "--force")
        assert r.returncode == 2 and r.stderr.count("\n") == 1, r.stderr
        assert f"--out {tiny / 'good.json'}: cannot write it: No space left" in r.stderr
        assert (tiny / "good.json").read_text() == want  # whole, as it was
        assert sorted(p.name for p in tiny.iterdir()) == ["fill", "good.json"]
    finally:
        subprocess.run(["umount", str(tiny)], check=True)


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.name)
def test_shipped_specs_name_the_schema_and_pass_it(path, tmp_path):
    assert path.read_text().startswith("# yaml-language-server: $schema=spec.schema.json\n")
    assert schema_agrees(path.read_text(), tmp_path) == (True, True)


@pytest.mark.parametrize("case_id", sorted(CASES))
def test_bad_specs_agree_with_validate(case_id, tmp_path):
    theirs, ours = schema_agrees(CASES[case_id][0], tmp_path)
    assert ours is False
    if case_id in KNOWN_DIFFERENCES:
        assert theirs is True, (
            f"{case_id} is listed as a known difference but the schema refuses it"
        )
    else:
        assert theirs is False, f"{case_id}: JSON Schema accepts what validate refuses"


def test_known_differences_are_bad_spec_cases():
    assert set(KNOWN_DIFFERENCES) <= set(CASES)


def test_schema_describes_every_field_and_a_single_compute_unit(tmp_path):
    schema = json_schema()
    run = schema["$defs"]["Run"]["properties"]
    assert all(f.get("description") for f in run.values())
    text = GOOD.replace("backends: [numpy]", "backends: numpy\n  compute_units: CPU_ONLY")
    assert schema_agrees(text, tmp_path) == (True, True)
    twice = GOOD.replace("backends: [numpy]", "backends: [numpy, numpy]")
    assert schema_agrees(twice, tmp_path) == (False, False)


@pytest.mark.parametrize("sweep", ["sweep:\n", "sweep: null\n", "sweep: ~\n"])
def test_an_empty_sweep_is_no_sweep_to_both(sweep, tmp_path):
    """validate reads `sweep:` left empty as no sweep; the schema refused it."""
    assert schema_agrees(GOOD + sweep, tmp_path) == (True, True)


def test_non_finite_floats_are_refused_by_validate_alone(tmp_path):
    for value in (".inf", ".nan"):  # (-.inf is below the minimum 0: both refuse it)
        text = GOOD + f"  tolerance: {{max_abs_error: {value}}}\n"
        assert schema_agrees(text, tmp_path) == (True, False), value


@pytest.mark.parametrize(
    "text",
    [GOOD.replace("name: t", 'name: "t\\n"'), GOOD + 'sweep:\n  "model.seed\\n": [1, 2]\n'],
    ids=["name", "sweep_path"],
)
def test_a_trailing_newline_is_refused_by_both(text, tmp_path):
    """Python's re (the jsonschema library's) lets `$` match before a final newline: the
    schema took a name or a sweep path ending in one, which validate refuses."""
    assert schema_agrees(text, tmp_path) == (False, False)
