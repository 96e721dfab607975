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


def test_a_tag_on_the_wrong_kind_of_node_is_refused(cli, tmp_path):
    """`name: !!seq t`, `family: !!map lm_head`, `backends: !!str [numpy]` validated (the
    tag was ignored); PyYAML's safe_load refuses them. A key's tag is checked too."""
    text = (
        "name: !!seq t\nmodel:\n  family: !!map lm_head\n  hidden_size: 256\n"
        "  vocab_size: 2048\n  !!map chunks: 2\nrun:\n  backends: !!str [numpy]\n"
        "  tolerance: !!seq {min_cosine: 0.9}\n"
    )
    path, lines = validate(cli, tmp_path, text)
    assert lines == [
        f"error: {path}:1:7: name: YAML tag '!!seq' is for a sequence, not a scalar",
        f"error: {path}:3:11: model.family: YAML tag '!!map' is for a mapping, not a scalar",
        f"error: {path}:6:3: model.chunks: YAML tag '!!map' is for a mapping, not a scalar",
        f"error: {path}:8:13: run.backends: YAML tag '!!str' is for a scalar, not a sequence",
        f"error: {path}:9:14: run.tolerance: YAML tag '!!seq' is for a sequence, not a mapping",
    ]


def test_null_and_bool_tags_take_only_the_core_schema_forms(cli, tmp_path):
    """`!!null float32` was None (compute_precision fell back to float16, a CI target of
    `!!null 5` turned it off) and `!!bool tRuE` was true: each tag now takes what an
    untagged scalar of its type is written as, and nothing else."""
    text = (
        "name: t\nmodel:\n  family: lm_head\n  hidden_size: 256\n  vocab_size: 2048\n"
        "  compute_precision: !!null float32\nrun:\n  verify: !!bool tRuE\n"
        "  target_ci_pct: !!null 5\n"
    )
    path, lines = validate(cli, tmp_path, text)
    assert lines == [
        f"error: {path}:6:22: model.compute_precision: 'float32' is not a YAML null",
        f"error: {path}:8:11: run.verify: 'tRuE' is not a YAML bool",
        f"error: {path}:9:18: run.target_ci_pct: '5' is not a YAML null",
    ]


def test_core_null_and_bool_forms_with_their_tags_are_read(tmp_path):
    from anemll_spec.spec import load_cases

    path = tmp_path / "s.yaml"
    path.write_text(
        "name: t\nmodel:\n  family: lm_head\n  hidden_size: 256\n  vocab_size: 2048\n"
        "  compute_precision: !!null ~\nrun:\n  verify: !!bool FALSE\n"
        "  target_ci_pct: !!null\n  backends: !!seq [numpy]\n"
    )
    (case,) = load_cases(path)[1]
    assert (case.run.verify, case.run.target_ci_pct, case.run.backends) == (False, None, ["numpy"])
    assert case.model.compute_precision == "float16"


def test_hints_name_the_family_a_key_belongs_to_and_never_a_key_already_there(cli, tmp_path):
    """An ffn's `vocab_size` was told "did you mean 'hidden_size'?" (set already: following
    it wrote hidden_size twice), lm_head's `path` "did you mean 'batch'?", and a sweep
    path `model.path` 'model.batch'. A field of another family says so; a typo of a
    key the mapping has is never told to be it."""
    text = (
        "name: t\nmodel:\n  family: ffn\n  hidden_size: 64\n  intermediate_size: 128\n"
        "  vocab_size: 2048\n  hiden_size: 64\n"
        "  compression: {palettize: {nbits: 4}, palettiz: {}}\n"
        "sweep:\n  model.path: [x.mlpackage]\n  model.seed: [1]\n  model.sed: [2]\n"
    )
    path, lines = validate(cli, tmp_path, text)
    unknown = f"error: {path}:%s: unknown key %s"
    sweep = "sweep path 'model.%s' does not exist: no field '%s' in model; %s"
    assert lines == [
        unknown
        % ("6:3: model.vocab_size", "'vocab_size'; 'vocab_size' is a field of lm_head, not ffn"),
        unknown % ("7:3: model.hiden_size", "'hiden_size'; 'hidden_size' is set already"),
        unknown % ("8:40: model.compression.palettiz", "'palettiz'; 'palettize' is set already"),
        f"error: {path}:10:3: sweep.model.path: "
        + sweep % ("path", "path", "'path' is a field of external, not ffn"),
        f"error: {path}:12:3: sweep.model.sed: " + sweep.removesuffix("; %s") % ("sed", "sed"),
    ]


def test_a_byte_order_mark_is_no_column(cli, tmp_path):
    """A BOM before `name: a<BEL>b` put the control character at :1:9 (it is the 8th
    column: PyYAML's own marks skip the BOM, the offsets counted here did not), and so
    for a NUL or a byte that is not UTF-8 on line 1."""
    bom = b"\xef\xbb\xbf"
    cases = [
        (b"name: a\x07b\n", "1:8: YAML syntax error: character U+0007 is not allowed in YAML text"),
        (b"name: t\x00\n", "1:8: binary file (contains NUL bytes), not a YAML spec"),
        (b"name: \xff\n", "1:7: not UTF-8 text (byte 0xff): save it as UTF-8"),
        (b"name: 5\n", "1:7: name: must be a string, got int"),
        (
            b"name: t\nmodel: a\x07\n",
            "2:9: YAML syntax error: character U+0007 is not allowed in YAML text",
        ),
    ]
    for data, said in cases:
        path, lines = validate(cli, tmp_path, bom + data)
        assert f"error: {path}:{said}" in lines, lines
