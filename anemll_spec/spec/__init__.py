"""Specs: declarative YAML benchmark descriptions, validated and expanded into cases.

spec = load_spec("specs/lm_head.yaml")   # raises SpecError with every problem
cases = expand(spec)                     # one Case per sweep point
"""

from __future__ import annotations

import hashlib
import itertools
import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from anemll_spec.errors import Problem, SpecError
from anemll_spec.spec import schema
from anemll_spec.spec.case import Case, published_model
from anemll_spec.spec.validate import Checker, check_family, check_section, check_unknown
from anemll_spec.spec.yamlsafe import Positions, load_yaml, read_text

__all__ = [
    "Case",
    "Spec",
    "load_spec",
    "load_cases",
    "expand",
    "published_model",
    "DEFAULT_MAX_CASES",
]

DEFAULT_MAX_CASES = 256
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")


@dataclass
class Spec:
    path: Path
    text: str
    doc: dict
    positions: Positions
    name: str = ""
    description: str = ""
    sweep: dict[str, list] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)  # top-level ones; expand() reports them

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.text.encode()).hexdigest()

    @property
    def n_cases(self) -> int:
        n = 1
        for values in self.sweep.values():
            n *= len(values)
        return n


def load_spec(path: str | Path, *, max_cases: int = DEFAULT_MAX_CASES) -> Spec:
    """Read and fully validate a spec (every sweep point too); raise SpecError on any problem."""
    return load_cases(path, max_cases=max_cases)[0]


def load_cases(path: str | Path, *, max_cases: int = DEFAULT_MAX_CASES) -> tuple[Spec, list[Case]]:
    """The validated spec and its cases, expanded once."""
    spec = parse(path)
    return spec, expand(spec, max_cases=max_cases)


def parse(path: str | Path) -> Spec:
    """Read a spec and check its top level; `expand` validates the cases and raises.

    Only unreadable input raises here, so that `expand` can report top-level and
    case-level problems together.
    """
    path = Path(path)
    file = str(path)
    text = read_text(path)
    doc, positions = load_yaml(text, file)
    ck = Checker(file, positions)
    if not isinstance(doc, dict):
        ck.add((), "a spec must be a mapping with name, model and run")
        raise SpecError(ck.problems)
    check_unknown(ck, doc, list(schema.TOP_FIELDS), ())
    name = doc.get("name")
    if name is None:
        ck.add((), "missing required field 'name'")
    elif not isinstance(name, str) or not _NAME.match(name):
        ck.add(
            ("name",),
            "must be letters, digits, '_', '.', '-' (at most 128), starting with a letter or digit",
        )
    desc = doc.get("description", "")
    if not isinstance(desc, str):
        ck.add(("description",), "must be a string")
    if "model" not in doc:
        ck.add((), "missing required section 'model'")
    for section in ("model", "run"):
        if section in doc and not isinstance(doc[section], dict | None):
            ck.add((section,), "must be a mapping")
    sweep = _check_sweep(ck, doc)
    name = name if isinstance(name, str) else ""
    desc = desc if isinstance(desc, str) else ""
    return Spec(path, text, doc, positions, name, desc, sweep, ck.problems)


def _check_sweep(ck: Checker, doc: dict) -> dict[str, list]:
    sweep = doc.get("sweep")
    if sweep is None:
        return {}
    if not isinstance(sweep, dict):
        ck.add(("sweep",), "must map field paths (e.g. model.vocab_size) to lists of values")
        return {}
    model = doc.get("model") if isinstance(doc.get("model"), dict) else {}
    families = {model.get("family")}
    if isinstance(sweep.get("model.family"), list):
        families |= set(sweep["model.family"])
    if not families <= set(schema.FAMILIES):  # unknown family: reported elsewhere
        families = set(schema.FAMILIES)
    known = {
        "model": {f.name for fam in families for f in schema.model_fields(fam)},
        "run": {f.name for f in schema.RUN_FIELDS},
    }
    out: dict[str, list] = {}
    for key, values in sweep.items():
        path = ("sweep", key)
        parts = str(key).split(".")
        if len(parts) < 2 or parts[0] not in known:
            ck.add(path, f"sweep path '{key}' must start with model. or run.", key=True)
            continue
        if parts[1] not in known[parts[0]]:
            ck.add(
                path,
                f"sweep path '{key}' does not exist: no field '{parts[1]}' in {parts[0]}",
                key=True,
            )
            continue
        if not isinstance(values, list):
            ck.add(path, "must be a list of values to sweep over")
            continue
        if not values:
            ck.add(path, "empty sweep list: give at least one value")
            continue
        seen: list = []
        for v in values:
            if any(v == w and type(v) is type(w) for w in seen):
                ck.add(path, f"{v!r} is listed twice: each value makes its cases once")
                break
            seen.append(v)
        out[key] = values
    return out


def expand(spec: Spec, *, max_cases: int = DEFAULT_MAX_CASES) -> list[Case]:
    """The cartesian product of the sweep, each point validated and resolved."""
    file = str(spec.path)
    if spec.n_cases > max_cases:
        sizes = " x ".join(str(len(v)) for v in spec.sweep.values())
        line, col = spec.positions.get(("sweep",), (None, None))
        raise SpecError(
            [
                Problem(
                    file,
                    "sweep",
                    f"sweep expands to {spec.n_cases:,} cases ({sizes}), over the limit of "
                    f"{max_cases}; pass --max-cases {spec.n_cases} to allow it",
                    line,
                    col,
                )
            ]
        )
    base = spec.path.parent
    keys = list(spec.sweep)
    problems: list[Problem] = list(spec.problems)
    per_point: list[tuple[dict, list[Problem]]] = []
    cases: list[Case] = []
    for index, combo in enumerate(itertools.product(*(enumerate(spec.sweep[k]) for k in keys))):
        model = _section(spec.doc, "model")
        run = _section(spec.doc, "run")
        overrides: dict[tuple, tuple] = {}
        params: dict[str, Any] = {}
        for key, (i, value) in zip(keys, combo, strict=True):
            section, *rest = key.split(".")
            target = model if section == "model" else run
            _set_path(target, rest, _deepcopy(value))
            overrides[(section, *rest)] = ("sweep", key, i)
            params[key] = value
        ck = Checker(file, spec.positions, overrides)
        if not all(isinstance(spec.doc.get(s, {}) or {}, dict) for s in ("model", "run")):
            break  # already reported: a section that is not a mapping
        resolved_model, resolved_run = _resolve(ck, model, run, base)
        per_point.append((params, ck.problems))
        if not ck.problems:
            cases.append(Case(spec.name, index, resolved_model, resolved_run, params))
    problems += _located_sweep_problems(per_point)
    if problems:  # in the file's order
        raise SpecError(sorted(problems, key=lambda p: (p.line or 0, p.column or 0)))
    return cases


def _located_sweep_problems(per_point: list[tuple[dict, list[Problem]]]) -> list[Problem]:
    """A problem shared by every sweep point is the base document's: report it once.
    One that only some points have is caused by the sweep: report it once too, saying at
    which point (or how many, with the first)."""
    everywhere = set.intersection(*(set(ps) for _, ps in per_point)) if per_point else set()
    points: dict[Problem, list[dict]] = {}
    for params, point_problems in per_point:
        for p in point_problems:
            points.setdefault(p, []).append(params)
    out: list[Problem] = []
    for p, where in points.items():
        if p not in everywhere:
            first = ", ".join(f"{k}={v!r}" for k, v in where[0].items())
            at = (
                f"sweep point {first}"
                if len(where) == 1
                else f"{len(where)} sweep points, e.g. {first}"
            )
            p = replace(p, message=f"{p.message} (at {at})")
        out.append(p)
    return out


def _resolve(ck: Checker, model: dict, run: dict, base: Path) -> tuple[dict, dict]:
    family = model.get("family")
    if isinstance(family, str) and family in schema.FAMILIES:
        fields = schema.model_fields(family)
    else:
        # unknown family: reported by the family field; don't also flag its fields
        extra = [replace(f, required=False) for fam in schema.FAMILY_FIELDS.values() for f in fam]
        fields = tuple({f.name: f for f in (*extra, *schema.COMMON_MODEL)}.values())
    resolved_model = check_section(ck, model, fields, ("model",), base) or {}
    resolved_run = check_section(ck, run, schema.RUN_FIELDS, ("run",), base) or {}
    if resolved_run and resolved_run.get("tolerance") is None and "tolerance" not in run:
        resolved_run["tolerance"] = check_section(
            ck, {}, schema.TOLERANCE_FIELDS, ("run", "tolerance"), base
        )
    lo, hi = resolved_run.get("min_iterations"), resolved_run.get("iterations")
    if "min_iterations" in run and lo is not None and hi is not None and lo > hi:
        # given both, the user expects both to hold; alone, the default is capped
        ck.add(("run", "min_iterations"), f"min_iterations ({lo}) exceeds iterations ({hi})")
    if resolved_model.get("compute_precision") is None:
        resolved_model["compute_precision"] = resolved_model.get("dtype")
    if family in schema.FAMILIES:
        check_family(ck, resolved_model)
    return resolved_model, resolved_run


def _section(doc: dict, name: str) -> dict:
    value = doc.get(name)
    return _deepcopy(value) if isinstance(value, dict) else {}


def _set_path(target: dict, parts: list[str], value: Any) -> None:
    for part in parts[:-1]:
        nxt = target.get(part)
        if not isinstance(nxt, dict):
            nxt = {}
            target[part] = nxt
        target = nxt
    target[parts[-1]] = value


def _deepcopy(value):
    import copy

    return copy.deepcopy(value)
