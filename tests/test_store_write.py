"""The write API against real DuckDB files: rows, samples, placements, validation, locks."""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import stat
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import numpy as np
import pytest
from fixtures.store.synth import case, host, new_run, one_case_run, run, samples_ns

from anemll_spec.errors import InputError
from anemll_spec.hashing import digest
from anemll_spec.store import (
    StoreLocked,
    append_case,
    begin_run,
    default_target,
    finish_run,
    open_store,
    schema,
    store_path,
)


def read(store, sql, params=()):
    con = duckdb.connect(str(store), read_only=True)
    try:
        return con.execute(sql, list(params)).fetchall()
    finally:
        con.close()


def test_default_target_precedence(monkeypatch):
    monkeypatch.delenv("ANEMLL_SPEC_STORE", raising=False)
    assert default_target() == "store/results.duckdb"
    monkeypatch.setenv("ANEMLL_SPEC_STORE", "/x/env.duckdb")
    assert default_target() == "/x/env.duckdb"
    assert default_target("cli.duckdb") == "cli.duckdb"


def test_run_case_samples_round_trip(tmp_path):
    store = tmp_path / "s" / "results.duckdb"  # parent folder is created
    rng = np.random.default_rng(0)
    started = dt.datetime(2025, 5, 1, 10, 0, 0)
    run_id = begin_run(store, run(started_at=started, git_dirty=True), host())
    wall = samples_ns(rng, 500, 7.5)
    cid = append_case(
        store, run_id, case("k1", wall=wall, params={"model.vocab_size": 32000}), wall
    )
    finish_run(store, run_id, "finished")

    got = np.array([r[0] for r in read(store, "SELECT wall_ns FROM samples ORDER BY idx")])
    np.testing.assert_array_equal(got, wall)
    ((status, fin, st, dirty, pid),) = read(
        store, "SELECT status, finished_at, started_at, git_dirty, writer_pid FROM runs"
    )
    assert status == "finished" and fin is not None and st == started and dirty is True
    assert pid == os.getpid()
    ((n, median, params, key),) = read(
        store, "SELECT n_samples, median_ms, params, case_key FROM cases WHERE case_id = ?", [cid]
    )
    assert n == 500 and key == digest("k1")  # a label becomes a key of the documented form
    assert median == pytest.approx(np.median(wall) / 1e6)
    assert json.loads(params) == {"model.vocab_size": 32000}
    # the results view joins run and host and normalises the chip name
    ((chip, raw, run_status, source),) = read(
        store, "SELECT chip, chip_raw, run_status, source FROM results"
    )
    assert (chip, raw, run_status, source) == ("M4 Max", "Apple M4 Max", "finished", "own")


def test_identical_hosts_share_a_row(tmp_path):
    store = tmp_path / "r.duckdb"
    begin_run(store, run(), host())
    begin_run(store, run(), host())
    begin_run(store, run(), host(thermal_state="serious"))
    assert read(store, "SELECT count(*) FROM hosts") == [(2,)]
    assert read(store, "SELECT count(DISTINCT host_id) FROM runs") == [(2,)]


@pytest.mark.parametrize(
    "samples, wall, runtime",
    [
        ([3, 1, 2], [3, 1, 2], [None, None, None]),
        (np.array([5, 6], dtype=np.int32), [5, 6], [None, None]),
        (np.array([5.0, 6.0]), [5, 6], [None, None]),
        (np.array([[10, 7], [11, 8]], dtype=np.int64), [10, 11], [7, 8]),
        (np.array([[10, np.nan], [11, 8.0]]), [10, 11], [None, 8]),
        ([(10, None), (11, 9)], [10, 11], [None, 9]),
        ([], [], []),
    ],
)
def test_sample_forms(tmp_path, samples, wall, runtime):
    store = tmp_path / "r.duckdb"
    run_id = new_run(store)
    cid = append_case(store, run_id, case(), samples)
    rows = read(
        store, "SELECT idx, wall_ns, runtime_ns FROM samples WHERE case_id = ? ORDER BY idx", [cid]
    )
    assert [r[0] for r in rows] == list(range(len(wall)))
    assert [r[1] for r in rows] == wall
    assert [r[2] for r in rows] == runtime
    assert read(store, "SELECT n_samples FROM cases") == [(len(wall),)]


@pytest.mark.parametrize(
    "samples, message",
    [
        ([1, -2], "negative"),
        (np.array([1.5, 2.0]), "whole nanoseconds"),
        (np.array([1.0, np.inf]), "finite"),
        (np.zeros((2, 3)), "shape"),
        (["a", "b"], "integers"),
    ],
)
def test_bad_samples_write_nothing(tmp_path, samples, message):
    store = tmp_path / "r.duckdb"
    run_id = new_run(store)
    with pytest.raises(InputError, match=message):
        append_case(store, run_id, case(), samples)
    assert read(store, "SELECT count(*) FROM cases") == [(0,)]


def test_case_dict_takes_exactly_the_declared_columns(tmp_path):
    store = tmp_path / "r.duckdb"
    run_id = new_run(store)
    with pytest.raises(InputError, match="unknown field.*'median_msec'"):
        append_case(store, run_id, case(median_msec=1.0), [1])
    with pytest.raises(InputError, match="unknown field.*'case_id'"):
        append_case(store, run_id, case(case_id="mine"), [1])
    # missing -> NULL; NaN -> NULL
    cid = append_case(
        store,
        run_id,
        {"case_key": "0123456789abcdef", "status": "ok", "mean_ms": float("nan")},
        [1],
    )
    row = read(store, "SELECT * FROM cases WHERE case_id = ?", [cid])[0]
    names = schema.CASES.names
    values = dict(zip(names, row, strict=True))
    filled = {"case_id", "run_id", "case_key", "status", "n_samples", "finished_at"}
    assert all(values[n] is None for n in names if n not in filled)


@pytest.mark.parametrize(
    "over, message",
    [
        ({"status": "great"}, "status = 'great' is not one of ok, failed, skipped"),
        ({"median_ms": -1.0}, "median_ms = -1.0 is below its minimum 0"),
        ({"median_ms": "7"}, "median_ms must be a number"),
        ({"throttled": 1}, "throttled must be a bool"),
        ({"weight_bytes": 1.5}, "weight_bytes = 1.5 must be an integer"),
        ({"case_index": 2**40}, "does not fit INTEGER"),
        ({"verify_cosine": 1.5}, "above its maximum"),
        ({"case_key": None}, "case_key is required"),
        # a form an import checks is checked on write too: nothing stored is refused later
        ({"case_key": "k"}, "case_key = 'k' is not of the form"),
        ({"model_sha256": "../../etc/passwd"}, "model_sha256 = '../../etc/passwd' is not"),
        ({"n_samples": 3}, "n_samples = 3 but 1 samples given"),
        ({"params": "{not json"}, "not valid JSON"),
    ],
)
def test_case_values_are_checked(tmp_path, over, message):
    store = tmp_path / "r.duckdb"
    run_id = new_run(store)
    with pytest.raises(InputError, match=message.replace("(", r"\(")):
        append_case(store, run_id, case(**over), [1])
    assert read(store, "SELECT count(*) FROM cases") == [(0,)]


def test_run_and_host_dicts_are_checked(tmp_path):
    store = tmp_path / "r.duckdb"
    with pytest.raises(InputError, match="unknown field.*'status'"):
        begin_run(store, run(status="finished"), host())
    with pytest.raises(InputError, match="unknown field.*'gpu_name'"):
        begin_run(store, run(), host(gpu_name="x"))
    with pytest.raises(InputError, match="no run 'nope'"):
        append_case(store, "nope", case(), [1])
    run_id = new_run(store)
    with pytest.raises(InputError, match="status 'done'"):
        finish_run(store, run_id, "done")


def test_placements_and_numpy_scalars(tmp_path):
    store = tmp_path / "r.duckdb"
    run_id = new_run(store)
    plc = [
        {
            "op_name": "x",
            "op_type": "conv",
            "preferred_device": "NeuralEngine",
            "estimated_cost": None,
        },
        {
            "op_name": "y",
            "op_type": "add",
            "preferred_device": "CPU",
            "estimated_cost": np.float32(0.25),
        },
    ]
    cid = append_case(
        store, run_id, case(median_ms=np.float64(1.5), weight_bytes=np.int64(7)), [1, 2], plc
    )
    rows = read(
        store,
        "SELECT op_index, op_name, op_type, preferred_device, estimated_cost FROM placements "
        "WHERE case_id = ? ORDER BY op_index",
        [cid],
    )
    assert rows == [(0, "x", "conv", "NeuralEngine", None), (1, "y", "add", "CPU", 0.25)]
    assert read(store, "SELECT median_ms, weight_bytes FROM cases") == [(1.5, 7)]
    with pytest.raises(InputError, match="placement 0: unknown field"):
        append_case(store, run_id, case(), [1], [{"device": "CPU"}])


def test_newer_store_is_refused(tmp_path):
    store = tmp_path / "r.duckdb"
    open_store(store).close()
    con = duckdb.connect(str(store))
    con.execute("UPDATE meta SET value = '99' WHERE key = 'schema_version'")
    con.close()
    for read_only in (False, True):
        with pytest.raises(InputError, match="schema v99, written by a newer anemll-spec"):
            open_store(store, read_only=read_only)


def test_foreign_files_are_refused(tmp_path):
    other = tmp_path / "other.duckdb"
    con = duckdb.connect(str(other))
    con.execute("CREATE TABLE t (a INTEGER)")
    con.close()
    with pytest.raises(InputError, match="not an anemll-spec results store"):
        open_store(other)
    text = tmp_path / "notes.duckdb"
    text.write_text("hello")
    with pytest.raises(InputError, match="is not a DuckDB database"):
        open_store(text)
    with pytest.raises(InputError, match="no results store at"):
        open_store(tmp_path / "missing.duckdb", read_only=True)


def test_import_or_pull_into_another_database_is_refused_as_not_a_store(tmp_path, cli):
    """The scratch check read such a file's `runs` without asking what it is: DuckDB then
    scanned a Python string of that name in its place ('Python Object "runs" of type
    "str" ... not suitable for replacement scans', exit 1). Refused, exit 2, unchanged."""
    other = tmp_path / "other.duckdb"
    con = duckdb.connect(str(other))
    con.execute("CREATE TABLE foo (x INTEGER)")
    con.close()
    src = tmp_path / "src.duckdb"
    one_case_run(src, seed=1)
    bundle = tmp_path / "b.parquet"
    assert cli("export", "--store", src, "--out", bundle).returncode == 0
    before = other.read_bytes()
    for args in (("pull", "--from", src), ("import", bundle)):
        r = cli(*args, "--store", other)
        assert r.returncode == 2 and r.stderr.count("\n") == 1, r.stderr
        assert r.stderr.endswith(
            f"{other} is a DuckDB database but not an anemll-spec results store\n"
        )
        assert other.read_bytes() == before


def test_a_bundle_or_csv_given_as_the_store_is_refused_and_unchanged(tmp_path, cli):
    """DuckDB opens a Parquet or CSV file as an in-memory database: an import or a bench
    'into' one was kept in memory and lost (exit 0). Refused before anything runs."""
    bundle = tmp_path / "runs.parquet"
    shutil.copy(Path(__file__).parent / "fixtures" / "store" / "v2.parquet", bundle)
    table = tmp_path / "runs.csv"
    table.write_text("a,b\n1,2\n")
    spec = tmp_path / "s.yaml"
    spec.write_text(
        "name: s\nmodel: {family: matmul, m: 8, k: 8, n: 8}\nrun: {backends: [numpy]}\n"
    )
    for store, says in (
        (bundle, "is a Parquet file (a results bundle?)"),
        (table, "is not a DuckDB"),
    ):
        before = store.read_bytes()
        for args in (("import", bundle), ("query", "SELECT 1"), ("bench", spec)):
            r = cli(*args, "--store", store)
            assert r.returncode == 2 and says in r.stderr and "Traceback" not in r.stderr, r.stderr
        assert store.read_bytes() == before
    assert "anemll-spec import" in cli("query", "SELECT 1", "--store", bundle).stderr


def test_a_folder_or_a_path_under_a_file_as_the_store_is_not_called_damaged(tmp_path, cli):
    """`--store store` (the folder) was 'damaged; move it aside' to bench and 'run bench
    first' to query; a path under a file was 'damaged' too."""
    folder = tmp_path / "store"
    open_store(folder / "results.duckdb").close()
    afile = tmp_path / "notes.txt"
    afile.write_text("x")
    spec = tmp_path / "s.yaml"
    spec.write_text("name: s\nmodel: {family: matmul, m: 8, k: 8, n: 8}\n")
    held = sorted(p.name for p in folder.iterdir())
    for store, says in (
        (folder, f"is a folder: give the results store's file, e.g. {folder}/results.duckdb"),
        (afile / "x.duckdb", f"{afile} is a file, not a folder"),
    ):
        v2 = Path(__file__).parent / "fixtures" / "store" / "v2.parquet"
        for args in (("query", "SELECT 1"), ("bench", spec), ("import", v2)):
            r = cli(*args, "--store", store)
            assert r.returncode == 2 and says in r.stderr, r.stderr
            assert "damaged" not in r.stderr and "Traceback" not in r.stderr
    assert afile.read_text() == "x" and sorted(p.name for p in folder.iterdir()) == held


# Holds a store's lock for argv[2] seconds, or until a line arrives on stdin ("told").
HOLD_LOCK = """
import sys, time, duckdb
con = duckdb.connect(sys.argv[1])
print("locked", flush=True)
sys.stdin.readline() if sys.argv[2] == "told" else time.sleep(float(sys.argv[2]))
con.close()
"""


def test_waits_for_a_locked_store_then_fails_clearly(tmp_path, capfd):
    store = tmp_path / "r.duckdb"
    run_id = new_run(store)
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD_LOCK, str(store), "30"], stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout.readline().strip() == "locked"
        t0 = time.monotonic()
        with pytest.raises(StoreLocked, match="stayed locked by another process for 0.5 s"):
            append_case(store, run_id, case(), [1], lock_timeout_s=0.5)
        assert 0.4 < time.monotonic() - t0 < 5
        err = capfd.readouterr().err
        assert err.count(f"waiting for the store {store} (locked by another process)...") == 1
    finally:
        holder.kill()
        holder.wait()


def test_waits_until_the_lock_is_released(tmp_path, capsys):
    """The holder lets go only once the writer said it is waiting: no clock decides."""
    import threading

    store = tmp_path / "r.duckdb"
    run_id = new_run(store)
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD_LOCK, str(store), "told"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    failed: list[BaseException] = []

    def write() -> None:
        try:
            append_case(store, run_id, case(), [1, 2, 3], lock_timeout_s=120)
        except BaseException as exc:  # noqa: BLE001 - reported by the test thread
            failed.append(exc)

    writer = threading.Thread(target=write)
    try:
        assert holder.stdout.readline().strip() == "locked"
        capsys.readouterr()
        writer.start()
        said = ""
        while "waiting for the store" not in said:
            assert writer.is_alive(), failed
            said += capsys.readouterr().err
            time.sleep(0.02)
        holder.stdin.write("go\n")
        holder.stdin.flush()
        writer.join(timeout=120)
        assert not writer.is_alive() and not failed, failed
        said += capsys.readouterr().err
        assert said.count("waiting for the store") == 1  # said once, however long
    finally:
        holder.kill()
        holder.wait(timeout=30)
        writer.join(timeout=1)
    assert read(store, "SELECT count(*) FROM samples") == [(3,)]


def _dead_writers_run(store: Path) -> str:
    """A run left 'running' by a process that has ended (a child begins it and exits)."""
    code = "import sys; from fixtures.store.synth import new_run; print(new_run(sys.argv[1]))"
    child = subprocess.run(
        [sys.executable, "-c", code, str(store)],
        capture_output=True, text=True, check=True, cwd=os.path.dirname(__file__),
    )  # fmt: skip
    return child.stdout.strip()


def this_machine() -> str | None:
    """runs.writer_machine_id as the docs define it, computed here from the file itself."""
    import hashlib

    for name in ("/etc/machine-id", "/var/lib/dbus/machine-id"):
        if os.path.isfile(name) and (raw := Path(name).read_text().strip()):
            salted = b"anemll-spec writer machine\0" + raw.lower().encode()
            return hashlib.sha256(salted).hexdigest()[:16]
    return None


@pytest.mark.skipif(sys.platform != "linux", reason="Linux's machine-id")
def test_a_run_records_its_writer_machine_id(tmp_path):
    store = tmp_path / "r.duckdb"
    new_run(store)
    assert read(store, "SELECT writer_machine_id FROM runs") == [(this_machine(),)]


def test_a_same_named_machines_live_run_is_not_marked_interrupted(tmp_path):
    """Two lab Macs named alike write one shared store: a run whose writer_machine_id is
    another machine's is left alone, though its pid does not exist here; a run without
    one (stored before v5) is matched by hostname alone, as before."""
    store = tmp_path / "r.duckdb"
    theirs = _dead_writers_run(store)
    con = duckdb.connect(str(store))
    con.execute("UPDATE runs SET writer_machine_id = '0123456789abcdef'")  # another machine's
    con.close()
    assert this_machine() != "0123456789abcdef"
    mine = new_run(store)
    assert dict(read(store, "SELECT run_id, status FROM runs")) == {
        theirs: "running",
        mine: "running",
    }
    con = duckdb.connect(str(store))
    con.execute("UPDATE runs SET writer_machine_id = NULL WHERE run_id = ?", [theirs])
    con.close()
    new_run(store)
    assert dict(read(store, "SELECT run_id, status FROM runs"))[theirs] == "interrupted"


def test_an_imported_running_run_is_not_marked_interrupted(tmp_path):
    """A run exported while running, by a writer whose pid means nothing in the store it
    is imported into: the next bench there must not call it interrupted."""
    from anemll_spec.store.importing import import_bundles

    src, dest = tmp_path / "a.duckdb", tmp_path / "b.duckdb"
    code = (
        "import sys; from fixtures.store.synth import new_run; "
        "from anemll_spec.store.exporting import export_bundle; "
        "r = new_run(sys.argv[1]); export_bundle(sys.argv[1], sys.argv[2]); print(r)"
    )
    child = subprocess.run(
        [sys.executable, "-c", code, str(src), str(tmp_path / "b.parquet")],
        capture_output=True, text=True, check=True, cwd=os.path.dirname(__file__),
    )  # fmt: skip
    running = child.stdout.strip()
    import_bundles(dest, [tmp_path / "b.parquet"])
    mine = new_run(dest)  # begin_run looks for dead writers of this host's runs
    assert dict(read(dest, "SELECT run_id, status FROM runs")) == {
        running: "running",
        mine: "running",
    }
    new_run(src)  # in the store it was measured in, its writer is gone: interrupted
    assert dict(read(src, "SELECT run_id, status FROM runs"))[running] == "interrupted"
    # a run stored before v3 has no origin: it was measured here, and is marked too
    con = duckdb.connect(str(src))
    con.execute(
        "UPDATE runs SET status = 'running', origin = NULL, finished_at = NULL WHERE run_id = ?",
        [running],
    )
    con.close()
    new_run(src)
    assert dict(read(src, "SELECT run_id, status FROM runs"))[running] == "interrupted"


def test_v3_gpu_facts_are_stored_and_part_of_the_host_id(tmp_path):
    """Issue 13.4: the facts torch collects reach `hosts`, and host_id hashes them."""
    import hashlib

    from anemll_spec.store import schema

    store = tmp_path / "s.duckdb"
    gpu = {"gpu": "NVIDIA H100", "triton_version": "3.4.0", "gpu_memory_bytes": 85 * 10**9,
           "gpu_capability": "9.0", "cudnn_version": 91002}  # fmt: skip
    ids = []
    for sms in (132, 114):
        h = host(**gpu, gpu_sm_count=sms)
        begin_run(store, run(), h)
        full = {c: h.get(c) for c in schema.HOSTS.names if c != "host_id"}
        canon = json.dumps(full, sort_keys=True, separators=(",", ":"))
        ids.append(hashlib.sha256(canon.encode()).hexdigest()[:16])
    rows = read(
        store,
        "SELECT host_id, gpu_sm_count, triton_version, gpu_memory_bytes, gpu_capability, "
        "cudnn_version FROM hosts ORDER BY gpu_sm_count DESC",
    )
    assert [r[0] for r in rows] == ids and len(set(ids)) == 2
    assert rows[0][1:] == (132, "3.4.0", 85 * 10**9, "9.0", 91002)


def test_notes_and_start_times_are_stored(tmp_path):
    store = tmp_path / "s.duckdb"
    run_id = new_run(store)
    wall = np.array([5_000_000, 5_200_000, 4_900_000])
    starts = np.array([10**15 + 7, 10**15 + 5_300_000, 10**15 + 10_800_000])
    cid = append_case(
        store, run_id, case(notes=["noisy: CV 12%", "weights decoded at load"]), wall,
        starts_ns=starts,
    )  # fmt: skip
    ((notes,),) = read(store, "SELECT notes FROM cases WHERE case_id = ?", [cid])
    assert json.loads(notes) == ["noisy: CV 12%", "weights decoded at load"]
    got = [r[0] for r in read(store, "SELECT start_ns FROM samples ORDER BY idx")]
    assert got == [0, 5_299_993, 10_799_993]  # after the earliest start
    with pytest.raises(InputError, match="2 start times for 3 samples"):
        append_case(store, run_id, case(), wall, starts_ns=starts[:2])
    with pytest.raises(InputError, match="longer than any real call"):
        append_case(store, run_id, case(), [2**62])


def test_finish_run_leaves_no_write_ahead_log(tmp_path):
    """Appends only log (the checkpoint waits for 1.5 MB of log); finish_run checkpoints,
    so a finished run's store is one self-contained file that readers replay nothing of."""
    store = tmp_path / "r.duckdb"
    wal = tmp_path / "r.duckdb.wal"
    run_id = new_run(store)
    wall = np.random.default_rng(4).integers(1_000_000, 2_000_000, 10_000)
    append_case(store, run_id, case(wall=wall), wall)
    assert wal.exists() and wal.stat().st_size > 100_000  # the samples, in the log
    finish_run(store, run_id, "finished")
    assert not wal.exists() or wal.stat().st_size == 0
    copy = tmp_path / "copy.duckdb"
    copy.write_bytes(store.read_bytes())  # the file alone holds the run
    assert read(copy, "SELECT count(*), sum(wall_ns) FROM samples") == [(10_000, int(wall.sum()))]


def test_an_append_searches_sys_path_for_no_module(tmp_path):
    """DuckDB's client tries `import pandas` for each parameter it converts; where pandas
    is missing, Python searched sys.path again every time (~80 searches, ~13 ms a case).
    The store records the absence once, so an append makes no import search at all."""
    code = """
import importlib.abc, sys
from pathlib import Path
import numpy as np
sys.path.insert(0, sys.argv[2])
from fixtures.store.synth import case, new_run
from anemll_spec.store import append_case
store = Path(sys.argv[1])
run_id = new_run(store)
wall = np.arange(1000, 2000, dtype=np.int64)
append_case(store, run_id, case("warm", wall=wall), wall)
searched = []
class Watch(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        searched.append(name)
        return None
sys.meta_path.insert(0, Watch())
append_case(store, run_id, case("timed", wall=wall), wall)
print(",".join(searched))
"""
    tests = os.path.dirname(os.path.abspath(__file__))
    out = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path / "s.duckdb"), tests],
        capture_output=True,
        text=True,
        check=True,
    )
    assert out.stdout.strip() == "", f"an append searched for modules: {out.stdout.strip()}"


def block_size(store) -> int:
    return read(store, "SELECT block_size FROM pragma_database_size()")[0][0]


def test_a_new_store_gets_small_blocks_and_an_old_one_keeps_its_own(tmp_path):
    """A store this code creates uses 64 KiB blocks (a checkpoint's cost per column
    follows the block size); one made with DuckDB's default 256 KiB keeps it, and both
    take appends and give back exactly what was written."""
    from anemll_spec.store import connection

    new = tmp_path / "new.duckdb"
    old = tmp_path / "old.duckdb"
    duckdb.connect(str(old)).close()  # an empty file of DuckDB's default block size
    wall = np.random.default_rng(5).integers(1_000_000, 2_000_000, 3_000)
    for store in (new, old):
        run_id = new_run(store)
        append_case(store, run_id, case(wall=wall), wall)
        finish_run(store, run_id, "finished")
        assert read(store, "SELECT count(*), sum(wall_ns) FROM samples") == [
            (3_000, int(wall.sum()))
        ]
    assert block_size(new) == connection.NEW_STORE_BLOCK_SIZE == 65_536
    assert block_size(old) == 262_144
    # docs/store.md: export, then import into a new store, moves an old store over
    from anemll_spec.store.exporting import export_bundle
    from anemll_spec.store.importing import import_bundles

    moved = tmp_path / "moved.duckdb"
    export_bundle(old, tmp_path / "old.parquet")
    import_bundles(moved, [tmp_path / "old.parquet"])
    assert block_size(moved) == 65_536
    sql = "SELECT case_id, idx, wall_ns FROM samples ORDER BY case_id, idx"
    assert read(moved, sql) == read(old, sql)


def test_a_new_store_takes_a_second_writer_in_the_same_process(tmp_path):
    """Every writable open gives DuckDB the same configuration (block size included):
    DuckDB refuses a second connection to one file in one process under another one, so
    a caller holding the store open can still append through the API."""
    store = tmp_path / "s.duckdb"
    held = open_store(store)  # creates the file
    try:
        run_id = new_run(store)
        wall = np.arange(1_000, 1_100, dtype=np.int64)
        append_case(store, run_id, case(wall=wall), wall)
        assert held.execute("SELECT count(*) FROM samples").fetchone() == (100,)
    finally:
        held.close()


def test_a_bench_whose_store_stays_locked_loses_nothing(tmp_path, monkeypatch, capsys):
    """Another process holds the store while a case is timed: the case goes to a store of
    the run's own beside it, the run finishes there, bench says how to push it, waits for
    the lock once (not again to finish the run), and never repeats DuckDB's '-readonly'
    hint meant for its CLI."""
    import io

    from db_util import dict_rows

    from anemll_spec.progress import Progress
    from anemll_spec.runner import Runner

    store = tmp_path / "s.duckdb"
    spec = tmp_path / "s.yaml"
    spec.write_text(
        "name: locked\nmodel: {family: matmul, m: 8, k: 8, n: 8}\n"
        "run: {backends: [numpy], warmup: 1, iterations: 20, dispatch_floor: false}\n"
    )
    monkeypatch.setenv("ANEMLL_SPEC_STORE_LOCK_TIMEOUT_S", "1")
    holder: list[subprocess.Popen] = []
    locked_at: list[float] = []

    class Log(io.StringIO):
        def write(self, text: str) -> int:  # the timing starts: someone takes the store
            if "timing" in text and not holder:
                holder.append(subprocess.Popen(
                    [sys.executable, "-c", HOLD_LOCK, str(store), "8"],
                    stdout=subprocess.PIPE, text=True,
                ))  # fmt: skip
                assert holder[0].stdout.readline().strip() == "locked"
                locked_at.append(time.monotonic())
            return super().write(text)

    runner = Runner(spec, store=str(store), cache_dir=tmp_path / "c", progress=Progress(Log()))
    try:
        res = runner.run()
        waited = time.monotonic() - locked_at[0]
    finally:
        for h in holder:
            h.kill()
            h.wait()
    assert res.status == "finished" and [m.status for m in res.results] == ["ok"]
    own = tmp_path / f"s.run-{res.run_id}.duckdb"
    message = res.store_message or ""
    assert message.endswith(f"anemll-spec push {res.run_id} --store {own} --to {store}")
    assert "However" not in message and "-readonly" not in message
    assert dict_rows(own, "SELECT status, (SELECT count(*) FROM cases) AS n FROM runs") == [
        {"status": "finished", "n": 1}
    ]
    # one wait of 1 s, not a second one to finish the run, and not until the holder's 8 s
    assert capsys.readouterr().err.count("waiting for the store") == 1
    assert waited < 6
    assert read(store, "SELECT status, (SELECT count(*) FROM cases) FROM runs") == [("running", 0)]


def test_reading_the_store_does_not_import_the_write_api_or_numpy():
    """Reading commands (query, chart, report, share) open the store; only writers need
    numpy, which the write API imports (~70 ms of every read command's start)."""
    import subprocess
    import sys

    code = (
        "import sys, anemll_spec.store as s; s.open_store; s.default_target;"
        "print(sorted(m for m in ('numpy', 'anemll_spec.store.writer') if m in sys.modules));"
        "s.append_case; print('anemll_spec.store.writer' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["[]", "True"]


def test_a_store_through_a_symlink_to_a_file_not_yet_made_keeps_its_first_run(tmp_path):
    """DuckDB wrote the log of a file it created through a link beside the link, and
    later opens read the log beside the file: the first run lived only in link.wal
    (bench: "no run '...' in the store", exit 2). The store opens the file behind."""
    (tmp_path / "real").mkdir()
    real = tmp_path / "real" / "st.duckdb"
    link = tmp_path / "link.duckdb"
    link.symlink_to(real)
    run_id = one_case_run(link, seed=3)
    assert link.is_symlink() and real.is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["link.duckdb", "real"]  # no link.wal
    assert read(link, "SELECT run_id, status FROM runs") == [(run_id, "finished")]
    con = duckdb.connect(str(real), read_only=True)  # the file itself, without anemll-spec
    assert con.execute("SELECT count(*) FROM samples").fetchone() == (20,)
    con.close()
    assert store_path(link) == real
    with pytest.raises(InputError, match=f"no results store at {tmp_path / 'gone.duckdb'} "):
        (tmp_path / "gone.duckdb").symlink_to(tmp_path / "nowhere.duckdb")
        open_store(tmp_path / "gone.duckdb", read_only=True)
    (tmp_path / "a.duckdb").symlink_to(tmp_path / "b.duckdb")
    (tmp_path / "b.duckdb").symlink_to(tmp_path / "a.duckdb")
    with pytest.raises(InputError, match="a.duckdb: a symlink that leads to itself"):
        open_store(tmp_path / "a.duckdb")


def test_a_fifo_socket_or_device_as_the_store_is_refused_unopened(tmp_path, cli):
    """A FIFO as the store hung forever (the first bytes were read to tell a DuckDB file);
    /dev/null was 'damaged ... Move it aside'. One line, exit 2, and nothing opened."""
    import socket

    fifo = tmp_path / "fifo.duckdb"
    os.mkfifo(fifo)
    spec = tmp_path / "s.yaml"
    spec.write_text("name: s\nmodel: {family: matmul, m: 8, k: 8, n: 8}\n")
    r = cli("bench", spec, "--store", fifo, timeout=30)  # a hang fails here, not forever
    said = f"{fifo} is not a regular file (a FIFO, socket or device): give a results store"
    assert r.returncode == 2 and r.stdout == "", r.stderr
    assert r.stderr == f"anemll-spec bench: error: {said} (a .duckdb file)\n"
    assert stat.S_ISFIFO(fifo.stat().st_mode)
    sock_path = tmp_path / "sock.duckdb"
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(sock_path))
    try:
        for store in (fifo, sock_path, Path("/dev/null")):
            for read_only in (False, True):
                with pytest.raises(InputError) as err:
                    open_store(store, read_only=read_only)
                assert str(err.value) == (
                    f"{store} is not a regular file (a FIFO, socket or device): give a results "
                    "store (a .duckdb file)"
                )
    finally:
        sock.close()
