"""Two runs compared: per measured variant, the ratio of medians B/A with its bootstrap
95% CI and the verdict, exactly as `anemll-spec compare` computes them
(anemll_spec.compare)."""

from __future__ import annotations

import math
from typing import Any

from anemll_spec.chart import style
from anemll_spec.chart.source import NoData, Options, fetch, where_sql
from anemll_spec.errors import InputError

KIND = "compare"
TITLE = "Run comparison"

VERDICT_COLORS = {
    "faster": style.OKABE_ITO[2],
    "slower": style.OKABE_ITO[5],
    "no change": "#888888",
    "too few samples": "#cccccc",
}
VARIANT = ("variant_key", "backend", "device", "compute_units", "concurrency")
MAX_NAMED = 4  # variants named per line of what is not drawn (`compare` lists them all)


def compute(target, opts: Options) -> dict[str, Any]:
    """compare_runs' result for the two runs of `opts` (opens and closes the store)."""
    if len(opts.runs) != 2:
        raise InputError("the compare chart needs two runs: --run A --run B (or --runs A B)")
    from anemll_spec.compare import compare_runs

    return compare_runs(target, opts.runs[0], opts.runs[1])


def keep(con, result: dict, opts: Options) -> list[dict]:
    """The comparisons whose cases pass --model / --where (evaluated in SQL on `results`)."""
    rows = result["comparisons"]
    if opts.model:
        rows = [r for r in rows if r["model_name"] == opts.model]
    if opts.where:
        # compare_runs keys variants by variant key (case key for older rows)
        cols = ", ".join(("coalesce(variant_key, case_key) AS variant_key", *VARIANT[1:]))
        ok = {
            tuple(r[c] for c in VARIANT)
            for r in fetch(
                con,
                f"SELECT DISTINCT {cols} FROM results WHERE run_id IN (?, ?) AND {where_sql(opts)}",
                [result["run_a"], result["run_b"]],
            )
        }
        rows = [r for r in rows if tuple(r[c] for c in VARIANT) in ok]
    from anemll_spec.compare import pooled_name

    for r in rows:
        extras = " · ".join(str(r[c]) for c in ("backend", "compute_units") if r[c])
        r["label"] = " · ".join(x for x in (pooled_name(r), extras) if x)
        r.pop("pooled_names", None)  # in the label (cut to size): not again in full
        r["change_pct"] = (r["ratio"] - 1.0) * 100.0
    return rows


def build_from(target, con_factory, opts: Options) -> dict[str, Any]:
    """compare_runs first (it opens the store itself), then the filters on our connection."""
    result = compute(target, opts)
    con = con_factory()
    try:
        rows = keep(con, result, opts)
    finally:
        con.close()
    if not rows:
        lines = unmatched(result, opts)  # sentences, each ending in its period
        raise NoData(
            f"runs {result['run_a']} and {result['run_b']} have no variant in common to "
            f"compare ({opts.describe()})"
            + ("." + "".join(f" {x}" for x in lines) if lines else "")
        )
    return style.drawn_runs(chart(rows, result, opts), result["run_a"], result["run_b"])


def unmatched(result: dict, opts: Options) -> list[str]:
    """What is not drawn and why, a line per reason, as `compare` prints it under its table:
    variants that failed in every case of one run, ran in one run only, or have no ratio.
    --model keeps its model's; --where cannot reach them (no row in both runs): said so."""
    from anemll_spec.compare import UNMATCHED
    from anemll_spec.text import printable

    lines = []
    for key, words in UNMATCHED:
        model = opts.model
        names = [x for x in result[key] if not model or x == model or x.startswith(f"{model} (")]
        if names:
            more = len(names) - MAX_NAMED
            shown = ", ".join(names[:MAX_NAMED]) + (f" and {more} more" if more > 0 else "")
            where = " (--where not applied to these)" if opts.where else ""
            lines.append(printable(f"Not drawn: {words}: {shown}{where}."))
    return lines


def chart(rows: list[dict], result: dict, opts: Options) -> dict[str, Any]:
    import altair as alt

    from anemll_spec.compare import hosts_note, hosts_where

    # labels must be unique on the y axis; repeated variants get their index
    seen: dict[str, int] = {}
    for r in rows:
        n = seen.get(r["label"], 0)
        seen[r["label"]] = n + 1
        if n:
            r["label"] = f"{r['label']} #{n + 1}"
    a, b = result["run_a"], result["run_b"]
    axis = alt.Axis(labelLimit=style.LABEL_LIMIT, labelExpr=style.middle_cut_expr())
    y = alt.Y("label:N", title=None, sort=None, axis=axis)  # a pooled marker stays in sight
    x_title = f"median latency ratio B/A (B = {b}; < 1 faster, > 1 slower)"
    tip = [
        alt.Tooltip("label:N", title="case"),
        alt.Tooltip("ratio:Q", title="ratio B/A", format=".4f"),
        alt.Tooltip("ci_low:Q", title="95% CI low", format=".4f"),
        alt.Tooltip("ci_high:Q", title="95% CI high", format=".4f"),
        alt.Tooltip("change_pct:Q", title="change (%)", format="+.2f"),
        alt.Tooltip("median_a_ms:Q", title=f"median A (ms), run {a}", format=".4f"),
        alt.Tooltip("median_b_ms:Q", title=f"median B (ms), run {b}", format=".4f"),
        alt.Tooltip("n_a:Q", title="samples A"),
        alt.Tooltip("n_b:Q", title="samples B"),
        alt.Tooltip("verdict:N", title="verdict"),
    ]
    lo = min(min(r["ci_low"] for r in rows), 1.0)
    hi = max(max(r["ci_high"] for r in rows), 1.0)
    pad = (hi - lo) * 0.08 or 0.02
    xscale = alt.Scale(domain=[lo - pad, hi + pad], zero=False, nice=False)
    # ticks of our own, inside the domain: Vega's drew one past each end, flush against
    # its neighbour ("0.500.55", "1.251.30")
    xaxis = alt.Axis(values=ticks(lo - pad, hi + pad))
    drawn = {r["verdict"] for r in rows}
    color = alt.Color(
        "verdict:N",
        title="verdict",
        scale=alt.Scale(
            domain=[v for v in VERDICT_COLORS if v in drawn],  # the legend's
            range=[c for v, c in VERDICT_COLORS.items() if v in drawn],
        ),  # fmt: skip
    )
    base = alt.Chart(style.named("comparisons"), height=alt.Step(26), width=520)
    ci = (
        base.mark_rule(strokeWidth=2)
        .encode(
            x=alt.X("ci_low:Q", title=x_title, scale=xscale, axis=xaxis),
            x2="ci_high:Q",
            y=y,
            color=color,
            tooltip=tip,
        )
        .properties(name="ci")
    )
    point = (
        base.mark_point(filled=True, size=60)
        .encode(x=alt.X("ratio:Q", scale=xscale), y=y, color=color, tooltip=tip)
        .properties(name="ratios")
    )
    one = (
        alt.Chart(alt.Data(values=[{"one": 1.0}]))
        .mark_rule(color="#000000", strokeDash=[4, 3])
        .encode(x=alt.X("one:Q", scale=xscale, axis=xaxis))
    )
    layered = alt.layer(ci, point, one).properties(
        title=style.title(
            f"{TITLE}: run {b} (B) against run {a} (A)",
            "Ratio of median latencies B/A with its bootstrap 95% CI; the dashed line is no "
            f"change. Noise floor {result['noise_floor_pct']:g}%.",
            f"Filters: {opts.describe()}. Source: samples of both runs (anemll-spec compare).",
            *(
                [f"Note: {note}.", f"Hosts (A then B): {hosts_where(result)}."]
                if (note := hosts_note(result))
                else []
            ),
            *unmatched(result, opts),
        )
    )
    return style.finish(
        layered, datasets={"comparisons": rows}, description=f"comparison of runs {a} and {b}"
    )


def ticks(low: float, high: float, most: int = 10) -> list[float]:
    """Round values inside [low, high], at most `most` of them: the smallest step of
    1, 2, 2.5 or 5 times a power of ten that keeps to that many."""
    span = high - low
    power = 10.0 ** math.floor(math.log10(span / most)) if span > 0 else 1.0
    step = next(power * m for m in (1, 2, 2.5, 5, 10) if span / (power * m) <= most)
    first = math.ceil(low / step - 1e-9)
    return [round(k * step, 10) for k in range(first, math.floor(high / step + 1e-9) + 1)]
