"""Safe YAML loading that keeps line/column positions and refuses hostile input.

Specs are small, declarative documents. We compose the YAML node graph with
PyYAML's SafeLoader (no tags, no code) and convert it ourselves so we can:
- read plain scalars by YAML 1.2's core schema, as editors' language servers do: `yes`,
  `off` are strings, `017` is 17, `1:30` a string, `1e-05` a float (PyYAML's YAML 1.1
  reads them as booleans, octal 15, 90 and a string);
- record where every key and value sits (for error messages),
- refuse duplicate keys (YAML would silently keep the last one: the first is kept here),
  merge keys (`<<`) and tags the spec has no type for, or on the wrong kind of node: each
  is a problem recorded with the others (`load_yaml`'s `problems`), its value left out,
- bound the expanded size, which defeats alias bombs ("billion laughs"), and the nesting
  depth (PyYAML composes recursively: 500 levels would be a RecursionError),
- refuse files that are huge, binary, or not regular files (a device or FIFO never ends:
  `textfile.read_text`).
"""

from __future__ import annotations

import copy
import math
import re
from functools import cache
from typing import Any

from anemll_spec.errors import Problem, SpecError
from anemll_spec.spec.textfile import MAX_FILE_BYTES, Pos, line_col, line_start
from anemll_spec.spec.textfile import error as _refuse
from anemll_spec.spec.yamltabs import in_quoted_scalars, separating_tabs, with_spaces
from anemll_spec.text import quoted

MAX_NODES = 20_000  # nodes, as parsed and again after alias expansion
MAX_TEXT = MAX_FILE_BYTES  # characters of keys and scalars after alias expansion
MAX_DEPTH = 16  # a spec nests 4 deep (model.compression.palettize.nbits)
MAX_INT_BITS = 64  # every int field is far below; a 5,000-digit one crashed repr()
TOO_DEEP = f"nested too deeply: a spec nests at most {MAX_DEPTH} levels"

Positions = dict[tuple, Pos]  # path tuple -> position of the value (keys: path + ("<key>",))

_TAG = "tag:yaml.org,2002:"
# YAML 1.2.2, 10.3.2 (the core schema): how a plain scalar resolves, in this order
_CORE = (
    ("null", r"(?:~|null|Null|NULL|)\Z", "~nN"),
    ("bool", r"(?:true|True|TRUE|false|False|FALSE)\Z", "tTfF"),
    ("int", r"(?:[-+]?[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+)\Z", "-+0123456789"),
    ("float", r"[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?\Z", "-+.0123456789"),
    ("float", r"(?:[-+]?\.(?:inf|Inf|INF)|\.nan|\.NaN|\.NAN)\Z", "-+."),
)
# what an explicit tag takes: the same ASCII forms (no `1_000`, no Arabic-Indic digits, no
# blanks around it, all of which Python's int() and float() take; `!!null float32` is no
# null, `!!bool tRuE` no boolean)
_CORE_FORMS = {
    tag: [re.compile(pattern) for t, pattern, _ in _CORE if t == tag]
    for tag in ("null", "bool", "int", "float")
}
# text libyaml and PyYAML read alike, positions and all: printable ASCII and newlines (no
# tab, which PyYAML refuses where YAML 1.2 allows it, _compose; no CR, BOM or NEL)
_PLAIN_ASCII = re.compile(r"[\x20-\x7e\n]*")
_PLAIN_TAGS = frozenset(_TAG + t for t in ("map", "seq", "str", "int", "float", "bool", "null"))


@cache
def _loader(fast: bool = False) -> type | None:
    """SafeLoader with the core schema's resolvers instead of YAML 1.1's. fast: the same
    composer and resolvers over libyaml's scanner and parser (PyYAML's CParser: events
    alike, ~4x faster; the time of a spec's load is its YAML scanning), or None where
    PyYAML was built without libyaml."""
    import yaml

    base: Any = (yaml.SafeLoader,)
    if fast:
        try:
            from yaml.cyaml import CParser
        except ImportError:
            return None
        base = (yaml.composer.Composer, CParser, yaml.resolver.Resolver)

    class CoreLoader(*base):  # type: ignore[misc]
        yaml_implicit_resolvers: dict = {}

        nodes = 0

        if fast:

            def __init__(self, stream: str) -> None:
                CParser.__init__(self, stream)
                yaml.resolver.Resolver.__init__(self)
                yaml.composer.Composer.__init__(self)

            def compose_scalar_node(self, anchor: Any) -> Any:
                """libyaml calls a plain scalar's style '', PyYAML None (merge keys are
                told by it)."""
                node = yaml.composer.Composer.compose_scalar_node(self, anchor)
                node.style = node.style or None
                return node

        def compose_node(self, parent: Any, index: Any) -> Any:
            """An alias is its anchor's node: a copy marked where the alias is written,
            so that a problem with the value points there, not at the anchor. Nodes are
            counted as they are parsed: a huge list stops here, not after seconds."""
            if not self.check_event(yaml.AliasEvent):
                self.nodes += 1
                if self.nodes > MAX_NODES:
                    raise _TooManyNodes(self.peek_event().start_mark)
                return super().compose_node(parent, index)
            mark = self.peek_event().start_mark
            node: Any = copy.copy(super().compose_node(parent, index))
            node.start_mark = mark
            return node

    for tag, pattern, first in _CORE:
        CoreLoader.add_implicit_resolver(_TAG + tag, re.compile(pattern), [*first, ""])
    return CoreLoader


class _TooManyNodes(Exception):
    def __init__(self, mark: Any) -> None:
        self.mark = mark


def load_yaml(
    text: str,
    file: str,
    written: dict[tuple, str] | None = None,
    problems: list[Problem] | None = None,
) -> tuple[Any, Positions]:
    """Parse one YAML document into plain Python values plus their positions; `written`,
    where given, gets each scalar that is no string as the spec wrote it (`TRUE`, `0x10`),
    for messages that show a value (repr would say True, 16). A duplicate or merge key, a
    refused tag or a scalar its tag does not take is a problem: raised, all at once, or,
    given `problems`, added to it, the rest of the document read (a refused value is None,
    and a problem is where it was written: a later one there is about the same thing)."""
    import yaml

    text, restore = _yaml12_chars(text)
    try:
        node = _compose(text, file)
    except _TooManyNodes as exc:
        msg = f"document has more than {MAX_NODES:,} nodes; specs must be small"
        raise _refuse(file, msg, exc.mark.line + 1, exc.mark.column + 1) from None
    except RecursionError:
        raise _refuse(file, TOO_DEEP, *_too_deep(text)) from None
    except yaml.reader.ReaderError as exc:
        at = exc.position
        where = line_col(text, at)
        char = f"U+{exc.character:04X}" if isinstance(exc.character, int) else "a byte"
        msg = f"YAML syntax error: character {char} is not allowed in YAML text"
        raise _refuse(file, msg, *where) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        msg = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        ctx = getattr(exc, "context", None)
        if ctx:
            msg = f"{ctx}, {msg}"
        msg = msg.translate(restore)
        marked = (mark.line + 1, mark.column + 1) if mark else ()
        raise _refuse(file, f"YAML syntax error: {msg}", *marked) from None
    if node is None:
        raise _refuse(file, "empty document: a spec needs at least name and model")
    convert = _Converter(file, restore, written)
    value = convert(node, ())
    if problems is not None:
        problems.extend(convert.problems)
    elif convert.problems:  # every one at once
        raise SpecError(convert.problems)
    return value, convert.positions


def _yaml12_chars(text: str) -> tuple[str, dict[int, int]]:
    """NEL, LS and PS are line breaks to PyYAML (YAML 1.1), ordinary characters to YAML 1.2
    and editors: each line after one was numbered one too many, and one in a comment or a
    plain scalar was a syntax error. Each is parsed as a character past U+FFFF that the
    text does not hold, nor write as an escape (one for one: positions hold; 1 MiB holds
    at most a quarter of them), and put back in keys, values and messages (`restore`)."""
    found = [c for c in "\x85\u2028\u2029" if c in text]
    if not found:
        return text, {}
    used = set(map(ord, text)) | {int(h, 16) for h in re.findall(r"\\U([0-9a-fA-F]{8})", text)}
    free = (c for c in range(0x10000, 0x110000) if c not in used)
    swap = {ord(c): next(free) for c in found}
    return text.translate(swap), {v: k for k, v in swap.items()}


def _compose(text: str, file: str):
    """yaml.compose, with YAML 1.2's separating tabs: a tab between tokens on a line
    (`m: 8<TAB># note`, `name:<TAB>x`, one left at a line's end) is white space in YAML
    1.2, as an editor's language server reads it, but PyYAML (YAML 1.1) refuses it.
    Where PyYAML refuses one, every tab after a line's first token is read as a space
    (one character for one: every position holds), then those inside quoted and block
    scalars, which are their content, are put back: at most three parses. A tab in a
    line's indentation stays refused: YAML indents with spaces only."""
    import yaml

    fast = _loader(fast=True)
    if fast is not None and _PLAIN_ASCII.fullmatch(text):
        try:  # libyaml's messages and marks differ: anything amiss is read as below
            return yaml.compose(text, Loader=fast)
        except Exception:  # noqa: BLE001 (every error is made again, and said, below)
            pass
    loader = _loader()
    try:
        return yaml.compose(text, Loader=loader)
    except yaml.scanner.ScannerError as exc:
        _tab_indents(exc, text, file)
    at = separating_tabs(text)
    spaced = with_spaces(text, at)
    try:
        node = yaml.compose(spaced, Loader=loader)
    except yaml.scanner.ScannerError as exc:
        _tab_indents(exc, spaced, file)
        raise
    content = in_quoted_scalars(node, at)
    if not content:
        return node
    return yaml.compose(with_spaces(text, sorted(set(at) - content)), Loader=loader)


def _tab_indents(exc: Any, text: str, file: str) -> None:
    """Re-raise `exc` unless a tab stopped PyYAML; refuse a tab that indents a line."""
    mark = exc.problem_mark
    if mark is None or "'\\t'" not in (exc.problem or ""):
        raise exc
    at = mark.index
    if not text[line_start(text, at) : at].strip():  # only indentation before
        msg = "YAML syntax error: a tab indents this line: YAML indents with spaces only"
        raise _refuse(file, msg, mark.line + 1, mark.column + 1) from None


def _too_deep(text: str) -> Pos | tuple[()]:
    """Where flow brackets (`[[[...`, `{{{...`) first nest past MAX_DEPTH: the nesting that
    outran the parser's recursion, found by counting (quotes and comments are not parsed,
    so this is a pointer, not a parse). () where block indentation nests instead."""
    depth = 0
    for i, c in enumerate(text):
        if c in "[{":
            depth += 1
            if depth > MAX_DEPTH:
                return line_col(text, i)
        elif c in "]}":
            depth = max(0, depth - 1)
    return ()


def _pos(node: Any) -> Pos:
    return node.start_mark.line + 1, node.start_mark.column + 1


class _Converter:
    """Node graph -> plain values, recording positions and bounding size and depth."""

    def __init__(
        self, file: str, restore: dict[int, int], written: dict[tuple, str] | None = None
    ) -> None:
        self.file, self.restore = file, restore
        self.written = {} if written is None else written
        self.positions: Positions = {}
        self.nodes = 0
        self.chars = 0  # of keys and scalars, aliases expanded
        self.problems: list[Problem] = []

    def refuse(self, node: Any, path: tuple, message: str) -> SpecError:
        return _refuse(self.file, message, *_pos(node), path=dotted(path))

    def skip(self, node: Any, path: tuple, message: str) -> None:
        """A problem with this node, recorded; its value is left out (None)."""
        self.problems.append(Problem(self.file, dotted(path), message, *_pos(node)))

    def __call__(self, node: Any, path: tuple) -> Any:
        import yaml

        self.nodes += 1
        if self.nodes > MAX_NODES:
            raise self.refuse(
                node,
                path,
                f"document expands to more than {MAX_NODES:,} nodes "
                "(an alias bomb?); specs must be small",
            )
        self.positions.setdefault(path, _pos(node))
        if len(path) > MAX_DEPTH:
            raise self.refuse(node, path[:MAX_DEPTH], TOO_DEEP)
        misfit = _misfit(node)
        if misfit:
            return self.skip(node, path, misfit)
        if isinstance(node, yaml.MappingNode):
            return self.mapping(node, path)
        if isinstance(node, yaml.SequenceNode):
            return [self(item, path + (i,)) for i, item in enumerate(node.value)]
        value = self.scalar(node, path)
        if not isinstance(value, str):
            self.written[path] = node.value.translate(self.restore)
        return value

    def mapping(self, node: Any, path: tuple) -> dict:
        import yaml

        out: dict = {}
        for key_node, value_node in node.value:
            if not isinstance(key_node, yaml.ScalarNode):
                self.skip(key_node, path, "keys must be plain scalars")
                continue
            key = self.text(key_node, path, key_node.value)
            where = (self.file, dotted(path + (key,)))
            misfit = _misfit(key_node)
            if misfit:
                self.problems.append(Problem(*where, misfit, *_pos(key_node)))
                continue
            if key == "<<" and key_node.style is None:
                msg = "YAML merge keys (<<) are not supported: write the fields out"
                self.problems.append(Problem(*where, msg, *_pos(key_node)))
                continue
            if key in out:
                self.problems.append(Problem(*where, "duplicate key", *_pos(key_node)))
                continue
            self.positions[path + (key, "<key>")] = _pos(key_node)
            out[key] = self(value_node, path + (key,))
        return out

    def text(self, node: Any, path: tuple, text: str) -> str:
        """A key's or a scalar's text, counted against MAX_TEXT (an alias of a long string,
        repeated, is small on disk and huge once expanded), and valid Unicode (YAML's
        escapes can write a lone surrogate, which no encoder takes)."""
        text = text.translate(self.restore) if self.restore else text
        self.chars += len(text)
        if self.chars > MAX_TEXT:
            msg = f"document expands to more than {MAX_TEXT:,} characters (an alias bomb?)"
            raise self.refuse(node, path, msg)
        try:
            text.encode("utf-8")
        except UnicodeEncodeError as exc:
            code = ord(text[exc.start])
            msg = f"not valid Unicode: \\u{code:04x} is a lone surrogate (write the character)"
            raise self.refuse(node, path, msg) from None
        return text

    def scalar(self, node: Any, path: tuple) -> Any:
        """A scalar by its tag (resolved by the core schema, or written explicitly)."""
        kind, text = node.tag[len(_TAG) :], self.text(node, path, node.value)
        try:
            if kind in _CORE_FORMS and not any(p.match(text) for p in _CORE_FORMS[kind]):
                raise ValueError  # written with a tag: `!!int "1_0_24"`
            if kind in ("null", "bool"):
                return None if kind == "null" else text.lower() == "true"
            if kind == "int":
                value = _int(text)
                if value is None or abs(value).bit_length() > MAX_INT_BITS:
                    return self.skip(node, path, f"integer too large for a spec: {quoted(text)}")
                return value
            if kind == "float":
                special = {".inf": math.inf, ".nan": math.nan}.get(text.lower().lstrip("+-"))
                if special is None:
                    return float(text)
                return -special if text.startswith("-") else special
        except ValueError:
            shown = repr(text) if len(text) <= 60 else quoted(text)  # a line, not a flood
            return self.skip(node, path, f"{shown} is not a YAML {kind}")
        return text


def _misfit(node: Any) -> str | None:
    """Why a node's tag is refused: a type the spec does not have (or Python objects), or
    one for another kind of node (`!!seq t`, `!!str [a]`: PyYAML's safe_load refuses
    those too); None for the plain tags, which untagged nodes resolve to."""
    import yaml

    if node.tag not in _PLAIN_TAGS:
        return f"unsupported YAML tag {node.tag!r}"
    tag = node.tag[len(_TAG) :]
    shape = {yaml.MappingNode: "mapping", yaml.SequenceNode: "sequence"}.get(type(node), "scalar")
    wanted = {"map": "mapping", "seq": "sequence"}.get(tag, "scalar")
    return None if wanted == shape else f"YAML tag '!!{tag}' is for a {wanted}, not a {shape}"


def _int(text: str) -> int | None:
    """An int scalar's value; None where it has more digits than Python converts
    (decimal past 4,300 digits): far too large for a spec either way."""
    base = 0 if re.match(r"[-+]?0[oxOX]", text) else 10
    if base == 10 and len(text.lstrip("+-").lstrip("0")) > 4000:
        return None
    return int(text, base)


def dotted(path: tuple) -> str:
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out
