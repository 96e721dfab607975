"""A spec's sweep: field paths to lists of values, checked before any point is expanded."""

from __future__ import annotations

from typing import Any

from anemll_spec.errors import Problem
from anemll_spec.spec.base import listed, repeats
from anemll_spec.spec.problems import Locator, allowed_keys, other_family, other_section, suggest
from anemll_spec.text import brief, middle_cut


def families(doc: dict) -> list[str]:
    """The families the spec can be: its own and those it is swept over (all of them
    where one is no family: validation reports it)."""
    from anemll_spec.spec.families import FAMILIES

    found_model, found_sweep = doc.get("model"), doc.get("sweep")
    model: dict = found_model if isinstance(found_model, dict) else {}
    sweep: dict = found_sweep if isinstance(found_sweep, dict) else {}
    swept = sweep.get("model.family")
    found = [model.get("family"), *(swept if isinstance(swept, list) else [])]
    if not all(isinstance(f, str) and f in FAMILIES for f in found):
        return list(FAMILIES)
    return list(dict.fromkeys(found))


def sweepable(doc: dict) -> dict[str, list[str]]:
    """The fields a sweep path may name, per section (of the families the spec can be)."""
    from anemll_spec.spec.families import FAMILIES
    from anemll_spec.spec.run_section import Run

    can_be = families(doc)
    fields = [f for fam in FAMILIES if fam in can_be for f in FAMILIES[fam].model_fields]
    return {"model": list(dict.fromkeys(fields)), "run": list(Run.model_fields)}


def check_sweep(
    doc: dict, at: Locator, written: dict[tuple, str] | None = None
) -> tuple[dict[str, list], list[Problem]]:
    """The valid sweep entries and the problems of the others; a value listed again is
    shown as `written` (the spec's text of scalars that are no strings) where known."""
    written = written or {}

    def shown(key: str, values: list, i: int) -> str:
        text = written.get(("sweep", key, i))
        return brief(values[i]) if text is None else middle_cut(text, 80)

    sweep = doc.get("sweep")
    if sweep is None:
        return {}, []
    if not isinstance(sweep, dict):
        msg = "must map field paths (e.g. model.vocab_size) to lists of values"
        return {}, [at.problem(("sweep",), msg)]
    known = sweepable(doc)
    out: dict[str, list] = {}
    problems: list[Problem] = []
    for key, values in sweep.items():
        problem = _entry_problem(str(key), values, known, doc) or _overlap(str(key), out)
        if problem:
            message, on_key = problem
            problems.append(at.problem(("sweep", key), message, key=on_key))
            continue
        twice = [
            at.problem(
                ("sweep", key, i),
                f"{listed(shown(key, values, i), times, shown(key, values, first))}: "
                "each value makes its cases once",
            )
            for i, first, times in repeats(values)
        ]
        problems += twice
        if not twice:
            out[key] = values
    return out, problems


def _overlap(key: str, earlier: dict[str, list]) -> tuple[str, bool] | None:
    """Two entries where one lies inside the other (model.compression and
    model.compression.palettize.nbits) would each rewrite what the other set, and which
    wins would depend on their order: refused, whichever comes first."""
    for other in earlier:
        inner, outer = (key, other) if len(key) > len(other) else (other, key)
        if inner.startswith(outer + "."):
            return (
                f"sweep path '{inner}' lies inside '{outer}', which is swept too: sweep one of them",
                True,
            )
    return None


def _entry_problem(
    key: str, values: Any, known: dict[str, list[str]], doc: dict
) -> tuple[str, bool] | None:
    parts = key.split(".")
    if len(parts) < 2 or parts[0] not in known:
        return f"sweep path '{key}' must start with model. or run.", True
    if parts[1] not in known[parts[0]]:
        sweep: dict = doc.get("sweep") or {}
        swept = {str(k).split(".")[1] for k in sweep if str(k).startswith(f"{parts[0]}.")}
        hint = suggest(parts[1], known[parts[0]], swept)  # not a field swept already
        hint = hint.replace("'", f"'{parts[0]}.", 1) if "did you mean" in hint else ""
        other = other_section((parts[0], parts[1]), doc)  # run.seed: model.seed
        if other and other[0]:  # a section's field (not a top-level one: not sweepable)
            hint = f"; did you mean '{'.'.join((*map(str, other[0]), other[1]))}'?"
        if parts[0] == "model":  # model.vocab_size of an ffn: lm_head's
            hint = other_family(parts[1], families(doc)) or hint
        return f"sweep path '{key}' does not exist: no field '{parts[1]}' in {parts[0]}{hint}", True
    inside = _inside_problem(key, parts, doc)
    if inside:
        return inside, True
    if not isinstance(values, list):
        return "must be a list of values to sweep over", False
    if not values:
        return "empty sweep list: give at least one value", False
    return None


def _inside_problem(key: str, parts: list[str], doc: dict) -> str | None:
    """A path below a field must go through sections (run.tolerance.min_cosine,
    model.compression.palettize.nbits) or name one entry of a map (model.input_ranges.ids)."""
    for i in range(2, len(parts)):
        inner = tuple(parts[:i])
        if inner[-1] == "input_ranges" and i == 2 and len(parts) == 3:
            return None
        allowed = allowed_keys(inner, doc)
        if not allowed:
            where = ".".join(inner)
            return f"sweep path '{key}' goes inside {where}, which is a value, not a section"
        if parts[i] not in allowed:
            hint = suggest(parts[i], allowed)
            return f"sweep path '{key}' does not exist: no field '{parts[i]}' in {'.'.join(inner)}{hint}"
    return None
