"""Which anemll-spec code a run ran: the commit of the checkout the package was imported
from (not of the folder the command runs in), and whether its tracked files differ.

`git_dirty` means changes to tracked files only: files the tool itself writes into the
checkout (charts/, report.html, reports/) are untracked and must not make every later
run claim a dirty tree.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

# what `git rev-parse --local-env-vars` lists: variables that point git at a repository,
# index or object store. A git hook exports GIT_DIR and GIT_INDEX_FILE, and some shells
# keep GIT_DIR set (a dotfiles repository): `git -C root` then read THAT repository.
GIT_LOCAL_ENV = (
    "GIT_ALTERNATE_OBJECT_DIRECTORIES", "GIT_CONFIG", "GIT_CONFIG_PARAMETERS",
    "GIT_CONFIG_COUNT", "GIT_OBJECT_DIRECTORY", "GIT_DIR", "GIT_WORK_TREE",
    "GIT_IMPLICIT_WORK_TREE", "GIT_GRAFT_FILE", "GIT_INDEX_FILE", "GIT_NO_REPLACE_OBJECTS",
    "GIT_REPLACE_REF_BASE", "GIT_PREFIX", "GIT_INTERNAL_SUPER_PREFIX", "GIT_SHALLOW_FILE",
    "GIT_COMMON_DIR",
)  # fmt: skip
_SHA = r"[0-9a-f]{40}|[0-9a-f]{64}"  # a SHA-1 or SHA-256 object name


def _git(root: Path, *args: str, timeout: float = 5.0) -> str | None:
    """stdout of a git command about the checkout at `root` and no other (GIT_LOCAL_ENV
    dropped), where it exits 0; None where it fails or times out: a failed `git status`
    is not a clean tree."""
    env = {k: v for k, v in os.environ.items() if k not in GIT_LOCAL_ENV}
    try:
        res = subprocess.run(
            ["git", "-C", str(root), *args],
            capture_output=True, text=True, timeout=timeout, env=env,
        )  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        return None
    return res.stdout if res.returncode == 0 else None


def archived_commit(root: Path) -> str | None:
    """The commit `git archive` wrote into anemll_spec/_commit.txt (export-subst in
    .gitattributes): a tarball or a wheel built from one is traceable with no .git. A
    checkout's copy holds the placeholder itself: None. Uncommitted changes to such a
    tree cannot be told, so git_dirty stays unknown."""
    try:
        text = (root / "anemll_spec" / "_commit.txt").read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError):
        return None
    return text if re.fullmatch(_SHA, text) else None


def git_info(root: Path | None = None) -> dict:
    """Commit and dirty flag of the repository the package runs from, if any.

    Dirty = a tracked file differs from HEAD (staged or not); untracked files do not
    count (charts and reports this tool writes into the checkout are untracked)."""
    root = root or Path(__file__).resolve().parents[1]
    if not (root / ".git").exists() or not shutil.which("git"):
        return {"git_commit": archived_commit(root), "git_dirty": None}
    commit = (_git(root, "rev-parse", "HEAD") or "").strip()
    status = _git(root, "status", "--porcelain", "--untracked-files=no")
    if not re.fullmatch(_SHA, commit) or status is None:
        # no commit yet ('HEAD' is printed), a damaged index, a timeout: unknown, not clean
        return {"git_commit": None, "git_dirty": None}
    return {"git_commit": commit, "git_dirty": bool(status.strip())}
