"""The spec's field table (every field, default, meaning, bounds) from the models' own
declarations: the README embeds it, and a test keeps the two in step.

    python -m anemll_spec.spec.docs
"""

from __future__ import annotations

import typing
from typing import Any

from annotated_types import Ge, Gt, Le, Lt
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

from anemll_spec.spec import compression, families, run_section
from anemll_spec.spec.base import SpecModel
from anemll_spec.spec.document import Spec


def _choices(annotation: Any) -> tuple:
    """The Literal values a field (or a list field's items) takes."""
    origin = typing.get_origin(annotation)
    if origin is typing.Literal:
        return typing.get_args(annotation)
    if origin in (list, typing.Union, getattr(__import__("types"), "UnionType", None)):
        for arg in typing.get_args(annotation):
            found = _choices(arg)
            if found:
                return found
    return ()


def _default(f: FieldInfo) -> str:
    d = f.default
    if d is PydanticUndefined:
        return "required"
    if isinstance(d, SpecModel):
        return "see below"
    if d is None:
        return "`null`"
    if isinstance(d, bool):
        return f"`{str(d).lower()}`"
    if isinstance(d, list):
        return "`[" + ", ".join(map(str, d)) + "]`"
    if d == {}:
        return "`{}`"
    if d == "":
        return '`""`'
    return f"`{d}`"


def _metadata(f: FieldInfo) -> list:
    """The field's constraints, also where they sit on one arm of `X | None`."""
    found = list(f.metadata)
    for arg in typing.get_args(f.annotation):
        if typing.get_origin(arg) is typing.Annotated:
            found += [m for a in typing.get_args(arg)[1:] for m in getattr(a, "metadata", [a])]
    return found


def _number(v: float) -> str:
    return f"{v:,}" if isinstance(v, int) else f"{v:g}"


def _bounds(f: FieldInfo) -> str:
    ops = {Gt: ("gt", ">"), Ge: ("ge", ">="), Lt: ("lt", "<"), Le: ("le", "<=")}
    parts = [
        f"{sym} {_number(getattr(m, attr))}"
        for m in _metadata(f)
        for kind, (attr, sym) in ops.items()
        if isinstance(m, kind)
    ]
    return "; " + ", ".join(parts) if parts else ""


def _rows(prefix: str, fields: dict[str, FieldInfo], skip: tuple[str, ...] = ()) -> list[str]:
    out = []
    for name, f in fields.items():
        if name in skip:
            continue
        text = (f.description or "").replace("\n", " ").replace("|", "\\|")
        choices = _choices(f.annotation)
        if choices and len(choices) > 1:
            text += " (" + " \\| ".join(f"`{c}`" for c in choices) + ")"
        out.append(f"| `{prefix}{name}` | {_default(f)} | {text}{_bounds(f)} |")
    return out


def markdown() -> str:
    from anemll_spec.spec import DEFAULT_MAX_CASES

    top = Spec.model_fields
    common = families.ModelBase.model_fields
    lines = ["| field | default | meaning |", "|---|---|---|"]
    lines += _rows("", {k: top[k] for k in ("name", "description")})
    lines.append(
        "| `model.family` | required | what to build ("
        + " \\| ".join(f"`{f}`" for f in families.FAMILIES)
        + ") |"
    )
    lines += _rows("model.", common, skip=("family",))
    for name, cls in families.FAMILIES.items():
        own = {k: v for k, v in cls.model_fields.items() if k not in common}
        lines += _rows(f"model.{name}: ", own, skip=("family",))
    lines += _rows("model.compression.palettize.", compression.Palettize.model_fields)
    lines += _rows("model.compression.quantize.", compression.Quantize.model_fields)
    lines += _rows("run.", run_section.Run.model_fields)
    lines += _rows("run.tolerance.", run_section.Tolerance.model_fields)
    lines.append(
        "| `sweep` | `{}` | map of field path (`model.X`, `run.X`) to a non-empty list; "
        f"cases are the cartesian product (at most {DEFAULT_MAX_CASES} unless `--max-cases N`) |"
    )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    print(markdown(), end="")
