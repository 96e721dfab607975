"""Check one spec document (or one swept variant of it) against the schema.

Collects every problem instead of stopping at the first, each located at the
line/column of the offending key or value, and returns the resolved sections
with all defaults filled in.
"""

from __future__ import annotations

import difflib
import math
from pathlib import Path
from typing import Any

from anemll_spec.errors import Problem
from anemll_spec.spec import schema
from anemll_spec.spec.schema import Field
from anemll_spec.spec.yamlsafe import Positions, dotted


class Checker:
    """Accumulates problems with their positions."""

    def __init__(
        self, file: str, positions: Positions, overrides: dict[tuple, tuple] | None = None
    ):
        self.file = file
        self.positions = positions
        # a swept field's problems point at its sweep entry: path -> sweep value path
        self.overrides = overrides or {}
        self.problems: list[Problem] = []

    def where(self, path: tuple, key: bool = False) -> tuple[int | None, int | None]:
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

    def add(self, path: tuple, message: str, key: bool = False) -> None:
        line, col = self.where(path, key)
        problem = Problem(self.file, dotted(path), message, line, col)
        if problem not in self.problems:
            self.problems.append(problem)


def _type_name(value: Any) -> str:
    return {dict: "a mapping", list: "a list", str: "a string", bool: "a boolean"}.get(
        type(value), type(value).__name__
    )


def check_unknown(ck: Checker, doc: dict, allowed, path: tuple) -> None:
    for key in doc:
        if key not in allowed:
            hint = difflib.get_close_matches(str(key), [str(a) for a in allowed], n=1)
            extra = f"; did you mean '{hint[0]}'?" if hint else f"; allowed: {', '.join(allowed)}"
            ck.add(path + (key,), f"unknown key '{key}'{extra}", key=True)


def check_value(ck: Checker, f: Field, value: Any, path: tuple, base: Path) -> Any:
    """Validate one field's value; returns the resolved value (or None on error)."""
    if value is None:
        if f.nullable:
            return None
        ck.add(path, "must not be empty (null)")
        return None
    k = f.kind
    if k == "int":
        if isinstance(value, bool) or not isinstance(value, int):
            ck.add(path, f"must be an integer, got {_type_name(value)} {value!r}")
            return None
        return _check_bounds(ck, f, value, path)
    if k == "float":
        if isinstance(value, bool) or not isinstance(value, int | float):
            ck.add(path, f"must be a number, got {_type_name(value)} {value!r}")
            return None
        if not math.isfinite(value):
            ck.add(path, f"must be finite, got {value!r}")
            return None
        return _check_bounds(ck, f, float(value), path)
    if k == "str":
        if not isinstance(value, str):
            ck.add(path, f"must be a string, got {_type_name(value)}")
            return None
        return value
    if k == "bool":
        if not isinstance(value, bool):
            ck.add(path, f"must be true or false, got {value!r}")
            return None
        return value
    if k == "enum":
        if isinstance(value, bool) or value not in f.choices:
            ck.add(path, f"unknown value {value!r}; choose one of {', '.join(map(str, f.choices))}")
            return None
        return value
    if k == "enum_list":
        items = [value] if isinstance(value, str) else value
        if not isinstance(items, list) or not items:
            ck.add(path, f"must be a non-empty list of {', '.join(f.choices)}")
            return None
        out = []
        for i, item in enumerate(items):
            if item not in f.choices:
                ck.add(
                    path + (i,) if isinstance(value, list) else path,
                    f"unknown value {item!r}; choose from {', '.join(f.choices)}",
                )
            elif item in out:
                ck.add(path + (i,), f"{item!r} is listed twice")
            else:
                out.append(item)
        return out if len(out) == len(items) else None
    if k == "path":
        if not isinstance(value, str) or not value:
            ck.add(path, "must be a path string")
            return None
        p = Path(value).expanduser()
        p = p if p.is_absolute() else (base / p)
        if not p.exists():
            ck.add(path, f"no such model: {p}")
            return None
        if p.suffix not in (".mlpackage", ".mlmodelc"):
            ck.add(path, f"must be a .mlpackage or .mlmodelc, got {p.name}")
            return None
        return str(p.resolve())
    if k == "ranges":
        if not isinstance(value, dict):
            ck.add(path, "must map input names to [low, high]")
            return None
        out = {}
        for name, rng in value.items():
            ok = (
                isinstance(rng, list)
                and len(rng) == 2
                and all(isinstance(x, int) and not isinstance(x, bool) for x in rng)
                and rng[0] <= rng[1]
            )
            if not ok:
                ck.add(
                    path + (name,), f"must be [low, high] integers with low <= high, got {rng!r}"
                )
            else:
                out[str(name)] = list(rng)
        return out
    if k == "compression":
        return check_compression(ck, value, path)
    if k == "tolerance":
        return check_section(ck, value, schema.TOLERANCE_FIELDS, path, base)
    raise AssertionError(f"unknown field kind {k}")


def _check_bounds(ck: Checker, f: Field, value, path: tuple):
    if f.positive and value <= 0:
        ck.add(path, f"must be > 0, got {value}")
        return None
    if f.min is not None and value < f.min:
        ck.add(path, f"must be >= {f.min:g}, got {value}")
        return None
    if f.max is not None and value > f.max:
        ck.add(path, f"must be <= {f.max:g}, got {value}")
        return None
    return value


def check_section(
    ck: Checker, doc: Any, fields: tuple[Field, ...], path: tuple, base: Path
) -> dict | None:
    """Validate a mapping against field declarations; fill defaults."""
    if doc is None:
        doc = {}
    if not isinstance(doc, dict):
        ck.add(path, f"must be a mapping, got {_type_name(doc)}")
        return None
    names = schema.by_name(fields)
    check_unknown(ck, doc, list(names), path)
    out: dict = {}
    for f in fields:
        if f.name in doc:
            out[f.name] = check_value(ck, f, doc[f.name], path + (f.name,), base)
        elif f.required:
            ck.add(path, f"missing required field '{f.name}'", key=True)
            out[f.name] = None
        else:
            out[f.name] = _copy(f.default)
    return out


def check_compression(ck: Checker, value: Any, path: tuple) -> Any:
    if value in ("none", None, False):
        return "none"
    if not isinstance(value, dict) or len(value) != 1:
        ck.add(path, "must be 'none', {palettize: {...}} or {quantize: {...}}")
        return None
    ((kind, body),) = value.items()
    fields = {"palettize": schema.PALETTIZE_FIELDS, "quantize": schema.QUANTIZE_FIELDS}.get(kind)
    if fields is None:
        check_unknown(ck, value, ["palettize", "quantize"], path)
        return None
    resolved = check_section(ck, body, fields, path + (kind,), Path("."))
    return {kind: resolved} if resolved is not None else None


def _copy(value):
    if isinstance(value, list):
        return list(value)
    if isinstance(value, dict):
        return dict(value)
    return value


# ---- family rules: cross-field checks a schema of single fields cannot express ----


def check_family(ck: Checker, model: dict) -> None:
    fam = model.get("family")
    p = ("model",)

    def ok(*names: str) -> bool:  # rules run only on fields that are themselves valid
        return all(model.get(n) is not None for n in names)

    if fam == "lm_head" and ok("vocab_size", "chunks"):
        v, c = model["vocab_size"], model["chunks"]
        if v % c:
            ck.add(
                p + ("chunks",),
                f"vocab_size {v} does not split into {c} equal chunks ({v} % {c} = {v % c})",
            )
        elif c > v:
            ck.add(p + ("chunks",), f"more chunks ({c}) than vocab rows ({v})")
    if fam == "attention" and ok("heads", "kv_heads") and model["heads"] % model["kv_heads"]:
        h, kv = model["heads"], model["kv_heads"]
        ck.add(p + ("kv_heads",), f"heads ({h}) must be a multiple of kv_heads ({kv})")
    too_long = ok("seq_len", "context_length") and model["seq_len"] > model["context_length"]
    if fam == "attention" and too_long:
        ck.add(p + ("seq_len",), "seq_len must not exceed context_length")
    if fam == "attention" and ok("deployment_target") and model["deployment_target"] != "iOS18":
        ck.add(p + ("deployment_target",), "attention uses a stateful KV cache, which needs iOS18")
    comp = model.get("compression")
    if isinstance(comp, dict) and ok("deployment_target") and None not in comp.values():
        check_compression_target(ck, model, comp)


def check_compression_target(ck: Checker, model: dict, comp: dict) -> None:
    """Compression forms exist only from certain deployment targets on."""
    target = model["deployment_target"]
    path = ("model", "compression")
    if model["family"] == "external":
        ck.add(path, "compression applies to built families, not to an external model")
        return
    if "palettize" in comp:
        cfg = comp["palettize"]
        if cfg["granularity"] == "per_grouped_channel" and target != "iOS18":
            ck.add(
                path + ("palettize", "granularity"),
                "per_grouped_channel LUTs need deployment_target iOS18",
            )
        if cfg["nbits"] == 3 and target != "iOS18":
            ck.add(path + ("palettize", "nbits"), "3-bit LUTs need deployment_target iOS18")
    shapes = _weight_shapes(model)
    for kind, size_field, axis in (
        ("palettize", "group_size", 0),  # LUTs are shared by groups of output channels
        ("quantize", "block_size", 1),  # scales by blocks of input channels
    ):
        cfg = comp.get(kind)
        uses = cfg and cfg["granularity"] in ("per_grouped_channel", "per_block")
        bad = sorted({shape[axis] for shape in shapes if uses and shape[axis] % cfg[size_field]})
        if bad:
            what = "output" if axis == 0 else "input"
            ck.add(
                path + (kind, size_field),
                f"{size_field} {cfg[size_field]} does not divide the {what} channels "
                f"of every weight ({', '.join(map(str, bad))})",
            )
    if "quantize" in comp:
        cfg = comp["quantize"]
        if (cfg["dtype"] == "int4" or cfg["granularity"] == "per_block") and target != "iOS18":
            ck.add(
                path + ("quantize",), "int4 and per_block quantization need deployment_target iOS18"
            )


def _weight_shapes(model: dict) -> list[tuple[int, int]]:
    """(output channels, input channels) of each compressible weight of a family."""
    fam, m = model["family"], model
    if fam == "lm_head":
        return [(m["vocab_size"] // m["chunks"], m["hidden_size"])]
    if fam == "ffn":
        return [
            (m["intermediate_size"], m["hidden_size"]),
            (m["hidden_size"], m["intermediate_size"]),
        ]
    if fam == "attention":
        q, kv = m["heads"] * m["head_dim"], m["kv_heads"] * m["head_dim"]
        return [(q, m["hidden_size"]), (kv, m["hidden_size"]), (m["hidden_size"], q)]
    if fam == "matmul":
        return [(m["n"], m["k"])]
    return []
