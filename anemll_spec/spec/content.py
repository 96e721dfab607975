"""The content of an external model, as its keys hash it.

An external model's keys must not hash where it lies: the same package in two folders, or
on two Macs, is the same model and its runs must pair in `compare`. So they hash what it
is: every file of the package (or compiled folder), by relative path and bytes. A file
that is a symlink is hashed by what it points to, as Core ML reads it: a Hugging Face
snapshot holds nothing but links into its blob store, and two such models differ only
there.
"""

from __future__ import annotations

import functools
import hashlib
import os
import stat
from pathlib import Path

from anemll_spec.errors import InputError

_CHUNK = 1 << 20  # streamed: a package's weights may be gigabytes


def _entries(root: Path) -> list[tuple[str, Path | str]]:
    """(relative POSIX path, file to read) for every regular file and every symlink to
    one; (path, link text) for any other symlink (to a folder, dangling, a FIFO ...):
    never followed, so a link can neither loop the walk nor block it on a device."""
    out: list[tuple[str, Path | str]] = []
    for folder, dirs, names in os.walk(root, followlinks=False):
        for name in names + [d for d in dirs if Path(folder, d).is_symlink()]:
            full = Path(folder) / name
            rel = full.relative_to(root).as_posix()
            mode = full.lstat().st_mode
            if stat.S_ISREG(mode):
                out.append((rel, full))
            elif stat.S_ISLNK(mode):
                try:
                    regular = stat.S_ISREG(full.stat().st_mode)
                except OSError:  # dangling, or a loop of links
                    regular = False
                out.append((rel, full if regular else os.readlink(full)))
    return sorted(out)


@functools.lru_cache(maxsize=64)
def content_sha256(path: str) -> str:
    """sha256 over the files under the model folder `path` (see _entries): for each, in
    the order of its relative path, the path, its size and its bytes; a link that is not
    to a file adds its path and its text. Computed once per path and process, and only
    where a key is asked for (validation never hashes)."""
    h = hashlib.sha256()
    try:
        for rel, what in _entries(Path(path)):
            if isinstance(what, str):
                h.update(f"{rel}\0link\0{what}\0".encode())
                continue
            with what.open("rb") as f:
                size = os.fstat(f.fileno()).st_size
                h.update(f"{rel}\0{size}\0".encode())
                while chunk := f.read(_CHUNK):
                    h.update(chunk)
    except OSError as exc:
        raise InputError(f"model.path: cannot read {path}: {exc.strerror or exc}") from None
    return h.hexdigest()
