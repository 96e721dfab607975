"""Schema v4: energy per case (per rail, per part, a power timeline) and sustained runs
(windows, each sample's window, the verdict) through append, export, import; every
derived figure recomputed here with numpy / sustained.judge; the writer refuses what an
import would refuse; energy_factors."""

from __future__ import annotations

import numpy as np
import pytest
from db_util import rows as q
from fixtures.store.bundles import content
from fixtures.store.energy import (
    CALLS,
    PARTS_MJ,
    RAILS_MJ,
    SPAN_S,
    TOTAL_MJ,
    energy_case,
    energy_store,
    m1_ultra_reading,
    sustained_case,
    synthetic_sustained,
)
from fixtures.store.synth import case, new_run, samples_ns

from anemll_spec.errors import InputError
from anemll_spec.store import append_case
from anemll_spec.store.energy import energy_rows, rail_and_part, sustained_rows
from anemll_spec.store.exporting import export_bundle
from anemll_spec.store.importing import import_bundles
from anemll_spec.sustained import judge


@pytest.fixture(scope="module")
def source(tmp_path_factory):
    path = tmp_path_factory.mktemp("energy") / "src.duckdb"
    return path, energy_store(path)


# ---------------------------------------------------------------- what is stored


def test_energy_figures_are_the_readings(source):
    store, ids = source
    ((method, calls, total, per_inf, watts, ipj, interval, timed, note),) = q(
        store,
        "SELECT energy_method, energy_calls, energy_total_mj, energy_mj_per_inference, "
        "power_w_mean, inferences_per_joule, energy_interval_s, energy_timed_only, energy_note "
        "FROM results WHERE case_id = ?",
        [ids["energy"]],
    )
    assert (method, calls, timed, interval) == ("ioreport", CALLS, True, SPAN_S)
    assert total == pytest.approx(TOTAL_MJ, rel=1e-12)
    assert per_inf == pytest.approx(TOTAL_MJ / CALLS, rel=1e-12)
    assert watts == pytest.approx(TOTAL_MJ / 1000 / SPAN_S, rel=1e-12)
    assert ipj == pytest.approx(1000 / (TOTAL_MJ / CALLS), rel=1e-12)
    assert "not wall power" in note
    # each part of each rail apart (the Ultra's two ANEs), summed per rail in results
    parts = q(
        store,
        "SELECT rail, part, energy_mj, mj_per_inference, mean_power_w, in_total "
        "FROM case_energy_rails WHERE case_id = ?",
        [ids["energy"]],
    )
    assert {(r, p): e for r, p, e, *_ in parts} == pytest.approx(PARTS_MJ)
    for _, _, e, mj, w, in_total in parts:
        assert (mj, w, in_total) == (
            pytest.approx(e / CALLS),
            pytest.approx(e / 1e3 / SPAN_S),
            True,
        )
    (per_rail,) = q(
        store,
        "SELECT energy_cpu_mj_per_inference, energy_gpu_mj_per_inference, "
        "energy_ane_mj_per_inference, energy_dram_mj_per_inference FROM results "
        "WHERE case_id = ?",
        [ids["energy"]],
    )
    want = [RAILS_MJ[r] / CALLS for r in ("cpu", "gpu", "ane", "dram")]
    assert list(per_rail) == pytest.approx(want)
    # the timeline: one point per rail, its t_s after the first timed call
    points = q(store, "SELECT rail, t_s, watts FROM power_samples WHERE case_id = ? ORDER BY idx",
               [ids["energy"]])  # fmt: skip
    assert {r: w for r, _, w in points} == pytest.approx(
        {r: mj / SPAN_S / 1e3 for r, mj in RAILS_MJ.items()}
    )
    assert [t for _, t, _ in points] == pytest.approx([SPAN_S] * len(RAILS_MJ))


def test_sustained_windows_verdict_and_sample_windows(source):
    store, ids = source
    s = synthetic_sustained()  # seeded: the same windows as stored
    wins = q(
        store,
        "SELECT window_index, start_s, wall_s, calls, median_ms, throughput_ips, "
        "energy_total_mj, energy_mj_per_inference, power_w_mean, thermal_state, throttled, "
        "temperature_c, clock_event_reasons FROM sustained_windows WHERE case_id = ? ORDER BY 1",
        [ids["sustained"]],
    )
    assert len(wins) == len(s.windows) == 3
    t0 = s.windows[0].start_ns
    for row, w in zip(wins, s.windows, strict=True):
        i, start, wall_s, calls, median, ips, total, per_inf, watts, state, hot, temp, why = row
        assert (i, calls, state, hot, temp) == (w.index, w.calls, "nominal", False, 65.0 + i)
        assert start == pytest.approx((w.start_ns - t0) / 1e9)
        assert median == pytest.approx(np.median(w.samples_ns) / 1e6, rel=1e-12)
        assert ips == pytest.approx(w.calls / ((w.end_ns - w.start_ns) / 1e9))
        assert total == pytest.approx(206.0 * w.calls * (1 + 0.01 * i))
        assert per_inf == pytest.approx(total / calls)
        assert watts == pytest.approx(total / 1e3 / w.energy.interval_s)
        assert why is None
    # each stored sample carries its window: the window medians come from them
    by_window = q(
        store,
        "SELECT window_index, median(wall_ns) / 1e6, count(*) FROM samples WHERE case_id = ? "
        "GROUP BY 1 ORDER BY 1",
        [ids["sustained"]],
    )
    assert [(i, m, n) for i, m, n in by_window] == [(r[0], pytest.approx(r[4]), r[3]) for r in wins]
    v = judge(s.windows[0].samples_ns, s.windows[-1].samples_ns)
    (got,) = q(
        store,
        "SELECT sustained_windows, sustained_first_median_ms, sustained_last_median_ms, "
        "sustained_throughput_ratio, sustained_ci_low, sustained_ci_high, sustained_verdict, "
        "sustained_throttled, energy_method, energy_calls, gpu_power_limit_w FROM cases "
        "WHERE case_id = ?",
        [ids["sustained"]],
    )
    assert got == (
        3,
        pytest.approx(v.first_median_ms),
        pytest.approx(v.last_median_ms),
        pytest.approx(v.throughput_ratio),
        pytest.approx(v.ci_low),
        pytest.approx(v.ci_high),
        v.verdict,
        False,
        "nvml",
        180,
        700.0,
    )
    # the timeline: each window's points carry its index
    assert q(
        store,
        "SELECT window_index, watts FROM power_samples WHERE case_id = ? ORDER BY idx",
        [ids["sustained"]],
    ) == [(0, 500.0), (1, 501.0), (2, 502.0)]


def test_round_trip_through_export_and_import(source, tmp_path):
    store, _ = source
    out = tmp_path / "b.parquet"
    summary = export_bundle(store, out)
    assert summary["counts"]["case_energy_rails"] == len(PARTS_MJ) + 1  # + the NVML gpu rail
    assert summary["counts"]["sustained_windows"] == 3
    dest = tmp_path / "d.duckdb"
    (imported,) = import_bundles(dest, [out])
    assert imported["rows"]["power_samples"] == len(RAILS_MJ) + 3
    assert content(dest) == content(store)  # every table, every figure, as written
    assert import_bundles(dest, [out])[0]["runs_added"] == 0


def test_a_real_sustained_run_is_stored_and_judged_again(tmp_path):
    """A real (short) sustained run of a numpy matmul: no power reader on this machine,
    so NULL energy with the reason; its verdict passes the store's own recomputation."""
    from anemll_spec.power import open_reader
    from anemll_spec.sustained import run_sustained

    a = np.ones((48, 48))
    reader = open_reader("numpy", "cpu")
    s = run_sustained(lambda: a @ a, 0.3, 0.1, warmup=2, reader=None if hasattr(reader, "reason")
                      else reader)  # fmt: skip
    store = tmp_path / "s.duckdb"
    cid = sustained_case(store, new_run(store), s)
    (n, verdict) = q(store, "SELECT sustained_windows, sustained_verdict FROM cases WHERE case_id = ?",
                     [cid])[0]  # fmt: skip
    assert (n, verdict) == (len(s.windows), s.verdict.verdict)
    assert q(store, "SELECT count(*) FROM samples WHERE window_index IS NULL") == [(0,)]


def test_rapl_zones_become_rail_and_part():
    assert rail_and_part("rapl", "package-0") == ("package", "package-0")
    assert rail_and_part("rapl", "package-1.dram") == ("dram", "package-1")
    assert rail_and_part("rapl", "psys") == ("psys", None)
    assert rail_and_part("ioreport", "GPU SRAM") == ("gpu_sram", None)


def test_an_unavailable_reader_is_null_energy_with_its_reason(tmp_path):
    from anemll_spec.power.base import Unavailable

    store = tmp_path / "s.duckdb"
    run_id = new_run(store)
    wall = samples_ns(np.random.default_rng(1), 30, 5.0)
    why = "no RAPL: /sys/class/powercap does not exist (no powercap driver, e.g. a VM)"
    kw = energy_rows(Unavailable(why, "rapl"), 30, t0_ns=0)
    cid = append_case(store, run_id, {**case(wall=wall), **kw.pop("case")}, wall, **kw)
    assert q(store, "SELECT energy_method, energy_total_mj, energy_note, inferences_per_joule "
             "FROM results WHERE case_id = ?", [cid]) == [(None, None, why, None)]  # fmt: skip


# ---------------------------------------------------------------- the writer refuses


WRITE_REFUSALS = {
    "per inference is not total / calls": (
        {"energy_mj_per_inference": 1.0},
        "energy_mj_per_inference = 1.0 but energy_total_mj / energy_calls",
    ),
    "mean power is not total / interval": ({"power_w_mean": 3.0}, "power_w_mean = 3.0 but"),
    "energy without its reader": ({"energy_method": None}, "energy_method and energy_total_mj"),
    "energy without calls": ({"energy_calls": None}, "needs its interval"),
    "instances at concurrency 1": ({"instances": "shared"}, "is for concurrency > 1"),
    "negative energy": ({"energy_total_mj": -1.0}, "energy_total_mj = -1.0 is below"),
    "an unknown reader": ({"energy_method": "wattmeter"}, "is not one of ioreport"),
}


@pytest.mark.parametrize("name", list(WRITE_REFUSALS))
def test_the_writer_refuses_inconsistent_energy(tmp_path, name):
    store = tmp_path / "s.duckdb"
    run_id = new_run(store)
    over, message = WRITE_REFUSALS[name]
    with pytest.raises(InputError, match=message.replace("(", r"\(")):
        energy_case(store, run_id, np.random.default_rng(2), **over)
    assert q(store, "SELECT count(*) FROM cases") == [(0,)]
    assert q(store, "SELECT count(*) FROM case_energy_rails") == [(0,)]


def test_the_writer_refuses_bad_rows_of_the_new_tables(tmp_path):
    store = tmp_path / "s.duckdb"
    run_id = new_run(store)
    kw = sustained_rows(synthetic_sustained())
    wall, row = kw.pop("samples"), kw.pop("case")
    base = {**case(wall=wall, backend="torch", device="cuda", compute_units=None), **row}

    def refused(message, **changes):
        args = {**kw, **changes}
        with pytest.raises(InputError, match=message):
            append_case(store, run_id, base, wall, **args)
        assert q(store, "SELECT count(*) FROM cases") == [(0,)]

    points = [dict(p) for p in kw["power_samples"]]
    refused("power_samples: idx 0 is given twice", power_samples=[{**p, "idx": 0} for p in points])
    points[1]["watts"] = -5.0
    refused("watts below 0", power_samples=points)
    points[1]["watts"] = float("nan")
    refused("watts is NULL|watts not finite", power_samples=points)  # NaN: no reading
    wins = [dict(w) for w in kw["windows"]]
    wins[1]["median_ms"] = wins[1]["median_ms"] * 1.5
    refused("window 1 median_ms = .* but its samples give", windows=wins)
    wins = [dict(w) for w in kw["windows"]]
    wins[2]["calls"] = 59
    refused("window 2 has calls = 59 but 60 samples", windows=wins)
    refused("window indices for", sample_windows=kw["sample_windows"][:-1])
    shifted = kw["sample_windows"].copy()
    shifted[-1] = 7
    refused("names window 7", sample_windows=shifted)
    rails = [dict(r) for r in kw["rails"]] + [{"rail": "gpu", "energy_mj": 1.0, "in_total": False}]
    refused("stored twice|both whole", rails=rails)
    rails = [{"rail": "GPU!", "energy_mj": 1.0, "in_total": True}]
    refused("rail 0: rail = 'GPU!' is not of the form", rails=rails)
    with pytest.raises(InputError, match="sustained_ci_low = 0.5 but the windows' samples give"):
        append_case(store, run_id, {**base, "sustained_ci_low": 0.5}, wall, **kw)
    with pytest.raises(InputError, match="sustained_verdict = degraded but"):
        append_case(store, run_id, {**base, "sustained_verdict": "degraded"}, wall, **kw)
    assert append_case(store, run_id, base, wall, **kw)  # and the real rows are accepted


def test_a_reading_the_store_cannot_take_is_null_with_the_reason(tmp_path):
    """A reading with no interval or a negative rail (a counter gone wrong) must not cost
    the case its timing: the energy is NULL and energy_note says why."""
    from dataclasses import replace

    store = tmp_path / "s.duckdb"
    run_id = new_run(store)
    wall = samples_ns(np.random.default_rng(3), 30, 5.0)
    good = m1_ultra_reading(0)
    for bad, why in (
        (replace(good, interval_s=0.0), "its interval is 0.0 s"),
        (replace(good, rails_mj={**good.rails_mj, "dram": -3.0}), "rail dram read -3.0 mJ"),
        (
            replace(good, rails_mj={}, parts_mj={}, timeline=()),
            "no rail of its total was read (its total would be 0 mJ)",
        ),
        (  # NVML's counter moves every 100 ms: two instances' 40 ms phase read 0 mJ
            replace(good, rails_mj=dict.fromkeys(good.rails_mj, 0.0), parts_mj={}, timeline=()),
            f"its total is 0 mJ over {good.interval_s:.3g} s: the counters did not move (an "
            "interval shorter than their update period; run.energy_s sets a longer one)",
        ),
    ):
        kw = energy_rows(bad, 30, t0_ns=0)
        cid = append_case(store, run_id, {**case(wall=wall), **kw.pop("case")}, wall, **kw)
        assert q(
            store, "SELECT energy_total_mj, energy_note FROM cases WHERE case_id = ?", [cid]
        ) == [(None, f"ioreport reading not stored: {why}")]
    assert q(store, "SELECT count(*) FROM case_energy_rails") == [(0,)]
    # a sustained run with one window unreadable: the case's energy is NULL with why
    s = synthetic_sustained()
    s.windows[1].energy = replace(s.windows[1].energy, interval_s=float("nan"))
    cid = sustained_case(store, run_id, s)
    (note, n_energy) = q(
        store,
        "SELECT energy_note, (SELECT count(energy_total_mj) FROM sustained_windows w "
        "WHERE w.case_id = c.case_id) FROM cases c WHERE case_id = ?",
        [cid],
    )[0]
    assert note == "no energy for window 1 of 3: its interval is nan s" and n_energy == 2


def test_power_samples_as_columns(tmp_path):
    """The bulk form: a mapping of column -> sequence (what a long timeline comes as)."""
    store = tmp_path / "s.duckdb"
    run_id = new_run(store)
    wall = samples_ns(np.random.default_rng(6), CALLS, 19.0)
    kw = energy_rows(m1_ultra_reading(0), CALLS, t0_ns=0)
    n = 5000
    t = np.linspace(0.1, 500.0, n)
    watts = 20.0 + np.sin(t)
    kw["power_samples"] = {
        "t_s": t,
        "rail": ["cpu", "ane"] * (n // 2),
        "part": [None, "ANE0_1"] * (n // 2),
        "watts": watts,
    }
    cid = append_case(store, run_id, {**case(wall=wall), **kw.pop("case")}, wall, **kw)
    got = q(
        store,
        "SELECT idx, t_s, rail, part, watts, window_index FROM power_samples WHERE case_id = ? "
        "ORDER BY idx",
        [cid],
    )
    assert [r[0] for r in got] == list(range(n))
    assert [r[1] for r in got] == pytest.approx(t.tolist())
    assert [r[4] for r in got] == pytest.approx(watts.tolist())
    assert {(r[2], r[3], r[5]) for r in got} == {("cpu", None, None), ("ane", "ANE0_1", None)}


def test_import_and_push_say_what_energy_rows_came(source, tmp_path, cli):
    store, _ = source
    bundle = tmp_path / "b.parquet"
    assert cli("export", "--store", store, "--out", bundle).returncode == 0
    out = cli("import", bundle, "--store", tmp_path / "d.duckdb")
    assert out.returncode == 0, out.stderr
    # 8 rail rows (7 IOReport parts + the NVML gpu rail), 4 + 3 timeline points, 3 windows
    assert "8 energy rail row(s), 7 power sample(s), 3 sustained window(s)" in out.stdout
    pushed = cli("push", "--store", store, "--to", tmp_path / "e.duckdb")
    assert pushed.returncode == 0, pushed.stderr
    assert "; 8 energy rail row(s); 7 power sample(s); 3 sustained window(s)" in pushed.stdout


def test_bench_summary_shows_no_energy_for_a_reading_the_store_refuses():
    """A counter that did not move read 0 mJ: the summary divided by it (a traceback
    after the run, seen on the H100 with two instances over 40 ms), and showed 0 mJ."""
    from dataclasses import replace
    from types import SimpleNamespace

    from anemll_spec.cli.bench import _energy

    good = m1_ultra_reading(0)
    zero = replace(good, rails_mj=dict.fromkeys(good.rails_mj, 0.0), parts_mj={}, timeline=())
    assert _energy(SimpleNamespace(energy=zero, reading_calls=400)) == "-"
    shown = _energy(SimpleNamespace(energy=good, reading_calls=400))
    assert shown != "-" and shown.endswith("/J)")


def test_bench_summary_says_why_a_reading_is_no_figure():
    """The table's "-" for a reading the store refused (a counter that did not move) came
    with no reason (the store kept it): the lines under the table say it as energy_note
    does."""
    from dataclasses import replace
    from types import SimpleNamespace

    from anemll_spec.cli.bench import _lines

    good = m1_ultra_reading(0)
    short = replace(good, rails_mj=dict.fromkeys(good.rails_mj, 0.0), parts_mj={}, timeline=())
    variant = SimpleNamespace(case=SimpleNamespace(index=3, model_name="m"), label="coreml ALL")
    m = SimpleNamespace(
        variant=variant, status="ok", error=None, verdict=None, runtime_median_ms=None,
        summary=None, energy=short, reading_calls=50, notes=[], dispatch_floor_ms=None,
    )  # fmt: skip
    note = energy_rows(short, 50, t0_ns=0)["case"]["energy_note"]
    assert _lines(m) == [f"energy #3 coreml ALL: not measured: {note}"]
    assert note.startswith("ioreport reading not stored: its total is 0 mJ over 0.326 s")
    assert _lines(SimpleNamespace(**{**vars(m), "energy": good})) == []
