"""The build's checks before any work (`build.preflight`), as bench and build run them:
a cache folder that cannot be written or lacks room, and a model too big for memory, stop
the command with exit 2 and nothing built or stored, whichever spec or case it is in."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from build_util import matmul

from anemll_spec.cli._common import human_bytes
from anemll_spec.errors import InputError

TINY = "name: tiny\nmodel: {family: matmul, m: 4, k: 8, n: 8}\nrun: {backends: [numpy]}\n"
# 2 MB of fp16 weights: the build wants 4 MB of disk
MID = "name: mid\nmodel: {family: matmul, m: 4, k: 1024, n: 1024}\nrun: {backends: [numpy]}\n"
HUGE = (
    "name: huge\nmodel: {family: lm_head, hidden_size: 1048576, vocab_size: 1048576, "
    "chunks: 64}\nrun: {backends: [numpy]}\n"
)


@contextlib.contextmanager
def _tmpfs(where: Path, options: str) -> Iterator[Path | None]:
    """A tmpfs mounted at `where` (None where this process cannot mount)."""
    where.mkdir()
    if os.geteuid() != 0:
        yield None
        return
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(where)],
                       capture_output=True)  # fmt: skip
    if r.returncode:
        yield None
        return
    try:
        yield where
    finally:
        subprocess.run(["umount", str(where)], check=True)


@contextlib.contextmanager
def _read_only(where: Path) -> Iterator[Path]:
    """A folder this process cannot write: chmod as a user, a read-only tmpfs as root."""
    if os.geteuid() != 0:
        where.mkdir()
        where.chmod(0o555)
        try:
            yield where
        finally:
            where.chmod(0o755)
        return
    with _tmpfs(where, "ro,size=1m") as mounted:
        if mounted is None:
            pytest.skip("root without mount: no read-only folder to be had")
        yield mounted


def _spec(tmp_path: Path, text: str, name: str) -> Path:
    p = tmp_path / f"{name}.yaml"
    p.write_text(text)
    return p


def _refused(r: subprocess.CompletedProcess, *needles: str) -> None:
    assert r.returncode == 2, r.stderr
    assert "Traceback" not in r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    for n in needles:
        assert n in lines[0], lines[0]


@pytest.mark.parametrize("command", ["bench", "build"])
def test_a_cache_under_a_file_is_refused_before_anything_runs(tmp_path, cli, command):
    spec = _spec(tmp_path, TINY, "tiny")
    (tmp_path / "afile").write_text("x")
    store = tmp_path / "s.duckdb"
    extra = ["--store", store] if command == "bench" else []
    r = cli(command, spec, "--cache-dir", tmp_path / "afile" / "sub", *extra)
    _refused(r, f"{spec}: tiny: build cache", "cannot make a build folder", "Not a directory")
    assert not store.exists()


@pytest.mark.parametrize("command", ["bench", "build"])
def test_a_read_only_cache_is_refused_before_anything_runs(tmp_path, cli, command):
    spec = _spec(tmp_path, TINY, "tiny")
    store = tmp_path / "s.duckdb"
    extra = ["--store", store] if command == "bench" else []
    with _read_only(tmp_path / "ro") as ro:
        r = cli(command, spec, "--cache-dir", ro / "cache", *extra)
        _refused(r, f"{spec}: tiny: build cache {ro / 'cache'}: cannot make a build folder")
        assert not any(ro.iterdir())
    assert not store.exists()


def test_a_cache_disk_without_room_is_refused_by_bench(tmp_path, cli):
    spec = _spec(tmp_path, MID, "mid")
    store = tmp_path / "s.duckdb"
    with _tmpfs(tmp_path / "small", "size=1m") as small:
        if small is None:
            pytest.skip("cannot mount a small tmpfs here (the in-process test covers it)")
        r = cli("bench", spec, "--cache-dir", small / "cache", "--store", store)
        free = human_bytes(shutil.disk_usage(small).free)
        need = f"{spec}: mid: cache {small / 'cache'}: building needs about 4.40 MB of disk"
        _refused(r, need, f"(weights 2.10 MB, twice while saving), {free} free")
        assert not list(small.iterdir())  # no cache folder, no staging left behind
    assert not store.exists()


def _on_disk(root: Path) -> int:
    """Bytes `root` takes on its disk: every file and folder in whole blocks."""
    return sum(p.lstat().st_blocks * 512 for p in [root, *root.rglob("*")])


def test_disk_need_covers_what_a_build_and_its_dispatch_floor_write(tmp_path):
    """The need is checked against what real builds leave on disk, read back: the cache
    entry (package and manifest, in blocks) plus coremltools' temporary copy of the
    weights, and the dispatch-floor model bench builds after the case. Twice the weight
    bytes, the old need, fell short of that for every model here."""
    from build_util import attention, lm_head

    from anemll_spec.build import build, estimate
    from anemll_spec.build.checks import disk_need
    from anemll_spec.runner.plan import tiny_model

    def written(model) -> int:
        b = build(model, cache_dir=tmp_path)
        (weights,) = (tmp_path / b.key).rglob("weight.bin")
        return _on_disk(tmp_path / b.key) + weights.stat().st_size

    for model in (matmul(), lm_head(hidden_size=64, vocab_size=1024, chunks=16), attention()):
        used = written(model) + written(tiny_model(model))
        est = estimate(model)
        assert 2 * est.weight_bytes < used <= disk_need(est), (model.family, used)


def test_a_disk_with_twice_the_weights_free_is_refused_not_a_failed_build(tmp_path, cli):
    """A tmpfs with room for twice the weights but not the rest: the build used to pass
    the check and fail as a case ('No space left on device'); now bench refuses it."""
    from anemll_spec.build import estimate

    spec = _spec(tmp_path, MID, "mid")
    store = tmp_path / "s.duckdb"
    size = 2 * estimate(matmul(m=4, k=1024, n=1024)).weight_bytes + 8192
    with _tmpfs(tmp_path / "small", f"size={size}") as small:
        if small is None:
            pytest.skip("cannot mount a small tmpfs here (the in-process test covers it)")
        r = cli("bench", spec, "--cache-dir", small / "cache", "--store", store)
        _refused(r, f"{spec}: mid: cache {small / 'cache'}: building needs about 4.40 MB")
        assert not list(small.iterdir())
    assert not store.exists()


def test_preflight_checks_the_cache_disk_it_would_build_on(tmp_path, monkeypatch):
    """In process, with the disk's free figure made small: refused before a build, and a
    cached model is not refused (it needs no room)."""
    import shutil

    from anemll_spec.build import build, preflight
    from anemll_spec.runner import Runner

    m = matmul()
    key = build(m, cache_dir=tmp_path / "cache").key  # cached: needs no disk
    real = shutil.disk_usage

    def full(path):
        return real(path)._replace(free=1000)

    monkeypatch.setattr(shutil, "disk_usage", full)
    preflight(m, tmp_path / "cache")
    with pytest.raises(InputError, match=r"building needs about .* KB of disk .*, 1.00 KB free"):
        preflight(matmul(seed=1), tmp_path / "cache")
    spec = _spec(tmp_path, MID, "mid")
    with pytest.raises(InputError, match=r"mid\.yaml: mid: cache .*MB of disk"):
        Runner(spec, store=str(tmp_path / "s.duckdb"), cache_dir=tmp_path / "cache")
    assert not (tmp_path / "s.duckdb").exists()
    assert [p.name for p in (tmp_path / "cache").iterdir()] == [key]  # no staging left


def test_build_checks_every_spec_before_the_first_build(tmp_path, cli):
    """`build A B` with B too big for memory: refused before A is built, naming B's spec
    and case as bench does."""
    tiny, huge = _spec(tmp_path, TINY, "tiny"), _spec(tmp_path, HUGE, "huge")
    cache = tmp_path / "cache"
    r = cli("build", tiny, huge, "--cache-dir", cache)
    _refused(r, f"{huge}: huge: model.lm_head: building needs about")
    assert not cache.exists()  # nothing written, not even the cache folder


# 0.52 MB of weights a case, 1.26 MB of disk for one build: three fit a 2 MB disk one by
# one, not together
SWEEP = (
    "name: sweep\nmodel: {family: matmul, m: 4, k: 512, n: 512}\nrun: {backends: [numpy]}\n"
    "sweep: {model.seed: [SEEDS]}\n"
)


@contextlib.contextmanager
def _two_mb(tmp_path: Path) -> Iterator[tuple[Path, int, Any]]:
    """A 2 MB tmpfs (the test skipped where none can be mounted), its free bytes, and the
    estimate of one build of SWEEP or DISTINCT (each case's model is the same size)."""
    from anemll_spec.build import estimate

    with _tmpfs(tmp_path / "small", "size=2m") as small:
        if small is None:
            pytest.skip("cannot mount a small tmpfs here")
        yield small, shutil.disk_usage(small).free, estimate(matmul(m=4, k=512, n=512))


@pytest.mark.parametrize("command", ["bench", "build"])
def test_a_sweep_whose_builds_fit_one_by_one_but_not_together_is_refused(tmp_path, cli, command):
    """Each case passed the disk check alone; bench ran case 0, then stored cases 1-2 as
    FAILED ('needs about 1.26 MB') and exited 1. Now the plan's builds are checked
    together: refused before any case runs, nothing stored or built."""
    from anemll_spec.build.checks import disk_need, plan_disk_need

    spec = _spec(tmp_path, SWEEP.replace("SEEDS", "0, 1, 2"), "sweep")
    store = tmp_path / "s.duckdb"
    extra = ["--store", store] if command == "bench" else []
    with _two_mb(tmp_path) as (small, free, est):
        assert disk_need(est) < free < plan_disk_need([est] * 3)
        r = cli(command, spec, "--cache-dir", small / "cache", *extra)
        need = human_bytes(plan_disk_need([est] * 3))
        _refused(r, f"{spec}: cache {small / 'cache'}: building the 3 models not yet cached "
                 f"needs about {need} of disk", f"{human_bytes(free)} free")  # fmt: skip
        assert not list(small.iterdir())
    assert not store.exists()


def test_a_sweep_that_fits_together_is_built_whole(tmp_path, cli):
    """Two of those builds fit the 2 MB disk together: preflight passes, both are built."""
    spec = _spec(tmp_path, SWEEP.replace("SEEDS", "0, 1"), "sweep")
    with _two_mb(tmp_path) as (small, _, _):
        r = cli("build", spec, "--cache-dir", small / "cache", "--json")
        assert r.returncode == 0, r.stderr
        built = json.loads(r.stdout)
        assert [b["cached"] for b in built] == [False, False]
        assert len({b["weights_sha256"] for b in built}) == 2
        assert sorted(p.name for p in (small / "cache").iterdir()) == sorted(
            b["key"] for b in built
        )


def test_specs_whose_builds_fit_one_by_one_but_not_together_are_refused_by_bench(tmp_path, cli):
    """`bench a.yaml b.yaml`, each spec's two builds fitting the 2 MB disk, all three
    distinct ones (seed 1 is in both) not: bench ran a, then stored b's second case as
    FAILED. Now refused before a runs, naming both specs; nothing stored or built."""
    from anemll_spec.build.checks import plan_disk_need

    a = _spec(tmp_path, SWEEP.replace("SEEDS", "0, 1"), "a")
    b = _spec(tmp_path, SWEEP.replace("SEEDS", "1, 2"), "b")
    store = tmp_path / "s.duckdb"
    with _two_mb(tmp_path) as (small, free, est):
        assert plan_disk_need([est] * 2) < free < plan_disk_need([est] * 3)
        r = cli("bench", a, b, "--cache-dir", small / "cache", "--store", store)
        need = human_bytes(plan_disk_need([est] * 3))
        _refused(r, f"{a}, {b} together: cache {small / 'cache'}: building the 3 models "
                 f"not yet cached needs about {need} of disk")  # fmt: skip
        assert not list(small.iterdir())
    assert not store.exists()


DISTINCT = (
    "name: dist\nmodel: {family: matmul, m: 4, k: 512, n: 512}\n"
    "run: {backends: [numpy], concurrency: 3, instances: distinct, iterations: 20, "
    "energy_s: 0, dispatch_floor: false}\n"
)


def test_distinct_instances_whose_builds_do_not_fit_are_refused_before_the_run(tmp_path, cli):
    """`instances: distinct` builds a model per instance (seeds +1..+N-1) that the preflight
    never saw: concurrency 3 passed it, built instance 0's and stored the case FAILED
    ('building needs about ...'), exit 1. Now every instance's model is checked with the
    case's: refused up front, nothing stored or built, as the same at concurrency 1 is."""
    from anemll_spec.build.checks import disk_need, plan_disk_need

    spec = _spec(tmp_path, DISTINCT, "dist")
    store = tmp_path / "s.duckdb"
    with _two_mb(tmp_path) as (small, free, est):
        assert disk_need(est) < free < plan_disk_need([est] * 3)
        r = cli("bench", spec, "--cache-dir", small / "cache", "--store", store)
        need = human_bytes(plan_disk_need([est] * 3))
        _refused(r, f"{spec}: cache {small / 'cache'}: building the 3 models not yet cached "
                 f"needs about {need} of disk", f"{human_bytes(free)} free")  # fmt: skip
        assert not list(small.iterdir())
    assert not store.exists()


def test_a_disk_filled_by_another_process_mid_build_is_said_so(tmp_path):
    """Two builds into one cache each passed check_disk, then filled the disk together:
    the second ended in coremltools' 'RuntimeError: filesystem error: cannot copy:
    Input/output error' (or '[MIL FileWriter] Unknown error'), a traceback. Another
    process fills the disk while this build converts: one line saying so, nothing kept."""
    import gc
    import re

    from anemll_spec.build import build, cache_key, estimate
    from anemll_spec.build.checks import disk_need

    with _two_mb(tmp_path) as (small, _, _):
        model = matmul(m=4, k=512, n=512)
        filler = small / "other-process.bin"

        def progress(step: str) -> None:
            if "convert" in step and not filler.exists():  # the weights are about to be saved
                filler.write_bytes(b"\0" * (shutil.disk_usage(small).free - 64 * 1024))

        message = ""
        try:
            build(model, cache_dir=small / "cache", progress=progress)
        except InputError as exc:
            message = str(exc)
        gc.collect()  # coremltools' failed writer, held by the exception's frames
        assert re.fullmatch(
            re.escape(f"cache {small / 'cache'}: the disk filled while building "
                      f"{cache_key(model)} (") + r"[0-9.]+ [KM]?B" + re.escape(
                f" free now, about {human_bytes(disk_need(estimate(model)))} needed; "
                "another process writing there?); nothing kept: free disk and run again"),
            message,
        ), message  # fmt: skip
        assert sorted(p.name for p in small.iterdir()) == ["cache", filler.name]
        assert not list((small / "cache").iterdir())
