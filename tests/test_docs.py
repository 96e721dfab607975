"""The README's spec reference is generated from the spec's models; keep them in step."""

from pathlib import Path

from anemll_spec.spec import compression, docs, families, run_section

ROOT = Path(__file__).resolve().parents[1]


def test_readme_embeds_the_current_spec_reference():
    readme = (ROOT / "README.md").read_text()
    assert docs.markdown() in readme, "regenerate with: python -m anemll_spec.spec.docs"


def test_every_field_is_documented():
    md = docs.markdown()
    sections = {
        "model.": families.ModelBase,
        "run.": run_section.Run,
        "run.tolerance.": run_section.Tolerance,
        "model.compression.palettize.": compression.Palettize,
        "model.compression.quantize.": compression.Quantize,
    }
    for prefix, cls in sections.items():
        for name, field in cls.model_fields.items():
            assert f"`{prefix}{name}`" in md
            assert field.description, f"{prefix}{name} has no description"
    common = set(families.ModelBase.model_fields)
    for fam, cls in families.FAMILIES.items():
        for name, field in cls.model_fields.items():
            if name not in common:
                assert f"`model.{fam}: {name}`" in md
                assert field.description, f"model.{fam}.{name} has no description"


def test_readme_shows_the_two_commands():
    readme = (ROOT / "README.md").read_text()
    assert "make bench SPEC=specs/lm_head.yaml" in readme and "make test" in readme
