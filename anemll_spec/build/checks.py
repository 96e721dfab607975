"""The checks a build makes before any work, apart so `bench` can make them for every
case first: the model's own limits, the memory a build and one call need, and a cache
folder that can take a build (probed, not made) on a disk with room for it. Bad input
is refused here (InputError: exit 2), before anything is written."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from anemll_spec.build.records import Estimate
from anemll_spec.errors import InputError
from anemll_spec.paths import default_cache_dir

if TYPE_CHECKING:
    from anemll_spec.spec.families import ModelBase


def check_memory(model: ModelBase, est: Estimate) -> None:
    import psutil

    avail = psutil.virtual_memory().available
    if est.build_peak_bytes > avail:
        raise InputError(
            f"model.{model.family}: building needs about {est.build_peak_bytes / 1e9:.2f} GB "
            f"(weights {est.weight_bytes / 1e9:.2f} GB) but only {avail / 1e9:.2f} GB of memory is "
            "free; use a smaller model or free memory"
        )


def check_call_memory(model: ModelBase, plan) -> None:
    """A call's inputs (drawn in float32, then cast), outputs and states (an attention's
    KV cache, which every session holds) must fit in memory: a spec of batch 4096 x
    seq_len 65536, or of a KV cache of 256 GiB, is refused here, not after its build."""
    import numpy as np

    from anemll_spec.mlmodel.limits import check_alloc, element_count
    from anemll_spec.model_io import synth_bytes

    where = f"model.{model.family}"
    need = synth_bytes(plan.inputs, f"{where}: ")
    need += sum(
        element_count(t.shape, f"{where}: output {t.name!r}") * np.dtype(t.dtype).itemsize
        for t in (*plan.outputs, *plan.states)
    )
    check_alloc(need, where, "one call's inputs, outputs and states need at least")


def cache_folder(cache_dir: Path | None) -> Path:
    path = Path(cache_dir) if cache_dir else default_cache_dir()
    if path.exists() and not path.is_dir():
        raise InputError(
            f"build cache {path}: is a file, not a folder (--cache-dir or $ANEMLL_SPEC_CACHE)"
        )
    return path


def new_build_folder(cache_dir: Path, key: str) -> Path:
    """The build's staging folder in the cache (made with the cache folder if need be);
    one that cannot be made (read-only, under a file) is the user's input, refused."""
    from anemll_spec.build.cache import new_staging

    try:
        return new_staging(cache_dir, key)
    except OSError as exc:
        raise InputError(
            f"build cache {cache_dir}: cannot make a build folder there "
            f"({exc.strerror or exc}); use --cache-dir or $ANEMLL_SPEC_CACHE"
        ) from None


def writable(cache_dir: Path) -> Path:
    """The cache folder, or the nearest folder above it that exists, once a folder has
    been made there and removed: nothing is left, not even the cache folder (bad input
    writes nothing). One that cannot be (read-only, under a file) is refused."""
    at = cache_dir.absolute()
    while not at.exists() and at != at.parent:
        at = at.parent
    try:
        Path(tempfile.mkdtemp(prefix=".tmp-probe-", dir=at)).rmdir()
    except OSError as exc:
        raise InputError(
            f"build cache {cache_dir}: cannot make a build folder there "
            f"({exc.strerror or exc}); use --cache-dir or $ANEMLL_SPEC_CACHE"
        ) from None
    return at


# What a build writes besides its weights, measured (2026-12-07, tmpfs and ext4, 4 KiB
# blocks): model.mlmodel, the program, is ~2 KB plus 1.6-3 KB per tensor (an LM head of
# 1,024 chunks: 1.68 MB; an attention of 6 weights: 18.6 KB); Manifest.json and the cache's
# manifest.json under 1 KB each; and the package's 5 folders and 5 files (with the
# temporary copy's) each round up to a block. The dispatch-floor model bench builds after
# the case (a 64 -> 64 head) takes 41-49 KB on disk and its own temporary copy.
PACKAGE_FILES_BYTES = 64 * 1024
PER_TENSOR_BYTES = 4 * 1024
FLOOR_MODEL_BYTES = 128 * 1024


def kept_bytes(est: Estimate) -> int:
    """Disk a build's cache entry keeps: the package's weights, program and other files."""
    return est.weight_bytes + PACKAGE_FILES_BYTES + PER_TENSOR_BYTES * est.tensors


def disk_need(est: Estimate) -> int:
    """Disk a build takes at its peak: the package's weights and coremltools' temporary
    copy of them, the program and other files, and the dispatch-floor model."""
    return plan_disk_need([est])


def plan_disk_need(ests: list[Estimate]) -> int:
    """Disk the builds of a plan take: every entry stays in the cache, one temporary copy
    of weights exists at a time (the largest counts), and the dispatch-floor model."""
    temp = max((e.weight_bytes for e in ests), default=0)
    return sum(kept_bytes(e) for e in ests) + temp + FLOOR_MODEL_BYTES


def check_disk(cache_dir: Path, est: Estimate, on: Path | None = None) -> None:
    """Room on the cache's disk (`on`: the folder the cache would be made in) for
    `disk_need`: a build that passes this does not run out of disk half-way."""
    from anemll_spec.text import human_bytes

    free = shutil.disk_usage(on or cache_dir).free
    need = disk_need(est)
    if need > free:
        raise InputError(
            f"cache {cache_dir}: building needs about {human_bytes(need)} of disk "
            f"(weights {human_bytes(est.weight_bytes)}, twice while saving), "
            f"{human_bytes(free)} free"
        )


def check_plan_disk(
    cache_dir: Path, ests: list[Estimate], on: Path | None = None, compiled: int = 0
) -> None:
    """Room for every build of a plan together (`plan_disk_need`) and the `compiled`
    bytes of Core ML's compiled copies the plan's cases write into the cache; one build
    alone, with no compiled copy, is check_disk's (its message names the case)."""
    from anemll_spec.text import human_bytes

    if len(ests) < 2 and not compiled:
        return
    free = shutil.disk_usage(on or cache_dir).free
    need = plan_disk_need(ests) + compiled
    if need > free:
        weights = sum(e.weight_bytes for e in ests)
        n = len(ests)
        what = f"building the {n} models not yet cached" if n > 1 else "building the model"
        what = what if n else "loading the cached models in Core ML"
        parts = [f"weights {human_bytes(weights)} in all, the largest twice while saving"]
        parts = parts if n else []
        if compiled:
            parts.append(f"Core ML's compiled copies {human_bytes(compiled)}")
        raise InputError(
            f"cache {cache_dir}: {what} needs about {human_bytes(need)} of disk "
            f"({'; '.join(parts)}), {human_bytes(free)} free; shorten the sweep, "
            "build the specs one at a time, or free disk"
        )


def check_compile_temp(
    cache_dir: Path, largest: int, on: Path | None = None, temp: Path | None = None
) -> None:
    """Core ML compiles a model into a temporary folder of its own and coremltools then
    moves the copy into the cache (models.utils.compile_model): where that folder is on
    another disk than the cache, it needs room for the largest compiled copy (they are
    compiled one at a time). On one disk the move is a rename, counted in the cache's
    need. on: the cache's nearest existing folder (writable()); temp: Python's temp
    folder ($TMPDIR: on a Mac the per-user one Core ML writes to)."""
    from anemll_spec.text import human_bytes

    if largest <= 0:
        return
    temp = Path(temp or tempfile.gettempdir())
    try:
        if temp.stat().st_dev == (on or cache_dir).stat().st_dev:
            return
        free = shutil.disk_usage(temp).free
    except OSError:  # not readable: the compile says what is wrong
        return
    if largest > free:
        raise InputError(
            f"temp folder {temp}: Core ML compiles each model there before it is moved into "
            f"the cache {cache_dir} (another disk): the largest needs about "
            f"{human_bytes(largest)}, {human_bytes(free)} free; free disk there"
        )


def disk_filled(cache_dir: Path, key: str, est: Estimate, exc: BaseException) -> str:
    """What to say when a build that passed check_disk failed for want of disk (another
    process filled it meanwhile): coremltools says so as 'Input/output error' or '[MIL
    FileWriter] Unknown error', so the disk is asked, with the build's staging gone. ''
    when the disk has the room (another failure, raised as it is)."""
    import errno

    from anemll_spec.text import human_bytes

    try:
        free = shutil.disk_usage(cache_dir).free
    except OSError:
        return ""
    need = disk_need(est)
    if free >= need and getattr(exc, "errno", None) != errno.ENOSPC:
        return ""
    return (
        f"cache {cache_dir}: the disk filled while building {key} ({human_bytes(free)} free "
        f"now, about {human_bytes(need)} needed; another process writing there?); nothing "
        "kept: free disk and run again"
    )
