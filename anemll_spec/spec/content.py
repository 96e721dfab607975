"""The content of an external model, as its keys hash it.

An external model's keys must not hash where it lies: the same package in two folders, or
on two Macs, is the same model and its runs must pair in `compare`. So they hash what it
is: every file of the package (or compiled folder), by relative path and bytes. A link
to a file inside the model is hashed by that file's bytes, as Core ML reads it; any other
link by its text: a model may not make us read (or hash) the user's other files
(`mlmodel.files.check_contained`, which refuses to load a model that links outside),
and a link to /proc/self/stat would change the key on every run.
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
    """(relative POSIX path, file to read) for every regular file and every link to a
    regular file inside `root`; (path, link text) for any other link (outside the model,
    to a folder, dangling, a loop): never followed, so a link can neither loop the walk
    nor block it on a device nor bring in bytes from elsewhere."""
    base = root.resolve()
    out: list[tuple[str, Path | str]] = []
    for folder, dirs, names in os.walk(root, followlinks=False):
        for name in names + [d for d in dirs if Path(folder, d).is_symlink()]:
            full = Path(folder) / name
            rel = full.relative_to(root).as_posix()
            mode = full.lstat().st_mode
            if stat.S_ISREG(mode):
                out.append((rel, full))
            elif stat.S_ISLNK(mode):
                out.append((rel, full if _inside_file(full, base) else os.readlink(full)))
    return sorted(out)


def _inside_file(link: Path, base: Path) -> bool:
    try:
        target = link.resolve(strict=True)
        return base in target.parents and stat.S_ISREG(target.stat().st_mode)
    except (OSError, RuntimeError):  # dangling, or a loop of links
        return False


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
