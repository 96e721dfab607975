"""A store that cannot be written here (a read-only file, a folder without write access)
is said to be so in one line, never called damaged, never a traceback; it is unchanged.

Root ignores file modes, so as root the child runs without the capabilities that let it
(setpriv drops CAP_DAC_OVERRIDE); elsewhere the modes apply as they are."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from fixtures.store.bundles import content
from test_store_diskfull import store_with_a_run

ROOT = Path(__file__).resolve().parents[1]
SPEC = (
    "name: tiny\nmodel: {family: matmul, m: 8, k: 8, n: 8}\n"
    "run: {backends: [numpy], iterations: 5, warmup: 1, dispatch_floor: false}\n"
)


def unprivileged() -> list[str]:
    if os.geteuid() != 0:
        return []
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        pytest.skip("root without setpriv: file modes cannot be tested")
    return [setpriv, "--inh-caps=-all", "--bounding-set=-dac_override,-dac_read_search", "--"]


def cli(tmp_path: Path, *args) -> subprocess.CompletedProcess:
    env = {**os.environ, "ANEMLL_SPEC_CACHE": str(tmp_path / "cache")}
    return subprocess.run(
        [*unprivileged(), sys.executable, "-m", "anemll_spec", *map(str, args)],
        capture_output=True, text=True, cwd=ROOT, env=env, timeout=300,
    )  # fmt: skip


@pytest.fixture()
def spec(tmp_path) -> Path:
    path = tmp_path / "tiny.yaml"
    path.write_text(SPEC)
    return path


def test_bench_into_a_folder_that_cannot_be_written(tmp_path, spec):
    folder = tmp_path / "ro"
    folder.mkdir()
    store = folder / "s.duckdb"
    store_with_a_run(store)
    before = content(store)
    store.chmod(0o666)
    folder.chmod(0o555)  # the file could be written, its log cannot be made
    try:
        r = cli(tmp_path, "bench", spec, "--store", store)
    finally:
        folder.chmod(0o755)
    assert r.returncode == 1, r.stderr
    assert "Traceback" not in r.stderr and "damaged" not in r.stderr, r.stderr
    assert "not writable here" in r.stderr, r.stderr
    assert content(store) == before


def test_a_read_only_store_file_is_not_called_damaged(tmp_path, spec):
    store = tmp_path / "s.duckdb"
    store_with_a_run(store)
    before = content(store)
    store.chmod(0o444)
    r = cli(tmp_path, "bench", spec, "--store", store)
    assert r.returncode == 2, r.stderr
    assert "cannot be written here" in r.stderr and "damaged" not in r.stderr, r.stderr
    assert "Traceback" not in r.stderr
    store.chmod(0o644)
    assert content(store) == before


def test_an_older_store_that_cannot_be_upgraded_here(tmp_path, spec):
    """Opening it to write would upgrade it; the upgrade's COMMIT fails: one line."""
    folder = tmp_path / "ro"
    folder.mkdir()
    store = folder / "v1.duckdb"
    shutil.copy(ROOT / "tests" / "fixtures" / "store" / "v1.duckdb", store)
    original = store.read_bytes()
    store.chmod(0o666)
    folder.chmod(0o555)
    try:
        r = cli(tmp_path, "bench", spec, "--store", store)
    finally:
        folder.chmod(0o755)
    assert r.returncode in (1, 2), r.stderr
    assert "Traceback" not in r.stderr and "damaged" not in r.stderr, r.stderr
    assert "cannot be written here" in r.stderr or "not writable here" in r.stderr, r.stderr
    assert store.read_bytes() == original
