"""Tokens of a model.mil text: names, numbers (hexadecimal floats included), strings,
punctuation, each with its line number for error messages."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from anemll_spec.errors import InputError

T = TypeVar("T")

_TOKEN = re.compile(
    r"""
    (?P<ws>\s+|//[^\n]*)
  | (?P<str>"(?:[^"\\]|\\.)*")
  | (?P<num>[-+]?(?:0[xX][0-9a-fA-F]*\.?[0-9a-fA-F]*(?:[pP][-+]?\d+)?
        |\d+\.?\d*(?:[eE][-+]?\d+)?|\.\d+(?:[eE][-+]?\d+)?|inf\b|nan\b))
  | (?P<arrow>->)
  | (?P<id>[A-Za-z_][\w.]*)
  | (?P<punct>[()\[\]{}<>,=;?])
    """,
    re.X,
)


class Tokens:
    def __init__(self, text: str, where: Path):
        self.where = where
        self.toks: list[tuple[str, str, int]] = []  # (kind, text, line)
        line, pos = 1, 0
        for m in _TOKEN.finditer(text):
            if m.start() != pos:
                self._fail(line, f"unexpected character {text[pos]!r}")
            pos = m.end()
            kind = m.lastgroup or ""
            tok = m.group()
            if kind != "ws":
                self.toks.append((kind, tok, line))
            line += tok.count("\n")
        if pos != len(text):
            self._fail(line, f"unexpected character {text[pos]!r}")
        self.i = 0

    def _fail(self, line: int, what: str) -> None:
        raise InputError(f"{self.where}:{line}: {what}")

    def fail(self, what: str) -> InputError:
        line = self.toks[min(self.i, len(self.toks) - 1)][2] if self.toks else 1
        return InputError(f"{self.where}:{line}: {what}")

    def peek(self, k: int = 0) -> str:
        j = self.i + k
        return self.toks[j][1] if j < len(self.toks) else ""

    def kind(self, k: int = 0) -> str:
        j = self.i + k
        return self.toks[j][0] if j < len(self.toks) else ""

    def next(self) -> str:
        if self.i >= len(self.toks):
            raise self.fail("unexpected end of model.mil")
        tok = self.toks[self.i][1]
        self.i += 1
        return tok

    def expect(self, tok: str) -> None:
        got = self.next()
        if got != tok:
            self.i -= 1
            raise self.fail(f"expected {tok!r}, found {got!r}")

    def name(self) -> str:
        if self.kind() != "id":
            raise self.fail(f"expected a name, found {self.peek()!r}")
        return self.next()

    def items(self, close: str, item: Callable[[], T]) -> list[T]:
        """`item, item, ...` up to the token `close` (consumed)."""
        out = []
        while self.peek() != close:
            out.append(item())
            if self.peek() == ",":
                self.next()
        self.expect(close)
        return out

    def skip_balanced(self) -> None:
        """Skip one bracketed group starting at the current token."""
        pairs = {"(": ")", "[": "]", "{": "}", "<": ">"}
        stack = [pairs[self.next()]]
        while stack:
            tok = self.next()
            if tok in pairs:
                stack.append(pairs[tok])
            elif tok == stack[-1]:
                stack.pop()
