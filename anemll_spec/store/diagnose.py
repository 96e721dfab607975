"""Why a store file cannot be opened or written, in the user's terms: locked by another
process, not a DuckDB file, not writable here, a full disk, or damaged. DuckDB raises one
exception type for most of these; the OS and the message tell them apart."""

from __future__ import annotations

import errno
import os
from pathlib import Path

from anemll_spec.errors import InputError
from anemll_spec.store import lake_target


def unwritable(reason: str) -> str:
    """What a failed write's reason means, in a few words ('' where it says itself)."""
    text = reason.lower()
    if "no space left" in text or "disk quota" in text:
        return "the disk is full"
    # EPERM: an immutable file (chattr +i), on macOS a locked one (uchg) or a folder
    # that privacy settings (TCC) keep from this process
    if any(w in text for w in ("permission denied", "read-only file system", "not permitted")):
        return "the store or its folder is not writable here"
    return ""


# A DuckDB file starts with three 4 KiB headers: a shorter one never held a store
HEADERS_BYTES = 12_288


def _reason(exc: BaseException) -> str:
    first = lake_target.redact(str(exc)).strip().splitlines()
    return first[0] if first else type(exc).__name__


def cannot_make(where, exc: BaseException, left: bool) -> InputError:
    """The error for a new store that could not be made, with its first reason (the retry
    found the empty file that the failed open left and called it 'not a DuckDB database').
    left: whether a file is there all the same."""
    reason = _reason(exc)
    meaning = unwritable(reason)
    return InputError(
        f"cannot make the store {where}: "
        + (f"{meaning} ({reason})" if meaning else reason)
        + ("" if left else "; no file was left there")
        + ". Give a --store in a writable folder with room"
    )


def remove_unmade(path: Path, below: int) -> int | None:
    """Remove the file at `path` if it is shorter than `below` bytes and no other process
    holds its lock: a store that was never made (a full disk leaves an empty file, or the
    first 4 or 8 KiB of one), which DuckDB refuses ever after ('not a valid DuckDB
    database file'). Returns the removed file's descriptor, still locked (None: nothing
    removed): DuckDB creates a file, then locks it, so a process making the store at this
    moment finds it held and waits; close it once the new store is made."""
    import fcntl

    try:  # stat first: opening and closing a file this process holds drops its lock
        if os.stat(path).st_size >= below:
            return None
        fd = os.open(path, os.O_RDWR | os.O_NONBLOCK)
    except OSError:
        return None
    try:
        fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        held = os.fstat(fd)
        if held.st_size < below and os.path.samestat(held, os.stat(path)):
            os.unlink(path)
            return fd
    except OSError:
        pass
    os.close(fd)
    return None


def cannot_open(where, exc: BaseException) -> InputError:
    """The error for a store that failed to open: never 'damaged' for a healthy store
    that only cannot be written here."""
    reason = _reason(exc)
    if "not a valid DuckDB database file" in reason:
        return InputError(f"{where} is not a DuckDB database ({reason}); give a results store")
    meaning = unwritable(reason)
    if meaning:
        return InputError(
            f"the store {where} cannot be written here: {meaning} ({reason}); it was not "
            "changed. Give a --store in a writable folder with room (query and export "
            "only read a store)"
        )
    return InputError(
        f"the store {where} is damaged ({reason}); it was not changed. Move it aside "
        "(keep it for recovery) and restore a copy, or start a new store and import your "
        "exported bundles or pull from a shared store"
    )


def locked_by_another(path: Path, *, write: bool) -> bool:
    """Whether another process holds a lock on `path` that a connection in this mode
    would conflict with. DuckDB reports a lock conflict and a damaged block with the same
    exception type (and "block" contains "lock"), so ask the OS instead of the message.
    DuckDB takes POSIX record locks (fcntl), the kind lockf tests."""
    import fcntl

    try:
        fd = os.open(path, os.O_RDWR if write else os.O_RDONLY)
    except OSError:
        try:
            fd, write = os.open(path, os.O_RDONLY), False
        except OSError:
            return False
    try:
        fcntl.lockf(fd, (fcntl.LOCK_EX if write else fcntl.LOCK_SH) | fcntl.LOCK_NB)
    except OSError as exc:
        return exc.errno in (errno.EACCES, errno.EAGAIN)
    else:
        fcntl.lockf(fd, fcntl.LOCK_UN)
        return False
    finally:
        os.close(fd)
