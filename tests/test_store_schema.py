"""Schema declared once: DDL, migrations from the real v1 fixture, comments, docs."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import duckdb
import numpy as np
import pytest
from fixtures.store.synth import case, new_run

from anemll_spec.errors import InputError
from anemll_spec.store import append_case, migrations, open_store, schema
from anemll_spec.store.docs import render
from anemll_spec.store.published import published_rows

ROOT = Path(__file__).resolve().parents[1]
V1 = ROOT / "tests" / "fixtures" / "store" / "v1.duckdb"


def columns(path: Path) -> dict[str, list[tuple[str, str, bool]]]:
    con = duckdb.connect(str(path), read_only=True)
    try:
        rows = con.execute(
            "SELECT table_name, column_name, data_type, is_nullable FROM duckdb_columns() "
            "WHERE database_name = current_database() AND NOT internal "
            "ORDER BY table_name, column_index"
        ).fetchall()
    finally:
        con.close()
    out: dict[str, list] = {}
    for t, c, ty, nullable in rows:
        out.setdefault(t, []).append((c, ty, nullable))
    return out


def snapshot(path: Path) -> dict:
    con = duckdb.connect(str(path), read_only=True)
    try:
        return {
            "runs": con.execute(
                "SELECT run_id, status, spec_yaml, started_at FROM runs ORDER BY 1"
            ).fetchall(),
            "cases": con.execute(
                "SELECT case_id, run_id, model_name, n_samples, median_ms, status FROM cases ORDER BY 1"
            ).fetchall(),
            "samples": con.execute(
                "SELECT case_id, idx, wall_ns FROM samples ORDER BY 1, 2"
            ).fetchall(),
            "hosts": con.execute("SELECT host_id, chip FROM hosts").fetchall(),
        }
    finally:
        con.close()


def test_fresh_store_matches_the_declared_schema(tmp_path):
    store = tmp_path / "fresh.duckdb"
    open_store(store).close()
    cols = columns(store)
    for t in schema.TABLES:
        assert [(c, ty) for c, ty, _ in cols[t.name]] == [(c.name, c.type) for c in t.columns]
        assert [not n for _, _, n in cols[t.name]] == [c.required for c in t.columns]


def test_v1_ddl_is_the_since_1_columns(tmp_path):
    """The frozen v1 DDL declares exactly the columns marked since=1, in order."""
    con = duckdb.connect(str(tmp_path / "v1.duckdb"))
    migrations.create_v1(con)
    con.close()
    cols = columns(tmp_path / "v1.duckdb")
    for t in schema.TABLES:
        v1 = [(c.name, c.type) for c in t.columns if c.since == 1]
        assert [(c, ty) for c, ty, _ in cols.get(t.name, [])] == v1


def test_the_v1_fixture_was_made_by_the_v1_code():
    assert columns(V1) == columns_of_fresh_v1()
    con = duckdb.connect(str(V1), read_only=True)
    assert con.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchall() == [("1",)]
    con.close()


def columns_of_fresh_v1() -> dict:
    import tempfile

    with tempfile.TemporaryDirectory() as d:
        con = duckdb.connect(str(Path(d) / "v1.duckdb"))
        migrations.create_v1(con)
        con.close()
        return columns(Path(d) / "v1.duckdb")


def test_v1_store_upgrades_in_place(tmp_path):
    store = tmp_path / "old.duckdb"
    shutil.copy(V1, store)
    before = snapshot(store)
    assert before["samples"] and before["cases"]

    open_store(store).close()

    # every table now equals a fresh store's, data intact, v2 and v3 columns NULL
    fresh = tmp_path / "fresh.duckdb"
    open_store(fresh).close()
    assert columns(store) == columns(fresh)
    assert snapshot(store) == before
    con = duckdb.connect(str(store), read_only=True)
    try:
        version = con.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
        assert version == (str(schema.SCHEMA_VERSION),) == ("6",)
        assert con.execute("SELECT count(runtime_ns), count(start_ns) FROM samples").fetchone() == (
            0,
            0,
        )
        # provenance of a run stored before v3 is not known, and says so
        assert con.execute(
            "SELECT DISTINCT origin, source, provenance FROM results"
        ).fetchall() == [
            (None, "own", "stored before v3 (measured here or imported: not recorded)")
        ]
        # reference reloaded with the derived rows v1 did not have
        n_ref, n_derived = con.execute(
            "SELECT count(*), count(*) FILTER (WHERE derived) FROM reference"
        ).fetchone()
        rows = published_rows()
        assert (n_ref, n_derived) == (len(rows), sum(r["derived"] for r in rows))
        # the v2 views work on migrated data: the v1 M1 Max cases are their own baseline
        own = con.execute(
            "SELECT model, bandwidth_factor FROM chip_factors WHERE source = 'own' ORDER BY 1"
        ).fetchall()
        assert own == [("llama_lm_head", 1.0), ("llama_lm_head_lut6", 1.0)]
    finally:
        con.close()

    # opening again changes nothing; appending works
    open_store(store).close()
    assert snapshot(store) == before
    run_id = new_run(store)
    append_case(store, run_id, case(), np.array([[1, 2]]))
    assert snapshot(store)["samples"][: len(before["samples"])] == before["samples"]


def test_read_only_open_of_a_v1_store_never_upgrades_it(tmp_path):
    """A read-only command never changes a store (the next writer upgrades it)."""
    store = tmp_path / "old.duckdb"
    shutil.copy(V1, store)
    before = store.read_bytes()
    with pytest.raises(InputError, match="has schema v1, older than"):
        open_store(store, read_only=True)
    assert store.read_bytes() == before
    open_store(store).close()  # a writer upgrades it; then read-only opens work
    con = open_store(store, read_only=True)
    try:
        assert con.execute("SELECT count(*) FROM placements").fetchone() == (0,)
    finally:
        con.close()


def test_an_upgrade_stopped_before_its_views_says_so_and_is_completed_later(tmp_path):
    """Killed between the committed upgrade steps and the re-install of the views: read
    commands met 'Table with name results does not exist!'. They now say what happened;
    the next writing open completes it."""
    from anemll_spec.store import migrations

    store = tmp_path / "old.duckdb"
    shutil.copy(V1, store)
    con = duckdb.connect(str(store))
    migrations.upgrade(con, 1)  # what a kill right after it leaves
    con.close()
    with pytest.raises(InputError, match="lacks its views .* the next bench, import or push"):
        open_store(store, read_only=True)
    open_store(store).close()
    con = open_store(store, read_only=True)
    try:
        assert con.execute("SELECT count(*) FROM results").fetchone()[0] > 0
    finally:
        con.close()


def test_the_fixture_script_rebuilds_an_equivalent_v1_store(tmp_path):
    out = tmp_path / "v1.duckdb"
    subprocess.run(
        [sys.executable, str(ROOT / "tests/fixtures/store/make_v1.py"), str(out)], check=True
    )
    assert columns(out) == columns(V1)
    # samples are seeded, so the data is identical too
    assert snapshot(out) == snapshot(V1)


def test_columns_are_commented_in_the_file(tmp_path):
    store = tmp_path / "r.duckdb"
    open_store(store).close()
    con = duckdb.connect(str(store), read_only=True)
    comments = dict(
        ((t, c), comment)
        for t, c, comment in con.execute(
            "SELECT table_name, column_name, comment FROM duckdb_columns() "
            "WHERE database_name = current_database()"
        ).fetchall()
    )
    con.close()
    assert comments[("cases", "median_ms")] == (
        "median wall-clock latency (the headline figure) [ms]"
    )
    for t in schema.TABLES:
        for c in t.columns:
            assert comments[(t.name, c.name)].startswith(c.doc)


def test_same_name_same_type_across_bundled_tables():
    cols = schema.bundle_columns()  # raises if a name had two types
    assert cols["run_id"] == "VARCHAR" and cols["table"] == "VARCHAR"


def test_docs_embed_the_current_schema():
    doc = (ROOT / "docs" / "store.md").read_text()
    assert render(doc) == doc, "regenerate with: python -m anemll_spec.store.docs"
    for t in schema.TABLES:
        for c in t.columns:
            assert f"| `{c.name}` | {c.type} |" in doc


def test_results_view_carries_every_host_column(tmp_path):
    """Provenance on every row: a GPU run's driver and CUDA version, the Python and numpy
    versions, reach `results` like the chip does."""
    path = tmp_path / "s.duckdb"
    open_store(path).close()
    con = duckdb.connect(str(path), read_only=True)
    got = {r[0] for r in con.execute("DESCRIBE results").fetchall()}
    con.close()
    hosts = next(t for t in schema.TABLES if t.name == "hosts")
    want = {c.name for c in hosts.columns} | {"chip_raw", "run_started_at", "spec_sha256"}
    assert want <= got, sorted(want - got)


def test_schema_version_is_the_last_migration_step():
    assert max(migrations.STEPS) == schema.SCHEMA_VERSION


def test_a_cases_throttled_flag_is_described_as_the_drift_rule_it_is():
    """cases.throttled is stats' drift rule, not a thermal reading: its doc says the
    rule's own threshold (kept in step with stats.THROTTLE_RATIO)."""
    from anemll_spec import stats

    doc = schema.CASES.column("throttled").doc
    assert f"drift_ratio > {stats.THROTTLE_RATIO:.2f}" in doc and "not a thermal reading" in doc
