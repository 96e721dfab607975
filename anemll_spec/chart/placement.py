"""Where the ops run: per case (model x compute units), the share of ops and the share
of Core ML's estimated cost on each device (Neural Engine, GPU, CPU), from the
`placements` table (MLComputePlan)."""

from __future__ import annotations

from typing import Any

from anemll_spec.chart import style
from anemll_spec.chart.source import NoData, Options, fetch, pick_run, selected_cases_sql

KIND = "placement"
TITLE = "Op placement"
NEEDS = "EXISTS (SELECT 1 FROM placements p WHERE p.case_id = results.case_id)"


def query(con, opts: Options, run_id: str) -> list[dict]:
    """One row per (case, measure, device) with its count/cost and share."""
    cases_sql, params = selected_cases_sql(opts, run_id, needs=NEEDS)
    return fetch(
        con,
        f"""
        WITH sel AS ({cases_sql}),
        g AS (SELECT sel.label || CASE WHEN p.compute_units IS DISTINCT FROM sel.compute_units
                     THEN ' · plan for ' || coalesce(p.compute_units, '?') ELSE '' END
                     AS row_label,
                     sel.case_id, coalesce(p.preferred_device, 'unknown') AS device,
                     count(*) AS ops, sum(p.estimated_cost) AS cost,
                     count(p.estimated_cost) AS costed
              FROM placements p JOIN sel ON p.case_id = sel.case_id
              GROUP BY ALL),
        -- the plan's op counts, taken before a device with no cost at all leaves the
        -- cost measure: the cost shares divide only the ops Core ML gave a cost, said
        t AS (SELECT *, sum(ops) OVER (PARTITION BY case_id, row_label) AS total_ops,
                     sum(costed) OVER (PARTITION BY case_id, row_label) AS costed_ops
              FROM g),
        long AS (
            SELECT row_label, case_id, device, 'share of ops' AS measure, ops::DOUBLE AS amount,
                   ops, cost, costed, total_ops, costed_ops FROM t
            UNION ALL
            SELECT row_label, case_id, device, 'share of estimated cost', cost, ops, cost,
                   costed, total_ops, costed_ops
            FROM t WHERE cost IS NOT NULL)
        SELECT *, amount / sum(amount) OVER (PARTITION BY case_id, row_label, measure)
                  AS share
        FROM long
        ORDER BY row_label, measure, device
        """,
        params,
    )


def build(con, opts: Options) -> dict[str, Any]:
    run_id = pick_run(
        con,
        opts,
        needs=NEEDS,
        lacking="no case has op placements in the store ({filters}): placement is "
        "recorded by the coreml backend on macOS (Core ML's compute plan)",
    )
    rows = query(con, opts, run_id)
    if not rows:
        raise NoData(
            f"no op placements in run {run_id} ({opts.describe(run=False)}): placements come from "
            "Core ML's compute plan (coreml backend on macOS)"
        )
    return style.drawn_runs(chart(rows, run_id, opts), run_id)


def chart(rows: list[dict], run_id: str, opts: Options) -> dict[str, Any]:
    import altair as alt

    # only the devices drawn (the legend lists its domain), each in its fixed colour
    drawn = {r["device"] for r in rows}
    extra = sorted(drawn - set(style.DEVICE_COLORS))
    fixed = [(d, c) for d, c in style.DEVICE_COLORS.items() if d in drawn]
    domain = [d for d, _ in fixed] + extra
    colors = [c for _, c in fixed] + list(style.OKABE_ITO[5 : 5 + len(extra)])
    for r in rows:  # a quantitative order (Vega-Lite warns of a nominal one)
        r["device_order"] = domain.index(r["device"])
    tip = [
        alt.Tooltip("row_label:N", title="case"),
        alt.Tooltip("measure:N", title="measure"),
        alt.Tooltip("device:N", title="device"),
        alt.Tooltip("share:Q", title="share", format=".1%"),
        alt.Tooltip("ops:Q", title="ops on this device"),
        alt.Tooltip("total_ops:Q", title="ops in the plan"),
        alt.Tooltip("cost:Q", title="estimated cost (relative)", format=".4g"),
        alt.Tooltip("costed_ops:Q", title="ops with a cost estimate (of the plan's)"),
        alt.Tooltip("case_id:N", title="case (store)"),
    ]
    measures = [
        m
        for m in ("share of ops", "share of estimated cost")
        if any(r["measure"] == m for r in rows)
    ]
    panels = []
    for measure in measures:
        panels.append(
            alt.Chart(style.named("placements"), height=alt.Step(style.BAR_STEP + 6), width=320)
            .transform_filter(alt.FieldEqualPredicate(field="measure", equal=measure))
            .mark_bar()
            .encode(
                x=alt.X(
                    "share:Q",
                    title=f"{measure} (%)",
                    axis=alt.Axis(format="%"),
                    scale=alt.Scale(domain=[0, 1]),
                ),
                y=alt.Y("row_label:N", title=None, axis=alt.Axis(labelLimit=style.LABEL_LIMIT)),
                color=alt.Color(
                    "device:N", title="device", scale=alt.Scale(domain=domain, range=colors)
                ),
                order=alt.Order("device_order:Q"),  # stacked in legend order
                tooltip=tip,
            )
            .properties(
                name="ops" if measure == "share of ops" else "cost",
                title=alt.TitleParams(measure, fontSize=13),
            )
        )
    no_cost = "" if len(measures) == 2 else " Core ML gave no cost estimates for these plans."
    partial = {
        r["row_label"]: (r["costed_ops"], r["total_ops"])
        for r in rows
        if r["measure"] == "share of estimated cost" and r["costed_ops"] < r["total_ops"]
    }
    if partial:  # e.g. 'cost known for 118 of 120 ops'
        label, (known, total) = next(iter(partial.items()))
        no_cost += (
            f" Cost shares divide only the ops with a cost estimate ({known} of {total} in "
            f"{label}"
            + (f", and {len(partial) - 1} more case(s)" if len(partial) > 1 else "")
            + ")."
        )
    top = alt.hconcat(*panels, spacing=30).properties(
        title=style.title(
            f"{TITLE} per device — run {run_id}",
            "Where Core ML's compute plan puts each op, per case and compute units." + no_cost,
            f"Filters: {opts.describe()}. Source: placements table.",
        )
    )
    return style.finish(
        top, datasets={"placements": rows}, description=f"op placement of run {run_id}"
    )
