"""Turn pydantic's validation errors into our problems: file:line:col, field, one plain line.

pydantic locates an error by its path through the models (with union tags such as the
family name in it); the YAML loader recorded where every key and value sits. Here the one
is mapped onto the other, and each error type gets a message in the spec's own words (no
error URLs, no input_type=...).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError
from pydantic_core import ErrorDetails

from anemll_spec.errors import Problem
from anemll_spec.spec.yamlsafe import Positions, dotted
from anemll_spec.text import brief, closest

Path_ = tuple[Any, ...]


@dataclass
class Locator:
    """Where a field path sits in the file; a swept field points at its sweep entry."""

    file: str
    positions: Positions
    overrides: dict[Path_, Path_] = field(default_factory=dict)

    def where(self, path: Path_, key: bool = False) -> tuple[int | None, int | None]:
        for n in range(len(path), 0, -1):
            src = self.overrides.get(path[:n])
            if src is not None:
                path = src + path[n:]
                break
        probe = path + ("<key>",) if key else path
        pos = self.positions.get(probe) or self.positions.get(path)
        while pos is None and path:
            path = path[:-1]
            pos = self.positions.get(path)
        return pos if pos else (None, None)

    def problem(self, path: Path_, message: str, key: bool = False) -> Problem:
        line, col = self.where(path, key)
        return Problem(self.file, dotted(path), message, line, col)

    def unknown_key(self, path: Path_, allowed: list[str], doc: dict | None = None) -> Problem:
        """A key no model at `path[:-1]` has, with the other family or section it is a
        field of, or the closest allowed one the mapping does not have yet (with the
        document, `doc`: `hidden_size` for `vocab_size` in an ffn that has one would be
        written twice)."""
        hint = None
        if doc is not None:
            found = doc.get("model")
            family = found.get("family") if isinstance(found, dict) else None
            if path[:-1] == ("model",) and isinstance(family, str):
                hint = other_family(str(path[-1]), [family])
            hint = hint or elsewhere(path, doc)
        taken = _keys_at(doc, path[:-1]) if doc is not None else set()
        return self.problem(
            path, f"unknown key '{path[-1]}'{hint or suggest(path[-1], allowed, taken)}", True
        )


def suggest(word: object, allowed: list[str], taken: set | frozenset = frozenset()) -> str:
    """The hint after an unknown name: the closest allowed one, else all of them; where
    it is `taken` (a key the mapping has already: following the hint would write it
    twice), that it is set already."""
    match = closest(str(word), allowed)
    if match in taken:
        return f"; '{match}' is set already"
    return f"; did you mean '{match}'?" if match else f"; allowed: {', '.join(allowed)}"


def other_family(word: str, families: list[str]) -> str | None:
    """'; 'vocab_size' is a field of lm_head, not ffn': the hint for a model key of other
    families than the spec's (`families`: the one it is, or those it is swept over)."""
    from anemll_spec.spec.families import FAMILIES

    if not all(f in FAMILIES for f in families):
        return None
    others = [f for f, c in FAMILIES.items() if f not in families and word in c.model_fields]
    if not others:
        return None
    return f"; '{word}' is a field of {' and '.join(others)}, not {' or '.join(families)}"


def _keys_at(doc: dict, path: Path_) -> set:
    """The keys of the mapping at `path` in the document (none where it is no mapping)."""
    node: Any = doc
    for part in path:
        node = node.get(part) if isinstance(node, dict) else None
    return set(node) if isinstance(node, dict) else set()


def type_name(value: Any) -> str:
    return {dict: "a mapping", list: "a list", str: "a string", bool: "a boolean"}.get(
        type(value), type(value).__name__
    )


def _strip_tags(loc: tuple) -> Path_:
    """pydantic's loc without the union tags (the family after `model`, the form after
    `compression`), i.e. the path in the YAML document."""
    from anemll_spec.spec.compression import FORMS
    from anemll_spec.spec.families import FAMILIES

    out: list = []
    for i, part in enumerate(loc):
        prev = loc[i - 1] if i else None
        family_tag = i == 1 and prev == "model" and part in FAMILIES
        if family_tag or (prev == "compression" and part in (*FORMS, "none")):
            continue
        out.append(part)
    return tuple(out)


def allowed_keys(path: Path_, doc: dict) -> list[str]:
    """The keys the model at `path` accepts (for 'did you mean')."""
    from anemll_spec.spec import compression, document, families, run_section

    found = doc.get("model")
    model: dict = found if isinstance(found, dict) else {}
    table: dict[Path_, Any] = {
        (): document.Spec,
        ("run",): run_section.Run,
        ("run", "tolerance"): run_section.Tolerance,
        ("model", "compression", "palettize"): compression.Palettize,
        ("model", "compression", "quantize"): compression.Quantize,
    }
    if path == ("model",):
        family = model.get("family")
        cls = families.FAMILIES.get(family) if isinstance(family, str) else None
        classes = [cls] if cls else list(families.FAMILIES.values())
        return list(dict.fromkeys(k for c in classes for k in c.model_fields))
    if path == ("model", "compression"):
        return list(compression.FORMS)
    cls = table.get(path)
    return list(cls.model_fields) if cls else []


SECTIONS: dict[Path_, str] = {
    (): "the top level",
    ("model",): "model",
    ("run",): "run",
    ("run", "tolerance"): "run.tolerance",
}


def other_section(path: Path_, doc: dict) -> tuple[Path_, str] | None:
    """The other section that has the unknown key at `path` as a field (or as its plural
    or singular: `compute_unit` in model is run's `compute_units`): (section, field)."""
    word, here = str(path[-1]), path[:-1]
    if here not in SECTIONS:
        return None
    for section in SECTIONS:
        fields = [] if section == here else allowed_keys(section, doc)
        for name in (word, f"{word}s", word.removesuffix("s")):
            if name and name in fields:
                return section, name
    return None


def elsewhere(path: Path_, doc: dict) -> str | None:
    """'seed' is a field of model, not run: the hint for a key put in the wrong section."""
    found = other_section(path, doc)
    if found is None:
        return None
    (section, name), here = found, SECTIONS[path[:-1]]
    if name == path[-1]:
        return f"; '{name}' is a field of {SECTIONS[section]}, not {here}"
    return f"; did you mean '{name}'? It is a field of {SECTIONS[section]}, not {here}"


def _bound(ctx: dict) -> str:
    for k, op in (("gt", ">"), ("ge", ">="), ("lt", "<"), ("le", "<=")):
        if k in ctx:
            return f"{op} {ctx[k]:g}" if isinstance(ctx[k], float) else f"{op} {ctx[k]}"
    return ""


def _choices(expected: str) -> str:
    return expected.replace("'", "").replace(" or ", ", ")


def convert(exc: ValidationError, doc: dict, at: Locator) -> list[Problem]:
    """Every error of one validation as problems located in the file."""
    out: list[Problem] = []
    for e in exc.errors(include_url=False):
        path = _strip_tags(e["loc"])
        for p in _one(e, path, doc, at):
            if p not in out:
                out.append(p)
    return out


def _one(e: ErrorDetails, path: Path_, doc: dict, at: Locator) -> list[Problem]:
    kind, ctx, value = e["type"], e.get("ctx") or {}, e.get("input")
    if kind.startswith("union_tag") and not isinstance(value, dict):
        kind = "model_type"  # the family's union: `model:` empty or no mapping, said as elsewhere
    got, mapping = (
        f"got {type_name(value)} {brief(value)}",
        f"must be a mapping, got {type_name(value)}",
    )
    simple = {
        "int_type": f"must be an integer, {got}",
        "float_type": f"must be a number, {got}",
        "finite_number": f"must be finite, got {brief(value)}",
        "bool_type": f"must be true or false, got {brief(value)}",
        "string_type": f"must be a string, got {type_name(value)}",
        "list_type": f"must be a list, {got}",
        "dict_type": mapping,
        "model_type": mapping,
        "model_attributes_type": mapping,
        "string_pattern_mismatch": "must be letters, digits, '_', '.', '-' (at most 128), "
        "starting with a letter or digit",
    }
    if kind in simple:
        if value is None and kind != "string_pattern_mismatch":
            return [at.problem(path, "must not be empty (null)")]
        return [at.problem(path, simple[kind])]
    if kind in ("greater_than", "greater_than_equal", "less_than", "less_than_equal"):
        return [at.problem(path, f"must be {_bound(ctx)}, got {value}")]
    if kind == "literal_error":
        return [
            at.problem(
                path, f"unknown value {brief(value)}; choose one of {_choices(ctx['expected'])}"
            )
        ]
    if kind in ("too_short", "too_long"):
        if len(path) >= 2 and path[-2] == "input_ranges":
            return [at.problem(path, f"must be [low, high] integers, got {brief(value)}")]
        return [at.problem(path, f"must be a non-empty list, got {brief(value)}")]
    if kind == "missing":
        what = "section" if path in (("model",),) else "field"
        return [at.problem(path[:-1], f"missing required {what} '{path[-1]}'", key=True)]
    if kind == "extra_forbidden":
        return [at.unknown_key(path, allowed_keys(path[:-1], doc), doc)]
    if kind in ("union_tag_not_found", "union_tag_invalid"):  # the family
        if "family" not in value:  # and a key that is no family's is likely it, misspelt
            allowed = allowed_keys(path, doc)
            unknown = [at.unknown_key(path + (k,), allowed, doc) for k in value if k not in allowed]
            return [at.problem(path, "missing required field 'family'", key=True), *unknown]
        from anemll_spec.spec.families import FAMILIES

        msg = f"unknown value {brief(value['family'])}; choose one of {', '.join(FAMILIES)}"
        return [at.problem(path + ("family",), msg)]
    if kind == "compression_form":
        forms = allowed_keys(("model", "compression"), doc)
        keys = value if isinstance(value, dict) else ()
        unknown = [at.unknown_key(path + (k,), forms, doc) for k in keys if k not in forms]
        return unknown or [at.problem(path, e["msg"])]
    if kind == "spec_rules":
        return [at.problem(path + tuple(field), message) for field, message in ctx["problems"]]
    if kind == "value_error":
        return [at.problem(path, str(e["msg"]).removeprefix("Value error, "))]
    return [at.problem(path, str(e["msg"]))]
