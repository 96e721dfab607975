"""Stores and bundles written by older code itself (tests/fixtures/store/make_v4.py, commit
002326c; make_v5.py, commit 0f9f4b8) under the code of today: each store, views and all,
upgrades in place with its data intact; each bundle imports, every figure checked; read-only
commands leave the store as its version wrote it. v5 added runs.writer_machine_id, v6
hosts.energy_mode: NULL for what the older code wrote."""

from __future__ import annotations

import gzip
from pathlib import Path

import duckdb
import pytest
from fixtures.store.bundles import kv_of
from fixtures.store.synth import host, run

from anemll_spec.errors import InputError
from anemll_spec.store import begin_run, open_store, schema
from anemll_spec.store.importing import import_bundles

FIXTURES = Path(__file__).parent / "fixtures" / "store"
V4_BUNDLE = FIXTURES / "v4.parquet"  # the store: the v4_store fixture (conftest.py)
DATA = "SELECT run_id, runs.status, host_id, case_key, median_ms, ci_low_ms FROM cases JOIN runs USING (run_id) ORDER BY ALL"
# the columns each later version added, as schema.py declares them
LATER = {
    v: {(t.name, c.name) for t in schema.TABLES for c in t.columns if c.since > v} for v in (4, 5)
}


@pytest.fixture(params=[4, 5], ids=["v4", "v5"])
def old(request, tmp_path) -> tuple[int, Path, Path]:
    """(version, a copy of the store that version's code wrote, the bundle it exported)."""
    v = request.param
    store = tmp_path / f"v{v}.duckdb"
    with gzip.open(FIXTURES / f"v{v}.duckdb.gz") as src:
        store.write_bytes(src.read())
    return v, store, FIXTURES / f"v{v}.parquet"


def read(path: Path, sql: str) -> list[tuple]:
    con = duckdb.connect(str(path), read_only=True)
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


def version_of(path: Path) -> list[tuple]:
    return read(path, "SELECT value FROM meta WHERE key = 'schema_version'")


def test_each_fixture_is_its_version_with_its_views(old):
    v, store, bundle = old
    assert version_of(store) == [(str(v),)] and kv_of(bundle)["anemll_spec.schema_version"] == str(
        v
    )
    views = {r[0] for r in read(store, "SELECT view_name FROM duckdb_views() WHERE NOT internal")}
    assert {"results", "chip_factors"} <= views
    names = set(read(store, "SELECT table_name, column_name FROM duckdb_columns()"))
    assert LATER[v] and not LATER[v] & names  # none of the later columns yet


def test_an_older_store_is_refused_read_only_then_upgraded_by_a_bench(old, tmp_path):
    v, store, _ = old
    before = read(store, DATA)
    assert len(before) == 2
    with pytest.raises(
        InputError, match=f"schema v{v}, older than this anemll-spec's v{schema.SCHEMA_VERSION}"
    ):
        open_store(store, read_only=True)
    assert version_of(store) == [(str(v),)]
    mine = begin_run(store, run(), host(energy_mode="high power"))  # a writing open upgrades
    fresh = tmp_path / "fresh.duckdb"
    open_store(fresh).close()
    cols = (
        "SELECT table_name, column_name, data_type FROM duckdb_columns() "
        "WHERE NOT internal ORDER BY ALL"
    )
    assert read(store, cols) == read(fresh, cols)
    assert version_of(store) == [(str(schema.SCHEMA_VERSION),)]
    assert read(store, DATA) == before  # the old rows as the old code wrote them
    machines = dict(read(store, "SELECT run_id, writer_machine_id FROM runs"))
    assert set(machines) == {r for r, *_ in before} | {mine}
    if v < 5:
        assert [machines[r] for r, *_ in before] == [None, None]
    else:
        assert None not in machines.values()  # v5 wrote its writer's id
    modes = dict(read(store, "SELECT run_id, energy_mode FROM runs JOIN hosts USING (host_id)"))
    assert [modes[r] for r, *_ in before] == [None, None] and modes[mine] == "high power"
    # the re-installed results view reads the old rows (runs an hour apart: M1, then M4)
    chips = read(
        store,
        "SELECT chip, round(median_ms, 9) FROM results WHERE run_id <> '" + mine + "' ORDER BY 1",
    )
    assert chips == sorted(
        (c, round(m, 9))
        for c, m in zip(
            ("M1 Max", "M4 Max"), [b[4] for b in before], strict=True
        )  # results.chip: normalised
    )


def test_an_older_bundle_imports_into_a_store_of_this_version(old, tmp_path):
    v, store, bundle = old
    dest = tmp_path / "d.duckdb"
    (summary,) = import_bundles(dest, [bundle])
    assert (summary["schema_version"], summary["runs_added"]) == (v, 2)
    assert summary["drift_slope_dropped"] == 0  # start times: recomputed and checked
    assert read(dest, "SELECT count(*), count(writer_machine_id) FROM runs") == [
        (2, 0 if v < 5 else 2)
    ]
    assert read(dest, "SELECT count(*), count(energy_mode) FROM hosts") == [(2, 0)]
    assert read(dest, "SELECT DISTINCT origin FROM runs") == [("imported",)]
    assert read(dest, DATA) == read(store, DATA)  # the bundle holds its store's rows


def _sha256(path: Path) -> str:
    import hashlib

    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_an_older_store_exports_as_its_code_wrote_it_and_stays_unchanged(old, tmp_path, capsys):
    """Export reads an older store as it is (read-only commands never upgrade): the
    bundle is in that version's layout, row for row what its own export wrote from it."""
    from anemll_spec.cli import main

    v, store, bundle = old
    before = _sha256(store)
    out = tmp_path / "ours.parquet"
    assert main(["export", "--store", str(store), "--out", str(out), "--json"]) == 0
    said = capsys.readouterr()
    assert f'"schema_version": {v}' in said.out
    assert f"note: the store is at schema v{v} (not upgraded)" in said.err
    assert _sha256(store) == before  # not upgraded, not touched
    mine, theirs = kv_of(out), kv_of(bundle)
    for key in ("schema_version", "counts", "columns"):
        assert mine[f"anemll_spec.{key}"] == theirs[f"anemll_spec.{key}"], key
    con = duckdb.connect()
    rows = "SELECT * FROM read_parquet(?) ORDER BY ALL"
    assert con.execute(rows, [str(out)]).fetchall() == con.execute(rows, [str(bundle)]).fetchall()


def test_pull_from_an_older_store_copies_its_runs_and_leaves_it_as_it_was(old, tmp_path):
    """A teammate still on an older version keeps using the shared store: pulling from it
    does not upgrade it (which would lock them out), and every run arrives, checked as on
    import."""
    from anemll_spec.cli import main

    _, store, _ = old
    before = _sha256(store)
    dest = tmp_path / "mine.duckdb"
    assert main(["pull", "--from", str(store), "--store", str(dest)]) == 0
    assert _sha256(store) == before
    assert read(dest, DATA) == read(store, DATA)
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
    was upgraded and then refused). The bundle as v4 wrote it then imports."""
    from fixtures.store.bundles import rewrite, sub

    from anemll_spec.cli import main

    bad = rewrite(V4_BUNDLE, tmp_path / "bad.parquet", sub("command", "runs", "'x'"))
    before = _sha256(v4_store)
    assert main(["import", "--store", str(v4_store), str(bad)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "is already in the store as another run" in err
    assert _sha256(v4_store) == before
    assert not v4_store.with_name(v4_store.name + ".wal").exists()
    assert version_of(v4_store) == [("4",)]
    (summary,) = import_bundles(v4_store, [V4_BUNDLE])  # the same runs: nothing to add
    assert (summary["runs_added"], summary["runs_skipped"]) == (0, 2)
    assert read(v4_store, "SELECT value FROM meta WHERE key = 'schema_version'") == [
        (str(schema.SCHEMA_VERSION),)
    ]


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
    assert version_of(v4_store) == [("4",)]
