"""Real processes: concurrent writers, and writers killed with SIGKILL mid-write."""

from __future__ import annotations

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
        if parts and parts[0] == "case":
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


def test_kill_9_mid_write_leaves_a_consistent_store(tmp_path):
    store = tmp_path / "killed.duckdb"
    rnd = random.Random(1234)
    survivors: dict[str, tuple[int, int]] = {}
    killed_runs = []
    for round_ in range(6):
        proc = spawn(store, 100 + round_, 10_000)  # would run far longer than we let it
        time.sleep(rnd.uniform(0.8, 2.5))  # interpreter start-up is ~0.5 s of that
        os.kill(proc.pid, signal.SIGKILL)
        out, _ = proc.communicate(timeout=30)
        lines = out.splitlines()
        if lines and lines[0].startswith("run "):
            killed_runs.append(lines[0].split()[1])
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
    status = dict(con.execute("SELECT run_id, status FROM runs").fetchall())
    con.close()
    # never 'finished': each begin_run marked the runs killed before it; the last still runs
    assert [status[r] for r in killed_runs] == ["interrupted"] * (len(killed_runs) - 1) + [
        "running"
    ]
    new_run(store)  # the next run on this host marks the dead ones
    con = duckdb.connect(str(store), read_only=True)
    status = dict(con.execute("SELECT run_id, status FROM runs").fetchall())
    con.close()
    assert all(status[r] == "interrupted" for r in killed_runs)


@pytest.mark.parametrize("value", ["-5", "abc", "nan"])
def test_lock_timeout_from_the_environment_must_be_seconds(monkeypatch, value):
    from anemll_spec.errors import InputError
    from anemll_spec.store.connection import ENV_LOCK_TIMEOUT, lock_timeout

    monkeypatch.setenv(ENV_LOCK_TIMEOUT, value)
    with pytest.raises(InputError, match="seconds >= 0"):
        lock_timeout()
    monkeypatch.setenv(ENV_LOCK_TIMEOUT, "2.5")
    assert lock_timeout() == 2.5
