"""A full disk (issue 15.7): one clear line, nothing half-written, earlier writes kept.

The disk is made full for a child process with RLIMIT_FSIZE (no root, no mount: CI has
neither): every write past the limit fails with EFBIG, which DuckDB reports like
ENOSPC, as an IOException ("File too large"). SIGXFSZ is ignored, as a full disk
sends no signal.
"""

from __future__ import annotations

import os
import resource
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import duckdb
import numpy as np
import pytest
from fixtures.store.bundles import content
from fixtures.store.synth import case, new_run, one_case_run, samples_ns

from anemll_spec.errors import InputError
from anemll_spec.store import append_case, finish_run, open_store
from anemll_spec.store.exporting import export_bundle

ROOT = Path(__file__).resolve().parents[1]


def limited(limit: int):
    def set_limit() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    return set_limit


def run_limited(args: list, limit: int, **kw) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "tests")}
    return subprocess.run(
        [sys.executable, *map(str, args)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=env,
        preexec_fn=limited(limit),
        timeout=300,
        **kw,
    )


def store_with_a_run(path: Path, n: int = 50) -> str:
    rng = np.random.default_rng(1)
    run_id = new_run(path)
    wall = samples_ns(rng, n, 5.0)
    append_case(path, run_id, case(wall=wall), wall)
    finish_run(path, run_id, "finished")
    con = open_store(path)
    con.execute("CHECKPOINT")  # everything in the file; the log is empty
    con.close()
    return run_id


def test_a_bench_write_on_a_full_disk_is_one_line_and_keeps_finished_cases(tmp_path):
    """The runner's calls in a child: a small case fits, a large one does not. The
    failed append is one StoreWriteFailed (exit status 1), rolled back; the finished
    case stays; the store opens and reads afterwards."""
    store = tmp_path / "s.duckdb"
    store_with_a_run(store)
    limit = store.stat().st_size  # the file may not grow; the log may take ~this much
    child = textwrap.dedent(
        """
        import sys
        import numpy as np
        from fixtures.store.synth import case, new_run
        from anemll_spec.store import StoreWriteFailed, append_case, finish_run
        store = sys.argv[1]
        run_id = new_run(store)
        print("RUN", run_id)
        append_case(store, run_id, case(), [5_000_000, 5_100_000])
        big = np.arange(1, 400_001, dtype=np.int64) * 10
        try:
            append_case(store, run_id, case(wall=big[:100]), big)
        except StoreWriteFailed as exc:
            print("EXIT", exc.exit_code, "|", exc)
        """
    )
    r = run_limited(["-c", child, store], limit)
    assert "Traceback" not in r.stderr, r.stderr
    (line,) = [x for x in r.stdout.splitlines() if x.startswith("EXIT")]
    assert line.startswith("EXIT 1 | could not write the store")
    assert "File too large" in line and "rolled back, earlier ones are kept" in line
    (run_id,) = [x.split()[1] for x in r.stdout.splitlines() if x.startswith("RUN ")]
    con = open_store(store, read_only=True)
    try:
        # the child's run by its id: two runs begun in one second need not sort by age
        n_ok, n_samples = con.execute(
            "SELECT count(*), sum(n_samples) FROM cases WHERE run_id = ?", [run_id]
        ).fetchone()
        assert (n_ok, n_samples) == (1, 2)  # the finished case, not the failed one
        assert con.execute("SELECT count(*) FROM samples").fetchone() == (52,)
    finally:
        con.close()


def test_import_on_a_full_disk_is_one_line_exit_2_and_writes_nothing(tmp_path):
    src = tmp_path / "src.duckdb"
    one_case_run(src, seed=2, n=200_000)
    big = tmp_path / "big.parquet"
    export_bundle(src, big)
    dest = tmp_path / "dest.duckdb"
    store_with_a_run(dest)
    before = content(dest)
    r = run_limited(["-m", "anemll_spec", "import", big, "--store", dest], dest.stat().st_size)
    assert r.returncode == 2, r.stderr
    assert "Traceback" not in r.stderr and len(r.stderr.strip().splitlines()) == 1
    assert "nothing written" in r.stderr and "File too large" in r.stderr
    assert content(dest) == before


def test_export_on_a_full_disk_is_one_line_exit_2_and_leaves_no_file(tmp_path):
    src = tmp_path / "src.duckdb"
    store_with_a_run(src, n=100_000)
    out = tmp_path / "out" / "x.parquet"
    out.parent.mkdir()
    r = run_limited(["-m", "anemll_spec", "export", "--store", src, "--out", out], 64 * 1024)
    assert r.returncode == 2, r.stderr
    assert "Traceback" not in r.stderr and len(r.stderr.strip().splitlines()) == 1
    assert "cannot write" in r.stderr and "nothing written" in r.stderr
    assert list(out.parent.iterdir()) == []  # no bundle, no temp file


@pytest.mark.parametrize("where", ["/proc/x.parquet", "/proc/self/nope/x.parquet"])
def test_export_to_a_path_the_system_refuses_is_one_line(cli, tmp_path, where):
    src = tmp_path / "src.duckdb"
    store_with_a_run(src)
    r = cli("export", "--store", src, "--out", where)
    assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr
    assert len(r.stderr.strip().splitlines()) == 1


def read_runs(store: Path) -> list:
    con = duckdb.connect(str(store), read_only=True)  # the file itself, without anemll-spec
    try:
        return con.execute("SELECT run_id, status FROM runs").fetchall()
    finally:
        con.close()


@pytest.fixture
def full_disk(tmp_path):
    """A 1 MiB tmpfs filled to its last byte (root only: skipped where mount is refused)."""
    where = tmp_path / "small"
    where.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(where)], capture_output=True
    )
    if mounted.returncode != 0:
        pytest.skip("cannot mount a tmpfs here (needs root)")
    try:
        fill = (where / "fill").open("wb", buffering=0)  # unbuffered: nothing left to flush
        with fill, pytest.raises(OSError, match="No space left"):
            while True:
                fill.write(b"\0" * 4096)
        yield where
    finally:
        subprocess.run(["umount", str(where)], check=True)


def test_a_new_store_on_a_full_disk_says_so_and_leaves_no_file(full_disk):
    """The first open failed 'No space left on device' and left an empty file; its retry
    then said 'is not a DuckDB database', and the empty file blocked the path even after
    space was freed. Now: the first reason, no file, and a store once there is room."""
    store = full_disk / "s.duckdb"
    with pytest.raises(InputError) as err:
        open_store(store)
    assert str(err.value) == (
        f"cannot make the store {store}: the disk is full (IO Error: Could not write file "
        f'"{store}": No space left on device); no file was left there. Give a --store in a '
        "writable folder with room"
    )
    assert sorted(p.name for p in full_disk.iterdir()) == ["fill"]
    (full_disk / "fill").unlink()
    run_id = one_case_run(store, seed=4)
    assert read_runs(store) == [(run_id, "finished")]


def test_a_store_whose_making_hit_the_file_size_limit_leaves_no_file(tmp_path):
    """As on a full disk, with no root needed: the first write of the new file stops after
    4 KiB (RLIMIT_FSIZE), leaving a piece of a header that DuckDB then called damaged."""
    store = tmp_path / "deep" / "s.duckdb"
    child = textwrap.dedent(
        """
        import sys
        from anemll_spec.errors import InputError
        from anemll_spec.store import open_store
        try:
            open_store(sys.argv[1])
        except InputError as exc:
            print("REFUSED", exc)
        """
    )
    r = run_limited(["-c", child, store], 4096)
    assert r.returncode == 0 and "Traceback" not in r.stderr, r.stderr
    assert r.stdout == (
        f'REFUSED cannot make the store {store}: IO Error: Could not write file "{store}": '
        "File too large; no file was left there. Give a --store in a writable folder with "
        "room\n"
    )
    assert list(store.parent.iterdir()) == []
    run_id = one_case_run(store, seed=5)
    assert read_runs(store) == [(run_id, "finished")]


def test_an_empty_file_is_no_store_yet(tmp_path):
    """DuckDB refuses an empty file ('not a valid DuckDB database file'): one left by a
    failed open (older versions) blocked its path. Reading finds no store there; writing
    makes the store in its place."""
    from anemll_spec.cli._common import is_new_store

    store = tmp_path / "s.duckdb"
    store.touch()
    assert is_new_store(str(store))
    with pytest.raises(InputError, match=f"^no results store at {store} \\(run `anemll-spec"):
        open_store(store, read_only=True)
    assert store.stat().st_size == 0  # reading changed nothing
    run_id = one_case_run(store, seed=6)
    assert read_runs(store) == [(run_id, "finished")] and not is_new_store(str(store))
