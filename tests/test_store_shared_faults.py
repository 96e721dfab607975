"""Faults of a shared store, in real processes against a real PostgreSQL: many writers
at once, writers killed mid-case, the catalog server restarted or gone mid-bench."""

from __future__ import annotations

import os
import random
import shlex
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import numpy as np
import pg
import pytest

from anemll_spec.store import lake_target, open_store

TESTS = Path(__file__).resolve().parent
ROOT = TESTS.parent

# What the runner does (begin, one append per finished case, finish) through BenchStore.
WRITER = """
import sys, time
import numpy as np
from fixtures.store.synth import case, host, run, samples_ns
from anemll_spec.store.fallback import BenchStore

target, local, worker, n, pause = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), float(sys.argv[5])
store = BenchStore(target, local=local)
rng = np.random.default_rng(worker)
rid = store.begin_run(None, run(), host())
print("run", rid, flush=True)
for i in range(n):
    wall = samples_ns(rng, int(rng.integers(100, 2000)), 5.0)
    cid = store.append_case(None, rid, case(wall=wall), wall)
    print("case", cid, len(wall), int(wall.sum()), flush=True)
    time.sleep(pause)
store.finish_run(None, rid, "finished")
print("where", store.where, flush=True)
if store.message:
    print("message", store.message, flush=True)
"""


def spawn(target: str, local: Path, worker: int, n: int, pause: float = 0.0, timeout_s=60):
    env = {
        **os.environ,
        "PGPASSWORD": pg.PASSWORD,
        "ANEMLL_SPEC_STORE_LOCK_TIMEOUT_S": str(timeout_s),
    }
    return subprocess.Popen(
        [sys.executable, "-c", WRITER, target, str(local), str(worker), str(n), str(pause)],
        cwd=TESTS,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )


def reported(lines: list[str]) -> dict[str, tuple[int, int]]:
    out = {}
    for line in lines:
        parts = line.split()
        if len(parts) == 4 and parts[0] == "case":  # a kill can cut the last line
            out[parts[1]] = (int(parts[2]), int(parts[3]))
    return out


def stored(target) -> dict[str, tuple[int, int]]:
    """case_id -> (n_samples, sum of wall_ns), checking every case is complete and once."""
    con = open_store(target, read_only=True)
    try:
        rows = con.execute(
            "SELECT c.case_id, c.n_samples, count(s.idx), count(DISTINCT s.idx), "
            "coalesce(min(s.idx), 0), coalesce(max(s.idx), -1), coalesce(sum(s.wall_ns), 0) "
            "FROM cases c LEFT JOIN samples s USING (case_id) GROUP BY ALL"
        ).fetchall()
        (orphans,) = con.execute(
            "SELECT count(*) FROM samples WHERE case_id NOT IN (SELECT case_id FROM cases)"
        ).fetchone()
        (twice,) = con.execute(
            "SELECT count(*) FROM (SELECT case_id FROM cases GROUP BY 1 HAVING count(*) > 1)"
        ).fetchone()
    finally:
        con.close()
    assert orphans == 0, "samples without their case: a half-written case"
    assert twice == 0, "a case stored twice"
    out = {}
    for cid, n, count, distinct, lo, hi, total in rows:
        assert n == count == distinct and lo == 0 and hi == n - 1, f"case {cid} is incomplete"
        out[cid] = (n, int(total))
    return out


@pytest.fixture
def shared(postgres, tmp_path, monkeypatch):
    monkeypatch.setenv("PGPASSWORD", pg.PASSWORD)
    db = postgres.new_db("f_" + uuid.uuid4().hex[:12])
    target = postgres.target(db, tmp_path / "lake-data")
    open_store(target).close()  # created once, before the writers race
    return target


@pytest.mark.slow  # eight writer processes: 10-13 s (make test-slow; CI runs both)
def test_eight_concurrent_writers_lose_nothing_and_store_each_case_once(shared, tmp_path):
    procs = [spawn(shared, tmp_path / f"local{w}.duckdb", w, 10) for w in range(8)]
    lines = []
    for p in procs:
        out, err = p.communicate(timeout=300)
        assert p.returncode == 0, err
        lines += out.splitlines()
    expected = reported(lines)
    assert len(expected) == 80
    assert stored(shared) == expected
    con = open_store(shared, read_only=True)
    try:
        assert con.execute("SELECT status, count(*) FROM runs GROUP BY 1").fetchall() == [
            ("finished", 8)
        ]
        # one host, eight runs started at once: its row is there once
        assert con.execute("SELECT count(*), count(DISTINCT host_id) FROM hosts").fetchone() == (
            1,
            1,
        )
        assert con.execute("SELECT count(*) FROM results").fetchone() == (80,)
    finally:
        con.close()
    assert not any((tmp_path / f"local{w}.duckdb").exists() for w in range(8))


MACHINES = 6


@pytest.mark.slow  # six push processes racing on two cores: 11-18 s (make test-slow; CI runs both)
def test_machines_creating_a_new_shared_store_at_once_all_succeed(postgres, tmp_path, monkeypatch):
    """The first pushes into a fresh catalog race to create DuckLake's tables and then the
    store's: the losers wait and find them made (they exited 2, 'duplicate key', 'not a
    results store'), and every run arrives once."""
    from fixtures.store.synth import case, host, run, samples_ns

    from anemll_spec.store import append_case, begin_run, finish_run

    monkeypatch.setenv("PGPASSWORD", pg.PASSWORD)
    db = postgres.new_db("race_" + uuid.uuid4().hex[:12])
    target = postgres.target(db, tmp_path / "lake-data")
    rng = np.random.default_rng(5)
    locals_ = []
    for w in range(MACHINES):
        local = tmp_path / f"m{w}.duckdb"
        rid = begin_run(local, run(), host(hostname=f"mac{w}"))
        wall = samples_ns(rng, 50, 5.0)
        append_case(local, rid, case(wall=wall), wall)
        finish_run(local, rid, "finished")
        locals_.append(local)
    env = {**os.environ, "PGPASSWORD": pg.PASSWORD, "ANEMLL_SPEC_CACHE": str(tmp_path / "c")}
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "anemll_spec", "push", "--store", str(m), "--to", target],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )  # fmt: skip
        for m in locals_
    ]
    for p in procs:
        out, err = p.communicate(timeout=300)
        assert p.returncode == 0, err
    con = open_store(target, read_only=True)
    try:
        assert con.execute("SELECT count(*), count(DISTINCT run_id) FROM runs").fetchone() == (
            MACHINES,
            MACHINES,
        )
        assert con.execute("SELECT count(*) FROM meta WHERE key = 'schema_version'").fetchone() == (
            1,
        )
    finally:
        con.close()


def test_a_writer_killed_mid_case_leaves_no_partial_case(shared, tmp_path):
    rnd = random.Random(7)
    survivors: dict[str, tuple[int, int]] = {}
    for round_ in range(3):
        proc = spawn(shared, tmp_path / "local.duckdb", 100 + round_, 10_000)
        first = proc.stdout.readline()  # the run has begun (start-up takes ~1.5 s, or more)
        assert first.startswith("run "), proc.stderr.read()
        time.sleep(rnd.uniform(0.5, 2.0))  # then it appends cases, one every few ms
        os.kill(proc.pid, signal.SIGKILL)
        out, _ = proc.communicate(timeout=30)
        done = reported(out.splitlines())
        now = stored(shared)  # readable, every case complete, none twice
        assert {k: now[k] for k in done} == done
        assert {k: now[k] for k in survivors} == survivors
        assert len(set(now) - set(survivors) - set(done)) <= 1  # the one in flight, whole
        survivors = now
    assert survivors


def test_the_catalog_restarted_mid_bench_is_waited_for(shared, postgres, tmp_path):
    proc = spawn(shared, tmp_path / "local.duckdb", 1, 12, pause=0.3)
    seen = []
    while len(reported(seen)) < 3:
        line = proc.stdout.readline()
        assert line, proc.stderr.read()
        seen.append(line)
    postgres.restart()
    out, err = proc.communicate(timeout=180)
    assert proc.returncode == 0, err
    lines = seen + out.splitlines()
    assert not any(line.startswith("message") for line in lines)  # never fell back
    expected = reported(lines)
    assert len(expected) == 12 and stored(shared) == expected


@pytest.mark.slow  # a bench process across a stopped server: ~15 s (make test-slow; CI runs both)
def test_an_unreachable_shared_store_loses_no_results(shared, postgres, tmp_path):
    local = tmp_path / "local.duckdb"
    proc = spawn(shared, local, 2, 8, pause=1.0, timeout_s=3)  # stopped before the 5 left
    seen = []
    while len(reported(seen)) < 3:
        line = proc.stdout.readline()
        assert line, proc.stderr.read()
        seen.append(line)
    postgres.stop()
    try:
        out, err = proc.communicate(timeout=180)
    finally:
        postgres.start()
    assert proc.returncode == 0, err
    lines = seen + out.splitlines()
    expected = reported(lines)
    assert len(expected) == 8
    (message,) = [line for line in lines if line.startswith("message")]
    assert "anemll-spec push" in message and str(local) in message
    assert "unreachable" in err and pg.PASSWORD not in err + out
    in_shared = stored(shared)
    in_local = stored(local)
    assert set(in_shared) | set(in_local) == set(expected) and len(in_shared) >= 3
    # the run moved to the local store is the run begun in the shared one, field for field
    same = "run_id, started_at, tool_version, host_id, spec_sha256, git_commit, command"
    runs = []
    for where in (shared, local):
        con = open_store(where, read_only=True)
        runs.append(con.execute(f"SELECT {same} FROM runs").fetchall())
        con.close()
    assert runs[0] == runs[1] and len(runs[0]) == 1 and runs[0][0][2] is not None
    # the message's own command completes the run in the shared store
    cmd = shlex.split(message.split(": ", 1)[1].split("push it: ", 1)[1])
    assert cmd[:2] == ["anemll-spec", "push"]
    env = {**os.environ, "PGPASSWORD": pg.PASSWORD}
    done = subprocess.run(
        [sys.executable, "-m", "anemll_spec", *cmd[1:]],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
    )
    assert done.returncode == 0, done.stderr
    assert stored(shared) == expected
    con = open_store(shared, read_only=True)
    assert con.execute("SELECT status FROM runs").fetchall() == [("finished",)]
    con.close()


def test_a_store_unreachable_from_the_start_runs_locally(tmp_path):
    target = (
        f"ducklake:postgres:host=127.0.0.1 port={_closed_port()} user=x dbname=y "
        f"password=hunter2 data_path={tmp_path / 'd'}"
    )
    proc = spawn(target, tmp_path / "local.duckdb", 3, 2, timeout_s=1)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    assert len(stored(tmp_path / "local.duckdb")) == 2
    assert "hunter2" not in out + err and "anemll-spec push" in out
    lake_target.redact(target)  # (the same redaction the message used)


def _closed_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow  # the server stopped and started at each of many steps: 15-17 s (make test-slow; CI runs both)
def test_a_server_lost_under_a_command_is_one_line_without_the_password(
    postgres, tmp_path, capsys, monkeypatch
):
    """The catalog server goes away while a command holds the shared store (stopped for
    real, at a chosen step of the command): compare, export, import and push each end in one
    line, exit 1 (the store failed, not the input), the password never shown, nothing
    written."""
    from fixtures.store.synth import case, new_run

    from anemll_spec.cli import main
    from anemll_spec.store import append_case, exporting, finish_run, importing, lookup

    db = postgres.new_db("g_" + uuid.uuid4().hex[:12])
    target = postgres.target(db, tmp_path / "lake-data", password=True)
    local = tmp_path / "local.duckdb"
    wall = [5_000_000, 5_100_000]  # its statistics stored with it: an import checks them
    for where in (target, target, local):
        run_id = new_run(where)
        append_case(where, run_id, case(wall=wall), wall)
        finish_run(where, run_id, "finished")
    extra = tmp_path / "local.parquet"
    exporting.export_bundle(local, extra)  # a run the shared store lacks
    monkeypatch.setenv("ANEMLL_SPEC_STORE_LOCK_TIMEOUT_S", "1")

    def stop_after(module, name: str, nth: int = 1) -> None:
        """The server stops right after the `nth` call of `module.name` returns (once)."""
        real = getattr(module, name)
        calls = []

        def step(*args, **kw):
            out = real(*args, **kw)
            calls.append(name)
            if len(calls) == nth:
                monkeypatch.setattr(module, name, real)
                postgres.stop("immediate")
            return out

        monkeypatch.setattr(module, name, step)

    steps = [
        ("compare", ["compare", "previous", "latest"], lookup, "resolve_run", 1),
        ("export", ["export", "--out", str(tmp_path / "x.parquet")], exporting, "_select", 1),
        # checked in scratch (read-only), then staged again in the writing transaction
        ("import", ["import", str(extra)], importing, "stage_file", 1),
        ("import", ["import", str(extra)], importing, "check_in_scratch", 1),
        ("import", ["import", str(extra)], importing, "stage_file", 2),
        # the commit meets a dead server: the store's failure, not a conflict to retry
        ("import", ["import", str(extra)], importing, "_insert", 1),
    ]
    for command, args, module, name, nth in steps:
        # the server must answer before the step: after an immediate stop and restart,
        # pooled connections of this process may be refused for over a second under load
        monkeypatch.setenv("ANEMLL_SPEC_STORE_LOCK_TIMEOUT_S", "30")
        assert main(["query", "SELECT count(*) FROM runs", "--store", target]) == 0
        monkeypatch.setenv("ANEMLL_SPEC_STORE_LOCK_TIMEOUT_S", "1")
        capsys.readouterr()
        stop_after(module, name, nth)
        try:
            code = main([*args, "--store", target])
        finally:
            postgres.start()
        err = capsys.readouterr().err
        assert code == 1, (command, err)
        lines = err.strip().splitlines()  # import retries: a 'waiting for' line first
        assert "Traceback" not in err and len(lines) <= 2, err
        assert lines[-1].startswith(f"anemll-spec {command}: error: "), err
        assert pg.PASSWORD not in err, err
        if name == "_insert":
            assert " failed during the import: " in err and err.rstrip().endswith(
                "; nothing written"
            ), err
    # push: the server stops once the runs are checked in scratch, once they are staged
    # in the transaction, or once they are inserted (the commit then meets a dead server:
    # no write conflict to retry). It must be up first, as above (seen refused for over a
    # second in 2 of 5 loaded full runs)
    from anemll_spec.store import bundle, sync

    for module, name, nth in (
        (importing, "stage_file", 1),
        (importing, "check_in_scratch", 1),
        (bundle, "stage", 1),  # the transaction's (scratch calls it through importing's name)
        (sync, "_insert", 1),
    ):
        monkeypatch.setenv("ANEMLL_SPEC_STORE_LOCK_TIMEOUT_S", "30")
        assert len(rows_of(target)) == 2
        monkeypatch.setenv("ANEMLL_SPEC_STORE_LOCK_TIMEOUT_S", "1")
        capsys.readouterr()
        stop_after(module, name, nth)
        try:
            code = main(["push", "--store", str(local), "--to", target])
        finally:
            postgres.start()
        err = capsys.readouterr().err
        lines = err.strip().splitlines()  # a 'waiting for' line first, at most
        assert code == 1 and "Traceback" not in err and pg.PASSWORD not in err, (name, err)
        assert len(lines) <= 2 and lines[-1].startswith("anemll-spec push: error: "), err
        assert "the shared store " in lines[-1], (name, err)
        if name in ("stage", "_insert"):  # in the transaction
            assert " failed during the copy: " in err, (name, err)
            assert err.rstrip().endswith("; nothing written"), (name, err)
    assert not (tmp_path / "x.parquet").exists()
    assert len(rows_of(target)) == 2  # the import and the pushes added nothing


def rows_of(target) -> list:
    con = open_store(target, read_only=True)
    try:
        return con.execute("SELECT run_id FROM runs").fetchall()
    finally:
        con.close()


def test_a_server_lost_under_a_query_is_the_stores_failure(postgres, tmp_path, capsys, monkeypatch):
    """The catalog server stops after the query is checked and before it runs (for real):
    one line naming the store's failure, exit 1 as docs/store.md says (it was `query
    failed: ...`, exit 2, the user's input), the password never shown."""
    from fixtures.store.synth import case, new_run

    from anemll_spec.cli import main
    from anemll_spec.cli import query as query_cli
    from anemll_spec.store import append_case, finish_run

    db = postgres.new_db("q_" + uuid.uuid4().hex[:12])
    target = postgres.target(db, tmp_path / "lake-data", password=True)
    run_id = new_run(target)
    append_case(target, run_id, case(), [5_000_000, 5_100_000])
    finish_run(target, run_id, "finished")
    real = query_cli._checkpoints

    def stop_then_check(statements):
        postgres.stop("immediate")
        return real(statements)

    monkeypatch.setattr(query_cli, "_checkpoints", stop_then_check)
    capsys.readouterr()
    try:
        code = main(["query", "SELECT count(*) FROM runs", "--store", target])
    finally:
        postgres.start()
    err = capsys.readouterr().err
    assert code == 1 and "Traceback" not in err and pg.PASSWORD not in err, err
    assert err.count("\n") == 1, err
    assert err.startswith(
        f"anemll-spec query: error: the shared store {lake_target.redact(target)}"
    )
    assert " failed during the query: " in err, err
    assert len(rows_of(target)) == 1  # the server is back, the store as it was


def test_the_printed_push_is_one_shell_word_for_a_target_with_quoted_values(tmp_path):
    """The target was wrapped in raw single quotes: a quoted libpq value (a data_path with a
    space) closed them early, and the printed push failed, 'unrecognized arguments'."""
    from anemll_spec.store.fallback import BenchStore

    target = (
        "ducklake:postgres:dbname=lake user=anemll password='s3 cr3t' "
        f"data_path='{tmp_path / 'lab share'}'"
    )
    bs = BenchStore(target, local=str(tmp_path / "local store.duckdb"))
    bs.fell_back, bs._moved = "connection refused", {"20261207-000000-0123abcd"}
    command, said = bs.message.split("push it: ", 1)[1].split(" (with the password", 1)
    words = shlex.split(command)
    assert words == ["anemll-spec", "push", "20261207-000000-0123abcd", "--store",
                     str(tmp_path / "local store.duckdb"), "--to",
                     lake_target.redact(target)]  # fmt: skip
    assert "s3" not in bs.message and "cr3t" not in bs.message
    # pasted as printed it failed to log in ('password=***'): the message says what to do
    assert said == " in place of ***)"


@pytest.mark.parametrize(
    "where", ["/proc/fb.duckdb", "fb\udcff.duckdb", "file/fb.duckdb", "ducklake:fb.ducklake"]
)
def test_a_fallback_store_that_could_not_take_the_run_is_refused_up_front(tmp_path, where, cli):
    """A lost server moved the run to a local store found unwritable only then (exit 2,
    the case just measured and the rest lost, the shared copy left 'running'). bench
    refuses such a fallback before anything is measured, naming the variable to set."""
    (tmp_path / "file").write_text("a file, not a folder")
    target = (
        f"ducklake:postgres:host=127.0.0.1 port={_closed_port()} user=x dbname=y "
        f"password=hunter2 data_path={tmp_path / 'd'}"
    )
    spec = tmp_path / "s.yaml"
    spec.write_text(
        "name: fb\nmodel: {family: matmul, m: 4, k: 8, n: 8}\nrun: {backends: [numpy]}\n"
    )
    # a shared store as the fallback passed the check (its redacted name exists nowhere,
    # so no folder was probed) and the run "fell back" into the lost server: lost
    at = where if where.startswith(("/", "ducklake:")) else str(tmp_path / where)
    env = {"ANEMLL_SPEC_FALLBACK_STORE": at}
    r = cli("bench", spec, "--store", target, env=env, cwd=tmp_path)
    assert r.returncode == 2, r.stderr
    assert "Traceback" not in r.stderr and "hunter2" not in r.stderr
    assert "fallback store ($ANEMLL_SPEC_FALLBACK_STORE)" in r.stderr, r.stderr
    assert "timing" not in r.stderr and not (tmp_path / "d").exists()
