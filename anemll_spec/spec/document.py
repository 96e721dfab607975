"""The whole spec document as one model: what `anemll-spec schema` exports for editors.

Sweeps are checked and expanded by `spec.expand`; each sweep point is validated as a
complete document against `Spec`, so a swept value meets exactly the rules a written one
does.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import Field, field_validator

from anemll_spec.spec.base import SpecModel
from anemll_spec.spec.families import Model
from anemll_spec.spec.run_section import Run

NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$"
SWEEP_PATH_PATTERN = r"^(model|run)\.[A-Za-z_][A-Za-z0-9_.]*$"


class Spec(SpecModel):
    """A benchmark: the model to build, how to run and time it, and an optional sweep."""

    name: Annotated[str, Field(pattern=NAME_PATTERN)]
    """spec name: letters, digits, `_ . -`, starting with a letter or digit, at most 128"""
    description: str = ""
    """free text"""
    model: Model
    """what to build (one family)"""
    run: Run = Run()
    """where and how to time it"""
    sweep: dict[
        Annotated[str, Field(pattern=SWEEP_PATH_PATTERN)],
        Annotated[list[Any], Field(min_length=1)],
    ] = {}
    """map of field path (`model.X`, `run.X`) to a non-empty list; cases are the
    cartesian product"""

    @field_validator("name")
    @classmethod
    def _not_published(cls, name: str) -> str:
        """A case whose model is not a published one is named by its spec: a spec named
        like one would be stored and charted as that model, with its published factors."""
        from anemll_spec.spec.case import PUBLISHED_MODELS

        if name in PUBLISHED_MODELS:
            raise ValueError(
                f"{name!r} is a published model's name, which a case takes by itself when it "
                "builds exactly that model; a spec so named would pass another model off as "
                "it (its factors against the published figures): name the spec otherwise"
            )
        return name


def json_schema() -> dict[str, Any]:
    """The spec's JSON Schema for editors (yaml-language-server) and other tools.

    pydantic's schema of `Spec`, plus what the validator says beyond the field types: a
    single backend or compute unit may be written without a list, list values are
    unique, a sweep key that is no field path is refused, and an empty (null) sweep is
    none. Cross-field rules (vocab divisible by chunks, ...) are beyond JSON Schema.

    A name or sweep path ending in a newline is refused apart: `$` matches before a final
    newline in Python's re (the jsonschema library's), not in JavaScript's or pydantic's,
    and a lookahead (`$(?!\n)`) is no pattern pydantic's Rust regex reads."""
    schema = Spec.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "anemll-spec benchmark spec"
    from anemll_spec.spec.case import PUBLISHED_MODELS

    newline = {"pattern": "\n"}
    schema["properties"]["name"]["not"] = {"anyOf": [{"enum": sorted(PUBLISHED_MODELS)}, newline]}
    sweep = schema["properties"]["sweep"]
    sweep["additionalProperties"] = False  # a path or nothing
    sweep["propertyNames"] = {"not": newline}
    sweep["type"] = ["object", "null"]  # `sweep:` left empty is no sweep, as validate reads it
    run = schema["$defs"]["Run"]["properties"]
    for name in ("backends", "compute_units"):
        field = run[name]
        array = {k: field.pop(k) for k in ("type", "items", "minItems") if k in field}
        array["uniqueItems"] = True
        field["anyOf"] = [array["items"], array]
    return schema
