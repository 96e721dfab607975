"""Safe YAML loading that keeps line/column positions and refuses hostile input.

Specs are small, declarative documents. We compose the YAML node graph with
PyYAML's SafeLoader (no tags, no code) and convert it ourselves so we can:
- record where every key and value sits (for error messages),
- refuse duplicate keys (YAML would silently keep the last one),
- bound the expanded size, which defeats alias bombs ("billion laughs"), and the nesting
  depth (PyYAML composes recursively: 500 levels would be a RecursionError),
- refuse files that are huge, binary, or not files at all.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from anemll_spec.errors import Problem, SpecError

MAX_FILE_BYTES = 1 << 20  # a spec is a few hundred bytes; 1 MiB is generous
MAX_NODES = 20_000  # nodes after alias expansion
MAX_DEPTH = 16  # a spec nests 4 deep (model.compression.palettize.nbits)

Pos = tuple[int, int]  # 1-based line, column
Positions = dict[tuple, Pos]  # path tuple -> position of the value (keys: path + ("<key>",))


def read_text(path: Path) -> str:
    """Read a spec file, refusing what cannot be a spec."""
    name = str(path)
    if not path.exists():
        raise SpecError([Problem(name, "", "no such file")])
    if path.is_dir():
        raise SpecError([Problem(name, "", "is a directory, not a spec file")])
    size = path.stat().st_size
    if size > MAX_FILE_BYTES:
        raise SpecError(
            [Problem(name, "", f"file is {size:,} bytes; a spec must be under {MAX_FILE_BYTES:,}")]
        )
    data = path.read_bytes()
    if b"\x00" in data:
        raise SpecError([Problem(name, "", "binary file (contains NUL bytes), not a YAML spec")])
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise SpecError(
            [Problem(name, "", f"not UTF-8 text (byte {exc.start}): not a YAML spec")]
        ) from None


def load_yaml(text: str, file: str) -> tuple[Any, Positions]:
    """Parse one YAML document into plain Python values plus their positions."""
    import yaml

    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except RecursionError:
        raise SpecError(
            [Problem(file, "", f"nested too deeply: a spec nests at most {MAX_DEPTH} levels")]
        ) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        msg = getattr(exc, "problem", None) or str(exc)
        ctx = getattr(exc, "context", None)
        if ctx:
            msg = f"{ctx}, {msg}"
        line = mark.line + 1 if mark else None
        col = mark.column + 1 if mark else None
        raise SpecError([Problem(file, "", f"YAML syntax error: {msg}", line, col)]) from None
    if node is None:
        raise SpecError([Problem(file, "", "empty document: a spec needs at least name and model")])
    positions: Positions = {}
    counter = [0]
    value = _convert(node, (), positions, counter, file)
    return value, positions


# unquoted exponent floats without a dot (1e-05, 5E3), which YAML 1.1 reads as strings
_EXP_FLOAT = re.compile(r"[-+]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)[eE][-+]?[0-9]+\Z")

_PLAIN_TAGS = frozenset(
    f"tag:yaml.org,2002:{t}" for t in ("map", "seq", "str", "int", "float", "bool", "null")
)


def _pos(node) -> Pos:
    return node.start_mark.line + 1, node.start_mark.column + 1


def _convert(node, path: tuple, positions: Positions, counter: list[int], file: str) -> Any:
    import yaml

    counter[0] += 1
    if counter[0] > MAX_NODES:
        line, col = _pos(node)
        raise SpecError(
            [
                Problem(
                    file,
                    _dotted(path),
                    f"document expands to more than {MAX_NODES:,} nodes "
                    "(an alias bomb?); specs must be small",
                    line,
                    col,
                )
            ]
        )
    positions.setdefault(path, _pos(node))
    if len(path) > MAX_DEPTH:
        line, col = _pos(node)
        raise SpecError(
            [
                Problem(
                    file,
                    _dotted(path[:MAX_DEPTH]),
                    f"nested too deeply: a spec nests at most {MAX_DEPTH} levels",
                    line,
                    col,
                )
            ]
        )
    if node.tag not in _PLAIN_TAGS:
        # A tag asks for a type the spec does not have (or for Python objects): refuse
        # it, with where it is; untagged nodes resolve to the plain tags below.
        line, col = _pos(node)
        raise SpecError(
            [Problem(file, _dotted(path), f"unsupported YAML tag {node.tag!r}", line, col)]
        )
    if isinstance(node, yaml.MappingNode):
        out: dict = {}
        for key_node, value_node in node.value:
            if not isinstance(key_node, yaml.ScalarNode):
                line, col = _pos(key_node)
                raise SpecError(
                    [Problem(file, _dotted(path), "keys must be plain scalars", line, col)]
                )
            key = yaml.SafeLoader.construct_scalar(yaml.SafeLoader(""), key_node)
            if key in out:
                line, col = _pos(key_node)
                raise SpecError([Problem(file, _dotted(path + (key,)), "duplicate key", line, col)])
            positions[path + (key, "<key>")] = _pos(key_node)
            out[key] = _convert(value_node, path + (key,), positions, counter, file)
        return out
    if isinstance(node, yaml.SequenceNode):
        return [
            _convert(item, path + (i,), positions, counter, file)
            for i, item in enumerate(node.value)
        ]
    # scalars: resolve with the safe constructor (ints, floats, bools, null, strings)
    if node.tag == "tag:yaml.org,2002:str" and node.style is None and _EXP_FLOAT.match(node.value):
        return float(node.value)  # 1e-05: a float in YAML 1.2, a string to PyYAML's 1.1
    loader = yaml.SafeLoader("")
    return loader.construct_object(node, deep=True)


def _dotted(path: tuple) -> str:
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out


dotted = _dotted
