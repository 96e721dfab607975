"""What builds and discards leave beside the cache's entries, by the cache's own names.

A build stages its entry in `.tmp-<key>-<pid>-<tag>` (key: 24 hex digits; tag: 8 hex
digits, the first 6 naming this host and boot, `host_tag`, the last 2 random); a
discard renames an entry to `.trash-<key>-<8 hex>` before deleting it. Nothing else in
the cache folder is the cache's (a user's `.tmp-notes/` in a cache set to $HOME is
theirs). A staging folder is stale, and `cache clear` removes it, when its builder is
gone: its pid is not alive and it was made on this host since its last boot; where
that cannot be told (made on another host sharing the cache, or by an older version
of anemll-spec), when it is older than STALE_STAGING_S. A live builder's folder is
never removed. Trash is always stale (a discard that was interrupted).
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import time
import uuid
from functools import lru_cache
from pathlib import Path

STALE_STAGING_S = 3600  # where liveness cannot be told: a staging folder this old is dead
KEY = re.compile(r"[0-9a-f]{24}")  # an entry's folder: its cache key
STAGING = re.compile(r"\.tmp-([0-9a-f]{24})-([0-9]+)-([0-9a-f]{6})([0-9a-f]{2})")
TRASH = re.compile(r"\.trash-([0-9a-f]{24})-[0-9a-f]{8}")


@lru_cache(maxsize=1)
def host_tag() -> str:
    """6 hex digits naming this host and its boot (a pid means something only there)."""
    import socket

    from anemll_spec.hashing import digest

    try:
        import psutil

        boot = int(psutil.boot_time())
    except Exception:  # unknown boot time: the host alone (pids may repeat after a reboot)
        boot = 0
    return digest({"host": socket.gethostname(), "boot": boot}, 6)


def staging_name(key: str) -> str:
    return f".tmp-{key}-{os.getpid()}-{host_tag()}{uuid.uuid4().hex[:2]}"


def trash_name(name: str) -> str | None:
    """The trash name of an entry or a staging folder (None: trash already, or not ours)."""
    m = STAGING.fullmatch(name)
    key = m.group(1) if m else name
    if not KEY.fullmatch(key):
        return None
    return f".trash-{key}-{uuid.uuid4().hex[:8]}"


def pid_alive(pid: int) -> bool | None:
    """Whether a process of this pid runs on this host (None: cannot be told)."""
    if pid <= 0:
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        return True
    except (OSError, OverflowError):
        return None
    return True


def builder(name: str) -> tuple[int, bool | None] | None:
    """(pid, alive) of a staging folder's builder; None if `name` is not staging."""
    m = STAGING.fullmatch(name)
    if m is None:
        return None
    pid = int(m.group(2))
    return pid, (pid_alive(pid) if m.group(3) == host_tag() else None)


def disk_bytes(root: Path) -> int:
    """Bytes of the files under root (root itself if a file); what cannot be read: 0."""
    total = 0
    for p in root.rglob("*") if root.is_dir() else [root]:
        with contextlib.suppress(OSError):
            if p.is_file() and not p.is_symlink():
                total += p.lstat().st_size
    return total


def remove(path: Path) -> None:
    """A folder with what is in it, or a file (or link: never followed)."""
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


def found(cache_dir: Path, now: float | None = None) -> list[dict]:
    """The staging folders and trash in the cache folder: name, kind (staging | trash),
    bytes, pid and alive (staging; alive None: cannot be told), stale (clear removes it)."""
    out: list[dict] = []
    if not cache_dir.is_dir():
        return out
    now = time.time() if now is None else now
    for p in sorted(cache_dir.iterdir()):
        who = builder(p.name)
        if p.is_symlink() or (who is None and not TRASH.fullmatch(p.name)):
            continue
        item = {"name": p.name, "kind": "trash", "bytes": disk_bytes(p), "stale": True}
        if who is not None:
            if not p.is_dir():
                continue
            pid, alive = who
            try:
                old = now - p.stat().st_mtime >= STALE_STAGING_S
            except OSError:
                continue
            stale = (not alive) if alive is not None else old
            item.update(kind="staging", pid=pid, alive=alive, stale=stale)
        out.append(item)
    return out
