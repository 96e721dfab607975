"""The content cache of built packages.

Layout: <cache>/<key>/model.mlpackage and <cache>/<key>/manifest.json. The key hashes
the build-relevant model fields, the coremltools version and BUILDER_VERSION. An
entry is built in <cache>/.tmp-<key>-<pid>-<tag>/ and published with one
os.rename, so a reader sees a complete entry or none, and of two processes building
one key, one rename wins and the other adopts the winner's entry. A hit reads the
manifest and stats the files it lists (sizes must match): no hashing of big files.
A damaged entry (manifest missing, unreadable or of the wrong shape, a file missing or
of the wrong size, anything the disk refuses to read) is moved aside and rebuilt.
Staging folders and trash, their names and when they are stale: `leftovers`.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from anemll_spec.build import leftovers
from anemll_spec.build.leftovers import STALE_STAGING_S
from anemll_spec.hashing import digest

if TYPE_CHECKING:
    from anemll_spec.spec.families import ModelBase

MANIFEST = "manifest.json"
PACKAGE = "model.mlpackage"
# Bump when the builder's output for the same fields changes (graph, names, weights), and
# re-record tests/fixtures/build/builder_digests.json (test_build_digests.py fails until
# then). 2: sliced int4 weights stored as int4 (e590597; version 1 entries hold int8).
BUILDER_VERSION = 2


def cache_key(model: ModelBase) -> str:
    from importlib.metadata import version  # importing coremltools takes seconds

    payload = {
        "model": model.build_fields(),
        "coremltools": version("coremltools"),
        "builder": BUILDER_VERSION,
    }
    return digest(payload, 24)


@dataclass
class Entry:
    key: str
    root: Path
    manifest: dict

    @property
    def package(self) -> Path:
        return self.root / PACKAGE


def _listing(pkg: Path) -> dict[str, int]:
    return {
        str(p.relative_to(pkg)): p.stat().st_size for p in sorted(pkg.rglob("*")) if p.is_file()
    }


# What a hit reads from a manifest (build._built), with its type: a manifest without
# one, or with another type, is a damaged entry (rebuilt), not a traceback.
_MANIFEST_FIELDS = {
    "files": dict, "model": dict, "weight_bytes": int, "flops": int, "weights_sha256": str
}  # fmt: skip
WEIGHTS_DIR = "Data/com.apple.CoreML/weights/"  # a built package's weight files, by name


def _manifest_problem(manifest: object) -> str:
    if not isinstance(manifest, dict):
        return "manifest unreadable (not an object)"
    for field, kind in _MANIFEST_FIELDS.items():
        value = manifest.get(field)
        if not isinstance(value, kind) or isinstance(value, bool):
            return f"manifest unreadable ({field} missing or not {kind.__name__})"
    for field in ("weight_bytes", "flops"):
        if manifest[field] < 0:
            return f"manifest unreadable ({field} {manifest[field]} below 0)"
    for rel, size in manifest["files"].items():
        if not isinstance(size, int) or isinstance(size, bool) or size < 0:
            return f"manifest unreadable (size of {rel} not a count)"
    # the figure GB/s divides: the weight files' bytes, as the build summed them (a
    # hit served a negative one, and the run was lost at the store after timing)
    held = sum(size for rel, size in manifest["files"].items() if rel.startswith(WEIGHTS_DIR))
    if manifest["weight_bytes"] != held:
        return f"weight_bytes {manifest['weight_bytes']}, but its weight files hold {held}"
    return ""


def check_entry(root: Path) -> tuple[dict | None, str]:
    """(manifest, "") for a sound entry, else (None, what is wrong). Anything the disk
    says (a folder of the package replaced by a file, no permission) is damage too."""
    try:
        return _check_entry(root)
    except OSError as exc:
        return None, f"unreadable: {exc.strerror or exc}"


def _check_entry(root: Path) -> tuple[dict | None, str]:
    mpath = root / MANIFEST
    if not mpath.is_file():
        return None, "manifest missing"
    try:
        manifest = json.loads(mpath.read_text())
    except (ValueError, RecursionError):  # RecursionError: brackets nested too deeply
        return None, "manifest unreadable"
    problem = _manifest_problem(manifest)
    if problem:
        return None, problem
    pkg = root / PACKAGE
    for rel, size in manifest["files"].items():
        p = pkg / rel
        try:
            actual = p.stat().st_size
        except (FileNotFoundError, NotADirectoryError):
            return None, f"{rel} missing"
        if actual != size:
            return None, f"{rel} is {actual} bytes, manifest says {size}"
    return manifest, ""


def lookup(cache_dir: Path, key: str) -> tuple[Entry | None, str]:
    """A sound entry for key, or (None, why not): '' absent, else the damage found."""
    root = cache_dir / key
    if not root.exists():
        return None, ""
    manifest, problem = check_entry(root)
    if manifest is None:
        return None, problem
    return Entry(key, root, manifest), ""


def discard(root: Path) -> None:
    """Move an entry out of the way atomically, then delete it (racing discards are fine)."""
    name = leftovers.trash_name(root.name)
    if name is None:  # trash already: deleted where it is
        leftovers.remove(root)
        return
    trash = root.parent / name
    try:
        os.rename(root, trash)
    except FileNotFoundError:
        return
    leftovers.remove(trash)


def new_staging(cache_dir: Path, key: str) -> Path:
    cache_dir.mkdir(parents=True, exist_ok=True)
    while True:  # the name's random part is short: another thread of this process may
        tmp = cache_dir / leftovers.staging_name(key)  # have drawn the same
        try:
            tmp.mkdir()
        except FileExistsError:
            continue
        return tmp


def write_manifest(staging: Path, key: str, info: dict) -> dict:
    manifest = {
        "key": key,
        "builder_version": BUILDER_VERSION,
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        **info,
        "files": _listing(staging / PACKAGE),
    }
    (staging / MANIFEST).write_text(json.dumps(manifest, indent=1, sort_keys=True))
    return manifest


def publish(cache_dir: Path, key: str, staging: Path) -> Entry:
    """Rename staging into place; if another process got there first, adopt its entry."""
    root = cache_dir / key
    try:
        os.rename(staging, root)
    except OSError:
        # Target exists (ENOTEMPTY/EEXIST): another builder won. Use its entry if sound.
        entry, _ = lookup(cache_dir, key)
        if entry is None:
            discard(root)
            os.rename(staging, root)
        else:
            shutil.rmtree(staging, ignore_errors=True)
            return entry
    manifest, problem = check_entry(root)
    if manifest is None:  # pragma: no cover - only if the disk lies to us
        raise OSError(f"cache entry {root} unsound right after publishing: {problem}")
    return Entry(key, root, manifest)


def entries(cache_dir: Path) -> list[dict]:
    """Every entry (sound or not) for `cache list`."""
    out: list[dict] = []
    if not cache_dir.is_dir():
        return out
    for root in sorted(cache_dir.iterdir()):
        if not is_entry_name(root.name) or not root.is_dir():
            continue
        manifest, problem = check_entry(root)
        size = leftovers.disk_bytes(root)
        m = manifest or {}
        out.append(
            {
                "key": root.name,
                "path": str(root / PACKAGE),
                "ok": manifest is not None,
                "problem": problem,
                "family": (m.get("model") or {}).get("family"),
                "spec": m.get("spec"),  # which spec built it (None: not recorded)
                "model": m.get("model"),
                "weight_bytes": m.get("weight_bytes"),
                "disk_bytes": size,
                "created": m.get("created"),
                "coremltools": m.get("coremltools"),
            }
        )
    return out


def is_entry_name(name: str) -> bool:
    """A folder the cache made for a model: named by its 24-hex-digit key."""
    return leftovers.KEY.fullmatch(name) is not None


def _created(root: Path, manifest: dict | None) -> float:
    """When an entry was made: its manifest's "created" (UTC), else the folder's mtime."""
    import calendar

    try:
        if manifest is None:
            raise KeyError("created")
        return float(calendar.timegm(time.strptime(manifest["created"], "%Y-%m-%dT%H:%M:%SZ")))
    except (TypeError, KeyError, ValueError):
        return root.stat().st_mtime


# Files other stages keep in the cache folder: folder -> (the names they write, what they
# hold). They are made again on demand, so `cache clear` removes them with the entries
# (those names only: a folder of the same name is not ours), and `cache list` counts them.
ASSETS = {
    "vega": (
        "vega-bundle-*.js",
        "the Vega JavaScript that chart HTML inlines (made again on demand)",
    )
}


def _asset_files(cache_dir: Path, name: str) -> list[Path]:
    """The asset files of folder `name`: finished ones, and the hidden partial copies a
    killed writer left (`.<name>.<suffix>`, older than a running write could be)."""
    root = cache_dir / name
    if not root.is_dir() or root.is_symlink():
        return []
    pattern = ASSETS[name][0]
    now = time.time()
    done = list(root.glob(pattern))
    left = [p for p in root.glob(f".{pattern}.*") if now - p.stat().st_mtime > STALE_STAGING_S]
    return sorted(p for p in done + left if p.is_file() and not p.is_symlink())


def assets(cache_dir: Path) -> list[dict]:
    """The asset files present, per folder, for `cache list`: name, what, files, bytes."""
    out = []
    for name, (_, what) in ASSETS.items():
        files = _asset_files(cache_dir, name)
        if files:
            size = sum(p.stat().st_size for p in files)
            out.append({"name": name, "what": what, "files": len(files), "bytes": size})
    return out


def _clear_assets(cache_dir: Path, older_than_s: float | None, now: float) -> list[dict]:
    removed = []
    for name in ASSETS:
        for p in _asset_files(cache_dir, name):
            if older_than_s is not None and now - p.stat().st_mtime < older_than_s:
                continue
            size = p.stat().st_size
            p.unlink(missing_ok=True)
            removed.append(
                {"key": f"{name}/{p.name}", "kind": "assets", "spec": None, "family": None,
                 "bytes": size}
            )  # fmt: skip
        with contextlib.suppress(OSError):  # only if nothing else is in it
            (cache_dir / name).rmdir()
    return removed


def clear(cache_dir: Path, older_than_s: float | None = None) -> list[dict]:
    """Delete entries (all, or those made more than `older_than_s` seconds ago), stale
    staging folders and trash; returns what was removed, one dict each: key, kind (entry |
    staging | trash), spec and family (entries), bytes.

    Only what the cache made is touched (key-named entries, staging and trash by their
    full names: `leftovers`, the ASSETS files, kind 'assets'): a wrong --cache-dir or
    $ANEMLL_SPEC_CACHE must never cost anyone their files. Staging folders of builds
    running now are left alone.
    """
    removed: list[dict] = []
    if not cache_dir.is_dir():
        return removed
    now = time.time()
    for item in leftovers.found(cache_dir, now):
        if item["stale"]:
            removed.append(
                {"key": item["name"], "kind": item["kind"], "spec": None, "family": None,
                 "bytes": item["bytes"]}
            )  # fmt: skip
            discard(cache_dir / item["name"])
    for root in sorted(cache_dir.iterdir()):
        if not is_entry_name(root.name) or not root.is_dir() or root.is_symlink():
            continue
        manifest = check_entry(root)[0]
        if older_than_s is not None and now - _created(root, manifest) < older_than_s:
            continue
        m = manifest or {}
        removed.append(
            {
                "key": root.name,
                "kind": "entry",
                "spec": m.get("spec"),
                "family": (m.get("model") or {}).get("family"),
                "bytes": leftovers.disk_bytes(root),
            }
        )
        discard(root)
    return removed + _clear_assets(cache_dir, older_than_s, now)
