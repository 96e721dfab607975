"""anemll-spec's own cache folder: built packages (build.cache) and the charts' Vega
bundles (chart.render) live there, and `cache list|clear` manage both. Kept apart from
both stages so that the charts need no builder code to find it."""

from __future__ import annotations

import os
import stat
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

ENV_CACHE = "ANEMLL_SPEC_CACHE"
# what Path.home() and Path('~').expanduser() raise (RuntimeError) with no home directory
NO_HOME_ERROR = "Could not determine home directory"
# what every input that must be a file says of a FIFO, socket or device
NOT_REGULAR = "not a regular file (a FIFO, socket or device)"


def is_special(path: Path | None = None, mode: int | None = None) -> bool:
    """True for a path that is there and is neither a folder nor a regular file: a FIFO,
    socket or device. Such a path is never opened as input: a FIFO blocks its reader
    until a writer comes, and /dev/zero never ends. Give `mode` where a stat is at hand."""
    if mode is None:
        try:
            mode = (path or Path()).stat().st_mode
        except OSError:
            return False
    return not (stat.S_ISREG(mode) or stat.S_ISDIR(mode))


def home_unknown() -> str:
    """Why Python found no home directory, as a user can act on it: with $HOME set, a
    '~user' path named a user this system does not know."""
    if os.environ.get("HOME"):
        return "a path starts with '~user' for a user this system does not know"
    uid = os.getuid() if hasattr(os, "getuid") else "?"
    return (
        f"the home directory is unknown ($HOME is unset and user id {uid} has no passwd "
        "entry); set $HOME"
    )


def default_cache_dir() -> Path:
    """$ANEMLL_SPEC_CACHE, else $XDG_CACHE_HOME (when absolute, as the XDG spec says) or
    ~/.cache, /anemll-spec. With neither
    set and no home directory (a container's arbitrary uid), InputError names the ways
    to give a folder."""
    from anemll_spec.errors import InputError

    give = f"give one with --cache-dir, ${ENV_CACHE} or $XDG_CACHE_HOME"
    for name in (ENV_CACHE, "XDG_CACHE_HOME"):
        value = os.environ.get(name)
        if not value:
            continue
        try:
            base = Path(value).expanduser()
        except RuntimeError:  # '~' or '~user' with no such home
            raise InputError(f"${name} {value}: its home directory is unknown; {give}") from None
        if name != ENV_CACHE and not base.is_absolute():
            continue  # the XDG spec: a relative path there is invalid, to be ignored
        return base if name == ENV_CACHE else base / "anemll-spec"
    try:
        home = Path.home()
    except RuntimeError:
        raise InputError(f"no cache folder: {home_unknown()}; or {give}") from None
    return home / ".cache" / "anemll-spec"


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_file(path: Path, data: str | bytes | Callable[[BinaryIO], None]) -> None:
    """Write `data` (text, bytes, or a writer of an open binary file) via a temporary
    file beside `path`, then rename it over `path`: no half-written file is ever left (a
    full disk kept the old file whole), a FIFO there is replaced, not waited on, and a
    link there is replaced, not written through."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as f:
            if callable(data):
                data(f)
            else:
                f.write(data.encode("utf-8") if isinstance(data, str) else data)
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; outputs are for sharing
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
