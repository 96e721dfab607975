"""Errors the CLI turns into clean messages and exit codes (no tracebacks).

Exit status: 0 ok, 1 a run failed, 2 bad input or usage.
"""

from __future__ import annotations

from dataclasses import dataclass


class AnemllError(Exception):
    """Base of every error the CLI reports without a traceback."""

    exit_code = 2


class InputError(AnemllError):
    """Bad input of any kind: a file, a model, an argument, a bundle."""


class RunFailed(AnemllError):
    """A run finished but something in it failed (exit status 1)."""

    exit_code = 1


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a spec, located as precisely as the YAML allows."""

    file: str
    path: str  # dotted field path, e.g. "model.vocab_size"; "" for the document
    message: str
    line: int | None = None  # 1-based
    column: int | None = None  # 1-based

    def __str__(self) -> str:
        where = self.file
        if self.line is not None:
            where += f":{self.line}"
            if self.column is not None:
                where += f":{self.column}"
        field = f" {self.path}:" if self.path else ""
        return f"{where}:{field} {self.message}"


class SpecError(InputError):
    """A spec is malformed; carries every problem found, not only the first."""

    def __init__(self, problems: list[Problem]):
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))
