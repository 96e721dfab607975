"""The trust boundary for schema v4: a bundle's energy and sustained-run figures are
claims, checked against what they are derived from (hostile bundles refused, store
unchanged); v3 bundles and stores still come in; energy_factors compares like with like."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import duckdb
import numpy as np
import pytest
from db_util import rows
from fixtures.store.bundles import assert_refused, content, kv_of, rewrite, sub
from fixtures.store.energy import TOTAL_MJ, energy_case, energy_store
from fixtures.store.synth import case, new_run, samples_ns

from anemll_spec.errors import InputError
from anemll_spec.store import append_case, migrations, open_store, schema
from anemll_spec.store.exporting import export_bundle
from anemll_spec.store.factors import energy_for_run
from anemll_spec.store.importing import import_bundles
from anemll_spec.store.views_energy import COLUMNS as ENERGY_COLUMNS

ROOT = Path(__file__).resolve().parents[1]
V1 = ROOT / "tests" / "fixtures" / "store" / "v1.duckdb"
V3 = ROOT / "tests" / "fixtures" / "store" / "v3.parquet"


@pytest.fixture(scope="module")
def good(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("v4")
    energy_store(d / "src.duckdb")
    export_bundle(d / "src.duckdb", d / "good.parquet")
    return d / "good.parquet"


@pytest.fixture
def victim(tmp_path) -> tuple[Path, dict]:
    dest = tmp_path / "victim.duckdb"
    energy_store(dest, chip="Apple M4 Max")
    return dest, content(dest)


def where(table: str, cond: str, expr: str, column: str) -> str:
    """`column` := `expr` in the rows of `table` where `cond` holds."""
    return sub(column, table, f"CASE WHEN {cond} THEN {expr} ELSE {column} END")


SUSTAINED = "sustained_windows IS NOT NULL"
ATTACKS = {
    "energy per inference not total / calls": (
        sub("energy_mj_per_inference", "cases", "energy_mj_per_inference * 2"),
        "but energy_total_mj / energy_calls = ",
    ),
    "mean power made up": (
        sub("power_w_mean", "cases", "power_w_mean + 1"),
        "but energy_total_mj / 1000 / energy_interval_s",
    ),
    "calls inflated": (
        sub("energy_calls", "cases", "energy_calls * 10"),
        "energy_mj_per_inference",
    ),
    "energy without its reader": (
        sub("energy_method", "cases", "NULL::VARCHAR"),
        "energy_method and energy_total_mj go together",
    ),
    "an unknown reader": (
        sub("energy_method", "cases", "'wattmeter'"),
        "energy_method not in",
    ),
    "instances at concurrency 1": (  # the spec's check names it before energy_checks'
        sub("instances", "cases", "'shared'"),
        "instances 'shared', but its spec runs one instance",
    ),
    "negative watts": (sub("watts", "power_samples", "-watts"), "watts below 0"),
    "a timeline point of a case not in the bundle": (
        where("power_samples", "idx = 3", "'20250101-000000-00000000-00000000'", "case_id"),
        "a row of power_samples refers to case",
    ),
    "a rail's energy changed": (
        sub("energy_mj", "case_energy_rails", "energy_mj * 2"),
        "mj_per_inference = ",
    ),
    "rails that do not add up to the total": (
        "SELECT * REPLACE ("
        + ", ".join(
            f"CASE WHEN \"table\" = 'case_energy_rails' AND rail = 'ane' THEN {c} * 2 "
            f"ELSE {c} END AS {c}"
            for c in ("energy_mj", "mj_per_inference", "mean_power_w")
        )
        + ") FROM b",
        "but its rails counted in the total add up to",
    ),
    "a rail name not of its form": (
        sub("rail", "case_energy_rails", "'CPU Energy'"),
        "rail not of the form",
    ),
    "a control character in a part": (
        sub("part", "case_energy_rails", "'ANE' || chr(27) || '[2J'"),
        "a control character in part",
    ),
    "window median not its samples'": (
        sub("median_ms", "sustained_windows", "median_ms * 1.1"),
        "window 0 median_ms = ",
    ),
    "window calls not its samples'": (
        sub("calls", "sustained_windows", "calls + 1"),
        "has calls = 61 but 60 samples",
    ),
    "samples moved between windows": (
        where("samples", "window_index = 1", "0", "window_index"),
        "window 0 has calls = 60 but 120 samples",
    ),
    "a sample of a window that is not there": (
        where("samples", "idx = 5 AND window_index IS NOT NULL", "9", "window_index"),
        "names window 9",
    ),
    "window index partly missing": (
        where("samples", "idx = 3", "NULL", "window_index"),
        "window_index is missing for some of its samples",
    ),
    "sustained CI narrowed": (
        sub("sustained_ci_high", "cases", "sustained_ci_low + 1e-6"),
        "sustained_ci_high = ",
    ),
    "sustained verdict flipped": (
        where("cases", SUSTAINED, "'degraded'", "sustained_verdict"),
        "sustained_verdict = degraded but the windows' samples give 'sustained'",
    ),
    "sustained ratio made up": (
        sub("sustained_throughput_ratio", "cases", "sustained_throughput_ratio * 1.5"),
        "sustained_throughput_ratio = ",
    ),
    "throttling hidden": (
        where("sustained_windows", "window_index = 2", "true", "throttled"),
        "sustained_throttled = false but its windows say true",
    ),
    "a sustained figure without windows": (
        where("cases", "sustained_windows IS NULL", "1.0", "sustained_throughput_ratio"),
        "sustained figures without sustained windows",
    ),
    "window energy per inference made up": (
        sub("energy_mj_per_inference", "sustained_windows", "energy_mj_per_inference + 1"),
        "but energy_total_mj / calls",
    ),
    "a GPU at 1000 C": (sub("temperature_c", "sustained_windows", "1000.0"), "temperature_c above"),
}


@pytest.mark.parametrize("attack", list(ATTACKS))
def test_hostile_energy_bundle_is_refused_and_the_store_unchanged(good, victim, tmp_path, attack):
    dest, before = victim
    select, message = ATTACKS[attack]
    assert_refused(
        dest, before, [rewrite(good, tmp_path / "bad.parquet", select)], re.escape(message)
    )


def test_a_dropped_window_is_refused(good, victim, tmp_path):
    dest, before = victim
    counts = json.loads(kv_of(good)["anemll_spec.counts"])
    counts["sustained_windows"] -= 1
    bad = rewrite(
        good,
        tmp_path / "bad.parquet",
        "SELECT * FROM b WHERE NOT (\"table\" = 'sustained_windows' AND window_index = 2)",
        counts=json.dumps(counts),
    )
    assert_refused(dest, before, [bad], "names window 2|sustained_windows = 3 but it has 2")


# ---------------------------------------------------------------- older stores and bundles


def test_a_v3_bundle_written_by_the_v3_code_imports(tmp_path):
    """tests/fixtures/store/v3.parquet (make_v3_bundle.py, the v3 code itself): its rows
    get the v4 columns NULL and no energy rows; every v3 figure still checked."""
    assert kv_of(V3)["anemll_spec.schema_version"] == "3"
    dest = tmp_path / "d.duckdb"
    energy_store(dest)  # a v4 store with energy already
    (summary,) = import_bundles(dest, [V3])
    assert (summary["schema_version"], summary["runs_added"]) == (3, 2)
    assert summary["drift_slope_dropped"] == 0  # v3 stored start times: recomputed instead
    con = duckdb.connect(str(dest), read_only=True)
    try:
        v4 = [c.name for c in schema.CASES.columns if c.since == 4]
        rows = con.execute(
            f"SELECT {', '.join(v4)} FROM cases WHERE model_name = 'llama_lm_head' "
            "AND run_id IN (SELECT run_id FROM runs WHERE origin = 'imported')"
        ).fetchall()
        assert len(rows) == 2 and all(v is None for r in rows for v in r)
        assert con.execute(
            "SELECT count(*), count(window_index) FROM samples WHERE case_id IN (SELECT case_id "
            "FROM cases WHERE run_id IN (SELECT run_id FROM runs WHERE origin = 'imported'))"
        ).fetchone() == (120, 0)
    finally:
        con.close()


def test_a_tampered_v3_bundle_is_still_refused(tmp_path):
    bad = rewrite(V3, tmp_path / "bad.parquet", sub("median_ms", "cases", "median_ms * 2"))
    with pytest.raises(InputError, match="median_ms = "):
        import_bundles(tmp_path / "d.duckdb", [bad])


def test_a_v3_store_with_v3_data_upgrades_to_the_current_version(tmp_path):
    """The v1 fixture brought to v3 by the frozen steps and given v3 data (start times,
    notes), then opened: the v4 step (and later ones) add NULL columns and empty tables,
    data intact."""
    store = tmp_path / "v3.duckdb"
    shutil.copy(V1, store)
    con = duckdb.connect(str(store))
    for version in (2, 3):
        for stmt in migrations.STEPS[version]:
            con.execute(stmt)
        con.execute("UPDATE meta SET value = ? WHERE key = 'schema_version'", [str(version)])
    con.execute("UPDATE samples SET start_ns = idx * 1000")
    con.execute("""UPDATE cases SET notes = '["a v3 note"]'""")
    before = con.execute("SELECT case_id, median_ms, notes FROM cases ORDER BY 1").fetchall()
    con.close()
    open_store(store).close()
    fresh = tmp_path / "fresh.duckdb"
    open_store(fresh).close()
    con = duckdb.connect(str(store), read_only=True)
    other = duckdb.connect(str(fresh), read_only=True)
    try:
        cols = "SELECT table_name, column_name, data_type FROM duckdb_columns() ORDER BY ALL"
        assert con.execute(cols).fetchall() == other.execute(cols).fetchall()
        assert con.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone() == (
            str(schema.SCHEMA_VERSION),
        )
        assert (
            con.execute("SELECT case_id, median_ms, notes FROM cases ORDER BY 1").fetchall()
            == before
        )
        assert con.execute("SELECT count(*) FROM sustained_windows").fetchone() == (0,)
        assert con.execute(
            "SELECT count(*) FROM results WHERE inferences_per_joule IS NULL"
        ).fetchone() == (len(before),)
        assert con.execute("SELECT count(*) FROM energy_factors").fetchone() == (0,)
    finally:
        con.close()
        other.close()


# ---------------------------------------------------------------- energy_factors


def test_energy_factors_compare_like_with_like(tmp_path):
    store = tmp_path / "s.duckdb"
    rng = np.random.default_rng(9)
    cids = {}
    for chip, calls in (("Apple M1 Max", 100), ("Apple M4 Max", 250)):
        run_id = new_run(store, chip=chip)
        # the same real reading charged to other call counts: inferences per joule
        # scale with the calls, so the factor is known by hand (250 / 100 = 2.5)
        cids[chip] = energy_case(store, run_id, rng, energy_calls=calls)
    # a GPU reading on the M4 Max host: another reader, so no M1 Max baseline
    run_id = new_run(store, chip="Apple M4 Max")
    wall = samples_ns(rng, 40, 1.0)
    gpu = {
        "energy_method": "nvml",
        "energy_interval_s": 2.0,
        "energy_samples": 21,
        "energy_calls": 40,
        "energy_timed_only": True,
        "energy_total_mj": 8000.0,
    }
    append_case(store, run_id, {**case(wall=wall), **gpu}, wall)
    con = open_store(store, read_only=True)
    try:
        rows = con.execute(
            "SELECT chip, energy_method, inferences_per_joule, energy_factor, "
            "energy_factor_label, baseline_label, caveat FROM energy_factors ORDER BY 1, 2"
        ).fetchall()
        described = [r[0] for r in con.execute("DESCRIBE energy_factors").fetchall()]
        via_macro = con.execute(
            "SELECT chip, energy_factor FROM energy_factors_vs('M4 Max') ORDER BY 1, 2"
        ).fetchall()
        (m4_run,) = con.execute(
            "SELECT run_id FROM cases WHERE case_id = ?", [cids["Apple M4 Max"]]
        ).fetchone()
        for_run = energy_for_run(con, m4_run)
    finally:
        con.close()
    assert described == [n for n, _ in ENERGY_COLUMNS]
    total = TOTAL_MJ  # of the reading, summed by hand from the trace
    (m1, m4_io, m4_gpu) = rows
    assert m1[:5] == ("M1 Max", "ioreport", pytest.approx(1000 / (total / 100)), 1.0, "1.0x")
    assert m4_io[:5] == ("M4 Max", "ioreport", pytest.approx(1000 / (total / 250)),
                         pytest.approx(2.5), "2.5x")  # fmt: skip
    assert m4_gpu[1:5] == ("nvml", pytest.approx(1000 / (8000 / 40)), None, None)
    assert m4_gpu[5].startswith("none: no M1 Max energy figure")
    assert "not wall power" in m4_gpu[6] and "not wall power" in m1[6]
    assert "powermetrics' manual warns" in m1[6]
    assert m1[5] == "M1 Max (own, Core ML ANE, ioreport)"
    assert via_macro == [("M1 Max", pytest.approx(0.4)), ("M4 Max", 1.0), ("M4 Max", 1.0)]
    # one run's rows, as the bench summary reads them: the same figures as the view's
    assert [(r["chip"], r["energy_factor"], r["baseline_label"]) for r in for_run] == [
        ("M4 Max", pytest.approx(2.5), "M1 Max (own, Core ML ANE, ioreport)")
    ]


def test_an_imported_baseline_is_not_compared_with_own_energy(tmp_path):
    src = tmp_path / "m1.duckdb"
    energy_case(src, new_run(src, chip="Apple M1 Max"), np.random.default_rng(1))
    export_bundle(src, tmp_path / "m1.parquet")
    dest = tmp_path / "d.duckdb"
    energy_case(dest, new_run(dest, chip="Apple M4 Max"), np.random.default_rng(2))
    import_bundles(dest, [tmp_path / "m1.parquet"])
    con = open_store(dest, read_only=True)
    try:
        rows = con.execute(
            "SELECT source, chip, energy_factor, baseline_source FROM energy_factors ORDER BY 2"
        ).fetchall()
    finally:
        con.close()
    assert rows == [("imported", "M1 Max", 1.0, "imported"), ("own", "M4 Max", None, None)]


def test_an_older_verdict_on_windows_of_too_few_calls_still_imports(tmp_path):
    """'too few calls' is newer than runs already stored and shared: a run whose first or
    last window has under 6 calls may hold the verdict the older judge gave it (its CI is
    still checked); pulls of such runs were refused whole."""
    from fixtures.store.energy import sustained_case, synthetic_sustained

    from anemll_spec.sustained import judge

    s = synthetic_sustained(n_windows=3, calls=4, slow_down=1.3)
    v = judge(s.windows[0].samples_ns, s.windows[-1].samples_ns)
    assert v.verdict == "too few calls"
    # the older rule on this CI (a throughput ratio of ~0.6: its CI below 1)
    assert v.ci_high < 1.0 and abs(v.throughput_ratio - 1) > 0.02
    for old in ("too few calls", "degraded"):
        src = tmp_path / f"{old}.duckdb"
        sustained_case(src, new_run(src), s, sustained_verdict=old)
        export_bundle(src, tmp_path / f"{old}.parquet")
        (got,) = import_bundles(tmp_path / f"into-{old}.duckdb", [tmp_path / f"{old}.parquet"])
        assert got["runs_added"] == 1
        assert rows(tmp_path / f"into-{old}.duckdb", "SELECT sustained_verdict FROM cases") == [
            (old,)
        ]
    # a verdict its own CI contradicts is refused, whatever the windows' calls (the writer
    # refuses to store one: the bundle is rewritten)
    for wrong in ("sustained", "improved"):
        bad = rewrite(
            tmp_path / "degraded.parquet",
            tmp_path / f"{wrong}.parquet",
            sub("sustained_verdict", "cases", f"'{wrong}'"),
        )
        with pytest.raises(InputError, match=f"sustained_verdict = {wrong} but the windows'"):
            import_bundles(tmp_path / f"into-{wrong}.duckdb", [bad])
        assert not (tmp_path / f"into-{wrong}.duckdb").exists()
