"""Core ML compiles a model into a temporary folder and coremltools then moves the copy
into the build cache (coremltools.models.utils.compile_model): bench's disk preflight
checks that folder too where it is on another disk than the cache (a full system disk
with the cache on an external one failed the Core ML case mid-run). Pure logic, run here
on real file systems: a 2 MB tmpfs as the temp folder."""

from __future__ import annotations

import shutil
import subprocess
import tempfile

import pytest
from test_coreml_compile_disk import _mount

from anemll_spec.build import preflight_disk
from anemll_spec.errors import InputError
from anemll_spec.text import human_bytes


@pytest.fixture
def small_temp(tmp_path, monkeypatch):
    """A 2 MB tmpfs as the temp folder ($TMPDIR); skipped where none can be mounted."""
    where = tmp_path / "small-temp"
    where.mkdir()
    _mount(where, "size=2m")
    monkeypatch.setattr(tempfile, "tempdir", str(where))
    yield where
    subprocess.run(["umount", str(where)], check=True)


def test_a_compiled_copy_the_temp_disk_cannot_hold_is_refused(small_temp, tmp_path):
    cache = tmp_path / "cache"  # on the big disk: room for every copy
    free = shutil.disk_usage(small_temp).free
    preflight_disk([], cache, 3 * (free - 1), free - 1)  # each fits the temp disk in turn
    with pytest.raises(InputError) as e:
        preflight_disk([], cache, 3 * (free + 1), free + 1)
    assert str(e.value) == (
        f"temp folder {small_temp}: Core ML compiles each model there before it is moved "
        f"into the cache {cache} (another disk): the largest needs about "
        f"{human_bytes(free + 1)}, {human_bytes(free)} free; free disk there"
    )
    assert not cache.exists() and not list(small_temp.iterdir())
