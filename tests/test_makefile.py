"""The Makefile's set-up on a Python too old for anemll-spec: one line naming what is
needed, exit 2, before pip (whose refusal is a wall of 'Requires-Python' lines) and before
a .venv is made; a .venv an older Python made is named too (it would stick otherwise)."""

from __future__ import annotations

import glob
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _older_python() -> str | None:
    """An interpreter older than 3.11 on this machine (pyenv keeps several), or None."""
    found = [shutil.which(f"python3.{m}") for m in (10, 9, 8)]
    found += sorted(glob.glob("/root/.pyenv/versions/3.[0-9].*/bin/python3"))
    found += sorted(glob.glob("/root/.pyenv/versions/3.10.*/bin/python3"))
    for exe in filter(None, found):
        probe = subprocess.run(
            [exe, "-c", "import sys; print(sys.version_info[:2] < (3, 11))"],
            capture_output=True,
            text=True,
        )
        if probe.returncode == 0 and probe.stdout.strip() == "True":
            return exe
    return None


OLD = _older_python()
needs_old = pytest.mark.skipif(OLD is None, reason="no Python older than 3.11 here")


def _copy(tmp_path: Path) -> Path:
    for name in ("Makefile", "pyproject.toml"):
        shutil.copy2(ROOT / name, tmp_path / name)
    return tmp_path


def _make(root: Path, python: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["make", "venv", f"PYTHON={python}"], cwd=root, capture_output=True, text=True
    )


@needs_old
def test_an_old_python_is_refused_in_one_line_before_anything_is_made(tmp_path):
    root = _copy(tmp_path)
    res = _make(root, str(OLD))
    said = [line for line in res.stderr.splitlines() if not line.startswith("make")]
    assert res.returncode == 2, res.stderr
    assert len(said) == 1 and "needs Python 3.11 or newer" in said[0], res.stderr
    version = subprocess.run([str(OLD), "-V"], capture_output=True, text=True)
    assert (version.stdout or version.stderr).strip() in said[0]  # what it found
    assert "PYTHON=python3.11" in said[0]
    assert "Requires-Python" not in res.stdout + res.stderr
    assert not (root / ".venv").exists()


@needs_old
def test_a_venv_an_old_python_made_is_named_with_the_way_out(tmp_path):
    root = _copy(tmp_path)
    subprocess.run([str(OLD), "-m", "venv", "--without-pip", str(root / ".venv")], check=True)
    res = _make(root, sys.executable)  # a good Python now: the old .venv would stick
    assert res.returncode == 2, res.stderr
    assert ".venv was made with Python 3." in res.stderr and "make clean" in res.stderr
    assert not list((root / ".venv").glob(".installed-*"))


def test_a_missing_python_is_named(tmp_path):
    res = _make(_copy(tmp_path), str(tmp_path / "no-such-python"))
    assert res.returncode == 2
    assert "does not run here" in res.stderr and "PYTHON=python3.11" in res.stderr, res.stderr


def test_a_python_that_fails_to_run_is_one_line_not_its_own_error(tmp_path):
    """A pyenv shim of a version not selected prints several lines of its own and exits
    127: one line of ours, not theirs, and not 'too old' (it may be newer)."""
    shim = tmp_path / "python3.12"
    shim.write_text("#!/bin/sh\necho 'pyenv: python3.12: command not found' >&2\n"
                    "echo 'The python3.12 command exists in these Python versions:' >&2\n"
                    "exit 127\n")  # fmt: skip
    shim.chmod(0o755)
    tree = tmp_path / "tree"
    tree.mkdir()
    res = _make(_copy(tree), str(shim))
    said = [line for line in res.stderr.splitlines() if not line.startswith("make")]
    assert res.returncode == 2 and len(said) == 1, res.stderr
    assert "does not run here" in said[0] and "pyenv:" not in said[0]
    assert "needs Python 3.11" not in said[0]


def test_a_venv_whose_python_does_not_run_is_one_line(tmp_path):
    """A .venv whose interpreter fails (a pyenv shim left behind) is named in one line of
    ours, without the shim's own lines."""
    root = _copy(tmp_path)
    bindir = root / ".venv" / "bin"
    bindir.mkdir(parents=True)
    shim = bindir / "python"
    shim.write_text("#!/bin/sh\necho 'pyenv: python: command not found' >&2\nexit 127\n")
    shim.chmod(0o755)
    res = _make(root, sys.executable)
    said = [line for line in res.stderr.splitlines() if not line.startswith("make")]
    assert res.returncode == 2 and len(said) == 1, res.stderr
    assert ".venv's Python does not run here" in said[0] and "pyenv:" not in said[0]


@pytest.mark.slow  # make bench, two benches: ~9 s (make test-slow; CI runs both)
def test_make_bench_takes_a_store_path_with_spaces_and_several_specs(tmp_path):
    """STORE reached the shell unquoted: `STORE="my store.duckdb"` became `--store my` and
    a second spec `store.duckdb`. SPEC stays a list (several specs, or a glob). A real
    `make bench` of two small specs (numpy) into a store whose folder and name have
    spaces, read back."""
    import os

    import duckdb

    specs = []
    for name in ("one", "two"):
        spec = tmp_path / f"{name}.yaml"
        spec.write_text(
            f"name: {name}\nmodel: {{family: matmul, m: 8, k: 8, n: 8}}\nrun: {{backends: "
            "[numpy], warmup: 1, iterations: 8, energy_s: 0, dispatch_floor: false}\n"
        )
        specs.append(str(spec))
    (tmp_path / "my folder").mkdir()
    store = tmp_path / "my folder" / "my store.duckdb"
    r = subprocess.run(
        ["make", "-s", "bench", f"SPEC={' '.join(specs)}", f"STORE={store}", "BACKEND=numpy"],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
        env={**os.environ, "ANEMLL_SPEC_CACHE": str(tmp_path / "cache")},
    )  # fmt: skip
    assert r.returncode == 0, r.stdout + r.stderr
    for line in r.stdout.splitlines():  # make bench writes them under the checkout's reports/
        if line.startswith("report: "):
            Path(line[8:]).unlink()
    con = duckdb.connect(str(store), read_only=True)
    names = con.execute("SELECT spec_name FROM runs ORDER BY spec_name").fetchall()
    (cases,) = con.execute("SELECT count(*) FROM cases WHERE status = 'ok'").fetchone()
    con.close()
    assert names == [("one",), ("two",)] and cases == 2
    assert not (ROOT / "my").exists()
