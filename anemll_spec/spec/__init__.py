"""Specs: declarative YAML benchmark descriptions, validated and expanded into cases.

    spec = load_spec("specs/lm_head.yaml")   # raises SpecError with every problem
    cases = expand(spec)                     # one Case per sweep point

The spec is a set of pydantic models (`document.Spec`: a `families.Model`, a
`run_section.Run`); every sweep point is validated as a whole document, and every
problem of every point is reported at once, located in the file (`problems`).
"""

from __future__ import annotations

import copy
import hashlib
import itertools
import json
import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from anemll_spec.errors import Problem, SpecError
from anemll_spec.hashing import digest
from anemll_spec.spec.case import Case, published_model
from anemll_spec.spec.textfile import read_text
from anemll_spec.spec.yamlsafe import MAX_NODES, Positions, load_yaml
from anemll_spec.text import brief
from anemll_spec.vocab import DEFAULT_MAX_CASES, MAX_CASES_LIMIT

__all__ = [
    "Case",
    "DEFAULT_MAX_CASES",
    "MAX_CASES_LIMIT",
    "SpecFile",
    "expand",
    "load_cases",
    "load_spec",
    "parse",
    "points_text",
    "published_model",
    "same_case_settings",
]


@dataclass
class SpecFile:
    """A spec file as read: its text, the YAML document and where each value sits."""

    path: Path
    text: str
    doc: dict
    positions: Positions
    sweep: dict[str, list] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)  # YAML's, sweep's; expand() reports them
    refused: set[tuple] = field(default_factory=set)  # (line, col) of values YAML refused
    notes: list[str] = field(default_factory=list)  # expand()'s: sweep points measured once

    @property
    def name(self) -> str:
        name = self.doc.get("name")
        return name if isinstance(name, str) else ""

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.text.encode()).hexdigest()

    @property
    def n_cases(self) -> int:
        return math.prod(len(values) for values in self.sweep.values())

    def where(self, case: Case, dotted: str) -> str:
        """'file:line:col' of a case's field as written: its sweep entry's value where
        the case sweeps it, else the field itself (later stages' refusals of a value,
        such as a damaged external model, point where validate's would)."""
        from anemll_spec.spec.problems import Locator

        at: tuple = tuple(dotted.split("."))
        if dotted in case.params:
            values = self.sweep.get(dotted, [])
            same = [i for i, v in enumerate(values) if v == case.params[dotted]]
            at = ("sweep", dotted, same[0]) if same else ("sweep", dotted)
        line, col = Locator(str(self.path), self.positions).where(at)
        return f"{self.path}:{line}:{col}" if line else str(self.path)

    def refused_at(self, case: Case, message: str) -> str:
        """Where a later stage's refusal of a case points: the line and column of the
        model field it starts with ('model.path: ...'), else the file."""
        head = message.split(":", 1)[0]
        section, _, name = head.partition(".")
        if section == "model" and name in type(case.model).model_fields:
            return self.where(case, head)
        return str(self.path)  # 'model.lm_head: building needs ...' is of no one field


def load_spec(path: str | Path, *, max_cases: int = DEFAULT_MAX_CASES) -> SpecFile:
    """Read and fully validate a spec (every sweep point too); raise SpecError on any problem."""
    return load_cases(path, max_cases=max_cases)[0]


def load_cases(
    path: str | Path, *, max_cases: int = DEFAULT_MAX_CASES
) -> tuple[SpecFile, list[Case]]:
    """The validated spec and its cases, expanded once."""
    spec = parse(path)
    return spec, expand(spec, max_cases=max_cases)


def parse(path: str | Path) -> SpecFile:
    """Read a spec and check its sweep; `expand` validates the cases and raises.

    Only unreadable input raises here, so that `expand` can report the YAML's problems
    (duplicate keys, tags), the sweep's and the cases' together."""
    from anemll_spec.spec.problems import Locator
    from anemll_spec.spec.sweep import check_sweep

    path = Path(path)
    text = read_text(path)
    written: dict[tuple, str] = {}  # how scalars that are no strings were written
    found: list[Problem] = []  # the YAML's: a value refused is None, said once, where it is
    doc, positions = load_yaml(text, str(path), written, found)
    at = Locator(str(path), positions)
    refused = {(p.line, p.column) for p in found}
    if not isinstance(doc, dict):
        problem = at.problem((), "a spec must be a mapping with name, model and run")
        raise SpecError(_in_order(found, [problem], refused))
    sweep, problems = check_sweep(doc, at, written)
    return SpecFile(path, text, doc, positions, sweep, _in_order(found, problems, refused), refused)


def _in_order(found: list[Problem], later: list[Problem], refused: set[tuple]) -> list[Problem]:
    """The YAML's problems and later ones in the file's order, less the later ones about a
    value the YAML refused (`name: !!binary eA==` is not also an empty name)."""
    kept = [p for p in later if (p.line, p.column) not in refused]
    return sorted(found + kept, key=lambda p: (p.line or 0, p.column or 0))


def expand(spec: SpecFile, *, max_cases: int = DEFAULT_MAX_CASES) -> list[Case]:
    """The cartesian product of the sweep, each point validated as a whole document.

    A sweep over `max_cases` is refused, and still checked without expanding it: each
    sweep value once, the others at their first value (the lists' summed lengths: at most
    MAX_NODES points, about 80 us each), so the size is reported with the base document's
    and the values' problems, not alone."""
    from anemll_spec.spec import problems as problems_mod

    keys = list(spec.sweep)
    too_many: list[Problem] = []
    combos: Iterable[tuple]
    if spec.n_cases > max_cases:
        sizes = " x ".join(str(len(v)) for v in spec.sweep.values())
        at = problems_mod.Locator(str(spec.path), spec.positions)
        allow = (
            f"pass --max-cases {spec.n_cases} to allow it"
            if spec.n_cases <= MAX_CASES_LIMIT
            else f"--max-cases allows at most {MAX_CASES_LIMIT:,}: split the sweep"
        )
        message = f"sweep expands to {spec.n_cases:,} cases ({sizes}), over the limit of "
        too_many = [at.problem(("sweep",), f"{message}{max_cases:,}; {allow}")]
        combos = itertools.islice(_each_value_once(spec, keys), MAX_NODES)
    else:
        combos = itertools.product(*(enumerate(spec.sweep[k]) for k in keys))
    per_point, points, same_as = _validate_points(spec, keys, combos)
    twice, spec.notes = _repeated_points(spec, keys, points, same_as) if not too_many else ([], [])
    found = _located_sweep_problems(per_point, keys, not too_many) + twice
    if too_many or spec.problems or found:  # in the file's order
        raise SpecError(_in_order(too_many + spec.problems, found, spec.refused))
    return [case for n, (_, case) in enumerate(points) if n not in same_as]


def _each_value_once(spec: SpecFile, keys: list[str]) -> Iterator[tuple]:
    """Sweep points that hold every value once: the first values, then each entry's other
    values with the rest at their first (the sum of the lists' lengths, not their product)."""
    first = tuple((0, spec.sweep[k][0]) for k in keys)
    yield first
    for n, key in enumerate(keys):
        for i, value in enumerate(spec.sweep[key][1:], 1):
            yield first[:n] + ((i, value),) + first[n + 1 :]


def _validate_points(
    spec: SpecFile, keys: list[str], combos: Iterable[tuple]
) -> tuple[list[tuple[dict, list[Problem]]], list[tuple[tuple, Case]], dict[int, int]]:
    """Each sweep point (value indices and values per key) validated as a whole document:
    its params and problems, the valid points' cases, and which repeat an earlier one."""
    from pydantic import ValidationError

    from anemll_spec.spec import problems as problems_mod
    from anemll_spec.spec.document import Spec

    base = {k: v for k, v in spec.doc.items() if k != "sweep"}
    per_point: list[tuple[dict, list[Problem]]] = []
    points: list[tuple[tuple, Case]] = []  # (value indices, case) of each valid point
    resolved: dict[str, int] = {}  # what a point resolves to -> its first point's position
    same_as: dict[int, int] = {}  # a point's position -> the earlier point it repeats
    for index, combo in enumerate(combos):
        doc = copy.deepcopy(base)
        overrides: dict[tuple, tuple] = {}
        params: dict[str, Any] = {}
        for key, (i, value) in zip(keys, combo, strict=True):
            section, *rest = key.split(".")
            if not _set_path(doc, [section, *rest], copy.deepcopy(value)):
                continue  # a section that is not a mapping: reported by validation
            overrides[(section, *rest)] = ("sweep", key, i)
            params[key] = value
        model = doc.get("model")
        family = model.get("family") if isinstance(model, dict) else None
        context = {"base": str(spec.path.parent), "family": family}  # for run's rules
        try:
            valid = Spec.model_validate(doc, context=context)
        except ValidationError as exc:
            at = problems_mod.Locator(str(spec.path), spec.positions, overrides)
            per_point.append((params, problems_mod.convert(exc, doc, at)))
            continue
        per_point.append((params, []))
        settings = digest([valid.model.to_json(), same_case_settings(valid.run.settings())])
        first = resolved.setdefault(settings, len(points))
        if first != len(points):
            same_as[len(points)] = first
        points.append((combo, Case(valid.name, index, valid.model, valid.run, params)))
    return per_point, points, same_as


def same_case_settings(settings: dict[str, Any]) -> dict[str, Any]:
    """A run's settings as "the same case" compares them: backends and compute units as
    sets (`[numpy, torch]` and `[torch, numpy]` measure the same variants). Only for
    comparing: the case key hashes the lists as written, so no stored key changes."""
    out = dict(settings)
    for k in ("backends", "compute_units"):
        if isinstance(out.get(k), list):
            out[k] = sorted(out[k], key=lambda v: json.dumps(v, sort_keys=True))
    return out


def _repeated_points(
    spec: SpecFile, keys: list[str], points: list[tuple[tuple, Case]], same_as: dict[int, int]
) -> tuple[list[Problem], list[str]]:
    """Points that repeat an earlier one. Where a sweep value makes no case of its own
    (every point with it repeats another: `CPU_ONLY` and `[CPU_ONLY]`, a default written
    out), the value is a mistake: a problem. Where each of the point's values makes cases
    of its own elsewhere (concurrency 1 with `instances: distinct`, which one instance
    cannot be), the point is measured once: dropped, and said in a note. The kept cases
    keep their positions in the sweep (`Case.index`), so a dropped point leaves a gap."""
    own = {
        (k, c[0])
        for n, (combo, _) in enumerate(points)
        if n not in same_as
        for k, c in zip(keys, combo, strict=True)
    }
    problems: dict[Problem, None] = {}
    dropped: list[Case] = []
    for later, first in same_as.items():
        combo, case = points[later]
        lonely = [k for k, c in zip(keys, combo, strict=True) if (k, c[0]) not in own]
        if lonely:
            problems[_same_case(spec, keys, points[first][0], combo, lonely)] = None
        else:
            dropped.append(case)
    notes = []
    if dropped:
        n = len(dropped)
        why = (
            " (instances apply with concurrency > 1)"
            if any(c.run.concurrency == 1 and c.run.instances != "shared" for c in dropped)
            else ""
        )
        what = (
            "point is the same case as another and is"
            if n == 1
            else "points are the same case as others and are"
        )
        notes.append(f"{n} sweep {what} measured once: {points_text(dropped)}{why}")
    return list(problems), notes


def points_text(cases: list[Case]) -> str:
    """Sweep points as a note lists them: the first three's values, and how many more."""
    shown = "; ".join(", ".join(f"{k}={brief(v)}" for k, v in c.params.items()) for c in cases[:3])
    return shown + (f"; and {len(cases) - 3} more" if len(cases) > 3 else "")


def _same_case(
    spec: SpecFile, keys: list[str], first: tuple, later: tuple, lonely: list[str]
) -> Problem:
    """Two sweep values that resolve to the same settings (`CPU_ONLY` and `[CPU_ONLY]`, a
    default written out) would measure one case twice under one key: said at the first
    value of the later point that differs from the earlier one and makes no case of its own."""
    from anemll_spec.spec.problems import Locator

    key, (i, value), (_, other) = next(
        (k, b, a)
        for k, a, b in zip(keys, first, later, strict=True)
        if a[0] != b[0] and k in lonely
    )
    message = (
        f"{brief(value)} makes the same case as {brief(other)} (both resolve to the same settings): "
        "each value must make its cases once"
    )
    if key == "run.instances":  # they differ, so the run has one instance
        message += " (instances apply with concurrency > 1)"
    return Locator(str(spec.path), spec.positions).problem(("sweep", key, i), message)


def _located_sweep_problems(
    per_point: list[tuple[dict, list[Problem]]], keys: list[str], every_point: bool = True
) -> list[Problem]:
    """A problem shared by every sweep point is the base document's: report it once.
    One that only some points have is caused by the sweep: report it once too, saying at
    which point (or how many, with the first). One about a value the sweep writes into
    says so: it is the base's line, but the mix of the two is the problem. Where not
    `every_point` was checked (each value once), how many points have it is not known."""
    everywhere = set.intersection(*(set(ps) for _, ps in per_point)) if per_point else set()
    points: dict[Problem, list[dict]] = {}
    for params, point_problems in per_point:
        for p in point_problems:
            points.setdefault(p, []).append(params)
    out: list[Problem] = []
    for p, where in points.items():
        shared = p in everywhere
        inside = [k for k in keys if p.path and k.startswith(f"{p.path}.")]
        if inside:
            p = replace(p, message=f"{p.message} (the sweep sets {inside[0]} inside it)")
        if not shared:
            first = ", ".join(f"{k}={brief(v)}" for k, v in where[0].items())
            if not every_point:
                at = f"sweep points such as {first}"
            else:
                at = (
                    f"sweep point {first}"
                    if len(where) == 1
                    else f"{len(where)} sweep points, e.g. {first}"
                )
            p = replace(p, message=f"{p.message} (at {at})")
        out.append(p)
    return out


def _set_path(target: dict, parts: list[str], value: Any) -> bool:
    """Set a dotted path in the document, making the mappings on its way where they are
    missing, null or `none` (compression's word for none); False where one is another
    value, which validation then reports where it is written (it was overwritten)."""
    for part in parts[:-1]:
        now = target.get(part)
        if now is None or (part == "compression" and now == "none"):
            target[part] = {}
        if not isinstance(target[part], dict):
            return False
        target = target[part]
    target[parts[-1]] = value
    return True
