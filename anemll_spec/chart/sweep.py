"""A metric against a swept parameter (e.g. GB/s against vocab size), one line per
series (backend, compute units and every other swept parameter, e.g.
`numpy · model.chunks=1`), with the 95% CI of the median as a band.

The CI is stored for the median latency; metrics inversely proportional to the median
(GB/s, TFLOPS) get theirs by the same ratio: value * median / ci_high to value * median
/ ci_low. Throughput (calls/s) is the stored `throughput_ips`, which counts calls over
time (1000 / mean latency at concurrency 1): no median CI belongs to it, so none is
drawn.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from anemll_spec.chart import DEFAULT_SWEEP_METRIC, style
from anemll_spec.chart.source import NoData, Options, fetch, pick_run, selected_cases_sql
from anemll_spec.errors import InputError

KIND = "sweep"
TITLE = "Sweep"
# cases of a sweep carry their swept values in `params`; others have '{}'
NEEDS = "status = 'ok' AND median_ms > 0 AND coalesce(params::VARCHAR, '{}') <> '{}'"

# metric -> (SQL of its value, axis title, CI: 'latency' | 'inverse' of the median | None);
# the names are chart.SWEEP_METRICS (the CLI offers them without importing this module)
METRICS: dict[str, tuple[str, str, str | None]] = {
    "bandwidth_gbps": (
        "coalesce(bandwidth_gbps, weight_bytes / (median_ms * 1e6))",
        "bandwidth (GB/s)",
        "inverse",
    ),
    "median_ms": ("median_ms", "median latency (ms)", "latency"),
    "tflops": ("coalesce(tflops, flops / (median_ms * 1e9))", "compute (TFLOP/s)", "inverse"),
    "throughput_ips": (
        # a store before throughput_ips: 1000 / mean at concurrency 1; never an aggregate
        # where none was measured (NULL: the instances did not all run at once)
        "coalesce(throughput_ips, CASE WHEN coalesce(concurrency, 1) = 1 THEN 1e3 / mean_ms END)",
        "throughput (calls/s of all instances together)",
        None,
    ),
}
# Parameters that are already the line's identity, never the x axis by default.
SERIES_PARAMS = ("run.compute_units", "run.backends", "run.device")
# Line dashes, one per round of the palette: with more series than colours, the
# (colour, dash) pair still tells every series apart (and stays colour-blind safe).
DASHES = ([1, 0], [6, 3], [2, 2], [8, 3, 2, 3])
SHAPES = ("circle", "square", "triangle-up", "diamond")  # the same, for points


def swept_params(con, cases_sql: str, params: list) -> dict[str, int]:
    """Parameter -> number of distinct values among the selected cases."""
    rows = fetch(
        con,
        # keys are data (a key may hold '"' or '.'): read with json_each, never spliced
        # into a JSON path
        f"""SELECT e.key AS param, count(DISTINCT e.value::VARCHAR) AS n
            FROM ({cases_sql}) AS c, json_each(c.params) AS e
            GROUP BY e.key ORDER BY n DESC, e.key""",
        params,
    )
    return {r["param"]: r["n"] for r in rows}


def pick_param(found: dict[str, int], wanted: str | None) -> str | None:
    if wanted:
        if wanted not in found:
            known = ", ".join(found) or "none"
            raise InputError(f"--param {wanted!r}: not a swept parameter here (swept: {known})")
        return wanted
    varying = [p for p, n in found.items() if n > 1]
    for p in varying:
        if p.startswith("model."):
            return p
    return next((p for p in varying if p not in SERIES_PARAMS), varying[0] if varying else None)


def query(con, opts: Options, run_id: str) -> tuple[list[dict], str, str]:
    """(rows, swept parameter on x, metric); each row's `series` names its line."""
    rows, param, metric, _others, _left = _query(con, opts, run_id)
    return rows, param, metric


def _query(con, opts: Options, run_id: str) -> tuple[list[dict], str, str, list[str], list[str]]:
    """query(), plus the other swept parameters that are part of each series' name and the
    labels of the cases left out for having no value of the metric (a throughput where the
    instances did not all run at once)."""
    cases_sql, params = selected_cases_sql(opts, run_id, needs=NEEDS)
    found = swept_params(con, cases_sql, params)
    param = pick_param(found, opts.param) if not opts.param or opts.param in found else None
    if param is None:
        raise _nothing_swept(con, opts, run_id)
    metric = opts.metric or DEFAULT_SWEEP_METRIC
    if metric not in METRICS:
        raise InputError(f"--metric {metric!r}: choose one of {', '.join(METRICS)}")
    value_sql, _title, ci_kind = METRICS[metric]
    if ci_kind == "inverse":
        lo, hi = "value * median_ms / ci_high_ms", "value * median_ms / ci_low_ms"
    elif ci_kind == "latency":
        lo, hi = "ci_low_ms", "ci_high_ms"
    else:
        lo, hi = "NULL::DOUBLE", "NULL::DOUBLE"
    others = [p for p, n in found.items() if n > 1 and p != param and p not in SERIES_PARAMS]
    # parameter names are data: bound as parameters, never spliced into the SQL
    other_sql = (
        " || ' · ' || ".join(
            "? || '=' || coalesce(json_extract(params, ?)::VARCHAR, 'null')" for _ in others
        )
        if others
        else "NULL"
    )
    other_params = [v for p in others for v in (p, _json_path(p))]
    rows = fetch(
        con,
        f"""
        WITH sel AS ({cases_sql}),
        v AS (SELECT *, {value_sql} AS value, json_extract(params, ?) AS xj FROM sel)
        SELECT label, case_id, median_ms, ci_low_ms, ci_high_ms, n_samples, backend,
               compute_units, device, concurrency, model_name, value, {lo} AS ci_lo, {hi} AS ci_hi,
               TRY_CAST(xj::VARCHAR AS DOUBLE) AS x_num, trim(xj::VARCHAR, '"') AS x_text,
               concat_ws(' · ', backend, nullif(compute_units, ''),
                         CASE WHEN backend = 'torch' THEN device END, {other_sql}) AS series
        FROM v WHERE xj IS NOT NULL
        ORDER BY series, x_num, x_text
        """,
        [*params, _json_path(param), *other_params],
    )
    left = [r["label"] for r in rows if r["value"] is None]
    return [r for r in rows if r["value"] is not None], param, metric, others, left


def _nothing_swept(con, opts: Options, run_id: str) -> Exception:
    """Why the run's ok cases give no swept parameter to draw: a run whose sweep failed
    or was filtered out (its parameters counted over all its cases, failed ones too, and
    before --where and --model) is told from one that swept nothing."""
    every_sql, every_params = selected_cases_sql(replace(opts, where=None, model=None), run_id)
    swept = pick_param(swept_params(con, every_sql, every_params), opts.param)  # --param: known?
    all_sql, all_params = selected_cases_sql(opts, run_id)
    if swept is None:
        return NoData(
            f"run {run_id} swept no parameter ({opts.describe(run=False)}): every case has the same "
            "params; the sweep chart needs a spec with a `sweep:`"
        )
    n = fetch(
        con,
        f"""SELECT count(*) FILTER (WHERE {NEEDS}) AS ok,
                   count(*) FILTER (WHERE status = 'failed') AS failed,
                   count(*) FILTER (WHERE status = 'skipped') AS skipped
            FROM ({all_sql}) AS c""",
        all_params,
    )[0]
    counts = f"{n['failed']} failed" + (f", {n['skipped']} skipped" if n["skipped"] else "")
    what = (
        "fewer than 2 ok cases to draw"
        if n["ok"] < 2
        else f"no 2 ok cases that differ in {swept} to draw"
    )
    filters = opts.describe(run=False)
    if filters != "no filter":
        counts += f"; {filters}"
    return NoData(f"run {run_id} swept {swept} but has {what} ({counts})")


def build(con, opts: Options) -> dict[str, Any]:
    from anemll_spec.store.columns import sql_literal

    needs = NEEDS
    if opts.param and not opts.runs:  # the latest run that swept it, not the latest sweep
        known = sorted(swept_params(con, f"SELECT params FROM results WHERE {NEEDS}", []))
        if opts.param not in known:  # a typo, most likely: say what there is
            raise InputError(
                f"--param {opts.param!r}: no run in the store swept it (swept: "
                f"{', '.join(known) or 'none'})"
            )
        needs += f" AND json_extract(params, {sql_literal(_json_path(opts.param))}) IS NOT NULL"
    shown = repr(opts.param).replace("{", "{{").replace("}", "}}")  # lacking is formatted
    run_id = pick_run(
        con,
        opts,
        needs=needs,
        lacking=(
            f"no run swept {shown} with ok cases in the store ({{filters}})"
            if opts.param
            else "no run with a sweep has ok cases in the store ({filters})"
        )
        + ": give a spec a `sweep:` (e.g. model.vocab_size: [32000, 128256]) and bench it",
    )
    rows, param, metric, others, left = _query(con, opts, run_id)
    if not rows:
        raise NoData(
            f"no {opts.metric or DEFAULT_SWEEP_METRIC} values to draw in run {run_id} "
            f"({opts.describe(run=False)}){_left_out(left, metric, ': ')}"
        )
    return style.drawn_runs(chart(rows, param, metric, run_id, opts, others, left), run_id)


def _left_out(left: Sequence[str], metric: str, lead: str = "") -> str:
    """Which cases have no value of `metric` to draw, and why (empty: none)."""
    if not left:
        return ""
    names = ", ".join(left[:4]) + (f" and {len(left) - 4} more" if len(left) > 4 else "")
    why = (
        "their instances did not all run at once: no aggregate was measured; each case's "
        "note says which made no call"
        if metric == "throughput_ips"
        else "none stored"
    )
    return f"{lead}not drawn, {len(left)} case(s) with no {metric}: {names} ({why})"


def chart(
    rows,
    param: str,
    metric: str,
    run_id: str,
    opts: Options,
    others: Sequence[str] = (),
    left: Sequence[str] = (),
) -> dict[str, Any]:
    """`others`: the swept parameters besides `param` that name the series; `left`: the
    labels of cases with no value of the metric, said in the subtitle."""
    import altair as alt

    numeric = all(r["x_num"] is not None for r in rows)
    axis_title = f"{param} (swept)"
    if numeric:
        xs = [r["x_num"] for r in rows]
        log = min(xs) > 0 and max(xs) / min(xs) >= 16
        whole = all(float(v).is_integer() for v in xs)  # sizes, counts: no 1.5 tick
        # tickMinStep alone still let Vega draw a 1.5 tick, shown as "2" (1 2 2): a few
        # whole values are the ticks themselves
        ticks = sorted(set(xs)) if whole and len(set(xs)) <= 12 else None
        x = alt.X(
            "x_num:Q",
            title=axis_title + (", log scale" if log else ""),
            scale=alt.Scale(type="log") if log else alt.Scale(zero=False),
            axis=(
                alt.Axis(values=ticks, format="d")
                if ticks
                else alt.Axis(tickMinStep=1, format="d")
                if whole
                else alt.Axis()
            ),
        )
    else:
        x = alt.X("x_text:N", title=axis_title, sort=None, axis=alt.Axis(labelAngle=0))
    _sql, y_title, _inv = METRICS[metric]
    if metric in ("bandwidth_gbps", "tflops", "median_ms") and any(
        (r.get("concurrency") or 1) > 1 for r in rows
    ):  # N calls at once: each call's figure, not the instances' sum
        y_title += ", per call (several instances at once)"
    # What a series is, as the SQL names it: backend · compute units · other params.
    parts = ["backend", *(["compute units"] if any(r["compute_units"] for r in rows) else [])]
    parts += ["device"] if any(r["backend"] == "torch" for r in rows) else []
    parts += list(others)
    series_title = " · ".join(parts)
    series = sorted({r["series"] for r in rows}, key=_natural)
    n_col = len(style.OKABE_ITO)
    colors = [style.OKABE_ITO[i % n_col] for i in range(len(series))]
    # each row carries its line's colour, for the band (see below)
    band_color = dict(zip(series, colors, strict=True))
    rows = [{**r, "band_color": band_color[r["series"]]} for r in rows]
    # A categorical x (e.g. model.layout) has no "between": points with CI bars, side by
    # side per series, never a line through the categories.
    legend = alt.Legend(
        title=series_title,
        columns=_legend_columns(series),
        symbolType="stroke" if numeric else "circle",
        symbolSize=200 if numeric else 80,
    )
    # An explicit domain: series in natural order, colour i is the palette's i mod 8.
    color = alt.Color(
        "series:N", title=series_title, scale=alt.Scale(domain=series, range=colors), legend=legend
    )
    # past 8 series the (colour, dash) or (colour, shape) pair tells every series apart
    rounds = [i // n_col for i in range(len(series))]
    extra: dict[str, Any] = {}
    if len(series) > n_col:
        channel, styles = (alt.StrokeDash, DASHES) if numeric else (alt.Shape, SHAPES)
        extra[channel.__name__[0].lower() + channel.__name__[1:]] = channel(
            "series:N",
            title=series_title,
            scale=alt.Scale(domain=series, range=[styles[k % len(styles)] for k in rounds]),
            legend=legend,
        )
    tip = [
        alt.Tooltip("series:N", title="series"),
        alt.Tooltip("x_text:N", title=param),
        alt.Tooltip("value:Q", title=y_title, format=",.4g"),
        alt.Tooltip("ci_lo:Q", title="95% CI low", format=",.4g"),
        alt.Tooltip("ci_hi:Q", title="95% CI high", format=",.4g"),
        alt.Tooltip("median_ms:Q", title="median (ms)", format=".4f"),
        alt.Tooltip("n_samples:Q", title="samples"),
        alt.Tooltip("label:N", title="case"),
        alt.Tooltip("case_id:N", title="case (store)"),
    ]
    y_log = style.needs_log(v for r in rows for v in (r["ci_lo"], r["value"], r["ci_hi"]))
    y_scale = alt.Scale(type="log") if y_log else alt.Scale(zero=False)
    y_axis = y_title + (", log scale" if y_log else "")
    base = alt.Chart(style.named("sweep"), width=560, height=320)
    # The CI takes its series' colour as a literal (no scale, so no legend of its own).
    # Not `legend(None)` on a colour scale: Vega-Lite merges the legends of a layer that
    # share a field, and one null then hides the series' legend too.
    literal = alt.Fill("band_color:N", scale=None, title="series colour")
    y_ci = {"y": alt.Y("ci_lo:Q", title=y_axis, scale=y_scale), "y2": "ci_hi:Q"}
    if numeric:
        ci = (
            base.mark_area(opacity=0.2)
            # one band per series, even where two share a colour
            .encode(x=x, fill=literal, detail="series:N", **y_ci)
            .properties(name="ci_band")
        )
        marks = (
            base.mark_line(point=True, strokeWidth=2)
            .encode(
                x=x,
                y=alt.Y("value:Q", title=y_axis, scale=y_scale),
                color=color,
                tooltip=tip,
                **extra,
            )  # fmt: skip
            .properties(name="lines")
        )
        shape_words = f"One line per {series_title} (e.g. {series[0]}); the band is"
    else:
        offset = alt.XOffset("series:N", scale=alt.Scale(domain=series))
        ci = (
            base.mark_rule(strokeWidth=2)
            .encode(
                x=x,
                xOffset=offset,
                stroke=alt.Stroke("band_color:N", scale=None),
                tooltip=tip,
                **y_ci,
            )  # fmt: skip
            .properties(name="ci_bars")
        )
        marks = (
            base.mark_point(filled=True, size=80, opacity=1)
            .encode(
                x=x,
                xOffset=offset,
                y=alt.Y("value:Q", title=y_axis, scale=y_scale),
                color=color,
                tooltip=tip,
                **extra,
            )  # fmt: skip
            .properties(name="sweep_points")
        )
        shape_words = (
            f"{param} is categorical: one point per {series_title} (e.g. {series[0]}) and "
            "value; the bar is"
        )
    layered = alt.layer(ci, marks).properties(
        title=style.title(
            f"{TITLE}: {y_title} against {param} — run {run_id}",
            f"{shape_words} the 95% CI of the median (bootstrap), converted to this metric."
            if METRICS[metric][2]
            else f"{shape_words} not drawn: throughput counts every instance's calls over the "
            "span of their calls (one instance: 1000 / mean latency), and no CI of the median "
            "belongs to it.",
            *(["N" + _left_out(left, metric)[1:] + "."] if left else []),
            f"Filters: {opts.describe()}. Source: cases table.",
        )
    )
    return style.finish(
        layered, datasets={"sweep": rows}, description=f"{metric} against {param}, run {run_id}"
    )


def _natural(text: str) -> list[tuple[int, float, str]]:
    """Sort key that orders the numbers in a label by value ('chunks=2' < 'chunks=10')."""
    return [
        (0, float(t), "") if t[0].isdigit() else (1, 0.0, t)
        for t in re.split(r"(\d+(?:\.\d+)?)", text)
        if t
    ]


def _legend_columns(series: list[str]) -> int:
    """Legend columns that fit the chart's width (labels ~6 px a character)."""
    widest = min(style.LABEL_LIMIT, 6 * max(len(s) for s in series)) + 40
    return max(1, min(len(series), 600 // widest))


def _json_path(key: str) -> str:
    """The JSON path of a top-level key that contains dots ('model.vocab_size')."""
    return '$."' + key.replace("\\", "\\\\").replace('"', '\\"') + '"'
