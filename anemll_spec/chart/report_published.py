"""The report's comparisons from `chip_factors`: with the published results, and of the
run's chip across OS versions.

The run's own factors are `factors_of(baseline, run)`'s, the rows `share` and `bench`
print (store.factors.for_run): an older run keeps its comparison after a later run of
the same chip replaced it in `chip_factors`. They are formatted and described exactly as
the factors chart does (factors.against, style.fmt_factor), so the page, its chart and
the view say the same thing.
"""

from __future__ import annotations

from typing import Any

from anemll_spec.chart import factors
from anemll_spec.chart.source import Options, fetch
from anemll_spec.chart.style import esc, fmt_factor, fmt_num, os_label
from anemll_spec.store import published
from anemll_spec.store.factors import IN_SPEC_ORDER
from anemll_spec.store.sqlparts import DERIVED_BASELINE

PUBLISHED_NOTE = (
    f'<p class="muted">{esc(published.CAVEAT)} Factors: bandwidth = GB/s / baseline '
    "GB/s, inference = baseline ms / ms; each names what it is against.</p>"
)


def _published(source: object) -> bool:
    return str(source).startswith("published: ")


def _heading(baseline: str, *, own_baseline: bool) -> str:
    """The section's title: its factors are against the baseline chip's published figures,
    or (where the store holds that chip's own runs) its measured ones, as each row says."""
    if own_baseline:
        return (
            f"<h2>Comparison with baseline {esc(baseline)} (measured) and with published "
            "results</h2>"
        )
    return f"<h2>Comparison with published results (baseline {esc(baseline)})</h2>"


def factor_cells(row: dict[str, Any]) -> str:
    """GB/s, latency, both factors and what they are against: one table's cells."""
    row = {**row, "own": not _published(row.get("source"))}
    return (
        num(row["bandwidth_gbps"])
        + num(row["latency_ms"])
        + "".join(
            f'<td class="num">{esc(fmt_factor(row[k]) + _derived(row, k))}</td>'
            for k in ("bandwidth_factor", "inference_factor")
        )
        + f"<td>{esc(factors.against(row) or 'no baseline')}</td>"
    )


def _derived(row: dict[str, Any], factor: str) -> str:
    """As the view's factor labels say it: a baseline figure derived, not published."""
    flag = (
        "baseline_bandwidth_derived" if factor == "bandwidth_factor" else "baseline_latency_derived"
    )
    return DERIVED_BASELINE if row.get(factor) is not None and row.get(flag) else ""


FACTOR_HEADS = (
    "<th>GB/s</th><th>latency (ms, median)</th><th>bandwidth factor</th>"
    "<th>inference factor</th><th>factors against</th>"
)


def published_section(con, run_id: str, cases: list[dict], opts: Options, charts) -> str:
    """The run's own rows in chip_factors, the published figures of the same models,
    and the factors chart of those models."""
    head = _heading(opts.baseline, own_baseline=False)
    published_models = {r["model"] for r in fetch(con, "SELECT DISTINCT model FROM reference")}
    measured = sorted({c["model_name"] for c in cases if c["model_name"] in published_models})
    if not measured:
        return head + (
            '<p class="note">This run measured no published model (only the shipped '
            "specs lm_head.yaml and lm_head_lut6.yaml build anemll-bench's exact models), "
            "so there is nothing to compare with published results.</p>"
        )
    own = fetch(  # in the order of the run's other tables
        con, f"SELECT * FROM factors_of(?, ?, false) f {IN_SPEC_ORDER}", [opts.baseline, run_id]
    )
    own = [r for r in own if r["model"] in measured]
    labels = {c["case_id"]: c.get("label") for c in cases}  # a sweep's points apart
    if any(r["baseline_source"] and not _published(r["baseline_source"]) for r in own):
        head = _heading(opts.baseline, own_baseline=True)
    rows = [
        "<tr>"
        + "".join(
            f"<td>{esc(v)}</td>"
            for v in (r["chip"], labels.get(r["case_id"]) or r["model"], factors.how(r))
        )  # fmt: skip
        + factor_cells(r)
        + "</tr>"
        for r in own
    ]
    own_html = (
        "<table><tr><th>chip</th><th>model</th><th>backend</th>"
        + FACTOR_HEADS
        + "</tr>"
        + "".join(rows)
        + "</table>"
        if rows
        else '<p class="note">None of this run\'s published-model cases has a factor '
        "(only ok cases of one instance at a time are compared).</p>"
    )
    pub = fetch(
        con,
        """SELECT model, metric, count(DISTINCT chip) AS chips, min(value) AS lo,
                  max(value) AS hi, any_value(unit) AS unit,
                  bool_or(derived) AS any_derived, bool_and(derived) AS all_derived
           FROM reference WHERE model IN (SELECT unnest(?::VARCHAR[]))
           GROUP BY model, metric ORDER BY model, metric""",
        [measured],
    )
    pub_rows = "".join(
        f"<tr><td>{esc(p['model'])}</td><td>{esc(p['metric'])}</td>"
        + num(p["chips"])
        + f'<td class="num">{esc(fmt_num(p["lo"]))} – {esc(fmt_num(p["hi"]))} '
        f"{esc(p['unit'])}</td><td>{_kind(p)}</td></tr>"
        for p in pub
    )
    pub_html = (
        "<p>Published figures of the same models (range over chips):</p>"
        "<table><tr><th>model</th><th>metric</th><th>chips</th><th>range</th>"
        f"<th>kind</th></tr>{pub_rows}</table>" + PUBLISHED_NOTE
    )
    # the chart shows this run's measured rows by the chart's default: every backend
    fopts = Options(baseline=opts.baseline)
    frows = [r for r in factors.query(con, fopts, run_id) if r["model"] in measured]
    frows, note = factors.like_published_first(frows)  # the chart's default, as `chart`
    notes = ["Measured rows: this run only.", *([note] if note else [])]
    charts["chart-factors"] = factors.chart(frows, fopts, notes)
    return head + own_html + pub_html + '<div id="chart-factors" class="chart"></div>'


def os_section(con, run: dict, cases: list[dict], opts: Options, charts) -> str:
    """This run's chip across OS versions: chip_factors' own rows of the same chip,
    models, backends and compute units, one per OS version."""
    head = "<h2>This chip across OS versions</h2>"
    if "os_version" not in factors.view_columns(con, opts.baseline):
        return head + (
            '<p class="note">This store\'s chip_factors has no OS version column (an '
            "older store); upgrade it to compare OS versions.</p>"
        )
    chips = {c["chip"] for c in cases if c.get("chip")}
    kinds = [
        [c["model_name"], c["backend"], c.get("compute_units") or "", c.get("device") or ""]
        for c in cases
        if c.get("model_name")
    ]
    if not chips or not kinds:
        return head + '<p class="note">No case of this run has a chip and a model.</p>'
    rows = fetch(
        con,
        f"""SELECT * FROM chip_factors_vs(?)
           WHERE {factors.MEASURED} AND chip IN (SELECT unnest(?::VARCHAR[]))
             AND [model, backend, coalesce(compute_units, ''), coalesce(device, '')]
                 IN (SELECT unnest(?::VARCHAR[][]))
           ORDER BY model, backend, compute_units, os_name, os_version""",
        [opts.baseline, sorted(chips), kinds],
    )
    versions = sorted({os_label(r) or "OS not recorded" for r in rows})
    this_os = " ".join(str(run.get(k)) for k in ("os_name", "os_version") if run.get(k))
    if len(versions) < 2:
        return head + (
            f'<p class="note">The store holds this chip ({esc(", ".join(sorted(chips)))}) on '
            f"one OS version only ({esc(this_os or 'not recorded')}): run the same spec on "
            "another OS version to compare.</p>"
        )
    body = "".join(
        "<tr>"
        + "".join(
            f"<td>{esc(v)}</td>"
            for v in (
                os_label(r) or "OS not recorded",
                r.get("provenance") or r["source"],
                r["chip"],
                r["model"],
                factors.how(r),
                "this run" if r["run_id"] == run["run_id"] else r["run_id"],
            )
        )
        + factor_cells(r)
        + "</tr>"
        for r in rows
    )
    fopts = Options(baseline=opts.baseline, by="os")
    frows = [
        r
        for r in factors.query(con, fopts)
        if r["own"] and r["chip"] in chips and r["model"] in {k[0] for k in kinds}
    ]
    frows, note = factors.like_published_first(frows)
    notes = [f"Chip: {', '.join(sorted(chips))}.", *([note] if note else [])]
    charts["chart-factors-os"] = factors.chart(frows, fopts, notes)
    return (
        head
        + "<table><tr><th>OS</th><th>source</th><th>chip</th><th>model</th><th>backend</th>"
        + "<th>run</th>"
        + FACTOR_HEADS
        + f"</tr>{body}</table>"
        + '<p class="muted">The latest ok case per chip, OS version, model, backend and '
        "compute units (chip_factors).</p>" + '<div id="chart-factors-os" class="chart"></div>'
    )


def num(v: Any) -> str:
    return f'<td class="num">{esc(fmt_num(v, 4))}</td>'


def _kind(p: dict) -> str:
    return "derived" if p["all_derived"] else "some derived" if p["any_derived"] else "published"
