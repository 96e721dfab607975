"""Export / import bundles: round trip, idempotence, and every kind of bad bundle."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import duckdb
import numpy as np
import pytest
from fixtures.store.bundles import assert_refused, content, kv_of, rewrite, sub
from fixtures.store.synth import case, new_run, one_case_run, samples_ns

from anemll_spec.errors import InputError
from anemll_spec.store import append_case, finish_run, open_store, schema
from anemll_spec.store.exporting import export_bundle
from anemll_spec.store.importing import import_bundles
from anemll_spec.store.schema import sql_literal

DUCKDB_CLI = Path(sys.executable).parent / "duckdb"
HOSTILE = "x'); DROP TABLE runs; --"

# rows of the v4 tables of runs without energy or sustained windows: none, counted as 0
NO_ENERGY = {"case_energy_rails": 0, "power_samples": 0, "sustained_windows": 0}


@pytest.fixture(scope="module")
def source(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("src") / "src.duckdb"
    rng = np.random.default_rng(11)
    for chip in ("Apple M1 Max", "Apple M4 Max"):
        run_id = new_run(path, chip=chip, command=f"anemll-spec bench x.yaml # {HOSTILE}")
        wall = samples_ns(rng, 50, 7.0)
        starts = np.cumsum(wall) + 10**12
        both = np.column_stack([wall, wall - 1000]).astype(np.float64)
        both[::7, 1] = np.nan
        append_case(
            path,
            run_id,
            case(
                wall=wall,
                starts=starts,
                notes=[HOSTILE],  # params are the spec's sweep point's (checked on import)
                runtime_median_ms=float(np.median(wall[np.arange(50) % 7 != 0] - 1000)) / 1e6,
            ),
            both,
            [
                {
                    "op_name": "conv_0",
                    "op_type": "conv",
                    "preferred_device": "NeuralEngine",
                    "estimated_cost": 0.9,
                }
            ],  # fmt: skip
            starts_ns=starts,
        )
        append_case(path, run_id, case(status="failed", error=HOSTILE), [])
        finish_run(path, run_id, "finished")
    return path


@pytest.fixture(scope="module")
def bundle(source, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("b") / "all.parquet"
    export_bundle(source, out)
    return out


def test_round_trip_and_duplicate_import(source, bundle, tmp_path):
    dest = tmp_path / "dest.duckdb"
    (summary,) = import_bundles(dest, [bundle])
    assert summary["runs_added"] == 2 and summary["runs_skipped"] == 0
    assert content(dest) == content(source)
    # SQL-ish strings arrived as data
    con = duckdb.connect(str(dest), read_only=True)
    assert con.execute("SELECT count(*) FROM cases WHERE error = ?", [HOSTILE]).fetchone() == (2,)
    con.close()

    before = content(dest)
    (again,) = import_bundles(dest, [bundle])
    assert again["runs_added"] == 0 and again["runs_skipped"] == 2
    assert sum(again["rows"].values()) == 0
    assert content(dest) == before


def test_export_some_runs_by_prefix_and_shortcut(source, tmp_path):
    con = open_store(source, read_only=True)
    ids = [r[0] for r in con.execute("SELECT run_id FROM runs ORDER BY started_at").fetchall()]
    con.close()
    out = tmp_path / "latest.parquet"
    summary = export_bundle(source, out, ["latest"])
    assert summary["runs"] == [ids[-1]]
    assert summary["counts"] == {
        "hosts": 1,
        "runs": 1,
        "cases": 2,
        "samples": 50,
        "placements": 1,
        **NO_ENERGY,
    }
    out2 = tmp_path / "prefix.parquet"
    assert export_bundle(source, out2, [ids[0][:-3]])["runs"] == [ids[0]]
    dest = tmp_path / "d.duckdb"
    import_bundles(dest, [out, out2, out])  # several at once; duplicates within one call too
    assert content(dest) == content(source)


def duckdb_json(sql: str) -> list[dict]:
    result = subprocess.run(
        [str(DUCKDB_CLI), "-json", "-c", sql], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_a_run_exported_while_running_is_completed_by_its_later_bundle(cli, tmp_path):
    """Exported after one case, then again once finished with two: importing both gives
    the whole run, as `pull` would (the second import added nothing and said success)."""
    src = tmp_path / "src.duckdb"
    rng = np.random.default_rng(3)
    run_id = new_run(src)
    for i in range(2):
        wall = samples_ns(rng, 20, 5.0 + i)
        append_case(src, run_id, case(wall=wall), wall)  # the spec's case, measured twice
        if i == 0:
            export_bundle(src, tmp_path / "part.parquet")
    finish_run(src, run_id, "finished")
    export_bundle(src, tmp_path / "whole.parquet")
    dest = tmp_path / "dest.duckdb"
    (first,) = import_bundles(dest, [tmp_path / "part.parquet"])
    assert first["rows"]["cases"] == 1
    r = cli("import", tmp_path / "whole.parquet", "--store", dest)
    assert r.returncode == 0, r.stderr
    assert "0 run(s) added, 1 already present (1 now with a later status" in r.stdout
    assert "; 1 case(s), 20 sample(s)" in r.stdout
    assert content(dest) == content(src)
    (again,) = import_bundles(dest, [tmp_path / "part.parquet"])  # an older bundle later
    assert sum(again["rows"].values()) == 0 and again["runs_updated"] == 0
    assert content(dest) == content(src)  # still finished, still both cases


def test_a_bundle_cannot_add_cases_to_a_run_measured_here(tmp_path):
    """An exported copy of a local run with one more case: importing it back would file
    that case under 'own, measured here' and pool it into compare."""

    here = tmp_path / "here.duckdb"
    run_id = one_case_run(here, seed=5)
    forged = tmp_path / "forged.duckdb"
    shutil.copy(here, forged)
    wall = samples_ns(np.random.default_rng(55), 20, 0.002)
    append_case(forged, run_id, case(wall=wall), wall)
    export_bundle(forged, tmp_path / "forged.parquet")
    before = content(here)
    assert_refused(here, before, [tmp_path / "forged.parquet"], "was measured in this store")
    # a bundle of the run as it is adds nothing and is no problem
    export_bundle(here, tmp_path / "same.parquet")
    (same,) = import_bundles(here, [tmp_path / "same.parquet"])
    assert sum(same["rows"].values()) == 0 and content(here) == before


def test_two_bundles_of_one_import_are_held_to_one_run_per_id(bundle, tmp_path):
    """Each bundle was checked against the store as it was before the import, so a second
    bundle's other run under the first's id (another command, new case ids) was merged
    into it; imported one after the other it was refused."""
    other = rewrite(
        bundle,
        tmp_path / "other.parquet",
        "SELECT * REPLACE (regexp_replace(case_id, '-[0-9a-f]{8}$', '-' || left(md5(case_id), 8))"
        " AS case_id, CASE WHEN \"table\" = 'runs' THEN 'anemll-spec bench specs/other.yaml' "
        "ELSE command END AS command) FROM b",
    )
    dest = tmp_path / "dest.duckdb"
    open_store(dest).close()
    before = content(dest)
    assert_refused(dest, before, [bundle, other], "is already in the store as another run")
    import_bundles(dest, [bundle])  # and one after the other, as before
    assert_refused(dest, content(dest), [other], "is already in the store as another run")


def test_a_bundle_does_not_change_the_status_of_a_run_measured_here(tmp_path):
    """An exported copy of an interrupted local run, its status edited to 'finished':
    importing it made the incomplete run read as finished."""
    here = tmp_path / "here.duckdb"
    one_case_run(here, seed=6, status="interrupted")
    export_bundle(here, tmp_path / "own.parquet")
    edited = rewrite(
        tmp_path / "own.parquet",
        tmp_path / "finished.parquet",
        "SELECT * REPLACE (CASE WHEN \"table\" = 'runs' THEN 'finished' ELSE status END "
        "AS status) FROM b",
    )
    before = content(here)
    (summary,) = import_bundles(here, [edited])
    assert summary["runs_updated"] == 0 and content(here) == before
    con = duckdb.connect(str(here), read_only=True)
    try:
        assert con.execute("SELECT status FROM runs").fetchall() == [("interrupted",)]
    finally:
        con.close()


def test_bundle_is_plain_duckdb_readable(bundle):
    path = sql_literal(str(bundle))
    rows = duckdb_json(f'SELECT "table", count(*) AS n FROM {path} GROUP BY 1 ORDER BY 1')
    counts = {r["table"]: r["n"] for r in rows}
    assert counts == {"hosts": 2, "runs": 2, "cases": 4, "samples": 100, "placements": 2}
    second = duckdb_json(
        f"SELECT decode(key) AS k, decode(value) AS v FROM parquet_kv_metadata({path})"
    )
    meta = {r["k"]: r["v"] for r in second}
    assert meta["anemll_spec.schema_version"] == str(schema.SCHEMA_VERSION)
    assert json.loads(meta["anemll_spec.counts"]) == {**counts, **NO_ENERGY}
    cols = json.loads(meta["anemll_spec.columns"])
    assert [c[0] for c in cols["cases"]] == schema.CASES.names


# ---------------------------------------------------------------- bad bundles


def count_minus(bundle: Path, table: str, n: int) -> str:
    counts = json.loads(kv_of(bundle)["anemll_spec.counts"])
    counts[table] -= n
    return json.dumps(counts)


BAD = {
    "text file": (None, "not a readable parquet file"),
    "truncated": (None, "not a readable parquet file"),
    "no metadata": ("plain", "not an anemll-spec results bundle"),
    "newer version": ({"schema_version": "99"}, "newer anemll-spec"),
    "older version": ({"schema_version": "1"}, "imports bundles of v2 to v6"),
    "garbled version": ({"schema_version": "2; DROP TABLE runs"}, "unreadable schema_version"),
    "missing column": ("SELECT * EXCLUDE (median_ms) FROM b", "missing columns median_ms"),
    "extra column": ('SELECT *, 1 AS "x; DROP TABLE runs" FROM b', "unknown columns"),
    "wrong type": (
        "SELECT * REPLACE (median_ms::VARCHAR AS median_ms) FROM b",
        "median_ms is VARCHAR",
    ),
    "negative latency": (
        "SELECT * REPLACE (CASE WHEN \"table\"='cases' THEN -1.0::DOUBLE END AS median_ms) FROM b",
        "median_ms below 0",
    ),
    "NaN latency": (
        "SELECT * REPLACE (CASE WHEN \"table\"='cases' THEN 'nan'::DOUBLE END AS p99_ms) FROM b",
        "p99_ms not finite",
    ),
    "bad status": (
        "SELECT * REPLACE (CASE WHEN \"table\"='runs' THEN 'done' ELSE status END AS status) FROM b",
        "status not in",
    ),
    "negative sample": (
        "SELECT * REPLACE (CASE WHEN \"table\"='samples' THEN -wall_ns END AS wall_ns) FROM b",
        "wall_ns below 0",
    ),
    "case of a missing run": (
        "SELECT * REPLACE (CASE WHEN \"table\"='cases' THEN 'nope' ELSE run_id END AS run_id) FROM b",
        "refers to run 'nope'",
    ),
    "unknown table": (
        'SELECT * REPLACE (CASE WHEN "table"=\'placements\' THEN \'evil\' ELSE "table" END AS "table") FROM b',
        "rows of unknown tables: 'evil'",
    ),
    "missing required": (
        "SELECT * REPLACE (CASE WHEN \"table\"='cases' THEN NULL ELSE case_key END AS case_key) FROM b",
        "case_key is NULL",
    ),
}


@pytest.mark.parametrize("kind", list(BAD) + ["samples dropped", "counts lie", "duplicate run"])
def test_bad_bundles_are_rejected_and_change_nothing(bundle, source, tmp_path, kind):
    dest = tmp_path / "dest.duckdb"
    # the store already holds one of the runs: it must stay exactly as it is
    seed = tmp_path / "seed.parquet"
    export_bundle(source, seed, ["previous"])
    import_bundles(dest, [seed])
    before = content(dest)
    bad = tmp_path / "bad.parquet"
    if kind == "text file":
        bad.write_text("run_id,median_ms\nx,1\n")
        message = BAD[kind][1]
    elif kind == "truncated":
        data = bundle.read_bytes()
        bad.write_bytes(data[: len(data) * 2 // 3])
        message = BAD[kind][1]
    elif kind == "samples dropped":
        # one sample fewer, counts adjusted so only n_samples can tell
        rewrite(
            bundle,
            bad,
            "SELECT * FROM b WHERE NOT (\"table\" = 'samples' AND idx = 3 AND "
            "case_id = (SELECT min(case_id) FROM b WHERE \"table\" = 'samples'))",
            counts=count_minus(bundle, "samples", 1),
        )
        message = "n_samples does not match its samples"
    elif kind == "duplicate run":
        rewrite(
            bundle,
            bad,
            "SELECT * FROM b UNION ALL SELECT * FROM b WHERE \"table\" = 'runs'",
            counts=count_minus(bundle, "runs", -2),
        )
        message = "duplicate runs key .run_id. = '[0-9]{8}-[0-9]{6}-[0-9a-f]{8}'$"
    elif kind == "counts lie":
        rewrite(bundle, bad, "SELECT * FROM b WHERE \"table\" <> 'placements' OR op_index > 0",
                counts=count_minus(bundle, "placements", 0))  # fmt: skip
        message = "the file holds [0-9,]+ rows, its counts say [0-9,]+"
    else:
        change, message = BAD[kind]
        if change == "plain":
            con = duckdb.connect()
            con.execute(
                f"COPY (SELECT * FROM read_parquet({sql_literal(str(bundle))})) "
                f"TO {sql_literal(str(bad))} (FORMAT parquet)"
            )
            con.close()
        elif isinstance(change, dict):
            rewrite(bundle, bad, **change)
        else:
            rewrite(bundle, bad, change)
    # the good bundle is not written either
    assert_refused(dest, before, [bundle, bad], message.replace("(", r"\("))
    # into no store yet: the store the import would have made is not left behind
    fresh = tmp_path / "fresh.duckdb"
    with pytest.raises(InputError, match=message.replace("(", r"\(")):
        import_bundles(fresh, [bundle, bad])
    assert not fresh.exists() and not (tmp_path / "fresh.duckdb.wal").exists()
    fresh.touch()  # an empty file is no store yet either: it is left an empty file
    with pytest.raises(InputError, match=message.replace("(", r"\(")):
        import_bundles(fresh, [bundle, bad])
    assert fresh.stat().st_size == 0 and not (tmp_path / "fresh.duckdb.wal").exists()


def test_cli_export_import(cli, source, tmp_path):
    out = tmp_path / "cli.parquet"
    exp = cli("export", "--store", source, "--out", out, "--json")
    assert exp.returncode == 0, exp.stderr
    assert json.loads(exp.stdout)["counts"]["runs"] == 2
    dest = tmp_path / "dest.duckdb"
    imp = cli("import", out, "--store", dest)
    assert imp.returncode == 0 and "2 run(s) added, 0 already present" in imp.stdout
    imp2 = cli("import", out, "--store", dest, "--json")
    assert json.loads(imp2.stdout)[0]["runs_skipped"] == 2
    bad = tmp_path / "bad.parquet"
    bad.write_text("nope")
    res = cli("import", bad, "--store", dest)
    assert res.returncode == 2 and "not a readable parquet file" in res.stderr
    assert "Traceback" not in res.stderr
    res = cli("export", "--store", source, "--run", "zzz", "--out", tmp_path / "x.parquet")
    assert res.returncode == 2 and "no run 'zzz'" in res.stderr
    # issue 14.12: a bundle is parquet; a .csv name is refused, nothing written
    res = cli("export", "--store", source, "--out", tmp_path / "x.csv")
    assert res.returncode == 2 and "give a name ending in .parquet" in res.stderr
    assert not (tmp_path / "x.csv").exists()


def test_a_bundle_named_with_a_newline_is_refused_in_one_line(cli, bundle, tmp_path):
    """A refusal quotes the bundle's name: one named $'ev\\x1b[31mil\\nforged: ok.parquet'
    gave two 'error:' lines, the second forged; now one line, the newline escaped."""
    bad = rewrite(bundle, tmp_path / "ev\x1b[31mil\nforged: ok.parquet",
                  sub("median_ms", "cases", "median_ms / 2"))  # fmt: skip
    res = cli("import", bad, "--store", tmp_path / "d.duckdb")
    assert res.returncode == 2 and "Traceback" not in res.stderr
    (line,) = res.stderr.splitlines()
    assert line.startswith(f"anemll-spec import: error: {tmp_path}/ev\\x1b[31mil\\nforged: ok")
    assert "\x1b" not in line and "median_ms = " in line
    assert not (tmp_path / "d.duckdb").exists()


def test_a_case_cannot_move_to_another_run(bundle, tmp_path):
    """A case id names its run ('<run_id>-<8 hex>'): a bundle that moves cases under a
    run of another id (which could then clash with the store's) is refused."""
    clone = rewrite(
        bundle,
        tmp_path / "clone.parquet",
        "SELECT * REPLACE (CASE WHEN run_id IS NULL THEN NULL ELSE "
        "left(run_id, 16) || left(md5(run_id), 8) END AS run_id) FROM b",  # a valid new id
    )
    dest = tmp_path / "dest.duckdb"
    open_store(dest).close()
    before = content(dest)
    assert_refused(dest, before, [bundle, clone], "its id does not start with its run's id")


def test_a_row_bomb_is_refused_from_the_footer(bundle, tmp_path, monkeypatch):
    """A constant column compresses to nothing: a small file can hold more rows than any
    machine can stage. The footer's row count refuses it before a row is read."""
    from anemll_spec.store import bundle as bundle_mod

    counts = count_minus(bundle, "samples", -1_000_000)
    one = "(SELECT min(case_id) FROM b WHERE \"table\" = 'samples')"
    bomb = rewrite(bundle, tmp_path / "bomb.parquet", counts=counts, select=(
        f"SELECT * FROM b UNION ALL BY NAME SELECT 'samples' AS \"table\", {one} AS case_id, "
        "0::BIGINT AS idx, 1000::BIGINT AS wall_ns FROM range(1000000)"))  # fmt: skip
    assert bomb.stat().st_size < 200_000  # a million rows in a small file
    monkeypatch.setattr(bundle_mod, "MAX_BUNDLE_ROWS", 500_000)
    dest = tmp_path / "dest.duckdb"
    with pytest.raises(InputError, match=r"1,000,[0-9]{3} rows, over the limit of 500,000"):
        import_bundles(dest, [bomb])
    assert not dest.exists()
    monkeypatch.setattr(bundle_mod, "MAX_BUNDLE_ROWS", 10**9)
    monkeypatch.setattr(bundle_mod, "STAGED_ROW_BYTES", 10**9)  # as if memory were short
    with pytest.raises(InputError, match=r"staging its 1,000,[0-9]{3} rows needs about"):
        import_bundles(dest, [bomb])


def test_a_refused_import_leaves_an_older_store_as_it_was(bundle, tmp_path):
    """Opening an older store to write upgrades it: a bad bundle is refused first, so the
    store stays at its version and older anemll-spec can still open it."""

    old = tmp_path / "v1.duckdb"
    shutil.copy(Path(__file__).parent / "fixtures" / "store" / "v1.duckdb", old)
    before = old.read_bytes()
    bad = rewrite(bundle, tmp_path / "bad.parquet", BAD["negative latency"][0])
    with pytest.raises(InputError, match="median_ms below 0"):
        import_bundles(old, [bundle, bad])
    assert old.read_bytes() == before and not (tmp_path / "v1.duckdb.wal").exists()
    (summary,) = import_bundles(old, [bundle])  # a good one upgrades it, then imports
    assert summary["runs_added"] == 2
    con = duckdb.connect(str(old), read_only=True)
    version = con.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
    con.close()
    assert version == (str(schema.SCHEMA_VERSION),)


def test_an_import_leaves_its_rows_in_the_file_not_the_log(bundle, tmp_path):
    """As finish_run does: a copy of the store file alone holds what was imported."""

    dest = tmp_path / "dest.duckdb"
    import_bundles(dest, [bundle])
    assert not (tmp_path / "dest.duckdb.wal").exists()
    copy = tmp_path / "copy" / "dest.duckdb"
    copy.parent.mkdir()
    shutil.copy(dest, copy)
    assert content(copy) == content(dest) and content(copy)["runs"]


def test_an_import_recomputes_its_statistics_without_the_stores_lock(bundle, tmp_path, monkeypatch):
    """Every statistic of a bundle is recomputed from its samples (21 s per million): done
    while the store was open for writing, it made a bench started meanwhile fail after
    the lock timeout. Now the store is free during the check (another process opens it
    for writing, for real), and the rows are the same."""
    from anemll_spec.store import stat_checks

    dest = tmp_path / "dest.duckdb"
    open_store(dest).close()
    real = stat_checks.check_statistics
    opened: list[int] = []

    def checking(con, label, staged):
        probe = "import duckdb, sys; duckdb.connect(sys.argv[1]).close()"
        opened.append(subprocess.run([sys.executable, "-c", probe, str(dest)]).returncode)
        return real(con, label, staged)

    monkeypatch.setattr(stat_checks, "check_statistics", checking)
    (summary,) = import_bundles(dest, [bundle])
    assert opened == [0]  # checked once, with the store free; not again under its lock
    assert summary["runs_added"] == 2
    import_bundles(tmp_path / "other.duckdb", [bundle])
    assert content(dest) == content(tmp_path / "other.duckdb")


def test_a_store_export_cannot_read_is_not_blamed_on_the_output(tmp_path):
    """A store whose tables are not this version's (a column gone) fails the export while
    it is read: the message says so, not that the bundle could not be written."""
    store = tmp_path / "s.duckdb"
    new_run(store)
    con = duckdb.connect(str(store))
    con.execute("ALTER TABLE runs DROP COLUMN command")
    con.close()
    out = tmp_path / "b.parquet"
    with pytest.raises(InputError) as err:
        export_bundle(store, out)
    assert str(err.value).startswith(f"cannot read the store {store}: ")
    assert "command" in str(err.value) and str(err.value).endswith("; nothing written")
    assert not out.exists()
    # a file that cannot be written is still named as such
    with pytest.raises(InputError, match=r"^cannot write /proc/nope\.parquet: "):
        export_bundle(_fresh(tmp_path), "/proc/nope.parquet")


def _fresh(tmp_path: Path) -> Path:
    store = tmp_path / "fresh.duckdb"
    run_id = new_run(store)
    finish_run(store, run_id, "finished")
    return store


def test_a_damaged_block_of_the_store_is_blamed_on_the_store(tmp_path):
    """A store that opens but one of whose data blocks is corrupt fails the export while
    it is read: the store is named damaged; neither --out nor a temp file is blamed. Each
    block is corrupted in turn (in a copy) until one opens and fails the export."""
    from test_store_diskfull import store_with_a_run

    good = tmp_path / "good.duckdb"
    store_with_a_run(good, n=20_000)  # samples span several blocks
    data = good.read_bytes()
    block = 65_536  # what this version makes new stores with (NEW_STORE_BLOCK_SIZE)
    found = None
    for start in range(12_288 + block, len(data) - 64, block):
        bad = tmp_path / "bad.duckdb"
        bad.write_bytes(data[: start + 16] + bytes(64) + data[start + 80 :])
        try:
            open_store(bad, read_only=True).close()
        except InputError:
            continue  # the catalog's own block: refused when opened (tested elsewhere)
        out = tmp_path / "b.parquet"
        try:
            export_bundle(bad, out)
        except InputError as exc:
            found = str(exc)
            break
    assert found is not None, "no data block failed the export"
    assert found.startswith(f"the store {tmp_path / 'bad.duckdb'} is damaged ("), found
    assert "cannot write" not in found and not out.exists()


@pytest.mark.parametrize("length", [250, 255])
def test_export_takes_any_legal_file_name(source, tmp_path, length):
    """Its temporary name was `.<name>.<pid>.tmp`, past 255 bytes for a name of 245 and
    more: export refused a legal name. Now a short one of its own, gone afterwards (and
    after a failure), and the bundle has the umask's permissions, as any new file."""
    folder = tmp_path / "out"
    folder.mkdir()
    out = folder / ("b" * (length - len(".parquet")) + ".parquet")
    assert len(out.name) == length
    export_bundle(source, out)
    assert [p.name for p in folder.iterdir()] == [out.name]
    umask = os.umask(0o022)
    os.umask(umask)
    assert out.stat().st_mode & 0o777 == 0o666 & ~umask
    dest = tmp_path / "d.duckdb"
    import_bundles(dest, [out])
    assert content(dest) == content(source)
    (folder / "taken").mkdir()  # os.replace onto a folder fails: no temp file is left
    with pytest.raises(OSError):
        export_bundle(source, folder / "taken")
    assert sorted(p.name for p in folder.iterdir()) == sorted([out.name, "taken"])


def test_a_failed_import_removes_only_the_store_it_made(tmp_path):
    """Between the check that no store was there and a late failure, a bench may have
    made the store and stored runs in it: those are not the import's to remove. What the
    import itself made (a store with no runs, or bytes DuckDB cannot read) goes."""
    from anemll_spec.store.importing import forget_created, not_made

    theirs = tmp_path / "theirs.duckdb"
    made = not_made(theirs)
    new_run(theirs, chip="Apple M4 Max")  # a bench, meanwhile
    forget_created(made)
    assert theirs.exists() and open_store(theirs, read_only=True).execute(
        "SELECT count(*) FROM runs"
    ).fetchone() == (1,)
    ours = tmp_path / "ours.duckdb"
    made = not_made(ours)
    open_store(ours).close()  # the import's open made it; nothing committed
    forget_created(made)
    assert not ours.exists()
    torn = tmp_path / "torn.duckdb"
    made = not_made(torn)
    torn.write_bytes(b"\0" * 4096)  # a full disk's leftover
    forget_created(made)
    assert not torn.exists()
    # a damaged block: DuckDB's message ("... in block at location ...") holds "lock",
    # which was read as held by a writer, and the import's own leftover was kept
    duckdb.connect(str(theirs)).execute("CHECKPOINT").close()  # its blocks in the file
    data = bytearray(theirs.read_bytes())
    data[12288 : 12288 + 4096] = bytes(b ^ 0xFF for b in data[12288 : 12288 + 4096])
    damaged = tmp_path / "damaged.duckdb"
    made = not_made(damaged)
    damaged.write_bytes(bytes(data))
    with pytest.raises(duckdb.IOException, match="block at location"):
        duckdb.connect(str(damaged), read_only=True)
    forget_created(made)
    assert not damaged.exists()
    # held by a writer in another process: theirs, kept
    held = tmp_path / "held.duckdb"
    made = not_made(held)
    writer = subprocess.Popen(
        [sys.executable, "-c", "import duckdb, sys, time; c = duckdb.connect(sys.argv[1]); "
         "c.execute('CREATE TABLE t (x INT)'); print('ready', flush=True); time.sleep(60)",
         str(held)],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert writer.stdout is not None and writer.stdout.readline().strip() == "ready"
        forget_created(made)
        assert held.exists()
    finally:
        writer.kill()
        writer.wait()
