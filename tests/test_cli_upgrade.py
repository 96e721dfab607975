"""`anemll-spec upgrade`: the one command that upgrades a store without adding a run (read-
only commands never change one). Stores are real files: the v4 store the v4 code wrote
(tests/fixtures/store/make_v4.py), and fresh ones changed the way a stopped upgrade or
another anemll-spec leaves them; the outcome is read back from the file."""

from __future__ import annotations

import json
from pathlib import Path

import duckdb
import pytest
from fixtures.store.synth import new_run

from anemll_spec.store import SCHEMA_VERSION
from anemll_spec.store.prepare import StorePrepared, derived_fingerprint


def meta(path: Path) -> dict[str, str]:
    con = duckdb.connect(str(path), read_only=True)
    try:
        return dict(con.execute("SELECT key, value FROM meta").fetchall())
    finally:
        con.close()


def set_meta(path: Path, sql: str) -> None:
    con = duckdb.connect(str(path))
    con.execute(sql)
    con.close()


def test_an_older_store_is_refused_by_reading_commands_and_upgraded_by_upgrade(cli, v4_store):
    refused = cli("query", "SELECT count(*) FROM runs", "--store", v4_store)
    assert refused.returncode == 2 and "Traceback" not in refused.stderr
    assert "has schema v4" in refused.stderr
    assert f"`anemll-spec upgrade --store {v4_store}` upgrades it in place" in refused.stderr
    assert meta(v4_store)["schema_version"] == "4"  # refusing changed nothing

    res = cli("upgrade", "--store", v4_store)
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == f"upgraded {v4_store} from schema v4 to v{SCHEMA_VERSION}"
    assert meta(v4_store)["schema_version"] == str(SCHEMA_VERSION)
    assert meta(v4_store)["derived_sha256"] == derived_fingerprint()
    # checkpointed: the .duckdb alone (copied to share it) is the upgraded store
    wal = Path(str(v4_store) + ".wal")
    assert not wal.exists() or wal.stat().st_size == 0
    query = cli("query", "SELECT count(*) AS n FROM runs", "--store", v4_store, "--json")
    assert query.returncode == 0 and json.loads(query.stdout) == [{"n": 2}]  # no run added

    again = cli("upgrade", "--store", v4_store, "--json")
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout) == {
        "store": str(v4_store), "from_version": SCHEMA_VERSION, "to_version": SCHEMA_VERSION,
        "upgraded": False,
    }  # fmt: skip


@pytest.mark.parametrize(
    ("change", "why"),
    [
        ("DELETE FROM meta WHERE key = 'derived_sha256'", "an upgrade stopped before its views"),
        ("UPDATE meta SET value = 'x' WHERE key = 'derived_sha256'", "another tool's views"),
    ],
)
def test_views_that_are_not_this_anemll_specs_are_reinstalled(cli, tmp_path, change, why):
    store = tmp_path / "s.duckdb"
    new_run(store)
    set_meta(store, change)
    res = cli("upgrade", "--store", store)
    assert res.returncode == 0, res.stderr
    assert "re-installed its views" in res.stdout, why
    assert meta(store)["derived_sha256"] == derived_fingerprint()
    assert cli("query", "SELECT * FROM results", "--store", store).returncode == 0


def test_a_missing_store_is_not_created(cli, tmp_path):
    store = tmp_path / "typo.duckdb"
    res = cli("upgrade", "--store", store)
    assert res.returncode == 2 and "Traceback" not in res.stderr
    assert res.stderr.strip().endswith(f"no store at {store}: nothing to upgrade")
    assert not store.exists()


def test_a_newer_store_is_refused_unchanged(cli, tmp_path):
    store = tmp_path / "s.duckdb"
    new_run(store)
    set_meta(store, "UPDATE meta SET value = '99' WHERE key = 'schema_version'")
    before = store.read_bytes()
    res = cli("upgrade", "--store", store)
    assert res.returncode == 2 and "written by a newer anemll-spec" in res.stderr
    assert store.read_bytes() == before


def test_an_upgrade_another_process_did_first_is_not_reported_as_this_ones(v4_store):
    """Two upgrades that both found v4: the second writing open finds the latest and changes
    nothing, and says so (what prepare did, not what the first read saw)."""
    from anemll_spec.store.connection import upgrade_store

    assert upgrade_store(v4_store) == StorePrepared(4, True)
    assert upgrade_store(v4_store) == StorePrepared(SCHEMA_VERSION, False)
    assert meta(v4_store)["schema_version"] == str(SCHEMA_VERSION)
