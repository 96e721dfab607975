"""A store and a bundle written by the v4 code itself (tests/fixtures/store/make_v4.py,
commit 002326c) under the v5 code: the store, views and all, upgrades in place with its
data intact; the bundle imports, every figure checked. v5 adds runs.writer_machine_id, NULL
for what v4 wrote."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pytest
from fixtures.store.bundles import kv_of
from fixtures.store.synth import new_run

from anemll_spec.errors import InputError
from anemll_spec.store import open_store, schema
from anemll_spec.store.importing import import_bundles

FIXTURES = Path(__file__).parent / "fixtures" / "store"
V4_BUNDLE = FIXTURES / "v4.parquet"  # the store: the v4_store fixture (conftest.py)
DATA = "SELECT run_id, runs.status, host_id, case_key, median_ms, ci_low_ms FROM cases JOIN runs USING (run_id) ORDER BY ALL"


def read(path: Path, sql: str) -> list[tuple]:
    con = duckdb.connect(str(path), read_only=True)
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


def test_the_fixture_is_v4_with_v4s_views(v4_store):
    assert read(v4_store, "SELECT value FROM meta WHERE key = 'schema_version'") == [("4",)]
    views = {
        r[0] for r in read(v4_store, "SELECT view_name FROM duckdb_views() WHERE NOT internal")
    }
    assert {"results", "chip_factors"} <= views
    names = {
        r[0]
        for r in read(
            v4_store, "SELECT column_name FROM duckdb_columns() WHERE table_name = 'runs'"
        )
    }
    assert "writer_machine_id" not in names


def test_a_v4_store_is_refused_read_only_then_upgraded_by_a_bench(v4_store, tmp_path):
    before = read(v4_store, DATA)
    assert len(before) == 2
    with pytest.raises(InputError, match="schema v4, older than this anemll-spec's v5"):
        open_store(v4_store, read_only=True)
    assert read(v4_store, "SELECT value FROM meta WHERE key = 'schema_version'") == [("4",)]
    mine = new_run(v4_store)  # a writing open upgrades it
    fresh = tmp_path / "fresh.duckdb"
    open_store(fresh).close()
    cols = (
        "SELECT table_name, column_name, data_type FROM duckdb_columns() "
        "WHERE NOT internal ORDER BY ALL"
    )
    assert read(v4_store, cols) == read(fresh, cols)
    assert read(v4_store, "SELECT value FROM meta WHERE key = 'schema_version'") == [
        (str(schema.SCHEMA_VERSION),)
    ]
    assert read(v4_store, DATA) == before  # v4's rows as v4 wrote them
    machines = dict(read(v4_store, "SELECT run_id, writer_machine_id FROM runs"))
    assert [machines[r] for r, *_ in before] == [None, None]
    assert set(machines) == {r for r, *_ in before} | {mine}
    # the re-installed results view reads the old rows (runs an hour apart: M1, then M4)
    chips = read(
        v4_store,
        "SELECT chip, round(median_ms, 9) FROM results WHERE run_id <> '" + mine + "' ORDER BY 1",
    )
    assert chips == sorted(
        (c, round(m, 9))
        for c, m in zip(
            ("M1 Max", "M4 Max"), [b[4] for b in before], strict=True
        )  # results.chip: normalised
    )


def test_a_v4_bundle_imports_into_a_v5_store(tmp_path):
    assert kv_of(V4_BUNDLE)["anemll_spec.schema_version"] == "4"
    dest = tmp_path / "d.duckdb"
    (summary,) = import_bundles(dest, [V4_BUNDLE])
    assert (summary["schema_version"], summary["runs_added"]) == (4, 2)
    assert summary["drift_slope_dropped"] == 0  # start times: recomputed and checked
    assert read(dest, "SELECT count(*), count(writer_machine_id) FROM runs") == [(2, 0)]
    assert read(dest, "SELECT DISTINCT origin FROM runs") == [("imported",)]


def _sha256(path: Path) -> str:
    import hashlib

    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_a_v4_store_exports_as_v4_wrote_it_and_stays_unchanged(v4_store, tmp_path, capsys):
    """Export reads an older store as it is (read-only commands never upgrade): the
    bundle is in v4's layout, row for row what v4's own export wrote from it."""
    from anemll_spec.cli import main

    before = _sha256(v4_store)
    out = tmp_path / "ours.parquet"
    assert main(["export", "--store", str(v4_store), "--out", str(out), "--json"]) == 0
    said = capsys.readouterr()
    assert '"schema_version": 4' in said.out
    assert "note: the store is at schema v4 (not upgraded)" in said.err
    assert _sha256(v4_store) == before  # not upgraded, not touched
    assert read(v4_store, "SELECT value FROM meta WHERE key = 'schema_version'") == [("4",)]
    mine, theirs = kv_of(out), kv_of(V4_BUNDLE)
    for key in ("schema_version", "counts", "columns"):
        assert mine[f"anemll_spec.{key}"] == theirs[f"anemll_spec.{key}"], key
    con = duckdb.connect()
    rows = "SELECT * FROM read_parquet(?) ORDER BY ALL"
    assert (
        con.execute(rows, [str(out)]).fetchall() == con.execute(rows, [str(V4_BUNDLE)]).fetchall()
    )


def test_pull_from_a_v4_store_copies_its_runs_and_leaves_it_v4(v4_store, tmp_path):
    """A teammate still on v4 keeps using the shared store: pulling from it does not
    upgrade it (which would lock them out), and every run arrives, checked as on import."""
    from anemll_spec.cli import main

    before = _sha256(v4_store)
    dest = tmp_path / "mine.duckdb"
    assert main(["pull", "--from", str(v4_store), "--store", str(dest)]) == 0
    assert _sha256(v4_store) == before
    assert read(dest, DATA) == read(v4_store, DATA)
    assert read(dest, "SELECT DISTINCT origin FROM runs") == [("imported",)]


def test_a_v1_store_is_still_refused_by_export_with_the_upgrade_hint(tmp_path):
    """Bundles start at v2: a v1 store must be upgraded first (it says how)."""
    import shutil

    from anemll_spec.store.exporting import export_bundle

    v1 = tmp_path / "v1.duckdb"
    shutil.copy(FIXTURES / "v1.duckdb", v1)
    with pytest.raises(InputError, match=r"schema v1, older .*anemll-spec upgrade --store"):
        export_bundle(v1, tmp_path / "b.parquet")
    assert not (tmp_path / "b.parquet").exists()


def test_a_refused_import_leaves_a_v4_store_as_it_was(v4_store, tmp_path, capsys):
    """A run of the v4 bundle, under its id in the v4 store but with another command, is
    refused before the store is opened for writing: still v4, byte for byte, no .wal (it
    was upgraded to v5 and then refused). The bundle as v4 wrote it then imports."""
    from fixtures.store.bundles import rewrite, sub

    from anemll_spec.cli import main

    bad = rewrite(V4_BUNDLE, tmp_path / "bad.parquet", sub("command", "runs", "'x'"))
    before = _sha256(v4_store)
    assert main(["import", "--store", str(v4_store), str(bad)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "is already in the store as another run" in err
    assert _sha256(v4_store) == before
    assert not v4_store.with_name(v4_store.name + ".wal").exists()
    assert read(v4_store, "SELECT value FROM meta WHERE key = 'schema_version'") == [("4",)]
    (summary,) = import_bundles(v4_store, [V4_BUNDLE])  # the same runs: nothing to add
    assert (summary["runs_added"], summary["runs_skipped"]) == (0, 2)
    assert read(v4_store, "SELECT value FROM meta WHERE key = 'schema_version'") == [("5",)]


def test_a_refused_pull_leaves_a_v4_store_as_it_was(v4_store, tmp_path, capsys):
    """pull is checked as import is: a run under one of the v4 store's ids but with another
    command is refused before the store is opened for writing, so the store a teammate on
    v4 still uses is not upgraded by a pull that wrote nothing (byte for byte, no .wal)."""
    from fixtures.store.bundles import rewrite, sub

    from anemll_spec.cli import main

    other = tmp_path / "other.duckdb"
    import_bundles(
        other, [rewrite(V4_BUNDLE, tmp_path / "b.parquet", sub("command", "runs", "'x'"))]
    )
    before = _sha256(v4_store)
    assert main(["pull", "--from", str(other), "--store", str(v4_store)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "is already in the store as another run" in err, err
    assert str(other) in err and "b.parquet" not in err and "runs.parquet" not in err
    assert _sha256(v4_store) == before
    assert not v4_store.with_name(v4_store.name + ".wal").exists()
    assert read(v4_store, "SELECT value FROM meta WHERE key = 'schema_version'") == [("4",)]
