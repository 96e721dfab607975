"""Real processes: concurrent writers, and writers killed with SIGKILL mid-write."""

from __future__ import annotations

import contextlib
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import pytest
from fixtures.store.synth import new_run

TESTS = Path(__file__).resolve().parent
# a bench of two quick cases: the store is taken from another process between them
TWO_CASES = (
    "name: two\nmodel: {family: matmul, m: 8, k: 8, n: 8}\n"
    "run: {backends: [numpy], warmup: 1, iterations: 10, dispatch_floor: false}\n"
    "sweep: {model.n: [8, 16]}\n"
)
# the second case warms up for 2 s: a lock holder started when "[2/2]" is printed takes
# the store before that case is stored (with no warm-up the case was done in ~0.1 s, and
# a holder still starting lost the race now and then)
TWO_CASES_SLOW_SECOND = (
    "name: two\nmodel: {family: matmul, m: 8, k: 8, n: 8}\n"
    "run: {backends: [numpy], warmup: 1, iterations: 10, dispatch_floor: false}\n"
    "sweep: {run.warmup_s: [0, 2]}\n"
)

WRITER = """
import sys
import numpy as np
from fixtures.store.synth import case, new_run
from anemll_spec.store import append_case, finish_run

store, worker, n_cases = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
rng = np.random.default_rng(worker)
run_id = new_run(store, spec_name=f"worker{worker}")
print("run", run_id, flush=True)
for i in range(n_cases):
    n = int(rng.integers(100, 3000))
    wall = rng.integers(1_000_000, 9_000_000, n)
    cid = append_case(store, run_id, case(f"w{worker}c{i}", case_index=i), wall)
    print("case", cid, n, int(wall.sum()), flush=True)
if n_cases:
    finish_run(store, run_id, "finished")
    print("finished", flush=True)
"""


def spawn(store: Path, worker: int, n_cases: int) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-c", WRITER, str(store), str(worker), str(n_cases)],
        cwd=TESTS,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "ANEMLL_SPEC_STORE_LOCK_TIMEOUT_S": "120"},
    )


def reported(lines: list[str]) -> dict[str, tuple[int, int]]:
    out = {}
    for line in lines:
        parts = line.split()
        # a writer killed mid-print leaves its last line cut: that case counts as the
        # one in flight (committed, never reported), not as a reported one
        if len(parts) == 4 and parts[0] == "case":
            out[parts[1]] = (int(parts[2]), int(parts[3]))
    return out


def stored(store: Path) -> dict[str, tuple[int, int]]:
    """case_id -> (n_samples, sum of wall_ns), checking every case is complete."""
    con = duckdb.connect(str(store), read_only=True)
    try:
        rows = con.execute(
            "SELECT c.case_id, c.n_samples, count(s.idx), count(DISTINCT s.idx), "
            "coalesce(min(s.idx), 0), coalesce(max(s.idx), -1), coalesce(sum(s.wall_ns), 0) "
            "FROM cases c LEFT JOIN samples s USING (case_id) GROUP BY ALL"
        ).fetchall()
        orphans = con.execute(
            "SELECT count(*) FROM samples WHERE case_id NOT IN (SELECT case_id FROM cases)"
        ).fetchone()[0]
    finally:
        con.close()
    assert orphans == 0, "samples without their case: a half-written case"
    out = {}
    for cid, n, count, distinct, lo, hi, total in rows:
        assert n == count == distinct and lo == 0 and hi == n - 1, f"case {cid} is incomplete"
        out[cid] = (n, int(total))
    return out


def test_concurrent_writer_processes_lose_nothing(tmp_path):
    store = tmp_path / "shared.duckdb"
    procs = [spawn(store, w, 20) for w in range(4)]
    outputs = []
    for p in procs:
        out, err = p.communicate(timeout=300)
        assert p.returncode == 0, err
        outputs += out.splitlines()
    expected = reported(outputs)
    assert len(expected) == 80
    assert stored(store) == expected
    con = duckdb.connect(str(store), read_only=True)
    assert con.execute("SELECT status, count(*) FROM runs GROUP BY 1").fetchall() == [
        ("finished", 4)
    ]
    con.close()


@pytest.mark.slow  # writer processes killed mid-write, round after round: 10-13 s (make test-slow; CI runs both)
def test_kill_9_mid_write_leaves_a_consistent_store(tmp_path):
    store = tmp_path / "killed.duckdb"
    rnd = random.Random(1234)
    survivors: dict[str, tuple[int, int]] = {}
    killed_runs = []
    for round_ in range(6):
        proc = spawn(store, 100 + round_, 10_000)  # would run far longer than we let it
        first = proc.stdout.readline()  # its run has begun: the store exists (start-up
        assert first.startswith("run "), proc.stderr.read()  # took 0.5 s to 2 s here)
        time.sleep(rnd.uniform(0.3, 1.7))  # then it appends cases, one every few ms
        os.kill(proc.pid, signal.SIGKILL)
        out, _ = proc.communicate(timeout=30)
        lines = [first, *out.splitlines()]
        killed_runs.append(first.split()[1])
        now = stored(store)  # readable, every case complete
        done = reported(lines)
        # every case the writer saw committed is there with its exact samples
        assert {k: now[k] for k in done} == done
        # nothing from earlier rounds changed
        assert {k: now[k] for k in survivors} == survivors
        # at most the one case in flight beyond what was reported, never half of one
        assert len(set(now) - set(survivors) - set(done)) <= 1
        survivors = now
    assert killed_runs and survivors

    con = duckdb.connect(str(store), read_only=True)
    runs = con.execute("SELECT run_id, status FROM runs ORDER BY started_at, run_id").fetchall()
    con.close()
    # never 'finished': each begin_run marked the runs killed before it; the last still runs
    assert killed_runs == [r for r, _ in runs]
    assert [s for _, s in runs] == ["interrupted"] * (len(runs) - 1) + ["running"]
    new_run(store)  # the next run on this host marks the dead ones
    con = duckdb.connect(str(store), read_only=True)
    status = dict(con.execute("SELECT run_id, status FROM runs").fetchall())
    con.close()
    assert all(status[r] == "interrupted" for r, _ in runs)


@pytest.mark.parametrize("value", ["-5", "abc", "nan"])
def test_lock_timeout_from_the_environment_must_be_seconds(monkeypatch, value):
    from anemll_spec.errors import InputError
    from anemll_spec.store.connection import ENV_LOCK_TIMEOUT, lock_timeout

    monkeypatch.setenv(ENV_LOCK_TIMEOUT, value)
    with pytest.raises(InputError, match="seconds >= 0"):
        lock_timeout()
    monkeypatch.setenv(ENV_LOCK_TIMEOUT, "2.5")
    assert lock_timeout() == 2.5


def _damage(path: Path) -> None:
    """A real store whose header block no longer matches its checksum."""
    con = duckdb.connect(str(path))
    con.execute("CREATE TABLE t AS SELECT range AS a FROM range(100000)")
    con.close()
    with open(path, "r+b") as f:
        f.seek(4096 + 8)
        f.write(b"\x00" * 32)
        f.seek(8192 + 8)
        f.write(b"\x00" * 32)


@pytest.mark.parametrize("read_only", [False, True])
def test_a_damaged_store_is_reported_as_damaged_at_once_not_as_locked(tmp_path, read_only, cli):
    """DuckDB's checksum message says 'block', which holds 'lock': the store must say the
    file is damaged, at once (no 60 s wait), in one line, and leave the file as it was."""
    from anemll_spec.errors import InputError
    from anemll_spec.store import open_store

    store = tmp_path / "damaged.duckdb"
    _damage(store)
    before = store.read_bytes()
    t0 = time.monotonic()
    with pytest.raises(InputError, match="is damaged .*Corrupt database file") as exc:
        open_store(store, read_only=read_only, lock_timeout_s=30)
    assert time.monotonic() - t0 < 5
    assert "\n" not in str(exc.value) and "locked" not in str(exc.value)
    assert store.read_bytes() == before
    out = cli("query", "SELECT 1", "--store", store)
    assert out.returncode == 2 and out.stderr.count("\n") == 1 and "damaged" in out.stderr


@contextlib.contextmanager
def held_by_another_process(store: Path):
    """A second process holding the store's DuckDB write lock for the block. It takes the
    lock as soon as it is free (a bench between two cases may still hold it for a moment:
    one try lost that race now and then), trying for up to 20 s."""
    take = (
        "import duckdb,time\n"
        "end = time.monotonic() + 20\n"
        "while True:\n"
        "    try:\n"
        f"        c = duckdb.connect({str(store)!r}); break\n"
        "    except duckdb.IOException:\n"
        "        if time.monotonic() > end: raise\n"
        "        time.sleep(0.02)\n"
        "print('held', flush=True); time.sleep(30)\n"
    )
    holder = subprocess.Popen(
        [sys.executable, "-c", take],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        yield
    finally:
        holder.kill()
        holder.wait()


def test_an_immutable_store_is_not_writable_not_damaged(tmp_path):
    """EPERM (chattr +i here; a locked file or a TCC-guarded folder on macOS) was called
    'damaged', with advice to restore a copy of a healthy store."""
    import subprocess

    from anemll_spec.errors import InputError
    from anemll_spec.store import open_store

    store = tmp_path / "locked.duckdb"
    new_run(store)
    if subprocess.run(["chattr", "+i", str(store)], capture_output=True).returncode != 0:
        pytest.skip("chattr +i is not available here")
    try:
        with pytest.raises(InputError, match="cannot be written here: the store or its folder"):
            open_store(store)
        open_store(store, read_only=True).close()  # and it still reads
    finally:
        subprocess.run(["chattr", "-i", str(store)], check=True)


def test_a_locked_store_is_still_waited_for(tmp_path):
    """The OS says who holds the lock: a real holder is waited for, then StoreLocked."""
    from anemll_spec.store import StoreLocked, open_store
    from anemll_spec.store.diagnose import locked_by_another

    store = tmp_path / "held.duckdb"
    new_run(store)
    with held_by_another_process(store):
        assert locked_by_another(store, write=True)
        with pytest.raises(StoreLocked, match="stayed locked"):
            open_store(store, lock_timeout_s=0.5)
    assert not locked_by_another(store, write=True)


def test_a_read_only_open_never_upgrades_an_older_store(tmp_path):
    """A read-only command refuses an older store and leaves it byte for byte as it was
    (issue 15.6: an upgrade from `query` crashed on a partial old store)."""
    import shutil

    from anemll_spec.errors import InputError
    from anemll_spec.store import open_store

    store = tmp_path / "old.duckdb"
    shutil.copy(TESTS / "fixtures" / "store" / "v1.duckdb", store)
    before = store.read_bytes()
    with pytest.raises(InputError, match="has schema v1, older .* the next bench, import or push"):
        open_store(store, read_only=True)
    assert store.read_bytes() == before and not Path(str(store) + ".wal").exists()
    open_store(store).close()  # a writing open upgrades it
    open_store(store, read_only=True).close()


def test_a_lock_let_go_before_the_probe_is_still_a_lock(tmp_path, monkeypatch):
    """Four writers: the holder lets go between DuckDB's failed open and the OS probe, the
    next one takes the lock before the retry (make test saw a writer fail so, told its
    store was damaged). DuckDB's own conflict message is a lock: waited for, never damage."""
    from anemll_spec.store import StoreLocked, connection, open_store

    store = tmp_path / "held.duckdb"
    new_run(store)
    monkeypatch.setattr(connection, "locked_by_another", lambda path, write: False)  # the race
    with held_by_another_process(store), pytest.raises(StoreLocked, match="stayed locked"):
        open_store(store, lock_timeout_s=0.5)
    open_store(store).close()  # free again: opens


def test_a_store_locked_mid_bench_loses_no_measured_case(tmp_path, monkeypatch, cli):
    """Another process (an open `duckdb` session, say) takes the store between two cases
    and keeps it past the lock timeout: the cases measured from then on go to a store of
    the run's own beside it, the run finishes there, and the push the message names
    brings the store whole: every case, the run finished."""
    import io

    from db_util import dict_rows

    from anemll_spec.progress import Progress
    from anemll_spec.runner import Runner
    from anemll_spec.runner import case as case_mod

    monkeypatch.setenv("ANEMLL_SPEC_STORE_LOCK_TIMEOUT_S", "1")
    spec = tmp_path / "spec.yaml"
    spec.write_text(TWO_CASES)
    store = tmp_path / "s.duckdb"
    measured = case_mod.run_case
    with contextlib.ExitStack() as held:

        def run_case(env, case, *args):
            if case.index == 1:  # the first case is stored: the store is taken now
                held.enter_context(held_by_another_process(store))
            return measured(env, case, *args)

        monkeypatch.setattr(case_mod, "run_case", run_case)
        runner = Runner(
            spec, store=str(store), cache_dir=tmp_path / "cache", progress=Progress(io.StringIO())
        )
        res = runner.run()
    assert res.status == "finished" and [m.status for m in res.results] == ["ok", "ok"]
    own = tmp_path / f"s.run-{res.run_id}.duckdb"
    push = f"anemll-spec push {res.run_id} --store {own} --to {store}"
    assert res.store_message is not None and res.store_message.endswith(push)
    from anemll_spec.cli.bench import exit_status

    assert exit_status(res) == 1  # the store named lacks the run until the push: not 0
    count = "SELECT count(*) AS n FROM cases WHERE run_id = ?"
    status = "SELECT status FROM runs WHERE run_id = ?"
    assert dict_rows(store, count, [res.run_id]) == [{"n": 1}]
    assert dict_rows(store, status, [res.run_id]) == [{"status": "running"}]
    assert dict_rows(own, count, [res.run_id]) == [{"n": 1}]
    assert dict_rows(own, status, [res.run_id]) == [{"status": "finished"}]
    out = cli(*push.split()[1:])
    assert out.returncode == 0, out.stderr
    assert dict_rows(store, count, [res.run_id]) == [{"n": 2}]
    assert dict_rows(store, status, [res.run_id]) == [{"status": "finished"}]
    samples = "SELECT count(*) AS n FROM samples JOIN cases USING (case_id) WHERE run_id = ?"
    assert dict_rows(store, samples, [res.run_id]) == [
        {"n": sum(len(m.wall_ns) for m in res.results)}
    ]


@pytest.mark.slow  # a bench process and a lock holder: ~9 s (make test-slow; CI runs both)
def test_a_run_marked_interrupted_before_its_push_is_finished_by_it(tmp_path, cli):
    """The run a locked store's bench finished in a file of its own stays 'running' in
    the store under a pid that has exited: the next bench on this machine marks it
    'interrupted', and the push bench had printed then added the missing case but left
    the run 'interrupted' for good (a finished run, whole, labelled as cut short). The
    push moves it on, as docs/store.md says."""
    from db_util import dict_rows

    spec = tmp_path / "spec.yaml"
    spec.write_text(TWO_CASES_SLOW_SECOND)
    store = tmp_path / "s.duckdb"
    env = {**os.environ, "ANEMLL_SPEC_STORE_LOCK_TIMEOUT_S": "1", "PYTHONPATH": str(TESTS.parent)}
    args = [sys.executable, "-m", "anemll_spec", "bench", str(spec), "--store", str(store),
            "--cache-dir", str(tmp_path / "cache")]  # fmt: skip
    bench = subprocess.Popen(
        args, stderr=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env
    )
    assert bench.stderr is not None
    for line in bench.stderr:  # the first case is stored: the store is taken now
        if line.startswith("[2/2]"):
            break
    with held_by_another_process(store):
        out, err = bench.communicate(timeout=120)
    assert bench.returncode == 1, err
    run_id = dict_rows(store, "SELECT run_id FROM runs")[0]["run_id"]
    own = tmp_path / f"s.run-{run_id}.duckdb"
    assert f"anemll-spec push {run_id} --store {own} --to {store}" in out + err
    later = cli("bench", spec, "--store", store, "--cache-dir", tmp_path / "cache")
    assert later.returncode == 0, later.stderr
    status = "SELECT status FROM runs WHERE run_id = ?"
    assert dict_rows(store, status, [run_id]) == [{"status": "interrupted"}]
    push = cli("push", run_id, "--store", own, "--to", store)
    assert push.returncode == 0, push.stderr
    assert dict_rows(store, status, [run_id]) == [{"status": "finished"}]
    count = "SELECT count(*) AS n FROM cases WHERE run_id = ?"
    assert dict_rows(store, count, [run_id]) == [{"n": 2}]
