"""A statistic left NULL where its samples define one is refused, at import and at push
(stat_checks.REQUIRED): a bundle of a real numpy bench (a case of 30 samples, one of a
single sample) rewritten with NULLs. Before, only non-NULL figures were recomputed, so a
bundle could hide its median, CI and noisy flag and still import. What the samples leave
undefined (one sample's spread and CI, the drift ratio of few samples) may stay NULL."""

from __future__ import annotations

import io
import shutil
from pathlib import Path

import duckdb
import pytest
from fixtures.store.bundles import rewrite

from anemll_spec.errors import InputError
from anemll_spec.store import bundle, schema, stat_checks
from anemll_spec.store.exporting import export_bundle
from anemll_spec.store.importing import import_bundles

SPEC = (
    "name: nulls\nmodel: {family: matmul, m: 4, k: 64, n: 64}\n"
    "run: {backends: [numpy], warmup: 1, iterations: 30, max_time_s: 2, dispatch_floor: false}\n"
    "sweep: {run.iterations: [1, 30]}\n"
)
# every statistic that 30 samples with start times define (stat_checks.REQUIRED)
DEFINED = (
    *("median_ms", "mean_ms", "std_ms", "min_ms", "max_ms", "p5_ms", "p50_ms", "p90_ms"),
    *("p95_ms", "p99_ms", "iqr_ms", "mad_ms", "ci_low_ms", "ci_high_ms", "cv", "drift_ratio"),
    *("drift_slope_ms_per_s", "outliers", "noisy", "throttled"),
)
# what the reviewer set NULL on every case of a real bundle
REVIEWED = ("median_ms", "ci_low_ms", "ci_high_ms", "p99_ms", "std_ms", "cv", "noisy", "outliers")


@pytest.fixture(scope="module")
def bench(tmp_path_factory) -> tuple[Path, Path]:
    """(the store of a real numpy bench: a case of 1 sample, one of 30; its bundle)."""
    from anemll_spec.progress import Progress
    from anemll_spec.runner import Runner

    d = tmp_path_factory.mktemp("nulls")
    spec = d / "nulls.yaml"
    spec.write_text(SPEC)
    store = d / "s.duckdb"
    Runner(spec, store=str(store), cache_dir=d / "cache", progress=Progress(io.StringIO())).run()
    out = d / "good.parquet"
    export_bundle(store, out)
    return store, out


def _null(columns, where: str = "TRUE") -> str:
    """SELECT over bundle `b`: `columns` NULL on the cases rows that `where` selects."""
    sets = ", ".join(
        f"CASE WHEN \"table\" = 'cases' AND {where} THEN NULL ELSE {c} END AS {c}" for c in columns
    )
    return f"SELECT * REPLACE ({sets}) FROM b"


def _read(store: Path, sql: str) -> list[tuple]:
    con = duckdb.connect(str(store), read_only=True)
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


@pytest.mark.parametrize("column", DEFINED)
def test_a_statistic_set_to_null_is_refused(bench, tmp_path, column):
    """Each required figure NULL on the 30-sample case: refused, naming the case and the
    column with the value its samples give; no store is made."""
    store, good = bench
    ((case_id,),) = _read(store, "SELECT case_id FROM cases WHERE n_samples = 30")
    bad = rewrite(good, tmp_path / "bad.parquet", _null([column], "n_samples = 30"))
    dest = tmp_path / "d.duckdb"
    with pytest.raises(InputError) as err:
        import_bundles(dest, [bad])
    assert str(err.value).startswith(
        f"{bad}: case '{case_id}': {column} = no value (NULL) but its 30 samples give "
    )
    assert not dest.exists()


def test_the_reviewers_bundle_is_refused_by_import_and_push(bench, tmp_path, cli):
    """The finding: median, CI, p99, std, CV, noisy and outliers NULL on every case (a
    noisy flag hidden so). `import` said '1 run(s) added' and `share` showed '-' for
    the median; now import and push exit 2 with one line, and write nothing."""
    store, good = bench
    assert _read(store, "SELECT count(median_ms), count(noisy) FROM cases") == [(2, 2)]
    ((first,),) = _read(store, "SELECT case_id FROM cases WHERE n_samples = 1")  # named first
    bad = rewrite(good, tmp_path / "bad.parquet", _null(REVIEWED))
    r = cli("import", bad, "--store", tmp_path / "d.duckdb")
    assert r.returncode == 2 and r.stdout == ""
    assert r.stderr.strip().count("\n") == 0 and "Traceback" not in r.stderr
    assert f"{bad}: case '{first}': median_ms = no value (NULL) but its" in r.stderr
    assert not (tmp_path / "d.duckdb").exists()
    local = tmp_path / "local.duckdb"  # push checks the rows it copies the same way
    shutil.copy(store, local)
    con = duckdb.connect(str(local))
    con.execute(f"UPDATE cases SET {', '.join(f'{c} = NULL' for c in REVIEWED)}")
    con.close()
    r = cli("push", "--store", local, "--to", tmp_path / "p.duckdb")
    assert r.returncode == 2 and r.stderr.strip().count("\n") == 0, r.stderr
    assert f"{local}: case '{first}': median_ms = no value (NULL) but its" in r.stderr
    assert not (tmp_path / "p.duckdb").exists()
    assert cli("import", good, "--store", tmp_path / "d.duckdb").returncode == 0
    assert _read(tmp_path / "d.duckdb", "SELECT count(median_ms), count(noisy) FROM cases") == [
        (2, 2)
    ]


def test_what_the_samples_leave_undefined_may_stay_null(bench, tmp_path):
    """One sample has no spread (std, CV NULL as written) and its CI may be NULL; too few
    samples give no drift ratio; samples without start times give no drift slope (it is
    dropped). Such bundles import, and the store reads back what they hold. A median NULL
    on the one-sample case is still refused."""
    store, good = bench
    ci_null = rewrite(
        good, tmp_path / "ci.parquet", _null(["ci_low_ms", "ci_high_ms"], "n_samples = 1")
    )
    dest = tmp_path / "d.duckdb"
    (summary,) = import_bundles(dest, [ci_null])
    assert summary["runs_added"] == 1
    assert _read(
        dest,
        "SELECT n_samples, median_ms IS NOT NULL, std_ms, cv, ci_low_ms, ci_high_ms, "
        "drift_ratio, drift_slope_ms_per_s FROM cases ORDER BY n_samples LIMIT 1",
    ) == [(1, True, None, None, None, None, None, None)]
    (n30,) = _read(
        dest,
        "SELECT std_ms > 0 AND cv > 0 AND ci_low_ms <= median_ms AND drift_ratio > 0 "
        "AND drift_slope_ms_per_s IS NOT NULL FROM cases WHERE n_samples = 30",
    )
    assert n30 == (True,)
    no_starts = tmp_path / "no_starts.parquet"
    rewrite(good, no_starts, "SELECT * REPLACE (NULL::BIGINT AS start_ns) FROM b")
    (summary,) = import_bundles(tmp_path / "e.duckdb", [no_starts])
    assert summary["drift_slope_dropped"] == 1  # the 30-sample case's; the other had none
    bad = rewrite(good, tmp_path / "bad.parquet", _null(["median_ms"], "n_samples = 1"))
    with pytest.raises(InputError, match=r"median_ms = no value \(NULL\) but its 1 samples give"):
        import_bundles(tmp_path / "f.duckdb", [bad])


def test_every_importable_bundle_version_has_the_required_columns():
    """No bundle version is exempt: each required column exists since the oldest version
    import takes (drift_ratio since v2, the rest since v1), and the v2-v4 writers filled
    them all (their fixtures import: test_store_trust, test_store_v4_fixtures)."""
    assert sorted(stat_checks.REQUIRED) == sorted(DEFINED)
    since = {c.name: c.since for c in schema.CASES.columns}
    assert {c: since[c] for c in stat_checks.REQUIRED if since[c] > 1} == {"drift_ratio": 2}
    assert max(since[c] for c in stat_checks.REQUIRED) <= bundle.MIN_VERSION
