"""Compile .mlpackage -> .mlmodelc once, and keep it where the next run finds it.

Why keep it: Core ML specialises a compiled model for the device at its first load and
caches that work for later loads of the same compiled model; a model compiled afresh
each time (what `coremltools.models.MLModel(".mlpackage")` does) pays it on every load.
Apple says so for Stable Diffusion ("coremltools does not cache the compiled model for
later loads so each load takes equally long"; compiled `.mlmodelc` models are
"compiled down for the requested compute unit upon first load but then the cache will be
reused on subsequent loads until it is purged due to lack of use": apple/
ml-stable-diffusion README, FAQ Q5). What Core ML keys that cache on is not documented.
Compiling every case into a new random temp folder (as this backend did) makes it a new
compiled model each run, so `load_ms` was always a first load.

So a package from the build cache (<cache>/<key>/model.mlpackage) is compiled once per
macOS build and CPU architecture (the compiler is the OS's Core ML, not coremltools) into
<cache>/<key>/compiled-<os build>-<arch>/model.mlmodelc, published with one rename (a
reader sees a complete copy or none; of two racing compilers one wins). Other models
(external .mlpackage files) are compiled into the run's temp folder, as before: their
loads stay first loads, and the session says so; so is a cache package whose entry
cannot be written (a read-only cache serves builds; Core ML still runs).

A compiled copy is a full copy of the weights: publishing one for a new macOS build
removes the entry's copies for earlier builds of the same architecture (an OS update
left one more each time). Two Macs on different builds sharing one cache folder so
each recompile after the other. A compile's staging folder, `.tmp-compiled-<pid>-
<host tag><2 hex>`, is dropped by the next compile of the entry, or reuse of it, once
its compiler is dead (leftovers.builder's rule: a pid of this host and boot not
running) or, where that cannot be told, after an hour.
"""

from __future__ import annotations

import json
import os
import platform
import re
import shutil
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path

COMPILED = "model.mlmodelc"
STALE_S = 3600  # a staging folder this old belongs to a compile that died
# a compile's staging folder: pid, then leftovers.host_tag() and 2 random hex digits
STAGING = re.compile(r"\.tmp-compiled-([0-9]+)-([0-9a-f]{6})[0-9a-f]{2}")


def cache_home(src: Path) -> Path | None:
    """The build-cache entry holding `src`, if `src` is one's package; else None."""
    from anemll_spec.build.cache import MANIFEST, PACKAGE

    if src.name != PACKAGE:
        return None
    try:
        manifest = json.loads((src.parent / MANIFEST).read_text())
    except (OSError, ValueError, RecursionError):  # damaged: not a cache entry here
        return None
    if not isinstance(manifest, dict) or manifest.get("key") != src.parent.name:
        return None
    return src.parent


def tag(os_build: str | None, machine: str | None = None) -> str:
    """Folder name of a compiled copy: one per macOS build and CPU architecture."""
    safe = "".join(c if c.isalnum() or c in "._-" else "_" for c in (os_build or "unknown"))
    return f"compiled-{safe}-{machine or platform.machine() or 'unknown'}"


def os_build() -> str | None:
    """This Mac's OS build (kern.osversion, e.g. 24B91), read in-process."""
    from anemll_spec.host import sysctl_str

    return sysctl_str("kern.osversion")


def _core_ml_compile(src: Path, dest: Path) -> Path:
    from coremltools.models.utils import compile_model

    return Path(compile_model(str(src), str(dest)))


def _staging_name() -> str:
    from anemll_spec.build.leftovers import host_tag

    return f".tmp-compiled-{os.getpid()}-{host_tag()}{uuid.uuid4().hex[:2]}"


def _drop_stale(home: Path) -> None:
    """Staging folders of compiles that died: their pid, on this host and boot, is not
    running; or (another host's, an older name) they are over STALE_S old."""
    from anemll_spec.build.leftovers import host_tag, pid_alive

    now = time.time()
    for p in home.glob(".tmp-compiled-*"):
        m = STAGING.fullmatch(p.name)
        alive = pid_alive(int(m.group(1))) if m and m.group(2) == host_tag() else None
        try:
            if alive is False or (alive is None and now - p.stat().st_mtime > STALE_S):
                shutil.rmtree(p, ignore_errors=True)
        except OSError:
            pass


def _drop_older_builds(home: Path, current: Path) -> None:
    """The entry's compiled copies for other macOS builds of this architecture (each a
    full copy of the weights): an OS update otherwise left one more per entry. Renamed
    aside first, so no reader finds half a folder."""
    arch = current.name.rsplit("-", 1)[-1]
    for p in home.glob(f"compiled-*-{arch}"):
        if p == current or not p.is_dir():
            continue
        aside = home / f".tmp-compiled-old-{uuid.uuid4().hex[:8]}"
        try:
            os.rename(p, aside)
        except OSError:
            continue
        shutil.rmtree(aside, ignore_errors=True)


def compiled(
    src: Path,
    workdir: Path,
    *,
    compile_fn: Callable[[Path, Path], Path] = _core_ml_compile,
    build: str | None = None,
) -> tuple[Path, float, str]:
    """(the .mlmodelc, seconds spent compiling now, how it was got).

    how: 'reused' (an earlier run's compiled copy in the build cache; 0 s), 'cached'
    (compiled now into the build cache), 'temp' (compiled now into workdir: not a build-
    cache package), 'unwritable' (compiled now into workdir: a cache package whose entry
    cannot be written). compile_fn(src, dest) writes dest and returns it (Core ML's compiler;
    replaceable so the publishing logic is testable without a Mac)."""
    src = Path(src)
    home = cache_home(src)
    if home is None:
        Path(workdir).mkdir(parents=True, exist_ok=True)
        dest = Path(tempfile.mkdtemp(dir=workdir)) / (src.stem + ".mlmodelc")
        t0 = time.perf_counter()
        path = compile_fn(src, dest)
        return Path(path), time.perf_counter() - t0, "temp"
    final = home / tag(build if build is not None else os_build()) / COMPILED
    _drop_stale(home)
    if final.is_dir():
        return final, 0.0, "reused"
    staging = home / _staging_name()
    try:
        staging.mkdir()
    except OSError:  # a read-only cache: its builds serve, the compile goes to the run
        Path(workdir).mkdir(parents=True, exist_ok=True)
        dest = Path(tempfile.mkdtemp(dir=workdir)) / COMPILED
        t0 = time.perf_counter()
        path = compile_fn(src, dest)
        return Path(path), time.perf_counter() - t0, "unwritable"
    try:
        t0 = time.perf_counter()
        compile_fn(src, staging / COMPILED)
        spent = time.perf_counter() - t0
        try:
            os.rename(staging, final.parent)
        except OSError:
            if not final.is_dir():  # not a lost race: something else is in the way
                raise
            return final, spent, "cached"  # another process published first: use its copy
        _drop_older_builds(home, final.parent)
        return final, spent, "cached"
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def compile_need(
    cache_dir: Path, key: str, package_bytes: int | None = None, *, build: str | None = None
) -> int:
    """Disk the compiled copy of cache entry `key` takes in the cache when a Core ML case
    first loads it on this macOS build, for bench's disk preflight: 0 where that copy is
    there, or where the entry cannot be written (the compile goes to the run's folder);
    else about the package's size (the same weights, the program as text, a few small
    files). package_bytes: the package's estimated size where it is yet to be built;
    None reads it from the entry's manifest (no sound entry: 0, it is rebuilt and
    counted by the caller). build: the macOS build (None: this Mac's)."""
    from anemll_spec.build import cache

    home = Path(cache_dir) / key
    if (home / tag(build if build is not None else os_build()) / COMPILED).is_dir():
        return 0
    if home.is_dir() and not os.access(home, os.W_OK | os.X_OK):
        return 0
    if package_bytes is None:
        entry, _ = cache.lookup(Path(cache_dir), key)
        if entry is None:
            return 0
        package_bytes = sum(entry.manifest["files"].values())
    return package_bytes


NOTES = {
    "reused": "compiled model reused from the build cache ({path}): Core ML may also "
    "reuse its device-specialised copy from an earlier load, so load_ms can be a warm load",
    "cached": "compiled now into the build cache ({path}): load_ms is this compiled "
    "copy's first load; later runs reuse it",
    "temp": "compiled into a temporary folder (not a build-cache package): load_ms is "
    "this compiled copy's first load, on every run",
    "unwritable": "compiled into a temporary folder (the build cache cannot be written "
    "here: a read-only cache): load_ms is this compiled copy's first load, on every run",
}
