"""A spec file's text, read safely, and positions in it as PyYAML and editors count them."""

from __future__ import annotations

import re
from functools import partial
from pathlib import Path

from anemll_spec.errors import Problem, SpecError
from anemll_spec.paths import NOT_REGULAR, is_special
from anemll_spec.vocab import SPEC_TEXT

MAX_FILE_BYTES = 1 << 20  # a spec is a few hundred bytes; 1 MiB is generous

Pos = tuple[int, int]  # 1-based line, column


# byte-order marks of encodings a spec is not in (UTF-32's first: it starts like UTF-16's)
_BOMS = (
    (b"\xff\xfe\x00\x00", "UTF-32"),
    (b"\x00\x00\xfe\xff", "UTF-32"),
    (b"\xff\xfe", "UTF-16"),
    (b"\xfe\xff", "UTF-16"),
)


def error(file: str, message: str, *where: int, path: str = "") -> SpecError:
    """The error of one problem, at `where` (line, column) where it is known."""
    return SpecError([Problem(file, path, message, *where)])


def read_text(path: Path) -> str:
    """Read a spec file, refusing what cannot be a spec."""
    name = str(path)
    refuse = partial(error, name)
    try:
        if not path.exists():
            raise refuse("no such file")
        if path.is_dir():
            raise refuse("is a directory, not a spec file")
        if is_special(path):
            raise refuse(f"{NOT_REGULAR}, not a spec file")
        size = path.stat().st_size
        if size > MAX_FILE_BYTES:
            raise refuse(f"file is {size:,} bytes; a spec must be under {MAX_FILE_BYTES:,}")
        with path.open("rb") as f:
            data = f.read(MAX_FILE_BYTES + 1)  # the file may grow after stat
    except OSError as exc:
        raise refuse(f"cannot read: {exc.strerror or exc}") from None
    if len(data) > MAX_FILE_BYTES:
        raise refuse(f"file is over {MAX_FILE_BYTES:,} bytes; a spec must be under that")
    for bom, encoding in _BOMS:  # before the NUL check: UTF-16 text is full of NULs
        if data.startswith(bom):
            raise refuse(f"{encoding} text: save it as UTF-8")
    if b"\x00" in data:
        before = data[: data.index(b"\x00")].decode("utf-8", errors="replace")
        message = "binary file (contains NUL bytes), not a YAML spec"
        raise refuse(message, *line_col(before, len(before)))
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        before = data[: exc.start].decode("utf-8")  # columns count characters
        message = f"not UTF-8 text (byte 0x{data[exc.start]:02x}): save it as UTF-8"
        raise refuse(message, *line_col(before, len(before))) from None
    return storable(name, text)


def storable(name: str, text: str) -> str:
    """`text`, refused where the store would cut it (runs.spec_yaml keeps SPEC_TEXT
    characters): spec_sha256 must be the hash of the text stored, or import refuses the
    run's bundle. (The control characters a spec may hold, only NEL past YAML's reader,
    spec_yaml keeps as written: schema's `verbatim`.)"""
    if len(text) > SPEC_TEXT:
        message = f"{len(text):,} characters long; the store keeps a spec of up to {SPEC_TEXT:,}"
        raise error(name, message)
    return text


_BREAKS = re.compile(r"\r\n|\r|\n")


def line_col(text: str, at: int) -> Pos:
    """The 1-based line and column of offset `at`, lines broken where PyYAML breaks them:
    at \\r\\n, \\r (a file from an old Mac has only \\r) and \\n; a byte-order mark
    that starts the text is no column (as PyYAML's marks and editors count)."""
    lines = _BREAKS.split(text[:at])
    bom = len(lines) == 1 and lines[0].startswith("\ufeff")
    return len(lines), len(lines[-1]) + 1 - bom


def line_start(text: str, at: int) -> int:
    """The offset where the line holding offset `at` starts (after \\r\\n, \\r or \\n)."""
    return max(text.rfind("\n", 0, at), text.rfind("\r", 0, at)) + 1
