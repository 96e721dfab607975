"""The content of an external model, as its keys hash it.

An external model's keys must not hash where it lies: the same package in two folders, or
on two Macs, is the same model and its runs must pair in `compare`. So they hash what it
is: every regular file of the package (or compiled folder), by relative path and bytes.
"""

from __future__ import annotations

import functools
import hashlib
import os
import stat
from pathlib import Path

from anemll_spec.errors import InputError

_CHUNK = 1 << 20  # streamed: a package's weights may be gigabytes


@functools.lru_cache(maxsize=64)
def content_sha256(path: str) -> str:
    """sha256 over every regular file under the model folder `path` (resolved): for each,
    in the order of its relative POSIX path, the path, its size and its bytes. Computed once
    per path and process, and only where a key is asked for (validation never hashes).
    Symlinks and other non-regular entries are not followed: a model is untrusted and may
    not make us read the user's other files."""
    root = Path(path)
    files: list[tuple[str, Path]] = []
    try:
        for folder, dirs, names in os.walk(root, followlinks=False):
            dirs.sort()
            for name in names:
                full = Path(folder) / name
                if stat.S_ISREG(full.lstat().st_mode):
                    files.append((full.relative_to(root).as_posix(), full))
        h = hashlib.sha256()
        for rel, full in sorted(files):
            with full.open("rb") as f:
                size = os.fstat(f.fileno()).st_size
                h.update(f"{rel}\0{size}\0".encode())
                while chunk := f.read(_CHUNK):
                    h.update(chunk)
    except OSError as exc:
        raise InputError(f"model.path: cannot read {path}: {exc.strerror or exc}") from None
    return h.hexdigest()
