"""Render the spec reference (every field, default, meaning) from the schema.

The README embeds this output; a test keeps the two in step, so the docs can
never drift from the fields the validator accepts.
"""

from __future__ import annotations

from anemll_spec.spec import schema
from anemll_spec.spec.schema import Field


def _default(f: Field) -> str:
    if f.required:
        return "required"
    if f.kind == "tolerance":
        return "see `run.tolerance.*`"
    if f.default is None:
        return "`null`" if f.nullable else "-"
    if isinstance(f.default, bool):
        return f"`{str(f.default).lower()}`"
    if isinstance(f.default, list):
        return "`[" + ", ".join(map(str, f.default)) + "]`"
    if f.default == {}:
        return "`{}`"
    return f"`{f.default}`"


def _rows(prefix: str, fields: tuple[Field, ...]) -> list[str]:
    out = []
    for f in fields:
        help_ = f.help.replace("|", "\\|")
        if f.choices and f.kind in ("enum", "enum_list"):
            help_ += " (" + " \\| ".join(f"`{c}`" for c in f.choices) + ")"
        help_ += _bounds(f)
        out.append(f"| `{prefix}{f.name}` | {_default(f)} | {help_} |")
    return out


def _bounds(f: Field) -> str:
    if f.kind not in ("int", "float"):
        return ""
    if f.min is not None and f.max is not None:
        return f"; {f.min:g} to {f.max:g}"
    if f.positive:
        return "; > 0"
    if f.min is not None:
        return f"; >= {f.min:g}"
    return ""


def markdown() -> str:
    lines = ["| field | default | meaning |", "|---|---|---|"]
    lines.append(
        "| `name` | required | spec name: letters, digits, `_ . -`, starting with a letter or "
        "digit, at most 128 |"
    )
    lines.append('| `description` | `""` | free text |')
    lines += _rows("model.", schema.COMMON_MODEL)
    for family, fields in schema.FAMILY_FIELDS.items():
        lines += _rows(f"model.{family}: ", fields)
    lines += _rows("model.compression.palettize.", schema.PALETTIZE_FIELDS)
    lines += _rows("model.compression.quantize.", schema.QUANTIZE_FIELDS)
    lines += _rows("run.", schema.RUN_FIELDS)
    lines += _rows("run.tolerance.", schema.TOLERANCE_FIELDS)
    from anemll_spec.spec import DEFAULT_MAX_CASES

    lines.append(
        "| `sweep` | `{}` | map of field path (`model.X`, `run.X`) to a non-empty list; "
        f"cases are the cartesian product (at most {DEFAULT_MAX_CASES} unless `--max-cases N`) |"
    )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    print(markdown(), end="")
