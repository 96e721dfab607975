"""Text from outside (stored names, bundle fields, error messages quoting them) as it may
be shown to a person: control characters escaped, never sent raw to a terminal."""

from __future__ import annotations


def printable(text: object) -> str:
    """`text` with control characters (newline, tab, ESC, ...) shown as escapes, so a
    hostile label cannot move the cursor, recolour the screen or forge a line."""
    s = str(text)
    if s.isprintable():
        return s
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in s)


def quoted(value: object, limit: int = 60) -> str:
    """`value` quoted for a message (as repr), control characters escaped, cut to `limit`
    characters (an ellipsis marks the cut): a hostile value can neither reach a terminal
    raw nor flood the line."""
    text = printable(value)
    return repr(text if len(text) <= limit else text[: limit - 1] + "…")


def did_you_mean(key: object, allowed: list[str]) -> str:
    """The hint after an unknown name: the closest allowed one, else all of them."""
    import difflib

    hint = difflib.get_close_matches(str(key), allowed, n=1)
    return f"; did you mean '{hint[0]}'?" if hint else f"; allowed: {', '.join(allowed)}"
