"""A sustained case's energy over its windows: every window's reading counts, one that
read 0 mJ (between two counter updates) included; written and re-imported with every
derived figure recomputed (store.energy.combined_energy, store.energy_checks)."""

from __future__ import annotations

from dataclasses import replace

import pytest
from db_util import rows as q
from fixtures.store.bundles import content
from fixtures.store.energy import sustained_case, synthetic_sustained
from fixtures.store.synth import new_run

from anemll_spec.store import finish_run
from anemll_spec.store.exporting import export_bundle
from anemll_spec.store.importing import import_bundles


def test_sustained_windows_that_read_0_mj_count_in_the_runs_sum(tmp_path):
    """A window shorter than the counter's update period (NVML: 100 ms) can read 0 mJ while
    the next holds that energy: one such window set the whole case's energy NULL (and
    advised run.energy_s, which a sustained run does not use). The case now sums every
    window's reading; its rows pass the writer's and the import's recomputation."""
    s = synthetic_sustained(n_windows=6)
    for i in (1, 3):  # between two counter updates
        w = s.windows[i]
        w.energy = replace(w.energy, rails_mj={"gpu": 0.0}, timeline=())
    want_mj = sum(206.0 * 60 * (1 + 0.01 * i) for i in (0, 2, 4, 5))  # by hand
    want_s = sum((w.end_ns - w.start_ns) / 1e9 for w in s.windows)
    store = tmp_path / "s.duckdb"
    run_id = new_run(store)
    cid = sustained_case(store, run_id, s)  # the writer's checks pass
    finish_run(store, run_id, "finished")
    ((total, calls, interval, per_inf, watts, note),) = q(
        store,
        "SELECT energy_total_mj, energy_calls, energy_interval_s, energy_mj_per_inference, "
        "power_w_mean, energy_note FROM cases WHERE case_id = ?",
        [cid],
    )
    assert total == pytest.approx(want_mj, rel=1e-12) and calls == 6 * 60
    assert interval == pytest.approx(want_s, rel=1e-12)
    assert per_inf == pytest.approx(want_mj / 360, rel=1e-12)
    assert watts == pytest.approx(want_mj / 1e3 / want_s, rel=1e-12)
    assert "2 of the 6 windows read 0 mJ" in note and "run.window_s" in note
    assert q(store, "SELECT rail, energy_mj FROM case_energy_rails WHERE case_id = ?", [cid]) == [
        ("gpu", pytest.approx(want_mj, rel=1e-12))
    ]
    # the windows' own rows as before: a window that read 0 mJ has no energy of its own
    rows = q(store, "SELECT window_index, energy_total_mj FROM sustained_windows "
                    "WHERE case_id = ? ORDER BY 1", [cid])  # fmt: skip
    assert [i for i, mj in rows if mj is None] == [1, 3]
    out, dest = tmp_path / "b.parquet", tmp_path / "d.duckdb"
    export_bundle(store, out)
    import_bundles(dest, [out])  # the import's recomputation agrees
    assert content(dest) == content(store)

    # 0 mJ in every window: no figure, and the reason names window_s
    for w in s.windows:
        w.energy = replace(w.energy, rails_mj={"gpu": 0.0}, timeline=())
    cid = sustained_case(store, new_run(store), s)
    ((total, note),) = q(
        store, "SELECT energy_total_mj, energy_note FROM cases WHERE case_id = ?", [cid]
    )
    assert total is None
    assert note == (
        f"its total is 0 mJ over the 6 windows' {want_s:.3g} s: the counters did not move "
        "in any window (shorter than their update period: run.window_s and run.duration_s "
        "set longer ones)"
    )


def test_zeroed_ioreport_counters_over_short_windows_are_named_as_not_published():
    """macOS 27 on M5 publishes 0 for every mJ channel. No window under 3.4 s can tell that
    from a window between two updates, so 600 windows of 0.98 s (588 s) all reading 0 mJ
    were stored as "did not move in any window ... set longer windows", advice that cannot
    help. The reader's own check of the sum says what it is."""
    from types import SimpleNamespace

    from anemll_spec.power.base import Energy, Unavailable
    from anemll_spec.store.energy import combined_energy

    zero = {"cpu": 0.0, "gpu": 0.0, "ane": 0.0, "dram": 0.0}

    def window(mj: dict) -> SimpleNamespace:
        e = Energy(rails_mj=mj, total_rails=("cpu", "gpu", "ane", "dram"), interval_s=0.98,
                   method="ioreport", samples=2, timed_only=True)  # fmt: skip
        return SimpleNamespace(energy=e, calls=100)

    got = combined_energy([window(zero) for _ in range(600)])
    assert isinstance(got, Unavailable)
    assert got.reason == (
        "IOReport Energy Model read 0 mJ for CPU and DRAM over 588.00 s: this macOS does not "
        "publish the counters (seen on macOS 27 with M5) (the 600 windows summed)"
    )
    # counters that moved in some windows: the sum, as before
    moving = [window(zero if i % 2 else {**zero, "cpu": 5.0, "dram": 1.0}) for i in range(6)]
    summed = combined_energy(moving)
    assert isinstance(summed, Energy) and summed.total_mj == 18.0
    assert summed.interval_s == pytest.approx(5.88)


def test_windows_that_together_are_shorter_than_the_counters_update_period_are_no_figure():
    """Each window may be shorter than the counter's update period (the sum holds what
    one window missed), but a sum that is itself that short is one short reading: two
    0.5 s IOReport windows stored 1,800 mJ where one update can hold 1.7 s of energy,
    while a single 1 s reading is refused."""
    from types import SimpleNamespace

    from anemll_spec.power.base import Energy, Unavailable
    from anemll_spec.store.energy import combined_energy

    def windows(method: str, seconds: float, mj: list[float]) -> list[SimpleNamespace]:
        rail = "cpu" if method == "ioreport" else "gpu"
        return [
            SimpleNamespace(
                energy=Energy(
                    rails_mj={rail: x, **({"dram": x} if rail == "cpu" else {})},
                    total_rails=(rail,),
                    interval_s=seconds,
                    method=method,
                    samples=2,
                    timed_only=True,
                ),  # fmt: skip
                calls=10,
            )
            for x in mj
        ]

    got = combined_energy(windows("ioreport", 0.5, [1800.0, 0.0]))
    assert isinstance(got, Unavailable) and got.method == "ioreport"
    assert got.reason == (
        "the 2 windows' readings together cover 1 s, shorter than the ioreport counter's "
        "update period (up to 1.7 s): one update there holds up to 1.7 times their energy, "
        "or none does (run.duration_s sets a longer run)"
    )
    got = combined_energy(windows("nvml", 0.02, [30.0, 0.0]))
    assert isinstance(got, Unavailable) and "cover 0.04 s, shorter than the nvml" in got.reason
    ok = combined_energy(windows("nvml", 0.06, [30.0, 0.0]))  # 0.12 s together: a figure
    assert isinstance(ok, Energy) and ok.total_mj == 30.0
