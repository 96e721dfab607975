"""The import path is the trust boundary (issue 15): every attack a bundle can make,
built as a real hostile parquet file, is refused with the store unchanged; what is
accepted carries its provenance; old bundles still import."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import re
from pathlib import Path

import duckdb
import numpy as np
import pytest
from fixtures.store.bundles import assert_refused, content, kv_of, rewrite, sub
from fixtures.store.synth import case, new_run, samples_ns

from anemll_spec import bootstrap, stats
from anemll_spec.errors import InputError
from anemll_spec.store import append_case, bundle, finish_run, open_store
from anemll_spec.store.exporting import export_bundle
from anemll_spec.store.importing import import_bundles

ROOT = Path(__file__).resolve().parents[1]
V2 = ROOT / "tests" / "fixtures" / "store" / "v2.parquet"


@pytest.fixture(scope="module")
def source(tmp_path_factory) -> Path:
    """Two runs of specs/lm_head.yaml (M1 Max, M4 Max), each one ok case with start times."""
    path = tmp_path_factory.mktemp("src") / "src.duckdb"
    rng = np.random.default_rng(3)
    for chip, ms in (("Apple M1 Max", 19.0), ("Apple M4 Max", 9.0)):
        run_id = new_run(path, chip=chip)
        wall = samples_ns(rng, 50, ms)
        starts = np.cumsum(wall + 10_000)
        append_case(
            path, run_id, case(wall=wall, starts=starts, notes=["noisy? no"]), wall,
            starts_ns=starts,
        )  # fmt: skip
        finish_run(path, run_id, "finished")
    return path


@pytest.fixture(scope="module")
def good(source, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("good") / "good.parquet"
    export_bundle(source, out)
    return out


@pytest.fixture
def victim(source, tmp_path) -> tuple[Path, dict]:
    """A store with a run of its own (measured here, on the source's M1 Max host)."""
    dest = tmp_path / "victim.duckdb"
    seed = tmp_path / "seed.parquet"
    export_bundle(source, seed, ["previous"])
    import_bundles(dest, [seed])
    return dest, content(dest)


# A fake start time in the year 9999, with every id that embeds it rewritten to match.
FUTURE = (
    "SELECT * REPLACE ("
    "regexp_replace(run_id, '^[0-9]{8}-[0-9]{6}', '99990101-000000') AS run_id, "
    "regexp_replace(case_id, '^[0-9]{8}-[0-9]{6}', '99990101-000000') AS case_id, "
    "CASE WHEN \"table\" = 'runs' THEN TIMESTAMP '9999-01-01' END AS started_at) FROM b"
)

ATTACKS = {
    # issue 15.1: ids in their documented form only; no dates in the future
    "run id is an absolute path": (
        sub("run_id", "runs", "'/home/user/.bashrc'"),
        "run_id not of the form",
    ),
    "run id climbs folders": (
        "SELECT * REPLACE ('../../x/' || run_id AS run_id, '../../x/' || case_id AS case_id) "
        "FROM b",
        "run_id not of the form",
    ),
    "run id is not its start time": (
        sub("started_at", "runs", "started_at + INTERVAL 1 DAY"),
        "its id does not start with its start time",
    ),
    "a run in the year 9999": (FUTURE, "dated in the future"),
    "a case in the future": (
        sub("finished_at", "cases", "TIMESTAMP '2999-01-01'"),
        "is dated in the future",
    ),
    # 15.2: a bundle cannot re-attribute runs (host_id = hash of the host)
    "host fields changed under its id": (
        sub("chip", "hosts", "'Apple M4 Ultra'"),
        "host_id is not the hash of the host's fields",
    ),
    "hostname changed under its id": (
        sub("hostname", "hosts", "'attacker-mac'"),
        "host_id is not the hash",
    ),
    "spec text changed under its hash": (
        sub("spec_yaml", "runs", "spec_yaml || '# x'"),
        "spec_sha256 is not the hash of its spec text",
    ),
    "a spec without its hash": (
        sub("spec_sha256", "runs", "NULL"),
        "spec_sha256 is not the hash of its spec text",
    ),
    # a run id names one run: the victim's run, but another command or writer under its id
    "a stored run's id on another command": (
        sub("command", "runs", "'anemll-spec bench specs/other.yaml'"),
        "is already in the store as another run",
    ),
    "a stored run's id from another writer": (
        sub("writer_hostname", "runs", "'attacker-mac'"),
        "is already in the store as another run",
    ),
    "case key not its spec's": (
        sub("case_key", "cases", "'0123456789abcdef'"),
        "case_key is not the hash of its spec's case",
    ),
    "variant key not what it measured": (
        sub("variant_key", "cases", "'0123456789abcdef'"),
        "variant_key is not the hash of what it measured",
    ),
    "another published model claimed": (
        sub("model_name", "cases", "'llama_lm_head_lut6'"),
        "llama_lm_head_lut6 has 396,055,616 weight bytes",
    ),
    # what names the run and its cases, and how they ran, is its spec's (derive.py)
    "spec name not its spec's": (
        sub("spec_name", "runs", "'smoke'"),
        "spec_name 'smoke', but its spec is named 'lm_head'",
    ),
    "model family not its spec's": (
        sub("model_family", "cases", "'attention'"),
        "model_family 'attention', but its spec builds 'lm_head'",
    ),
    "params not its sweep point's": (
        sub("params", "cases", "'{\"model.vocab_size\": 32000}'::JSON"),
        'params {"model.vocab_size": 32000} are not its sweep point\'s',
    ),
    "concurrency 4 with 4x the throughput": (
        "SELECT * REPLACE (CASE WHEN \"table\" = 'cases' THEN 4 ELSE concurrency END "
        "AS concurrency, CASE WHEN \"table\" = 'cases' THEN 4 * throughput_ips "
        "ELSE throughput_ips END AS throughput_ips) FROM b",
        "concurrency 4, but its spec runs 1",
    ),
    # 15.3: every statistic recomputed from the samples
    "bandwidth 9999 GB/s": (
        sub("bandwidth_gbps", "cases", "9999.0"),
        "bandwidth_gbps = 9999.0 but its 50 samples give",
    ),
    "median halved": (sub("median_ms", "cases", "median_ms / 2"), "median_ms = "),
    "CI narrowed": (sub("ci_high_ms", "cases", "ci_low_ms * 1.0001"), "ci_high_ms = "),
    "runtime 100x the call (a negative binding overhead)": (
        sub("runtime_ns", "samples", "wall_ns * 100"),
        "a sample's runtime_ns exceeds its wall_ns",
    ),
    "p99 trimmed": (sub("p99_ms", "cases", "p50_ms"), "p99_ms = "),
    "TFLOPS without FLOPs": (
        sub("tflops", "cases", "123.0"),
        "tflops = 123.0 but its 50 samples give no value",
    ),
    "drift slope made up": (
        sub("drift_slope_ms_per_s", "cases", "drift_slope_ms_per_s + 1"),
        "drift_slope_ms_per_s = ",
    ),
    "outliers hidden": (sub("outliers", "cases", "outliers + 3"), "outliers = "),
    "throttling hidden": (sub("throttled", "cases", "NOT throttled"), "throttled = "),
    "runtime median made up": (
        sub("runtime_median_ms", "cases", "1.0"),
        "runtime_median_ms is not the median of its runtime_ns",
    ),
    "int64 max latency": (
        sub("wall_ns", "samples", "9223372036854775807"),
        "wall_ns above",
    ),
    "start times partly missing": (
        sub("start_ns", "samples", "CASE WHEN idx = 3 THEN NULL ELSE start_ns END"),
        "start_ns is missing for some of its samples",
    ),
    "backend outside its set": (sub("backend", "cases", "'gpu-magic'"), "backend not in"),
    "compute units outside their set": (
        sub("compute_units", "cases", "'GPU'"),
        "compute_units not in",
    ),
    "case status outside its set": (sub("status", "cases", "'great'"), "status not in"),
    "device outside its set": (sub("device", "cases", "'tpu'"), "device not in"),
    # 15.8: control characters in names
    "escape in a model name": (
        sub("model_name", "cases", "'llama' || chr(27) || '[2J'"),
        "a control character in model_name",
    ),
    "newline in a hostname": (
        sub("hostname", "hosts", "'a' || chr(10) || 'b'"),
        "a control character in hostname",
    ),
    # 15.10: a params key containing a quote
    "params key with a quote": (
        sub("params", "cases", '\'{"model.x\\"y": 1}\'::JSON'),
        "params must map field paths",
    ),
    "notes not a list of strings": (
        sub("notes", "cases", "'[1, 2]'::JSON"),
        "notes must be a list of strings",
    ),
}
# twice the bytes and the GB/s to match, so only the published size can tell
ATTACKS["published model with other weight bytes"] = (
    "SELECT * REPLACE ("
    "CASE WHEN \"table\" = 'cases' THEN 2 * weight_bytes ELSE weight_bytes END AS weight_bytes, "
    "CASE WHEN \"table\" = 'cases' THEN 2 * bandwidth_gbps ELSE bandwidth_gbps END "
    "AS bandwidth_gbps) FROM b",
    "llama_lm_head has 1,050,673,728 weight bytes",
)


@pytest.mark.parametrize("attack", list(ATTACKS))
def test_hostile_bundle_is_refused_and_the_store_unchanged(good, victim, tmp_path, attack):
    dest, before = victim
    select, message = ATTACKS[attack]
    assert_refused(
        dest, before, [rewrite(good, tmp_path / "bad.parquet", select)], re.escape(message)
    )


def test_a_numpy_case_with_a_runtime_of_its_own_is_refused(tmp_path):
    """The reference executor reports no runtime: a numpy case's runtime_ns is invented
    (it gave a binding overhead and a runtime GB/s of nothing measured)."""
    src, out = tmp_path / "s.duckdb", tmp_path / "b.parquet"
    run_id = new_run(src)
    wall = samples_ns(np.random.default_rng(4), 30, 2.0)
    pairs = np.stack([wall, wall // 2], axis=1)
    append_case(src, run_id, case(wall=wall, backend="numpy", compute_units=None), pairs)
    finish_run(src, run_id, "finished")
    export_bundle(src, out)
    with pytest.raises(InputError, match="runtime_ns on a numpy case"):
        import_bundles(tmp_path / "d.duckdb", [out])
    assert not (tmp_path / "d.duckdb").exists()


def test_the_checks_name_values_safely(good, tmp_path):
    """A hostile value quoted in a message is escaped: no raw ESC reaches a terminal."""
    bad = rewrite(good, tmp_path / "bad.parquet", sub("run_id", "runs", "chr(27) || '[31m'"))
    with pytest.raises(InputError) as err:
        import_bundles(tmp_path / "d.duckdb", [bad])
    assert "\x1b" not in str(err.value)


@pytest.mark.parametrize(
    ("column", "table", "expr", "names"),
    [
        ("spec_yaml", "runs", "spec_yaml || '# x'", "run {}: spec_sha256 is not the hash"),
        ("median_ms", "cases", "median_ms * 2", "case {}: median_ms = "),
    ],
)
def test_of_several_offenders_the_least_is_named_every_time(
    good, tmp_path, column, table, expr, names
):
    """Every run (or case) of the bundle is bad and its rows come in descending order:
    the message names the least id, not whichever row a scan met first."""
    ids = sorted(r[0] for r in duckdb.sql(
        f"SELECT {table[:-1]}_id FROM read_parquet('{good}') WHERE \"table\" = '{table}'"
    ).fetchall())  # fmt: skip
    assert len(ids) == 2
    select = f"SELECT * FROM ({sub(column, table, expr)}) ORDER BY run_id DESC NULLS LAST"
    bad = rewrite(good, tmp_path / "bad.parquet", select)
    first = duckdb.sql(
        f"SELECT {table[:-1]}_id FROM read_parquet('{bad}') WHERE \"table\" = '{table}' LIMIT 1"
    ).fetchone()
    assert first == (ids[-1],)  # the scan meets the greater id first
    with pytest.raises(InputError, match=re.escape(names.format(repr(ids[0])))):
        import_bundles(tmp_path / "d.duckdb", [bad])


def test_imported_runs_carry_their_provenance(good, source, tmp_path):
    dest = tmp_path / "d.duckdb"
    (summary,) = import_bundles(dest, [good])
    assert summary["runs_added"] == 2 and summary["drift_slope_dropped"] == 0
    assert content(dest) == content(source)  # every number as measured, nothing rewritten
    sha = hashlib.sha256(good.read_bytes()).hexdigest()
    con = duckdb.connect(str(dest), read_only=True)
    try:
        rows = con.execute(
            "SELECT DISTINCT origin, origin_ref, origin_sha256, source, provenance FROM results"
        ).fetchall()
        assert rows == [
            (
                "imported",
                "good.parquet",
                sha,
                "imported",
                f"imported from good.parquet (sha256 {sha[:12]})",
            )
        ]
        (at,) = con.execute("SELECT DISTINCT origin_at FROM runs").fetchone()
        assert abs(at - dt.datetime.now(dt.UTC).replace(tzinfo=None)) < dt.timedelta(minutes=5)
        # chip_factors shows them as imported, never as the user's own
        sources = {r[0] for r in con.execute("SELECT source FROM chip_factors").fetchall()}
        assert "imported" in sources and "own" not in sources
    finally:
        con.close()
    src = duckdb.connect(str(source), read_only=True)
    assert src.execute("SELECT DISTINCT origin, source FROM results").fetchall() == [
        ("measured", "own")
    ]
    src.close()


def test_a_v2_bundle_imports_with_its_numbers_recomputed(tmp_path):
    """The v2 fixture was written by the v2 code (make_v2_bundle.py): its statistics are
    checked against its samples (its CIs against the draw of its day); its drift slope, which needs start times v2 did not
    store, is dropped and the summary says so."""
    assert kv_of(V2)["anemll_spec.schema_version"] == "2"
    dest = tmp_path / "d.duckdb"
    (summary,) = import_bundles(dest, [V2])
    assert summary["schema_version"] == 2 and summary["runs_added"] == 2
    assert summary["drift_slope_dropped"] == 2
    con = duckdb.connect(str(dest), read_only=True)
    try:
        rows = con.execute(
            "SELECT case_id, median_ms, ci_low_ms, ci_high_ms, p99_ms, bandwidth_gbps, "
            "drift_slope_ms_per_s, notes FROM cases ORDER BY case_id"
        ).fetchall()
        for case_id, median, lo, hi, p99, gbps, slope, notes in rows:
            wall = np.array(
                [
                    r[0]
                    for r in con.execute(
                        "SELECT wall_ns FROM samples WHERE case_id = ? ORDER BY idx", [case_id]
                    ).fetchall()
                ]
            )
            s = stats.summarize(wall, seed=0)  # independently, from the stored samples
            was = bootstrap.median_ci(wall / 1e6, seed=0, resampled=True)  # v2's CI draw
            assert (median, lo, hi, p99) == (s.median_ms, was.low, was.high, s.p99_ms)
            assert gbps == pytest.approx(1_050_673_728 / (s.median_ms * 1e6), rel=1e-12)
            assert slope is None and notes is None
        assert con.execute("SELECT count(start_ns) FROM samples").fetchone() == (0,)
    finally:
        con.close()


def test_a_v2_bundle_with_a_tampered_figure_is_refused(tmp_path):
    bad = rewrite(V2, tmp_path / "bad.parquet", sub("p90_ms", "cases", "p90_ms * 0.9"))
    with pytest.raises(InputError, match="p90_ms = "):
        import_bundles(tmp_path / "d.duckdb", [bad])
    assert not (tmp_path / "d.duckdb").exists()


def test_text_over_its_limit_is_refused_before_anything_is_staged(good, victim, tmp_path):
    dest, before = victim
    bomb = rewrite(good, tmp_path / "bomb.parquet", sub("spec_yaml", "runs", "repeat('a', 300000)"))
    assert bomb.stat().st_size < 60_000  # compressed: small on disk, large inside
    assert_refused(dest, before, [bomb], "a value of runs.spec_yaml is 300,000 characters long")


def test_a_bundle_over_the_size_limit_is_refused_from_its_footer(
    good, victim, tmp_path, monkeypatch
):
    dest, before = victim
    con = duckdb.connect()
    (size,) = con.execute(
        "SELECT sum(total_uncompressed_size) FROM parquet_metadata(?)", [str(good)]
    ).fetchone()
    con.close()
    monkeypatch.setattr(bundle, "MAX_BUNDLE_BYTES", size - 1)
    assert_refused(dest, before, [good], f"{size:,} bytes uncompressed, over the limit")
    monkeypatch.setattr(bundle, "MAX_BUNDLE_BYTES", size)
    import_bundles(dest, [good])  # exactly at the limit: accepted


def test_a_folder_or_fifo_is_named_for_what_it_is(tmp_path, cli):
    folder = tmp_path / "dir.parquet"
    folder.mkdir()
    fifo = tmp_path / "pipe.parquet"
    os.mkfifo(fifo)
    with pytest.raises(InputError, match="is a folder, not a bundle file"):
        import_bundles(tmp_path / "d.duckdb", [folder])
    r = cli("import", fifo, "--store", tmp_path / "d.duckdb", timeout=60)  # must not block
    assert r.returncode == 2 and "is not a regular file (a FIFO" in r.stderr
    assert not (tmp_path / "d.duckdb").exists()
    with pytest.raises(InputError, match="no such file"):
        import_bundles(tmp_path / "d.duckdb", [tmp_path / "missing.parquet"])


def test_cli_import_says_what_was_dropped(cli, tmp_path):
    r = cli("import", V2, "--store", tmp_path / "d.duckdb")
    assert r.returncode == 0, r.stderr
    assert "drift slope of 2 case(s) dropped (a v2 bundle has no start times" in r.stdout
    r = cli("query", "SELECT DISTINCT source, provenance FROM results", "--store",
            tmp_path / "d.duckdb", "--json")  # fmt: skip
    (row,) = json.loads(r.stdout)
    assert row["source"] == "imported" and row["provenance"].startswith("imported from v2.parquet")


def test_writes_keep_the_rules_import_checks(tmp_path):
    """What the write API stores always imports: names with control characters are
    refused, free text has them escaped and is cut to its limit, marked."""
    store = tmp_path / "s.duckdb"
    run_id = new_run(store)
    with pytest.raises(InputError, match="model_name contains a control character"):
        append_case(store, run_id, case(model_name="a\x1bb"), [1])
    cid = append_case(store, run_id, case(status="failed", error="x\x1b[31m" + "y" * 20_000), [])
    con = open_store(store, read_only=True)
    (err,) = con.execute("SELECT error FROM cases WHERE case_id = ?", [cid]).fetchone()
    con.close()
    assert err.startswith("x\\x1b[31my") and err.endswith("[... truncated]")
    assert len(err) == 16_384
    with pytest.raises(InputError, match="notes must be a list of strings"):
        append_case(store, run_id, case(notes={"a": 1}), [1])
