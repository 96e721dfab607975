"""Review 37's findings on spec input, each through the real CLI: YAML-level problems
reported with every other one, tags on the wrong node, hints, case labels, a BOM's column,
and the schema's name pattern."""

from __future__ import annotations

from pathlib import Path


def validate(cli, tmp_path: Path, text: str | bytes) -> tuple[Path, list[str]]:
    """The spec's validate errors, one per line (exit 2, nothing on stdout, no traceback)."""
    path = tmp_path / "s.yaml"
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text)
    r = cli("validate", path)
    assert r.returncode == 2 and r.stdout == "" and "Traceback" not in r.stderr, r
    return path, r.stderr.splitlines()


MULTI = """\
name: t
model:
  family: lm_head
  hidden_size: 256
  hidden_size: 512
  vocab_size: 2048
  bogus: 1
run:
  iteratons: 5
  verify: !!binary aGk=
  max_time_s: !!float 1_0
"""


def test_duplicate_keys_and_bad_tags_are_reported_with_every_other_problem(cli, tmp_path):
    """A duplicate key or a refused tag raised before validation: the file printed only
    that line (`:5:3: model.hidden_size: duplicate key`), hiding the unknown keys. Now
    each is a problem among the others, in the file's order, its value left out (the
    first of a duplicate kept), and nothing more said about a refused value."""
    path, lines = validate(cli, tmp_path, MULTI)
    tag = "unsupported YAML tag 'tag:yaml.org,2002:binary'"
    assert lines == [
        f"error: {path}:5:3: model.hidden_size: duplicate key",
        f"error: {path}:7:3: model.bogus: unknown key 'bogus'; allowed: family, dtype, "
        "compute_precision, deployment_target, compression, seed, weight_std, batch, "
        "hidden_size, vocab_size, chunks, layout, seq_len",
        f"error: {path}:9:3: run.iteratons: unknown key 'iteratons'; did you mean 'iterations'?",
        f"error: {path}:10:11: run.verify: {tag}",
        f"error: {path}:11:15: run.max_time_s: '1_0' is not a YAML float",
    ]


def test_a_refused_top_level_and_sweep_value_say_only_why(cli, tmp_path):
    """A refused value is None to validation: `name` must not be empty, `sweep` must map
    paths, said where the tag is too, would be a second line about the same thing."""
    text = MULTI.replace("name: t", "name: !foo t").replace("bogus: 1", "chunks: 2")
    text = text.replace("  iteratons: 5\n", "").replace("  hidden_size: 512\n", "")
    text += "sweep: !!set {a}\n"
    path, lines = validate(cli, tmp_path, text)
    assert lines == [
        f"error: {path}:1:7: name: unsupported YAML tag '!foo'",
        f"error: {path}:8:11: run.verify: unsupported YAML tag 'tag:yaml.org,2002:binary'",
        f"error: {path}:9:15: run.max_time_s: '1_0' is not a YAML float",
        f"error: {path}:10:8: sweep: unsupported YAML tag 'tag:yaml.org,2002:set'",
    ]
