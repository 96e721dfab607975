"""Performance per watt across chips: inferences per joule and mJ per inference.

Rows come from the store's `energy_factors_vs(baseline)` (one row per source x chip x OS
version x model x variant, the latest): every factor is the view's (inferences per
joule / the baseline chip's row of the same source and variant); the chart never
computes one. The rail split (ANE, CPU, GPU, DRAM, ...) is `case_energy_rails`, summed
over each rail's parts (an Ultra's two ANEs). Every figure is the hardware's own energy
estimate, not wall power (docs/power.md); the caption says so.
"""

from __future__ import annotations

from typing import Any

from anemll_spec.chart import energy_draw, style
from anemll_spec.chart.energy_draw import TITLE  # noqa: F401 - the kind's title
from anemll_spec.chart.source import NoData, Options, fetch, where_sql
from anemll_spec.text import printable

KIND = "energy"
PUBLISHED = "starts_with(source, 'published: ')"
MANY = 24  # rows of one model past which a chip shows its Core ML ANE row only
# Columns the view may lack (an older or smaller v4 view): read as NULL, words supplied.
OPTIONAL = {
    "os_name": "VARCHAR",
    "os_version": "VARCHAR",
    "provenance": "VARCHAR",
    "device": "VARCHAR",
    "concurrency": "INTEGER",
    "instances": "VARCHAR",
    "power_w_mean": "DOUBLE",
    "energy_method": "VARCHAR",
    "energy_timed_only": "BOOLEAN",
    "energy_note": "VARCHAR",
    "baseline_label": "VARCHAR",
    "energy_factor_label": "VARCHAR",
    "gpu_power_limit_w": "DOUBLE",
    "run_id": "VARCHAR",
    "case_id": "VARCHAR",
}


def view_columns(con, baseline: str) -> set[str]:
    cur = con.execute("SELECT * FROM energy_factors_vs(?) LIMIT 0", [baseline])
    return {d[0] for d in cur.description}


def query(
    con, opts: Options, run_id: str | None = None, *, others: bool = False
) -> list[dict[str, Any]]:
    """The rows to draw. With `run_id`: that run's measured rows and the published ones
    (and, with `others`, the latest measured rows of other chips of the same models, so
    a report shows its run beside them). `--where` applies to the view's columns."""
    have = view_columns(con, opts.baseline)
    extra = "".join(f", NULL::{t} AS {c}" for c, t in OPTIONAL.items() if c not in have)
    mine = "run_id = ?" if "run_id" in have else "FALSE"
    beside = (
        f"""OR (NOT {PUBLISHED} AND chip NOT IN (SELECT chip FROM f0 WHERE {mine})
                AND model IN (SELECT model FROM f0 WHERE {mine}))"""
        if others
        else ""
    )
    sql = f"""
    WITH f0 AS (SELECT *{extra} FROM energy_factors_vs(?)
                WHERE (? IS NULL OR model = ?) AND {where_sql(opts)})
    SELECT *, {PUBLISHED} AS published FROM f0
    WHERE ? IS NULL OR {PUBLISHED} OR {mine} {beside}
    ORDER BY model, inferences_per_joule DESC NULLS LAST, chip, source, os_version, backend,
             compute_units, concurrency, instances, run_id, case_id
    """
    # `mine` binds the run once where it appears: once, and twice more inside `beside`
    n_mine = (1 + 2 * bool(others)) if "run_id" in have else 0
    params = [opts.baseline, opts.model, opts.model, run_id, *[run_id] * n_mine]
    return fetch(con, sql, params)


def rails(con, case_ids: list[str]) -> list[dict[str, Any]]:
    """mJ per inference per case and rail (parts summed), with whether it is counted in
    the case's total (a rail that overlaps others, e.g. package, is not)."""
    if not case_ids:
        return []
    return fetch(
        con,
        """SELECT case_id, rail, sum(mj_per_inference) AS mj_per_inference,
                  sum(mean_power_w) AS mean_power_w, bool_and(in_total) AS in_total,
                  count(*) AS parts,
                  string_agg(part, ', ' ORDER BY part) FILTER (WHERE part IS NOT NULL)
                      AS part_names
           FROM case_energy_rails WHERE case_id IN (SELECT unnest(?::VARCHAR[]))
           GROUP BY case_id, rail ORDER BY case_id, rail""",
        [case_ids],
    )


def why_none(con, opts: Options) -> NoData:
    """The empty chart's error: what is missing, and why the latest cases say so."""
    what = f"no case has an energy reading ({opts.describe()})"
    if opts.where or opts.runs:
        n = fetch(con, "SELECT count(*) AS n FROM energy_factors_vs(?)", [opts.baseline])[0]
        if n["n"]:
            return NoData(
                f"no energy rows pass the filters ({opts.describe()}); the store has "
                f"{n['n']} without them"
            )
    notes = fetch(
        con,
        """SELECT energy_note, count(*) AS n, max(run_started_at) AS last
           FROM results WHERE energy_mj_per_inference IS NULL
             AND (? IS NULL OR model_name = ?)
           GROUP BY energy_note ORDER BY last DESC NULLS LAST LIMIT 3""",
        [opts.model, opts.model],
    )
    said = [f"{r['energy_note']!r} ({r['n']} case(s))" for r in notes if r["energy_note"]]
    if said:
        return NoData(printable(f"{what}; the latest cases say why: " + "; ".join(said)))
    if notes:
        return NoData(
            f"{what}: the cases record no reason (stored before energy was measured, or "
            "by a runner that did not try)"
        )
    return NoData(f"{what}: the store has no cases that pass the filters")


def build(con, opts: Options, run_id: str | None = None, *, others: bool = False) -> dict:
    if run_id is None and opts.runs:
        from anemll_spec.store.lookup import resolve_run

        run_id = resolve_run(con, opts.runs[0])
    rows = query(con, opts, run_id, others=others)
    if not any(r["inferences_per_joule"] for r in rows):
        raise why_none(con, opts)
    if not any(r.get("energy_factor") is not None for r in rows):
        from anemll_spec.store.factors import check_baseline

        check_baseline(con, opts.baseline)  # no factor at all: maybe a misspelt chip
    rows, notes = fewer(rows, opts)
    segments = rails(con, [r["case_id"] for r in rows if r.get("case_id")])
    return style.drawn_runs(energy_draw.chart(rows, segments, opts, notes), run_id)


def fewer(rows: list[dict[str, Any]], opts: Options) -> tuple[list[dict[str, Any]], list[str]]:
    """Past MANY rows of one model, the factors chart's default: of each chip's measured
    rows, the Core ML ANE one where it has one (said in the subtitle; any --where shows
    every row). Fewer rows are all drawn: comparing a chip's compute units is the point
    of an energy chart of one Mac."""
    per_model: dict[str, int] = {}
    for r in rows:
        per_model[r["model"]] = per_model.get(r["model"], 0) + 1
    if opts.where or max(per_model.values(), default=0) <= MANY:
        return rows, []
    from anemll_spec.chart.factors import like_published_first
    from anemll_spec.chart.style import os_label

    for r in rows:
        r["own"] = not r["published"]
        r["os"] = os_label(r)
    kept, note = like_published_first(rows)
    return kept, [note] if note else []
