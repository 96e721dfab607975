"""The report's energy and sustained-run sections (schema v4 data), each present only
when the run has such data: a run without energy readings or sustained cases gets no
section at all (its cases table is unchanged).

Figures are the store's (results view, energy_factors, sustained_windows); nothing is
recomputed here, only formatted, and every table says what its figures are.
"""

from __future__ import annotations

from typing import Any

from anemll_spec.chart import energy, sustained
from anemll_spec.chart.energy_draw import CAVEAT, variant
from anemll_spec.chart.report_published import num
from anemll_spec.chart.source import NoData, Options, fetch
from anemll_spec.chart.style import esc, fmt_num
from anemll_spec.chart.sustained_draw import calls_ratio
from anemll_spec.sustained_grid import cut_short, windows_span_s
from anemll_spec.text import ratios, throttled_words

RAILS = ("ane", "cpu", "gpu", "dram")
ENERGY_HEADS = (
    "#", "model", "variant", "mJ per inference", "inferences per joule", "mean power (W)",
    *(f"{r.upper()} mJ/inf" for r in RAILS), "method", "timed calls only", "interval (s)",
    "calls", "counter reads", "GPU power limit (W)", "note",
)  # fmt: skip
SUSTAINED_HEADS = (
    "#", "model", "variant", "verdict", "last/first median throughput", "95% CI",
    "last/first calls/s", "throttled", "windows", "window (s)", "first-window median (ms)",
    "last-window median (ms)",
)  # fmt: skip


def has_energy(case: dict[str, Any]) -> bool:
    return case.get("energy_mj_per_inference") is not None


def energy_section(con, run_id: str, cases: list[dict], opts: Options, charts) -> str:
    """mJ per inference, W, method, timed-only flag and notes of the run's cases, and the
    energy chart of its rows beside other chips' latest; '' when no case has energy."""
    if not any(has_energy(c) for c in cases):
        return ""
    shown = [c for c in cases if has_energy(c) or c.get("energy_note")]
    body = "".join(_energy_row(c) for c in shown)
    head = "".join(f"<th>{esc(h)}</th>" for h in ENERGY_HEADS)
    html = (
        "<h2>Energy per inference</h2>\n"
        f"<table><tr>{head}</tr>{body}</table>"
        '<p class="muted">mJ per inference = the energy the counters read over the interval / '
        "the calls in it (idle gaps and other processes on the chip included); inferences "
        "per joule = 1000 / mJ per inference; mean power = energy / interval. Rails: each "
        f"rail's parts summed. {esc(CAVEAT)} Timed calls only: whether the interval held "
        "the timed calls and nothing else.</p>"
    )
    try:
        spec = energy.build(con, Options(runs=(run_id,), baseline=opts.baseline), run_id,
                            others=True)  # fmt: skip
    except NoData:
        return html + (
            '<p class="note">No energy chart: it draws energy_factors, which keeps the '
            "latest case of each chip, OS version, model and variant, and later runs have "
            "replaced every one of this run's.</p>"
        )
    charts["chart-energy"] = spec
    return html + '<div id="chart-energy" class="chart"></div>'


def _energy_row(c: dict[str, Any]) -> str:
    ipj = c.get("inferences_per_joule")  # the results view's, like every figure here
    cells = [
        num(c.get("case_index")),
        f"<td>{esc(c.get('label') or c.get('model_name'))}</td>",
        f"<td>{esc(variant(c))}</td>",
        num(c.get("energy_mj_per_inference")),
        num(ipj),
        num(c.get("power_w_mean")),
        *(num(c.get(f"energy_{r}_mj_per_inference")) for r in RAILS),
        f"<td>{esc(c.get('energy_method'))}</td>",
        f"<td>{esc(fmt_num(c.get('energy_timed_only')))}</td>",
        num(c.get("energy_interval_s")),
        num(c.get("energy_calls")),
        num(c.get("energy_samples")),
        num(c.get("gpu_power_limit_w")),
        f"<td>{esc(c.get('energy_note'))}</td>",
    ]
    return "<tr>" + "".join(cells) + "</tr>"


def sustained_section(con, run_id: str, cases: list[dict], charts) -> str:
    """The verdict of each sustained case and the timeline chart; '' when none."""
    shown = [c for c in cases if (c.get("sustained_windows") or 0) > 0]
    if not shown:
        return ""
    head = "".join(f"<th>{esc(h)}</th>" for h in SUSTAINED_HEADS)
    windows: dict[str, list[dict]] = {}  # each case's windows, read once for the run
    for w in fetch(
        con,
        "SELECT case_id, window_index, throughput_ips, start_s, wall_s FROM sustained_windows "
        "WHERE case_id IN "
        "(SELECT case_id FROM cases WHERE run_id = ?)",
        [run_id],
    ):
        windows.setdefault(w["case_id"], []).append(w)
    body = "".join(_sustained_row(c, windows.get(c["case_id"], [])) for c in shown)
    html = (
        "<h2>Sustained run</h2>\n"
        f"<table><tr>{head}</tr>{body}</table>"
        '<p class="muted">Last/first median throughput = first-window median / last-window '
        "median (below 1: slower at the end), with a 95% bootstrap CI; degraded or improved "
        "when the CI excludes 1 and the change exceeds 2%, else sustained. Last/first calls/s "
        "= the last window's calls per second over the first's: the calls delivered, stalls "
        "included, which the medians leave out. Throttled: a window's thermal state said so "
        "(macOS pmset, NVML clock-event reasons).</p>"
    )
    try:
        spec = sustained.build(con, Options(runs=(run_id,)))
    except NoData as exc:
        return html + f'<p class="note">{esc(exc)}</p>'
    charts["chart-sustained"] = spec
    return html + '<div id="chart-sustained" class="chart"></div>'


def _sustained_row(c: dict[str, Any], windows: list[dict]) -> str:
    """One case's row: its ratios with the decimals that tell the CI's ends from 1."""
    ratio, lo, hi = (c.get(k) for k in ("sustained_throughput_ratio", "sustained_ci_low",
                                          "sustained_ci_high"))  # fmt: skip
    r, lo_t, hi_t = ratios(ratio, lo, hi)
    calls = calls_ratio(windows)
    timed = windows_span_s(windows)
    ran = cut_short(timed, c.get("sustained_duration_s"), c.get("sustained_window_s"))
    shown = (
        None if ratio is None else r,
        None if lo is None or hi is None else f"{lo_t} – {hi_t}",
        None if calls is None else ratios(calls)[0],
    )
    return (
        "<tr>"
        + num(c.get("case_index"))
        + f"<td>{esc(c.get('label') or c.get('model_name'))}</td><td>{esc(variant(c))}</td>"
        + f"<td>{esc(c.get('sustained_verdict'))}{esc(ran)}</td>"
        + "".join(f'<td class="num">{esc(text)}</td>' for text in shown)
        + f"<td>{esc(throttled_words(c.get('sustained_throttled')))}</td>"
        + num(c.get("sustained_windows"))
        + num(c.get("sustained_window_s"))
        + num(c.get("sustained_first_median_ms"))
        + num(c.get("sustained_last_median_ms"))
        + "</tr>"
    )
