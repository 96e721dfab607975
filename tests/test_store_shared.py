"""The shared store (DuckLake, catalog in a real PostgreSQL started by the tests): the
target string, everything a file store does, migrations, push/pull, credentials and
extensions."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import stat
import subprocess
import sys
import uuid
from pathlib import Path

import duckdb
import numpy as np
import pg
import pytest
from fixtures.store.synth import case, host, one_case_run, run, samples_ns

from anemll_spec.errors import InputError
from anemll_spec.store import (
    append_case,
    begin_run,
    finish_run,
    lake,
    lake_target,
    migrations,
    open_store,
)
from anemll_spec.store.connection import default_target
from anemll_spec.store.fallback import BenchStore
from anemll_spec.store.schema import SCHEMA_VERSION as LATEST
from anemll_spec.store.schema import sql_literal
from anemll_spec.store.sync import copy_runs

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def shared(postgres, tmp_path, monkeypatch):
    """A fresh shared-store target (its own database and data folder); password from
    $PGPASSWORD, as a user would set it."""
    monkeypatch.setenv("PGPASSWORD", pg.PASSWORD)
    db = postgres.new_db("t_" + uuid.uuid4().hex[:12])
    return postgres.target(db, tmp_path / "lake-data")


def fill(target, n_runs=2, chips=("Apple M1 Max", "Apple M4 Max"), seed=0) -> list[str]:
    """Per chip, a run of each published model's shipped spec with real samples, through
    the write API (rows an import accepts); returns the run ids (lm_head, lut6, ...)."""
    rng = np.random.default_rng(seed)
    ids = []
    for i in range(n_runs):
        for model, ms in (("llama_lm_head", 8.0 + i), ("llama_lm_head_lut6", 4.0 + i)):
            rid = begin_run(target, run(model), host(chip=chips[i % len(chips)]))
            wall = samples_ns(rng, 200, ms)
            append_case(target, rid, case(model=model, wall=wall), wall)
            finish_run(target, rid, "finished")
            ids.append(rid)
    return ids


def rows(target, sql: str, params: list | None = None) -> list[tuple]:
    con = open_store(target, read_only=True)
    try:
        return con.execute(sql, params or []).fetchall()
    finally:
        con.close()


# ---------------------------------------------------------------- target strings


def test_an_error_of_a_target_without_connection_text_stays_readable():
    """`ducklake:postgres:` alone (libpq reads PG* variables): the error text is kept as
    DuckDB wrote it; replacing the empty connection text put '<catalog>' between letters."""
    t = lake_target.parse_target("ducklake:postgres:")
    msg = lake._message(RuntimeError("IO Error: connection refused"), t)
    assert msg == "IO Error: connection refused"


def test_target_forms_parse_and_redact(tmp_path):
    t = lake_target.parse_target(
        "ducklake:postgres:host=db.lab dbname=anemll user=bench password='p w\\'x' "
        "data_path=/Volumes/lab/data"
    )
    assert (t.catalog, t.data_path) == ("postgres", "/Volumes/lab/data")
    assert "data_path" not in t.conninfo and "password='p w\\'x'" in t.conninfo
    assert "p w" not in t.shown and "password=***" in t.shown

    u = lake_target.parse_target(
        "ducklake:postgres://bench:hunter2@db.lab:5432/anemll?data_path=rel&sslmode=require"
    )
    assert u.conninfo == "postgresql://bench:hunter2@db.lab:5432/anemll?sslmode=require"
    assert u.data_path == str(Path("rel").absolute())  # every machine: one absolute path
    assert "hunter2" not in u.shown and "bench:***@db.lab" in u.shown

    f = lake_target.parse_target(f"ducklake:{tmp_path}/cat.ducklake")
    assert (f.catalog, f.conninfo) == ("duckdb", f"{tmp_path}/cat.ducklake")
    with pytest.raises(InputError, match="catalog 'mysql' is not supported") as e:
        lake_target.parse_target("ducklake:mysql:host=x password=topsecret")
    assert "topsecret" not in str(e.value)
    cmd = lake_target.redact(shlex.join(["anemll-spec", "bench", "--store", u.text]))
    assert "hunter2" not in cmd and "bench:***@" in cmd


@pytest.mark.parametrize(
    "target, shown",
    [  # an unquoted libpq value runs to the next space; a URI query's to the next '&'
        ('host=h password=Xy&SEC"tail user=u', "host=h password=*** user=u"),
        ("host=h PASSWORD = Xy'SEC user=u", "host=h PASSWORD = *** user=u"),
        ('postgres://u:pa"SEC@h/db', "postgres://u:***@h/db"),
        ("postgres://u:p@SEC@h/db", "postgres://u:***@h/db"),  # a raw '@' in the password
        (
            "postgres://u@h/db?password=SEC&sslmode=require",
            "postgres://u@h/db?password=***&sslmode=require",
        ),
        ("host=h mypassword=kept", "host=h mypassword=kept"),  # no such key: not a secret
        ("h password=pw' AS lake", "h password=***' AS lake"),  # the SQL string's quote stays
        # libpq's escaped space is part of an unquoted value (the part after it was shown
        # and stored in runs.command), and so is an escaped backslash or a final one
        ("host=h password=p\u00e4\\ ss'w\\\\o=rd user=u", "host=h password=*** user=u"),
        ("host=h password=wrong\\ SECRETTAIL", "host=h password=***"),
        ("host=h password=SEC\\", "host=h password=***"),
        ("h password=pw\\' AS lake", "h password=***' AS lake"),  # the SQL quote stays
    ],
)
def test_a_password_is_redacted_whole(target, shown):
    assert lake_target.redact(f"ducklake:{target}") == f"ducklake:{shown}"
    # every error line is redacted once more where it is printed: a message that shows a
    # target redacted (and cut, '...') stays as it is
    assert (
        lake_target.redact(f"store 'ducklake:{shown}...' cut") == f"store 'ducklake:{shown}...' cut"
    )


@pytest.mark.parametrize(
    "secret", ["***real", "...real", "'*** real'", "****", "******", "......", "...***"]
)
def test_a_password_that_looks_redacted_is_redacted_too(secret):
    assert "real" not in lake_target.redact(f"host=h password={secret} user=u")
    assert lake_target.redact(f"host=h password={secret} user=u").endswith("password=*** user=u")


def test_a_quote_inside_an_unquoted_value_is_a_character_as_libpq_reads_it():
    """`password=it's` is a password to libpq (psql connects with it); it was refused as
    an unreadable connection string."""
    t = lake_target.parse_target(r"ducklake:postgres:host=db password=it's\ x user=me data_path=/d")
    assert t.conninfo == r"host=db password='it\'s x' user=me" and t.data_path == "/d"
    assert "it" not in lake_target.redact(t.text).split("password=")[1].split()[0]


@pytest.mark.parametrize(
    "conninfo, at",
    [  # text glued to a quoted value, an unclosed quote, a word without '=' (a password?)
        ("host=db password='Sup3r'Secret dbname=s1 data_path=/tmp/x", 43),
        ("host=db password='Sup3r Secret dbname=s1 data_path=/tmp/x", 36),
        ("host=db Sup3rSecret dbname=s1", 27),
    ],
)
def test_an_unreadable_target_never_shows_its_password(cli, tmp_path, conninfo, at):
    """The target as far as it was read, redacted, and the position where reading
    stopped: the text there was quoted (20 characters of it, the password among them)."""
    target = f"ducklake:postgres:{conninfo}"
    spec = next((ROOT / "specs").glob("*.yaml"))
    for args in (
        ["push", "--store", tmp_path / "l.duckdb", "--to", target],
        ["bench", spec, "--store", target],
        ["query", "SELECT 1", "--store", target],
    ):
        out = cli(*args, cwd=tmp_path)
        assert out.returncode == 2 and out.stderr.count("\n") == 1, (args, out.stderr)
        assert "Traceback" not in out.stderr and "Secret" not in out.stderr, out.stderr
        assert f"cannot read the connection string at character {at} " in out.stderr
        assert f"store '{lake_target.redact(target[: at - 1])}...'" in out.stderr
    assert not (tmp_path / "store").exists()


def test_a_url_python_cannot_split_is_one_line_without_its_password(cli, tmp_path):
    """urlsplit raises on a lone '[' (an IPv6 host half written): a traceback, exit 1."""
    target = "ducklake:postgres://anemll:Sup3rSecret@[::1/s1?data_path=/tmp/x"
    out = cli("query", "SELECT 1", "--store", target, cwd=tmp_path)
    assert out.returncode == 2 and out.stderr.count("\n") == 1, out.stderr
    assert "Sup3rSecret" not in out.stderr and "Invalid IPv6 URL" in out.stderr, out.stderr


def test_an_unquoted_target_split_into_words_never_shows_its_password(cli, tmp_path):
    """Without the shell's quotes each key=value is a word of its own: argparse echoed
    'unrecognized arguments: ... password=...', and push looked for a run of that name."""
    words = ["ducklake:postgres:host=127.0.0.1", "user=a", "password=Sup3rSecret", "dbname=s1"]
    fill(tmp_path / "l.duckdb", n_runs=1)
    for args in (
        ["query", "--store", *words, "SELECT 1"],
        ["push", "--store", tmp_path / "l.duckdb", "--to", *words],
    ):
        out = cli(*args, cwd=tmp_path)
        assert out.returncode == 2 and "Traceback" not in out.stderr, (args, out.stderr)
        assert "Sup3rSecret" not in out.stderr + out.stdout, out.stderr


def test_a_quote_that_never_closes_is_redacted_to_the_end():
    shown = lake_target.redact("ducklake:postgres:host=h password='s3 cr3t dbname=x")
    assert shown == "ducklake:postgres:host=h password=***"


def test_a_quoted_password_inside_an_sql_literal_is_redacted():
    """As DuckDB would echo an ATTACH: the target in '...' with its own quotes doubled
    (`password=''s3 cr3t''`) showed `s3 cr3t''`."""
    from anemll_spec.store.schema import sql_literal

    target = "ducklake:postgres:dbname=x password='s3 cr3t' host=h"
    shown = lake_target.redact(f"ATTACH {sql_literal(target)} AS lake")
    assert shown == "ATTACH 'ducklake:postgres:dbname=x password=*** host=h' AS lake"
    assert lake_target.redact("password='' host=h") == "password=*** host=h"


def test_a_plain_path_is_still_a_file_store(tmp_path):
    from anemll_spec.store import store_path

    assert not lake_target.is_lake(str(tmp_path / "x.duckdb"))
    assert store_path(tmp_path / "x.duckdb") == tmp_path / "x.duckdb"
    # a shared store names no file of its own (and never its password)
    named = store_path("ducklake:postgres:host=x password=zzz")
    assert "zzz" not in str(named) and not named.exists()
    assert store_path(f"ducklake:{tmp_path}/c.ducklake") == tmp_path / "c.ducklake"


# ---------------------------------------------------------------- everything works on it


def test_writes_views_and_factors_match_a_file_store(shared, tmp_path):
    file = tmp_path / "local.duckdb"
    fill(file)
    fill(shared)
    q = (
        "SELECT chip, model, round(bandwidth_gbps, 6), round(latency_ms, 6), "
        "round(bandwidth_factor, 6), round(inference_factor, 6), baseline_source "
        "FROM chip_factors WHERE source = 'own' ORDER BY 1, 2"
    )
    own = rows(shared, q)
    assert own == rows(file, q) and len(own) == 4
    # the figures are those of the stored samples, recomputed here with numpy
    (m1,) = rows(
        shared,
        "SELECT median_ms FROM results WHERE chip = 'M1 Max' AND model_name = 'llama_lm_head'",
    )
    ns = rows(
        shared,
        "SELECT s.wall_ns FROM samples s JOIN results r USING (case_id) "
        "WHERE r.chip = 'M1 Max' AND r.model_name = 'llama_lm_head' ORDER BY idx",
    )
    assert m1[0] == pytest.approx(np.median(np.array(ns)[:, 0] / 1e6))
    # the published rows came with the store, as in a file store
    assert rows(shared, "SELECT count(*) FROM reference") == rows(
        file, "SELECT count(*) FROM reference"
    )
    # DuckLake has no primary key: the DDL dropped it, and meta keys stay unique
    assert rows(shared, "SELECT key, count(*) FROM meta GROUP BY 1 HAVING count(*) > 1") == []


@pytest.mark.slow  # every command against the shared store, a process each: ~16 s (make test-slow; CI runs both)
def test_cli_commands_on_the_shared_store(shared, tmp_path, cli):
    ids = fill(shared, n_runs=3, chips=("Apple M1 Max", "Apple M4 Max", "Apple M4 Max"))
    env = {"ANEMLL_SPEC_STORE": shared, "PGPASSWORD": pg.PASSWORD}
    q = cli("query", "SELECT count(*) AS n FROM cases", "--json", env=env)
    assert q.returncode == 0, q.stderr
    assert json.loads(q.stdout) == [{"n": 6}]  # 3 chips x 2 models
    f = cli("query", "chip_factors", "--format", "csv", env=env)
    assert f.returncode == 0 and "M4 Max" in f.stdout
    c = cli("compare", ids[2], ids[4], "--json", env=env)  # lm_head on two M4 Max runs
    assert c.returncode == 0, c.stderr
    out = tmp_path / "b.parquet"
    e = cli("export", "--out", out, env=env)
    assert e.returncode == 0, e.stderr
    local = tmp_path / "imported.duckdb"
    i = cli("import", out, "--store", local)
    assert i.returncode == 0, i.stderr
    assert rows(local, "SELECT count(*) FROM samples") == rows(
        shared, "SELECT count(*) FROM samples"
    )
    ch = cli("chart", "factors", "--out", tmp_path / "charts", env=env)
    assert ch.returncode == 0, ch.stderr
    r = cli("report", "--out", tmp_path / "r.html", env=env)
    assert r.returncode == 0, r.stderr
    assert ids[-1] in (tmp_path / "r.html").read_text()


_ANALYZE_READ = "ANALYZE SELECT * FROM read_text('/etc/hostname') UNION ALL "


@pytest.mark.slow  # some 25 query processes on the shared store: ~18 s (make test-slow; CI runs both)
def test_query_on_the_shared_store_cannot_change_it(shared, cli, tmp_path):
    fill(shared, n_runs=1)
    env = {"ANEMLL_SPEC_STORE": shared, "PGPASSWORD": pg.PASSWORD}
    before = rows(shared, "SELECT count(*), sum(wall_ns) FROM samples")
    data = Path(shared.split("data_path=")[1])
    victim = next(data.rglob("*.parquet"))
    victim_bytes = victim.read_bytes()
    for sql in (
        "INSERT INTO meta VALUES ('x', 'y')",
        "DELETE FROM samples",
        f"COPY (SELECT 1) TO '{victim}'",
        f"COPY (SELECT 1) TO '{tmp_path / 'out.csv'}'",
        "SELECT * FROM ducklake_set_option('lake', 'data_inlining_row_limit', 5)",
        "SELECT * FROM ducklake_delete_orphaned_files('lake', cleanup_all => true)",
        "ATTACH '/tmp/other.duckdb' AS o",
        "CALL lake.merge_adjacent_files()",
        "EXPLAIN ANALYZE COPY (SELECT 1) TO 'x.csv'",
        # the postgres extension reaches the catalog's server past the read-only attach: a
        # leading COMMIT ended postgres_execute's read-only transaction and deleted every
        # data file's entry (the samples were gone)
        "SELECT * FROM postgres_execute('__ducklake_metadata_lake', "
        "'COMMIT; DELETE FROM ducklake_data_file; BEGIN')",
        "SELECT * FROM postgres_query('__ducklake_metadata_lake', 'SELECT lo_create(0) AS x')",
        "SELECT * FROM query('DELETE FROM samples')",  # table functions with SQL of their own
        "SELECT * FROM json_execute_serialized_sql(json_serialize_sql('SELECT 1'))",
        "SELECT * FROM read_text('/etc/hostname')",
        "SELECT * FROM checkpoint()",
        # a comment between EXPLAIN and ANALYZE fooled a text match, and a quoted name (or a
        # comment before its parenthesis) the word match of SQL with no parse tree: the
        # samples were gone, a data file overwritten
        'EXPLAIN -- look\nANALYZE SELECT * FROM "postgres_execute"('
        "'__ducklake_metadata_lake', 'COMMIT; DELETE FROM ducklake_data_file; BEGIN')",
        f"EXPLAIN /*c*/ ANALYZE COPY (SELECT 42 AS x) TO '{victim}'",
        "EXPLAIN (ANALYZE) SELECT count(*) FROM samples",
        "SELECT * FROM postgres_execute /**/ ('__ducklake_metadata_lake', 'COMMIT; BEGIN')",
        # DuckDB's token offsets count UTF-8 bytes: read as characters, two-byte letters in
        # a comment shifted the words checked past ANALYZE and the refused call
        "EXPLAIN /*" + "é" * len(_ANALYZE_READ) + "*/ " + _ANALYZE_READ + "SELECT 'a', 1",
    ):
        out = cli("query", sql, env=env)
        assert out.returncode == 2, (sql, out.stdout, out.stderr)
        assert out.stderr.count("\n") == 1 and "Traceback" not in out.stderr
        assert "is not allowed" in out.stderr or "not allowed" in out.stderr, out.stderr
    assert rows(shared, "SELECT count(*), sum(wall_ns) FROM samples") == before
    assert not (tmp_path / "out.csv").exists() and victim.read_bytes() == victim_bytes
    ok = cli("query", "SELECT count(*) FROM samples", env=env)
    assert ok.returncode == 0 and str(before[0][0]) in ok.stdout
    ok = cli("query", "EXPLAIN /* café */ SELECT count(*) FROM samples", env=env)
    assert ok.returncode == 0, ok.stderr  # EXPLAIN of a SELECT only shows its plan
    ok = cli("query", "SELECT count(*) FROM samples", env=env)
    assert ok.returncode == 0 and str(before[0][0]) in ok.stdout
    reads = (  # table functions that only make rows or describe the schema stay usable
        "SELECT count(*) AS n FROM range(3), unnest([1, 2]), "
        "(SELECT 1 FROM duckdb_tables() WHERE table_name = 'samples')"
    )
    ok = cli("query", reads, "--json", env=env)
    assert ok.returncode == 0 and json.loads(ok.stdout) == [{"n": 6}], ok.stderr


@pytest.mark.slow  # query processes on the shared store: ~10 s (make test-slow; CI runs both)
def test_query_never_shows_the_catalogs_connection_string(postgres, tmp_path, cli, monkeypatch):
    """DuckDB's views of its attachments and settings show the catalog's connection
    string, password and all (the view duckdb_databases printed it while the function
    duckdb_databases() was refused); they are refused, and a failed query is redacted."""
    from anemll_spec.cli import query

    monkeypatch.delenv("PGPASSWORD", raising=False)
    target = postgres.target(
        postgres.new_db("t_" + uuid.uuid4().hex[:12]), tmp_path / "d", password=True
    )
    fill(target, n_runs=1)
    for sql in (
        "SELECT path FROM duckdb_databases WHERE database_name = 'lake'",
        "SELECT path::INT FROM duckdb_databases",  # the value in the cast's error
        "SUMMARIZE duckdb_databases",
        "SELECT * FROM (FROM system.main.duckdb_databases)",
        "WITH x AS (SELECT * FROM duckdb_databases) SELECT max(path) FROM x",
        "SELECT (SELECT max(file) FROM pragma_database_list)",
        "SELECT * FROM pg_catalog.pg_settings",
        "SELECT current_setting('allowed_paths')",  # holds the connection string too
        "SELECT * FROM duckdb_settings()",
        "SELECT * FROM duckdb_secrets()",
        "SELECT * FROM duckdb_extensions()",
        "SELECT * FROM duckdb_logs",
    ):
        out = cli("query", sql, "--format", "csv", "--store", target)
        assert out.returncode == 2, (sql, out.stdout, out.stderr)
        assert pg.PASSWORD not in out.stdout + out.stderr, (sql, out.stdout, out.stderr)
        assert out.stderr.count("\n") == 1 and "not allowed" in out.stderr, (sql, out.stderr)
    for sql in (  # the views that describe the schema stay readable
        "SELECT count(*) FROM information_schema.schemata WHERE catalog_name = 'lake'",
        "SELECT count(*) FROM duckdb_schemas WHERE database_name = 'lake'",
        "SELECT count(*) FROM sqlite_master WHERE name = 'samples'",
    ):
        out = cli("query", sql, "--format", "csv", "--store", target)
        assert out.returncode == 0 and int(out.stdout.split()[-1]) >= 1, (sql, out.stderr)
    # DuckDB's own text quotes what it could not convert: redacted
    with pytest.raises(duckdb.ConversionException) as cast:
        duckdb.connect().execute(f"SELECT {sql_literal(target)}::INT")
    failed = query._failed(target, cast.value)
    assert pg.PASSWORD in str(cast.value) and pg.PASSWORD not in str(failed)
    assert isinstance(failed, InputError) and "password=***" in str(failed)


def test_query_and_charts_read_a_store_whose_data_path_is_a_url(postgres, tmp_path, cli):
    """data_path=file:///...: the sandbox allowed the data folder only when it was no URL,
    so query and every chart failed on its Parquet files (Permission Error, exit 2).
    Object storage (s3://) takes the same branch but is untested: no bucket here."""
    local = tmp_path / "mine.duckdb"
    rng = np.random.default_rng(7)
    rid = begin_run(local, run(), host())
    wall = samples_ns(rng, 3000, 5.0)  # more rows than DuckLake inlines into its catalog
    append_case(local, rid, case(wall=wall), wall)
    finish_run(local, rid, "finished")
    db = postgres.new_db("t_" + uuid.uuid4().hex[:12])
    target = postgres.target(db, f"file://{tmp_path}/lake/")
    env = {"PGPASSWORD": pg.PASSWORD}
    push = cli("push", "--store", local, "--to", target, env=env)
    assert push.returncode == 0, push.stderr
    assert list((tmp_path / "lake").rglob("*.parquet"))  # the samples are in Parquet files
    q = cli("query", "SELECT count(*) AS n, sum(wall_ns) AS s FROM samples", "--json",
            "--store", target, env=env)  # fmt: skip
    assert q.returncode == 0, q.stderr
    assert json.loads(q.stdout) == [{"n": 3000, "s": int(wall.sum())}]
    ch = cli("chart", "latency", "--out", tmp_path / "charts", "--store", target, env=env)
    assert ch.returncode == 0, ch.stderr
    assert list((tmp_path / "charts").glob("*.html"))


# ---------------------------------------------------------------- migrations


def _v1_lake(target: str) -> None:
    t = lake_target.parse_target(target)
    con = lake._attach(t, read_only=False)
    try:
        con.execute("BEGIN")
        for stmt in migrations.V1_DDL:
            con.execute(re.sub(r",\s*PRIMARY KEY\s*\([^)]*\)", "", stmt))  # as DuckLake takes it
        con.execute("COMMIT")
    finally:
        con.close()


def test_an_older_shared_store_upgrades_on_a_write_and_is_refused_read_only(shared):
    from anemll_spec.store.schema import SCHEMA_VERSION

    _v1_lake(shared)
    with pytest.raises(InputError, match="read-only commands never change a store") as e:
        open_store(shared, read_only=True)
    assert "older anemll-spec versions can no longer read or write it" in str(e.value)  # shared
    assert rows_raw(shared, "SELECT value FROM meta WHERE key = 'schema_version'") == [("1",)]
    fill(shared, n_runs=1)  # a writing open upgrades it
    assert rows(shared, "SELECT value FROM meta WHERE key = 'schema_version'") == [
        (str(SCHEMA_VERSION),)
    ]
    assert rows(shared, "SELECT count(*) FROM placements") == [(0,)]


def test_a_newer_shared_store_is_refused(shared):
    fill(shared, n_runs=1)
    con = lake._attach(lake_target.parse_target(shared), read_only=False)
    con.execute("UPDATE meta SET value = '99' WHERE key = 'schema_version'")
    con.close()
    lake.forget(lake_target.parse_target(shared))
    from anemll_spec.store import connection

    connection._READY.clear()
    for ro in (True, False):
        with pytest.raises(InputError, match="schema v99, written by a newer anemll-spec"):
            open_store(shared, read_only=ro)


def _back_to_v4(shared: str) -> None:
    """Make a shared store v4 again (the columns of later versions dropped, as schema.py
    declares them, the version set back), forgotten by this process as every other
    process would have it."""
    from anemll_spec.store import connection, schema

    con = lake._attach(lake_target.parse_target(shared), read_only=False)
    for table in schema.TABLES:
        for c in table.columns:
            if c.since > 4:
                con.execute(f"ALTER TABLE {table.name} DROP COLUMN {c.name}")
    con.execute("UPDATE meta SET value = '4' WHERE key = 'schema_version'")
    con.close()
    lake.forget(lake_target.parse_target(shared))
    connection._READY.clear()


def test_a_v4_shared_store_with_its_views_upgrades_to_the_latest(postgres, tmp_path, cli):
    """The v5 and later steps (runs.writer_machine_id, hosts.energy_mode) on DuckLake,
    with the views installed: a store
        made v4 again (the column dropped, the version set back) is refused by reading
        commands, which name the command that upgrades that store, but pulled from as it is
    (export reads an older store's own layout), and gets the column back
        from `anemll-spec upgrade`; the v4 runs keep their rows and have no machine, a new run
        has this one's. The target carries its password: no output shows it."""
    from anemll_spec.machine_id import machine_id

    shared = postgres.target(postgres.new_db("v_" + uuid.uuid4().hex[:12]),
                             tmp_path / "lake-data", password=True)  # fmt: skip
    olds = fill(shared, n_runs=1)
    before = rows(shared, "SELECT case_id, median_ms FROM results ORDER BY 1")
    _back_to_v4(shared)
    with pytest.raises(InputError, match="schema v4, older than.*`anemll-spec upgrade --store "):
        open_store(shared, read_only=True)
    # pull reads it as it is (teammates still on v4 keep using it): the runs arrive
    local = tmp_path / "local.duckdb"
    pulled = cli("pull", "--from", shared, "--store", local)  # --store: the local copy
    assert pulled.returncode == 0 and pg.PASSWORD not in pulled.stdout + pulled.stderr
    assert rows_raw(shared, "SELECT value FROM meta WHERE key = 'schema_version'") == [("4",)]
    got = duckdb.connect(str(local), read_only=True)
    assert got.execute("SELECT case_id, median_ms FROM results ORDER BY 1").fetchall() == before
    got.close()
    queried = cli("query", "SELECT 1", "--store", shared)  # its views are v4's: refused
    assert queried.returncode == 2 and pg.PASSWORD not in queried.stderr, queried.stderr
    hint = queried.stderr.split("`anemll-spec upgrade --store ", 1)[1].split("`")[0]
    assert hint.startswith("'ducklake:postgres:") and "password=***" in hint, hint
    assert "` (with the password for ***) upgrades it in place" in queried.stderr
    res = cli("upgrade", "--store", shared, "--json")
    assert res.returncode == 0 and pg.PASSWORD not in res.stdout + res.stderr, res.stderr
    doc = json.loads(res.stdout)
    assert (doc["from_version"], doc["to_version"], doc["upgraded"]) == (4, LATEST, True)
    assert "password=***" in doc["store"]
    again = cli("upgrade", "--store", shared)
    assert again.returncode == 0 and pg.PASSWORD not in again.stdout + again.stderr
    assert again.stdout.rstrip().endswith(f"is already at schema v{LATEST}: nothing to do")
    assert rows(shared, "SELECT value FROM meta WHERE key = 'schema_version'") == [(str(LATEST),)]
    new = begin_run(shared, run("llama_lm_head"), {**host(), "energy_mode": "high power"})
    machines = dict(rows(shared, "SELECT run_id, writer_machine_id FROM runs"))
    assert [machines[r] for r in olds] == [None, None] and machines[new] == machine_id()
    modes = dict(rows(shared, "SELECT run_id, energy_mode FROM runs JOIN hosts USING (host_id)"))
    assert [modes[r] for r in olds] == [None, None] and modes[new] == "high power"
    assert rows(shared, "SELECT case_id, median_ms FROM results ORDER BY 1") == before


def test_a_push_that_upgrades_an_older_shared_store_says_so(postgres, tmp_path, cli):
    """Teammates on the older anemll-spec can no longer use a store a push upgraded: the
    push says it did (upgrade, which exists to do it, reports it itself)."""

    shared = postgres.target(postgres.new_db("u_" + uuid.uuid4().hex[:12]),
                             tmp_path / "lake-data", password=True)  # fmt: skip
    fill(shared, n_runs=1)
    _back_to_v4(shared)
    local = tmp_path / "local.duckdb"
    fill(local, n_runs=1, chips=("Apple M2 Max",), seed=5)
    pushed = cli("push", "--store", local, "--to", shared)
    assert pushed.returncode == 0, pushed.stderr
    note = [ln for ln in pushed.stderr.splitlines() if "upgraded the shared store" in ln]
    assert len(note) == 1 and f"from v4 to v{LATEST}" in note[0], pushed.stderr
    assert "can no longer read or write it" in note[0] and pg.PASSWORD not in pushed.stderr
    assert rows_raw(shared, "SELECT value FROM meta WHERE key = 'schema_version'") == [
        (str(LATEST),)
    ]
    again = cli("push", "--store", local, "--to", shared)  # nothing left to upgrade
    assert again.returncode == 0 and "upgraded" not in again.stderr, again.stderr


def test_a_refused_push_or_import_leaves_an_older_shared_store_as_it_was(postgres, tmp_path, cli):
    """A push (or import) the checks refuse wrote nothing, so it must not upgrade the
    shared store either (teammates still on v4 would be locked out by a push that failed):
    the checks run before the store is opened for writing."""
    shared = postgres.target(postgres.new_db("r_" + uuid.uuid4().hex[:12]),
                             tmp_path / "lake-data", password=True)  # fmt: skip
    fill(shared, n_runs=1)
    local = tmp_path / "local.duckdb"
    assert cli("pull", "--from", shared, "--store", local).returncode == 0
    con = duckdb.connect(str(local))
    con.execute("UPDATE runs SET command = 'x'")  # the same run ids, another run
    con.close()
    bundle = tmp_path / "b.parquet"
    assert cli("export", "--store", local, "--out", bundle).returncode == 0
    _back_to_v4(shared)
    for args in (("push", "--store", local, "--to", shared), ("import", "--store", shared, bundle)):
        res = cli(*args)
        assert res.returncode == 2, res.stderr
        assert "is already in the store as another run" in res.stderr, res.stderr
        assert "upgraded" not in res.stderr and pg.PASSWORD not in res.stderr, res.stderr
        assert rows_raw(shared, "SELECT value FROM meta WHERE key = 'schema_version'") == [
            ("4",)
        ], args


def rows_raw(target: str, sql: str) -> list[tuple]:
    con = lake._attach(lake_target.parse_target(target), read_only=True)
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


# ---------------------------------------------------------------- push / pull


def _tables(target) -> dict:
    q = {
        "runs": "SELECT run_id, status, host_id FROM runs ORDER BY 1",
        "cases": "SELECT case_id, run_id, median_ms, n_samples FROM cases ORDER BY 1",
        "samples": "SELECT count(*), sum(wall_ns) FROM samples",
        "hosts": "SELECT host_id, count(*) FROM hosts GROUP BY 1 ORDER BY 1",
    }
    return {k: rows(target, v) for k, v in q.items()}


@pytest.mark.slow  # push and pull processes: ~9 s (make test-slow; CI runs both)
def test_push_then_pull_keeps_ids_and_is_idempotent(shared, tmp_path, cli):
    local = tmp_path / "mine.duckdb"
    ids = fill(local, n_runs=3)
    env = {"PGPASSWORD": pg.PASSWORD}
    first = cli("push", ids[0], "--store", local, "--to", shared, "--json", env=env)
    assert first.returncode == 0, first.stderr
    assert json.loads(first.stdout)["runs_added"] == 1
    assert cli("push", "--store", local, "--to", shared, env=env).returncode == 0
    again = cli("push", "--store", local, "--to", shared, "--json", env=env)
    summary = json.loads(again.stdout)
    assert (summary["runs_added"], summary["cases_added"], summary["samples_added"]) == (0, 0, 0)
    want = _tables(local)
    assert _tables(shared) == want
    assert rows(shared, "SELECT DISTINCT origin FROM runs") == [("pushed",)]
    other = tmp_path / "other.duckdb"
    pulled = cli("pull", "--from", shared, "--store", other, env=env)
    assert pulled.returncode == 0, pulled.stderr
    assert _tables(other) == want
    assert cli("pull", "--from", shared, "--store", other, env=env).returncode == 0
    assert _tables(other) == want


def test_a_push_is_checked_like_import_and_all_or_nothing(shared, tmp_path, cli):
    local = tmp_path / "mine.duckdb"
    ids = fill(local, n_runs=2)
    con = duckdb.connect(str(local))
    con.execute("UPDATE cases SET median_ms = 9999 WHERE run_id = ?", [ids[-1]])  # a claim
    con.close()
    out = cli("push", "--store", local, "--to", shared, env={"PGPASSWORD": pg.PASSWORD})
    assert out.returncode == 2 and "median" in out.stderr, out.stderr
    # refused before the store was opened for writing: not even made, so no good run either
    with pytest.raises(InputError, match="does not exist"):
        rows(shared, "SELECT count(*) FROM runs")
    fill(shared, n_runs=1)  # a store there: refused the same, and nothing written
    out = cli("push", "--store", local, "--to", shared, env={"PGPASSWORD": pg.PASSWORD})
    assert out.returncode == 2 and "median" in out.stderr, out.stderr
    assert rows(shared, "SELECT count(*) FROM runs") == [(2,)]


def test_a_refused_push_or_pull_names_the_source_store_and_table(postgres, tmp_path, cli):
    """The runs travel through a temporary bundle, deleted when the command ends: a refusal
    from its checks named that file (/tmp/anemll-sync-.../runs.parquet), not the store
    the runs came from (redacted) and the table."""
    target = postgres.target(postgres.new_db("t_" + uuid.uuid4().hex[:12]), tmp_path / "d",
                             password=True)  # fmt: skip
    local = tmp_path / "mine.duckdb"
    fill(local, n_runs=1)
    fill(target, n_runs=1)
    con = duckdb.connect(str(local))
    con.execute("UPDATE runs SET spec_name = repeat('x', 5000)")
    con.close()
    con = open_store(target)
    con.execute("UPDATE runs SET spec_name = repeat('y', 5000)")
    con.close()
    too_long = ": a value of runs.spec_name is 5,000 characters long; the limit is 256\n"
    out = cli("push", "--store", local, "--to", target)
    assert out.returncode == 2 and out.stderr.count("\n") == 1, out.stderr
    assert out.stderr == f"anemll-spec push: error: {local}{too_long}"
    assert rows(target, "SELECT count(*) FROM runs") == [(2,)]  # nothing written
    new = tmp_path / "new.duckdb"
    out = cli("pull", "--from", target, "--store", new)
    assert out.returncode == 2 and pg.PASSWORD not in out.stderr, out.stderr
    assert out.stderr == f"anemll-spec pull: error: {lake_target.redact(target)}{too_long}"
    assert not new.exists()


def test_a_refused_pull_into_a_new_store_leaves_no_file(tmp_path):
    local = tmp_path / "mine.duckdb"
    ids = fill(local, n_runs=1)
    con = duckdb.connect(str(local))
    con.execute("UPDATE cases SET median_ms = 9999 WHERE run_id = ?", [ids[0]])
    con.close()
    new = tmp_path / "new.duckdb"
    with pytest.raises(InputError, match="median"):
        copy_runs(local, new)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mine.duckdb"]
    # an empty file there (`touch new.duckdb`) is no store yet, and stays an empty file
    new.touch(mode=0o640)
    new.chmod(0o640)
    with pytest.raises(InputError, match="median"):
        copy_runs(local, new)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mine.duckdb", "new.duckdb"]
    assert new.stat().st_size == 0 and stat.S_IMODE(new.stat().st_mode) == 0o640


def test_push_adds_the_cases_a_run_lacks_and_its_final_status(shared, tmp_path):
    local = tmp_path / "mine.duckdb"
    rng = np.random.default_rng(3)
    rid = begin_run(local, run(), host())
    w = [samples_ns(rng, 50, 5.0) for _ in range(3)]
    cid0 = append_case(local, rid, case(wall=w[0]), w[0])
    copy_runs(local, shared)  # the shared store has the run 'running' with one case
    append_case(local, rid, case(wall=w[1]), w[1])
    append_case(local, rid, case(wall=w[2]), w[2])
    finish_run(local, rid, "finished")
    got = copy_runs(local, shared)
    assert (got["runs_added"], got["runs_updated"], got["cases_added"]) == (0, 1, 2)
    assert _tables(shared) == _tables(local)
    assert cid0 in {c for c, *_ in rows(shared, "SELECT case_id FROM cases")}


def test_a_push_to_a_catalog_file_in_a_new_folder_makes_the_folder(tmp_path):
    """A file store makes its folders; a DuckDB-catalog lake failed 'IO Error: Cannot open
    file' where its folder was not there yet. Made for a writing open only."""
    local = tmp_path / "mine.duckdb"
    rid = one_case_run(local, seed=7, n=30)
    missing = f"ducklake:{tmp_path}/gone/x.ducklake"
    with pytest.raises(InputError, match="database does not exist"):
        open_store(missing, read_only=True)
    catalog = tmp_path / "new" / "deeper" / "s.ducklake"
    got = copy_runs(local, f"ducklake:{catalog}")
    assert (got["runs"], got["runs_added"]) == ([rid], 1)
    assert sorted(p.name for p in catalog.parent.iterdir()) == ["s.ducklake", "s.ducklake.files"]
    assert list((catalog.parent / "s.ducklake.files").rglob("*.parquet"))  # the samples
    got = rows(
        f"ducklake:{catalog}", "SELECT run_id, status, (FROM samples SELECT count(*)) FROM runs"
    )
    assert got == [(rid, "finished", 30)]
    afile = tmp_path / "notes.txt"
    afile.write_text("x")
    with pytest.raises(InputError) as err:
        open_store(f"ducklake:{afile}/sub/s.ducklake")
    assert str(err.value) == (
        f"cannot make a store at ducklake:{afile}/sub/s.ducklake: {afile} is a file, not a folder"
    )
    assert not (tmp_path / "gone").exists() and afile.read_text() == "x"


def test_a_pulled_or_pushed_file_store_is_whole_without_its_wal(tmp_path, cli):
    """pull and push into a local file left what they added in its .wal (stores open
    with checkpoint-on-shutdown off): a copy of the file alone lost the pulled run, and
    a new store pushed into read as an empty database. Now they checkpoint, as import."""
    source = tmp_path / "source.duckdb"
    ids = fill(source, n_runs=2)
    for cmd in (["pull", "--store", tmp_path / "mine.duckdb", "--from", source],
                ["push", *ids, "--store", source, "--to", tmp_path / "mine2.duckdb"]):  # fmt: skip
        r = cli(*cmd)
        assert r.returncode == 0, r.stderr
        dest = Path(cmd[cmd.index("--store" if cmd[0] == "pull" else "--to") + 1])
        assert not Path(f"{dest}.wal").exists()
        copy = tmp_path / "copies" / dest.name
        copy.parent.mkdir(exist_ok=True)
        shutil.copy(dest, copy)  # the file alone
        assert sorted(r[0] for r in rows(copy, "SELECT run_id FROM runs")) == sorted(ids)


def test_a_pull_from_a_missing_store_names_it_as_the_source(tmp_path):
    """It said 'pass --store PATH', the option naming the other store."""
    with pytest.raises(
        InputError, match=r"^no results store at .*nosuch.duckdb to copy runs from$"
    ):
        copy_runs(tmp_path / "nosuch.duckdb", tmp_path / "mine.duckdb")
    assert list(tmp_path.iterdir()) == []


def test_a_pull_keeps_the_status_a_run_measured_here_was_given(tmp_path):
    """Import kept a run measured in the store at its writer's status; pull took any later
    one, so another store's copy made an interrupted run 'finished'. Only a measured run
    left 'running' (its server lost, the run finished in a fallback store) takes one."""
    mine, theirs = tmp_path / "mine.duckdb", tmp_path / "theirs.duckdb"
    rng = np.random.default_rng(5)
    ids = [begin_run(mine, run(), host()) for _ in range(2)]
    w = [samples_ns(rng, 40, 5.0) for _ in range(4)]
    for rid, wall in zip(ids, w[:2], strict=True):
        append_case(mine, rid, case(wall=wall), wall)
    for suffix in ("", ".wal"):  # both stores measured both runs' first case
        if Path(f"{mine}{suffix}").exists():
            Path(f"{theirs}{suffix}").write_bytes(Path(f"{mine}{suffix}").read_bytes())
    finish_run(mine, ids[0], "interrupted")  # ids[1] stays 'running' here
    for rid, wall in zip(ids, w[2:], strict=True):
        append_case(theirs, rid, case(wall=wall), wall)
        finish_run(theirs, rid, "finished")
    got = copy_runs(theirs, mine)
    assert (got["runs_updated"], got["cases_added"]) == (1, 2)
    status = dict(rows(mine, "SELECT run_id, status FROM runs"))
    assert status == {ids[0]: "interrupted", ids[1]: "finished"}


def _a_dead_writers_run_copied(mine: Path, theirs: Path) -> str:
    """A run with one case in `mine`, written by a process that has exited (a later bench
    there marks it interrupted), copied to `theirs` where it went on; its id."""
    code = (
        "import sys\nfrom fixtures.store.synth import case, host, run, samples_ns\n"
        "import numpy as np\nfrom anemll_spec.store import append_case, begin_run\n"
        "rid = begin_run(sys.argv[1], run(), host())\n"
        "w = samples_ns(np.random.default_rng(1), 40, 5.0)\n"
        "append_case(sys.argv[1], rid, case(wall=w), w)\nprint(rid)\n"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "tests"), str(ROOT)])}
    out = subprocess.run([sys.executable, "-c", code, str(mine)], capture_output=True,
                         text=True, env=env, check=True)  # fmt: skip
    for suffix in ("", ".wal"):  # the run went on in a copy of the store
        if Path(f"{mine}{suffix}").exists():
            Path(f"{theirs}{suffix}").write_bytes(Path(f"{mine}{suffix}").read_bytes())
    return out.stdout.strip()


def test_a_run_interrupted_in_both_stores_ends_after_its_last_case(tmp_path):
    """A run marked 'interrupted' here (its writer's pid gone: its case's time), then
    interrupted by its writer in the store it went on in: the pull brought the later
    cases but kept the earlier finish time (same status), a run ending before its cases."""
    mine, theirs = tmp_path / "mine.duckdb", tmp_path / "theirs.duckdb"
    rid = _a_dead_writers_run_copied(mine, theirs)
    w = samples_ns(np.random.default_rng(2), 40, 5.0)
    append_case(theirs, rid, case(wall=w), w)
    finish_run(theirs, rid, "interrupted")  # its writer's Ctrl-C there
    begin_run(mine, run(), host())  # a later bench here marks it: its pid has exited
    last = "SELECT status, finished_at FROM runs WHERE run_id = ?"
    (marked,) = rows(mine, last, [rid])
    assert marked[0] == "interrupted"
    got = copy_runs(theirs, mine)
    assert (got["runs_updated"], got["cases_added"]) == (1, 1)
    assert rows(mine, last, [rid]) == rows(theirs, last, [rid])
    (latest,) = rows(mine, "SELECT max(finished_at) FROM cases WHERE run_id = ?", [rid])
    assert rows(mine, last, [rid])[0][1] >= latest[0] > marked[1]


def test_a_marked_run_pushed_while_its_copy_still_runs_ends_at_its_last_case(tmp_path):
    """The order the reviewer hit: marked 'interrupted' here, then pushed its later cases
    while the copy elsewhere was still 'running' (no status to take): the finish time
    stayed before those cases, so the next push, of the copy's own later 'interrupted',
    read it as one its writer ended, and it kept ending before its cases for good."""
    mine, theirs = tmp_path / "mine.duckdb", tmp_path / "theirs.duckdb"
    rid = _a_dead_writers_run_copied(mine, theirs)
    w = samples_ns(np.random.default_rng(2), 40, 5.0)
    append_case(theirs, rid, case(wall=w), w)  # still 'running' there
    begin_run(mine, run(), host())  # a later bench here marks it: its pid has exited
    last = "SELECT status, finished_at FROM runs WHERE run_id = ?"
    cases_end = "SELECT max(finished_at) FROM cases WHERE run_id = ?"
    copy_runs(theirs, mine)  # its later case, and no status to take
    ((status, ended),) = rows(mine, last, [rid])
    ((latest,),) = rows(mine, cases_end, [rid])
    assert status == "interrupted" and ended == latest  # ends at its last case, as marked
    w = samples_ns(np.random.default_rng(3), 40, 5.0)
    append_case(theirs, rid, case(wall=w), w)
    finish_run(theirs, rid, "interrupted")  # its writer's Ctrl-C there, later
    got = copy_runs(theirs, mine)
    assert (got["runs_updated"], got["cases_added"]) == (1, 1)
    assert rows(mine, last, [rid]) == rows(theirs, last, [rid])
    ((latest,),) = rows(mine, cases_end, [rid])
    assert rows(mine, last, [rid])[0][1] >= latest


def test_a_push_under_a_shared_runs_id_from_another_run_is_refused(shared, tmp_path):
    """A run id names one run: a push whose run has a shared run's id, but another
    command (or host, spec, writer), is refused, not merged into the shared run."""
    local = tmp_path / "mine.duckdb"
    (rid, *_) = fill(local, n_runs=1)
    copy_runs(local, shared)
    before = _tables(shared)
    con = duckdb.connect(str(local))
    con.execute("UPDATE runs SET command = 'anemll-spec bench other.yaml' WHERE run_id = ?", [rid])
    con.close()
    with pytest.raises(InputError, match=f"run '{rid}' is already in the store as another run"):
        copy_runs(local, shared)
    assert _tables(shared) == before


def test_a_failure_after_the_commit_says_written_not_nothing_written(shared, tmp_path, monkeypatch):
    """Removing duplicate host rows follows the commit: its failure is a warning saying
    the runs are in (and to run the command again), never "nothing written"."""
    local = tmp_path / "mine.duckdb"
    fill(local, n_runs=2)

    def lost(con, attempts=20):
        raise duckdb.IOException("server closed the connection unexpectedly")

    monkeypatch.setattr(lake, "dedupe_hosts", lost)
    got = copy_runs(local, shared)
    assert got["runs_added"] == 4
    assert got["warning"].startswith("written, but removing duplicate host rows failed")
    assert _tables(shared) == _tables(local)


# ---------------------------------------------------------------- credentials


def test_a_password_in_the_target_is_never_shown_or_stored(postgres, tmp_path, monkeypatch, cli):
    monkeypatch.delenv("PGPASSWORD", raising=False)
    db = postgres.new_db("t_" + uuid.uuid4().hex[:12])
    target = postgres.target(db, tmp_path / "d", password=True)
    wrong = target.replace(pg.PASSWORD, "wrong-" + pg.PASSWORD[:5] + "Z")
    bad = cli("query", "SELECT 1", "--store", wrong)
    assert bad.returncode == 2 and "password authentication failed" in bad.stderr
    assert "wrong-" not in bad.stderr and "password=***" in bad.stderr
    store = BenchStore(target, local=str(tmp_path / "fallback.duckdb"))
    rid = store.begin_run(None, run(command=f"anemll-spec bench x.yaml --store '{target}'"), host())
    store.finish_run(None, rid, "finished")
    assert pg.PASSWORD not in store.where
    (command,) = rows(target, "SELECT command FROM runs")[0]
    assert pg.PASSWORD not in command and "password=***" in command
    out = tmp_path / "b.parquet"
    assert cli("export", "--store", target, "--out", out).returncode == 0
    assert pg.PASSWORD.encode() not in out.read_bytes()


def test_pgpassword_pgpass_and_a_service_file_work(postgres, tmp_path, monkeypatch):
    db = postgres.new_db("t_" + uuid.uuid4().hex[:12])
    target = postgres.target(db, tmp_path / "d")
    monkeypatch.setenv("PGPASSWORD", pg.PASSWORD)
    fill(target, n_runs=1)
    monkeypatch.delenv("PGPASSWORD")
    lake.forget(lake_target.parse_target(target))
    service = tmp_path / "pg_service.conf"
    service.write_text(
        f"[anemll]\nhost=127.0.0.1\nport={postgres.port}\nuser={pg.USER}\ndbname={db}\n"
    )
    passfile = tmp_path / "pgpass"
    passfile.write_text(f"127.0.0.1:{postgres.port}:*:{pg.USER}:{pg.PASSWORD}\n")
    passfile.chmod(0o600)
    code = (
        "from anemll_spec.store import open_store\n"
        "con = open_store('ducklake:postgres:service=anemll', read_only=True)\n"
        "print(con.execute('SELECT count(*) FROM runs').fetchone()[0])\n"
    )
    env = {**os.environ, "PGSERVICEFILE": str(service), "PGPASSFILE": str(passfile)}
    env.pop("PGPASSWORD", None)
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=ROOT
    )
    assert out.returncode == 0 and out.stdout.strip() == "2", out.stderr  # one per model
    env.pop("PGPASSFILE")
    env["PGPASSFILE"] = str(tmp_path / "none")
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "anemll_spec",
            "query",
            "SELECT 1",
            "--store",
            "ducklake:postgres:service=anemll",
        ],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
    )
    assert out.returncode == 2 and "no password supplied" in out.stderr


# ---------------------------------------------------------------- extensions


def test_an_extension_built_for_another_duckdb_gives_one_line(tmp_path):
    import duckdb_extension_ducklake  # the PyPI package this workplace and CI install

    real = next(
        Path(duckdb_extension_ducklake.__file__).parent.glob(
            "extensions/*/ducklake.duckdb_extension"
        )
    )
    fake = tmp_path / "pkgs" / "duckdb_extension_ducklake"
    (fake / "extensions" / "v1.4.0").mkdir(parents=True)
    (fake / "__init__.py").write_text("")
    (fake / "extensions" / "v1.4.0" / "ducklake.duckdb_extension").symlink_to(real)
    code = (
        "import duckdb\nfrom anemll_spec.store import lake\n"
        "con = duckdb.connect(config={'autoinstall_known_extensions': False})\n"
        "con.execute(\"SET extension_directory = '" + str(tmp_path / "ext") + "'\")\n"
        "con.execute(\"SET custom_extension_repository = 'http://127.0.0.1:9/'\")\n"
        "lake.load_extensions(con, ('ducklake',))\n"
    )
    env = {**os.environ, "PYTHONPATH": f"{tmp_path / 'pkgs'}:{ROOT}"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert out.returncode != 0
    last = out.stderr.strip().splitlines()[-1]
    assert f"built for DuckDB 1.4.0, but this is DuckDB {duckdb.__version__}" in last
    assert "pip install 'duckdb==1.4.0'" in last
    (fake / "extensions" / "v1.4.0" / "ducklake.duckdb_extension").unlink()
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    last = out.stderr.strip().splitlines()[-1]
    assert "extension 'ducklake' is not available" in last and "anemll-spec[lake]" in last


def test_default_target_may_be_a_shared_store(monkeypatch, shared):
    monkeypatch.setenv("ANEMLL_SPEC_STORE", shared)
    assert default_target() == shared


def test_an_export_reads_one_snapshot_while_a_push_adds_cases(shared, tmp_path, monkeypatch):
    """The row counts and the rows were read in two transactions: a case another writer
    committed between them made the bundle's counts disagree with its rows, and import
    (and pull, which exports) refused the bundle."""
    from anemll_spec.store import exporting
    from anemll_spec.store.importing import import_bundles

    (run_id, *_) = fill(shared, n_runs=1)
    chosen = exporting._chosen
    added = []

    def chosen_then_a_write(con, run_refs, tables):
        out = chosen(con, run_refs, tables)
        wall = samples_ns(np.random.default_rng(8), 50, 3.0)  # another writer, committed now
        added.append(append_case(shared, run_id, case(wall=wall, case_index=1), wall))
        return out

    monkeypatch.setattr(exporting, "_chosen", chosen_then_a_write)
    summary = exporting.export_bundle(shared, tmp_path / "b.parquet")
    assert added and summary["counts"]["cases"] == 2  # the two runs before the write
    (imported,) = import_bundles(tmp_path / "copy.duckdb", [tmp_path / "b.parquet"])
    assert imported["rows"]["cases"] == 2  # and its rows are those it counted


@pytest.mark.parametrize("password", ["'s3 cr3t'", r"'it\'s cr3t'", "it's-cr3t"])
def test_a_quoted_password_never_reaches_the_stored_command(tmp_path, cli, password):
    """libpq quotes a password with a space or quote; the command line was quoted for a
    shell first ('"'"'), and the redaction then missed the password. Run end to end: the
    shared store is unreachable, so the run falls back to a local store, whose runs.command
    is read back (and the file searched for the secret)."""
    spec = tmp_path / "tiny.yaml"
    spec.write_text(
        "name: tiny\nmodel: {family: matmul, m: 8, k: 8, n: 8}\n"
        "run: {backends: [numpy], warmup: 1, iterations: 5, dispatch_floor: false}\n"
    )
    local = tmp_path / "local.duckdb"
    target = f"ducklake:postgres:host=127.0.0.1 port=1 dbname=x password={password} "
    target += f"data_path={tmp_path / 'lake'}"
    env = {"ANEMLL_SPEC_STORE_LOCK_TIMEOUT_S": "1", "ANEMLL_SPEC_FALLBACK_STORE": str(local)}
    out = cli("bench", spec, "--store", target, env=env)
    assert out.returncode == 1, out.stderr  # the run is in the local store, not the one named
    ((command,),) = rows(local, "SELECT command FROM runs")
    assert "cr3t" not in command and "password=***" in command, command
    assert "cr3t" not in out.stdout + out.stderr
    assert b"cr3t" not in local.read_bytes()
    assert lake_target.command_text(["--store", target]).count("***") == 1
