"""Measurements into the store, and the store's comparison back out.

The rows are made by the store from its own column declarations (store.rowsource): this
module only says which objects hold the figures. The comparison with published results
is the store's one rule (store.factors.for_run), the same the views, charts and report
use."""

from __future__ import annotations

from typing import Any

from anemll_spec.errors import InputError
from anemll_spec.runner.measurement import Measurement


def case_row(m: Measurement) -> tuple[dict[str, Any], dict[str, Any]]:
    """(the `cases` row, the other append_case arguments) of one measurement."""
    from anemll_spec.store import energy as store_energy
    from anemll_spec.store import schema
    from anemll_spec.store.rowsource import Prefixed, row_from

    kw: dict[str, Any] = {"placements": m.placements, "starts_ns": m.starts_ns}
    if m.sustained is not None:
        rows = store_energy.sustained_rows(m.sustained, m.energy)  # as the summary shows it
        extra = rows["case"]
        kw.update(
            sample_windows=rows["sample_windows"],
            windows=rows["windows"],
            rails=rows["rails"],
            power_samples=rows["power_samples"],
        )
    else:
        e = store_energy.energy_rows(m.energy, m.reading_calls, t0_ns=m.energy_t0_ns or 0)
        extra = e["case"]
        kw.update(rails=e["rails"], power_samples=e["power_samples"])
    sources = (extra, m.variant, m, m.summary, Prefixed("verify_", m.verdict))
    row = row_from(schema.CASES, *sources, managed=("case_id", "run_id", "finished_at"))
    return row, kw


def store_measurement(store: Any, target: str, run_id: str, m: Measurement) -> str:
    """Append one finished variant; a value the store refuses (an infinite error, say)
    fails that case, with the reason, and never the rest of the run."""
    row, kw = case_row(m)
    try:
        return store.append_case(target, run_id, row, m.samples, **kw)
    except InputError as exc:
        m.fail(f"could not be stored as measured: {exc}")
        m.discard_figures()
        row, kw = case_row(m)
        return store.append_case(target, run_id, row, m.samples, **kw)


def add_factors(target: str, results: list[Measurement], run_id: str | None) -> None:
    """Each ok result's factors against the baseline chip (the store's rule); a courtesy:
    the run is stored either way, so a store problem here costs only the column."""
    if run_id is None or not any(m.status == "ok" for m in results):
        return
    try:
        from anemll_spec.store import open_store
        from anemll_spec.store.factors import for_run

        con = open_store(target, read_only=True)
        try:
            rows = {r["case_id"]: r for r in for_run(con, run_id)}
        finally:
            con.close()
    except Exception:
        return
    for m in results:
        m.factors = rows.get(m.case_id) if m.case_id else None
