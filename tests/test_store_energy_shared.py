"""Schema v4 on the shared store (DuckLake on a real PostgreSQL): energy and sustained
rows pushed and pulled with every figure checked; concurrent imports of one bundle add
each run once (the import claims the lake); a failed write names a shared store by its
redacted target."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

import duckdb
import pg
import pytest
from fixtures.store.bundles import content
from fixtures.store.energy import energy_store

from anemll_spec.errors import InputError
from anemll_spec.store import open_store, writer
from anemll_spec.store.exporting import export_bundle
from anemll_spec.store.sync import copy_runs

TESTS = Path(__file__).resolve().parent


@pytest.fixture
def shared(postgres, tmp_path, monkeypatch):
    monkeypatch.setenv("PGPASSWORD", pg.PASSWORD)
    db = postgres.new_db("e_" + uuid.uuid4().hex[:12])
    return postgres.target(db, tmp_path / "lake-data")


def tables(target) -> dict:
    """Every v4 table and the figures of the cases, from a store of either kind."""
    con = open_store(target, read_only=True)
    try:
        out = {}
        for t in ("case_energy_rails", "power_samples", "sustained_windows"):
            out[t] = con.execute(f"SELECT * FROM {t} ORDER BY ALL").fetchall()
        out["cases"] = con.execute(
            "SELECT case_id, energy_method, energy_total_mj, energy_mj_per_inference, "
            "power_w_mean, sustained_verdict, sustained_ci_low, sustained_ci_high "
            "FROM cases ORDER BY 1"
        ).fetchall()
        out["samples"] = con.execute(
            "SELECT case_id, window_index, count(*), sum(wall_ns) FROM samples GROUP BY ALL "
            "ORDER BY ALL"
        ).fetchall()
        out["results"] = con.execute(
            "SELECT case_id, inferences_per_joule, energy_ane_mj_per_inference FROM results "
            "ORDER BY 1"
        ).fetchall()
        return out
    finally:
        con.close()


def test_energy_and_sustained_rows_push_and_pull(shared, tmp_path):
    local = tmp_path / "mine.duckdb"
    energy_store(local)
    got = copy_runs(local, shared)
    assert (got["runs_added"], got["cases_added"], got["sustained_windows_added"]) == (1, 2, 3)
    assert got["case_energy_rails_added"] == 8 and got["power_samples_added"] == 7
    want = tables(local)
    assert tables(shared) == want
    again = copy_runs(local, shared)  # idempotent: nothing twice
    assert again["cases_added"] == again["power_samples_added"] == 0
    back = tmp_path / "back.duckdb"
    copy_runs(shared, back)
    assert tables(back) == want
    assert content(back) == content(local)


def test_a_push_with_a_tampered_window_is_refused(shared, tmp_path):
    local = tmp_path / "mine.duckdb"
    energy_store(local)
    con = duckdb.connect(str(local))
    con.execute("UPDATE sustained_windows SET median_ms = median_ms * 2 WHERE window_index = 1")
    con.close()
    with pytest.raises(InputError, match="window 1 median_ms = "):
        copy_runs(local, shared)
    with pytest.raises(InputError, match="does not exist"):  # refused before it was made
        tables(shared)


IMPORTER = """
import sys, time
from anemll_spec.store.importing import import_bundles
target, bundle, start = sys.argv[1], sys.argv[2], float(sys.argv[3])
time.sleep(max(0.0, start - time.time()))
(s,) = import_bundles(target, [bundle])
print(s["runs_added"], flush=True)
"""


@pytest.mark.slow  # import processes racing on the shared store: ~10 s (make test-slow; CI runs both)
def test_concurrent_imports_of_one_bundle_add_each_run_once(shared, tmp_path):
    src = tmp_path / "src.duckdb"
    for chip in ("Apple M1 Max", "Apple M4 Max", "Apple M2 Max"):
        energy_store(src, chip=chip)
    bundle = tmp_path / "b.parquet"
    export_bundle(src, bundle)
    open_store(shared).close()  # created beforehand: the race is the import's, not creation's
    import time

    start = time.time() + 3.0
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", IMPORTER, shared, str(bundle), str(start)],
            cwd=TESTS,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, "PGPASSWORD": pg.PASSWORD},
        )
        for _ in range(3)
    ]
    outs = [p.communicate(timeout=300) for p in procs]
    assert all(p.returncode == 0 for p in procs), [e for _, e in outs]
    added = sorted(int(o.strip()) for o, _ in outs)
    assert added == [0, 0, 3]  # one importer wrote the runs; the others found them
    con = open_store(shared, read_only=True)
    try:
        assert con.execute("SELECT count(*), count(DISTINCT run_id) FROM runs").fetchone() == (3, 3)
        assert con.execute("SELECT count(*), count(DISTINCT case_id) FROM cases").fetchone() == (
            6,
            6,
        )
        (n,) = con.execute("SELECT count(*) FROM sustained_windows").fetchone()
        assert n == 9
    finally:
        con.close()


def test_a_failed_write_names_a_shared_store_by_its_redacted_target():
    target = "ducklake:postgres://bench:hunter2@db.lab:5432/anemll?data_path=/lab/x"
    line = writer.write_failure(target, duckdb.IOException("IO Error: No space left on device"))
    assert "hunter2" not in line
    assert "ducklake:postgres://bench:***@db.lab:5432/anemll" in line  # not a Path's '/'
    assert "No space left on device" in line
