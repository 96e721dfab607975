"""bench's disk preflight counts the compiled copies Core ML writes into the build cache
(coreml_compile.compile_need): a Mac whose cache disk held the builds but not their
compiled copies failed Core ML cases mid-run. The accounting is pure logic, run here on
real cache entries; only the compile itself needs a Mac."""

from __future__ import annotations

import os
import platform
import shutil
import subprocess
from pathlib import Path
from types import SimpleNamespace

import pytest
from build_util import matmul

from anemll_spec.backends import coreml_compile
from anemll_spec.build.checks import kept_bytes, plan_disk_need
from anemll_spec.errors import InputError
from anemll_spec.text import human_bytes


def _build(cache: Path, **fields):
    from anemll_spec.build import build

    return build(matmul(**fields), cache_dir=cache)


def _mount(where: Path, options: str) -> None:
    """A tmpfs at `where` (the test skipped where this process cannot mount one)."""
    mount = ["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(where)]
    if os.geteuid() != 0 or subprocess.run(mount, capture_output=True).returncode:
        pytest.skip("cannot mount a tmpfs here")


def _package_bytes(package: Path) -> int:
    """The package's files as the disk has them (not the manifest's word)."""
    return sum(p.stat().st_size for p in package.rglob("*") if p.is_file())


def test_a_cached_entry_not_yet_compiled_for_this_build_needs_its_package_size(tmp_path):
    cache = tmp_path / "cache"
    built = _build(cache, m=4, k=64, n=64)
    key = built.path.parent.name
    size = _package_bytes(built.path)
    assert size > 64 * 64 * 2  # the fp16 weights and the program
    assert coreml_compile.compile_need(cache, key, build="24B91") == size
    # another build's or architecture's copy is not this one
    for other in (coreml_compile.tag("23A344"), "compiled-24B91-otherarch"):
        (built.path.parent / other / coreml_compile.COMPILED).mkdir(parents=True)
        assert coreml_compile.compile_need(cache, key, build="24B91") == size
    # this build's copy is there: nothing more is written
    (built.path.parent / coreml_compile.tag("24B91") / coreml_compile.COMPILED).mkdir(parents=True)
    assert coreml_compile.compile_need(cache, key, build="24B91") == 0
    assert coreml_compile.compile_need(cache, key, build="25A1") == size


def test_a_model_to_be_built_counts_its_estimate_and_a_damaged_entry_counts_nothing(tmp_path):
    cache = tmp_path / "cache"
    assert coreml_compile.compile_need(cache, "0" * 24, 12345, build="24B91") == 12345
    # no sound entry and no estimate: the caller rebuilds it and counts it there
    assert coreml_compile.compile_need(cache, "0" * 24, build="24B91") == 0
    built = _build(cache, m=4, k=64, n=64)
    (built.path.parent / "manifest.json").write_text("{")
    assert coreml_compile.compile_need(cache, built.path.parent.name, build="24B91") == 0


def test_a_read_only_entry_counts_nothing_its_compile_goes_to_the_run_folder(tmp_path):
    """compiled() compiles a read-only cache's package into the run's folder: the cache's
    disk (often full, being read-only) is not asked for room."""
    ro = tmp_path / "ro"
    ro.mkdir()
    _mount(ro, "size=8m")
    try:
        built = _build(ro, m=4, k=64, n=64)
        key = built.path.parent.name
        assert coreml_compile.compile_need(ro, key, build="RO1") > 0
        subprocess.run(["mount", "-o", "remount,ro", str(ro)], check=True)
        assert coreml_compile.compile_need(ro, key, build="RO1") == 0
    finally:
        subprocess.run(["umount", str(ro)], capture_output=True)


def test_bench_counts_a_compile_for_each_core_ml_model_not_external_ones(tmp_path):
    """runner.bench._compile_need, what bench's preflight sums for its Core ML cases."""
    from anemll_spec.build import cache_key, estimate
    from anemll_spec.runner.bench import _compile_need
    from anemll_spec.spec.families import External

    cache = tmp_path / "cache"
    runner = SimpleNamespace(cache_dir=cache)
    built = _build(cache, m=4, k=64, n=64)
    cached = matmul(m=4, k=64, n=64)
    assert cache_key(cached) == built.path.parent.name
    here = coreml_compile.tag(coreml_compile.os_build())  # this host's (Linux: 'unknown')
    assert _compile_need(cached, None, runner) == _package_bytes(built.path)
    new = matmul(m=4, k=128, n=128)
    assert _compile_need(new, estimate(new), runner) == kept_bytes(estimate(new))
    ext = External.model_validate({"family": "external", "path": str(built.path)})
    assert _compile_need(ext, None, runner) == 0
    (built.path.parent / here / coreml_compile.COMPILED).mkdir(parents=True)
    assert _compile_need(cached, None, runner) == 0


@pytest.fixture
def small(tmp_path):
    """A 2 MB tmpfs holding the cache folder (skipped where none can be mounted)."""
    where = tmp_path / "small"
    where.mkdir()
    _mount(where, "size=2m")
    yield where
    subprocess.run(["umount", str(where)], check=True)


def test_one_build_that_fits_but_not_with_its_compiled_copy_is_refused(small):
    """One build alone passed (check_disk); its compiled copy then failed the case on a
    Mac. With the copy counted, refused before anything is written."""
    from anemll_spec.build import estimate, preflight_disk

    est = estimate(matmul(m=4, k=512, n=640))
    free = shutil.disk_usage(small).free
    compiled = kept_bytes(est)
    need = plan_disk_need([est]) + compiled
    assert plan_disk_need([est]) < free < need
    preflight_disk([est], small / "cache")  # without Core ML: room enough
    with pytest.raises(InputError) as e:
        preflight_disk([est], small / "cache", compiled)
    assert str(e.value) == (
        f"cache {small / 'cache'}: building the model needs about {human_bytes(need)} of "
        f"disk (weights {human_bytes(est.weight_bytes)} in all, the largest twice while "
        f"saving; Core ML's compiled copies {human_bytes(compiled)}), {human_bytes(free)} "
        "free; shorten the sweep, build the specs one at a time, or free disk"
    )
    assert not list(small.iterdir())


def test_cached_models_whose_compiled_copies_do_not_fit_are_refused(small):
    from anemll_spec.build import preflight_disk
    from anemll_spec.build.checks import FLOOR_MODEL_BYTES

    free = shutil.disk_usage(small).free
    preflight_disk([], small / "cache", free - FLOOR_MODEL_BYTES)  # just fits
    with pytest.raises(InputError, match="loading the cached models in Core ML needs about"):
        preflight_disk([], small / "cache", free)
    assert not list(small.iterdir())


def test_tag_names_this_architecture():
    assert coreml_compile.tag("24B91") == f"compiled-24B91-{platform.machine()}"


SPEC = (
    "name: disk\nmodel: {family: matmul, m: 4, k: 64, n: 64}\n"
    "run: {backends: [BACKENDS], iterations: 5, energy_s: 0, dispatch_floor: false}\n"
)


def _runner(tmp_path: Path, backends: str):
    from anemll_spec.runner.bench import Runner

    spec = tmp_path / "disk.yaml"
    spec.write_text(SPEC.replace("BACKENDS", backends))
    return Runner(spec, store=str(tmp_path / "s.duckdb"), cache_dir=tmp_path / "cache")


def test_cases_without_core_ml_count_no_compiled_copy(tmp_path):
    from anemll_spec.build import estimate

    runner = _runner(tmp_path, "numpy")
    assert list(runner.builds.values()) == [estimate(matmul(m=4, k=64, n=64))]
    assert runner.compiles == {}


@pytest.mark.macos
def test_core_ml_cases_count_their_compiled_copy(tmp_path):
    from anemll_spec.build import estimate

    runner = _runner(tmp_path, "coreml, numpy")
    est = estimate(matmul(m=4, k=64, n=64))
    assert list(runner.compiles.values()) == [kept_bytes(est)]
    assert list(runner.compiles) == list(runner.builds)


def test_a_manifest_nested_too_deeply_is_no_cache_entry_to_compile_into(tmp_path):
    """json.loads raises RecursionError on a deeply nested manifest: cache_home must say
    'not a cache entry' (compiled into the run's folder), not end the case in a traceback."""
    built = _build(tmp_path / "cache", m=4, k=64, n=64)
    assert coreml_compile.cache_home(built.path) == built.path.parent
    (built.path.parent / "manifest.json").write_text("[" * 200_000 + "]" * 200_000)
    assert coreml_compile.cache_home(built.path) is None
