"""Where a report is written: file names made from stored text, and what may be replaced.

A run id is stored text, and an imported bundle can make it anything ('/etc/x',
'../../home/me/page'). So a file name is never the id itself but `safe_name(id)`:
letters, digits, '.', '_' and '-' only, never starting with a dot, at most NAME_MAX
characters, with a hash of the id appended whenever the mapping changed anything (two
ids never share a name). A report replaces an existing file only when that file is the
report of the same run (it carries the run id in a <meta> element); anything else needs
--force.
"""

from __future__ import annotations

import hashlib
import html
import re
from pathlib import Path

REPORTS_DIR = Path("reports")
NAME_MAX = 96  # characters of the mapped name, before ".html"
GENERATOR = "anemll-spec report"
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")


def safe_name(text: str) -> str:
    """A file name for stored text: the text itself when it is already a plain name."""
    name = _UNSAFE.sub("_", text)
    name = re.sub(r"^\.+", lambda m: "_" * len(m.group()), name)  # no '..', no hidden file
    if name == text and 0 < len(name) <= NAME_MAX:
        return name
    digest = hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:12]
    return f"{name[: NAME_MAX - 13]}-{digest}" if name else f"run-{digest}"


def default_out(run_id: str) -> Path:
    """reports/<safe_name(run_id)>.html under the working directory (git-ignored)."""
    return REPORTS_DIR / f"{safe_name(run_id)}.html"


def meta(run_id: str) -> str:
    """The <meta> elements that mark a page as this run's report."""
    return (
        f'<meta name="generator" content="{GENERATOR}">\n'
        f'<meta name="anemll-spec-run" content="{html.escape(run_id, quote=True)}">\n'
    )


def is_report_of(path: Path | str, run_id: str) -> bool:
    """Whether `path` is a report of `run_id` written by this command (replaceable)."""
    try:
        with open(path, "rb") as f:
            head = f.read(8192).decode("utf-8", "replace")
    except OSError:
        return False
    return head.lower().startswith("<!doctype html>") and meta(run_id) in head
