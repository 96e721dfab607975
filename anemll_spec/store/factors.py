"""One run's factors against a baseline chip: the store's one factor rule, for callers.

The rule lives in SQL, once (`factors_of` in views.py, read by `case_factors_vs`): an own row is compared
with the baseline chip's row of the same model from the same source (same backend,
device and compute units) when there is one, else with the baseline chip's published
figure. The bench summary, `share`, the chip_factors view, `chart factors` and the
report all read it, so they cannot disagree.
"""

from __future__ import annotations

from anemll_spec.errors import InputError
from anemll_spec.store.views import DEFAULT_BASELINE
from anemll_spec.text import printable

COLUMNS = (
    "case_id",
    "model",
    "backend",
    "device",
    "compute_units",
    "chip",
    "os_version",
    "bandwidth_gbps",
    "latency_ms",
    "bandwidth_factor",
    "inference_factor",
    "bandwidth_factor_label",
    "inference_factor_label",
    "baseline_chip",
    "baseline_source",
    "baseline_label",
    "baseline_bandwidth_gbps",
    "baseline_latency_ms",
)


# rows of `f` in the order of every other table of a run (sqlparts.CASE_ORDER): the spec's,
# then as bench measured them (the case id is a hash: in its order a share block listed
# the cases, and a case's backends, in another order than its summary)
IN_SPEC_ORDER = (
    "ORDER BY "
    + ", ".join(
        f"(SELECT c.{col} FROM cases c WHERE c.case_id = f.case_id) NULLS LAST"
        for col in ("case_index", "finished_at")
    )
    + ", case_id"
)


def for_run(con, run_id: str, baseline: str = DEFAULT_BASELINE) -> list[dict]:
    """Factors of each ok case of `run_id` (one instance at a time, with a model name
    and a chip) against `baseline`, as dicts with COLUMNS. A case with no baseline
    figure at all (a model the baseline chip has no row for) has NULL factors and
    baseline_source; cases that are not comparable (failed, concurrency > 1) are
    absent. `con`: an open store connection (read-only is enough)."""
    cols = ", ".join(COLUMNS)
    cur = con.execute(
        f"SELECT {cols} FROM factors_of(?, ?, false) f {IN_SPEC_ORDER}",
        [baseline, run_id],
    )
    return [dict(zip(COLUMNS, row, strict=True)) for row in cur.fetchall()]


def energy_for_run(con, run_id: str, baseline: str = DEFAULT_BASELINE) -> list[dict]:
    """Energy of each ok case of `run_id` with a measured energy, against `baseline`'s
    same-source row (energy_factors_of: NULL energy_factor and a baseline_label saying
    why where there is none), as dicts with views_energy.COLUMNS."""
    from anemll_spec.store.views_energy import COLUMNS as ENERGY_COLUMNS

    names = [n for n, _ in ENERGY_COLUMNS]
    cur = con.execute(
        f"SELECT {', '.join(names)} FROM energy_factors_of(?, ?, false) f {IN_SPEC_ORDER}",
        [baseline, run_id],
    )
    return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]


def check_baseline(con, baseline: str) -> None:
    """A baseline chip no row has would silently give 'no baseline' everywhere: share,
    the charts and the report refuse it alike, naming the chips there are."""
    chips = [
        r[0] for r in con.execute("SELECT DISTINCT chip FROM chip_factors ORDER BY 1").fetchall()
    ]
    if chips and baseline not in chips:
        raise InputError(
            f"--baseline {baseline!r}: no chip of that name in the store; chips: "
            + printable(", ".join(map(repr, chips)))
        )
