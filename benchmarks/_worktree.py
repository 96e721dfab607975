"""An older commit of this repository checked out beside the working tree, for benchmarks
that measure the code before and after a change side by side on one machine."""

from __future__ import annotations

import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# The last commit before the typed spec and the runner pipeline (issues 12 and 13).
BEFORE = "c749b53"


@contextmanager
def checkout(commit: str = BEFORE) -> Iterator[Path]:
    """`commit` as a detached git worktree in a temporary directory, removed afterwards."""
    with tempfile.TemporaryDirectory() as tmp:
        tree = Path(tmp) / "before"
        subprocess.run(
            ["git", "-C", str(ROOT), "worktree", "add", "-q", "--detach", str(tree), commit],
            check=True,
        )
        try:
            yield tree
        finally:
            subprocess.run(
                ["git", "-C", str(ROOT), "worktree", "remove", "--force", str(tree)], check=False
            )
