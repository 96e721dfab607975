"""Store rows as GitHub-flavoured Markdown (`query --format markdown`, `share`).

Store text is data: in a cell, control characters are shown escaped, the characters
that open Markdown inline syntax mid-line (`\\ ` * _ [ ] | ~ $`) are backslash-escaped
(so `|` cannot end a cell, `[` cannot start a link or an image, `$` cannot open GitHub's
math), and `<` `>` `&` `@` are HTML entities (no raw HTML, no @mention), so a hostile
model name renders as text and cannot break the table. GitHub also links bare URLs
(`https://...`, `www.x.y`): the ':' of '://' and the '.' after 'www' are backslash-escaped
(rendered as themselves), and the raw text its autolinker reads no longer has them. Text here never starts a line, so
the line-start syntax (`#`, `-`, `1.`) needs no escape.
"""

from __future__ import annotations

import decimal
import re

from anemll_spec.text import figure, printable

_SPECIAL = re.compile(r"([\\`*_\[\]|~$])")
_HTML = {"&": "&amp;", "<": "&lt;", ">": "&gt;", "@": "&#64;"}
_AUTOLINK = re.compile(r":(?=//)|(?<=www)\.", re.I)  # cmark-gfm's url_match / www_match


def escape(text: object) -> str:
    """One line of Markdown text that shows `text` literally."""
    s = _SPECIAL.sub(r"\\\1", printable(str(text)))
    s = _AUTOLINK.sub(r"\\\g<0>", s)
    return "".join(_HTML.get(c, c) for c in s)


def is_number(v) -> bool:
    return isinstance(v, int | float | decimal.Decimal) and not isinstance(v, bool)


def cell(v, digits: int = 6, null: str = "NULL") -> str:
    if v is None:
        return null
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float):
        if v != v or v in (float("inf"), float("-inf")):
            return str(v)
        return figure(v, digits)  # the report's rule: 10,603, not '1.06e+04'
    if isinstance(v, decimal.Decimal) and v.is_finite():
        return format(v, "f")  # its digits, as DuckDB shows them: 0.000000100, not 1.00E-7
    if is_number(v):
        return str(v)
    return escape(v)


def table(columns: list[str], rows: list[tuple], digits: int = 6, null: str = "NULL") -> str:
    """A Markdown table; numeric columns (some number, else NULL) right-aligned."""
    numeric = [
        any(is_number(r[i]) for r in rows) and all(is_number(r[i]) or r[i] is None for r in rows)
        for i in range(len(columns))
    ]
    out = [
        "| " + " | ".join(escape(c) for c in columns) + " |",
        "|" + "|".join("---:" if n else "---" for n in numeric) + "|",
    ]
    out += ["| " + " | ".join(cell(v, digits, null) for v in r) + " |" for r in rows]
    return "\n".join(out) + "\n"
