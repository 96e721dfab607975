"""The README's spec reference is generated from the schema; keep them in step."""

from pathlib import Path

from anemll_spec.spec import reference, schema

ROOT = Path(__file__).resolve().parents[1]


def test_readme_embeds_the_current_spec_reference():
    readme = (ROOT / "README.md").read_text()
    assert reference.markdown() in readme, "regenerate with: python -m anemll_spec.spec.reference"


def test_every_field_is_documented():
    md = reference.markdown()
    for f in schema.COMMON_MODEL + schema.RUN_FIELDS + schema.TOLERANCE_FIELDS:
        assert f"{f.name}`" in md
    for fam, fields in schema.FAMILY_FIELDS.items():
        for f in fields:
            assert f"`model.{fam}: {f.name}`" in md


def test_readme_shows_the_two_commands():
    readme = (ROOT / "README.md").read_text()
    assert "make bench SPEC=specs/lm_head.yaml" in readme and "make test" in readme


def test_readme_queries_run_on_a_fresh_store(cli, tmp_path):
    """Every `anemll-spec query` line of the README runs (columns and files exist)."""
    import shlex

    from anemll_spec.store import open_store

    store = tmp_path / "results.duckdb"
    open_store(store).close()
    readme = (ROOT / "README.md").read_text()
    lines = [
        ln
        for ln in readme.splitlines()
        if ln.startswith("anemll-spec query ") and not ln.startswith('anemll-spec query "SQL"')
    ]
    assert len(lines) >= 2
    for line in lines:
        args = shlex.split(line.split("  #", 1)[0])[1:]
        r = cli(*args, "--store", store)
        assert r.returncode == 0, (line, r.stderr)
