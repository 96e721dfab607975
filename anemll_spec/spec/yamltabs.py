"""YAML 1.2's separating tabs for PyYAML, which reads YAML 1.1 and refuses a tab between
tokens: which tabs separate, the text with them as spaces (one character for one, so
every position holds), and which of them were content after all (inside a quoted or
block scalar). yamlsafe._compose uses these in at most three parses."""

from __future__ import annotations

from typing import Any


def separating_tabs(text: str) -> list[int]:
    """Positions of the tabs that follow a line's first non-blank character."""
    out, blank = [], True
    for i, c in enumerate(text):
        if c in "\r\n":  # PyYAML breaks lines at \\r too (old Mac files)
            blank = True
        elif c == "\t":
            if not blank:
                out.append(i)
        elif c != " ":
            blank = False
    return out


def with_spaces(text: str, at: list[int]) -> str:
    chars = list(text)
    for i in at:
        chars[i] = " "
    return "".join(chars)


def in_quoted_scalars(root: Any, at: list[int]) -> set[int]:
    """The positions in `at` that lie inside a quoted or block scalar (its content)."""
    import bisect

    import yaml

    found: set[int] = set()
    seen: set[int] = set()
    stack = [root]
    while stack:
        node = stack.pop()
        if node is None or id(node) in seen:
            continue
        seen.add(id(node))
        if isinstance(node, yaml.ScalarNode):
            if node.style in ('"', "'", "|", ">"):
                lo = bisect.bisect_left(at, node.start_mark.index)
                hi = bisect.bisect_left(at, node.end_mark.index)
                found.update(at[lo:hi])
        elif isinstance(node, yaml.MappingNode):
            stack.extend(x for pair in node.value for x in pair)
        else:
            stack.extend(node.value)
    return found
