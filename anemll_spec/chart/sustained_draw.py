"""Drawing a sustained run: rows from `sustained.query` -> per case, latency over power.

Windows are shaded alternately (throttled ones in a red tint) in both panels; the
panels share one x domain, so they line up pixel for pixel.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from anemll_spec.chart import robust, style
from anemll_spec.chart.energy_draw import rail_color, rail_rank
from anemll_spec.text import ratios, throttled_words

TITLE = "Sustained run"

SHADES = {"alternate window": "#ececec", "throttled window": style.tint(style.OKABE_ITO[5], 0.7)}
WIDTH = 640
SUBTITLE_CHARS = 110  # a panel's subtitle line, at 11 px Helvetica, fits WIDTH + 60 px


def chart(data: dict[str, Any], run_id: str, opts) -> dict[str, Any]:
    import altair as alt

    windows = data["windows"]
    for w in windows:
        w["mid_s"] = (w["start_s"] + w["end_s"]) / 2
        w["tag"] = f"w{w['window_index']}"
        w["shade"] = (
            "throttled window"
            if w.get("throttled")
            else "alternate window"
            if w["window_index"] % 2
            else None
        )
    rails = sorted({p["rail"] for p in data["power"]}, key=rail_rank)
    color = alt.Color("rail:N", title="power rail", sort=rails,
                      scale=alt.Scale(domain=rails, range=[rail_color(r) for r in rails]))  # fmt: skip
    shades = [k for k in SHADES if any(w["shade"] == k for w in windows)]  # drawn ones
    shade = alt.Fill("shade:N", title="window", scale=alt.Scale(
        domain=shades, range=[SHADES[k] for k in shades]))  # fmt: skip
    parts = [_case(c, data, color, shade) for c in data["cases"]]
    shown, n = len(data["cases"]), data["n_cases"]
    more = f" Showing {shown} of {n} cases; narrow with --where or --model." if n > shown else ""
    return style.concat(
        "vconcat",
        parts,
        spacing=40,
        title=style.title(
            f"{TITLE}: latency and power over time — run {run_id}",
            ("Top: each" if rails else "Each")
            + " call's latency at the time it started (dots; thinned evenly for long "
            "runs) and each window's median (black segments).",
            # the power panel is drawn only where power was sampled
            "Bottom: each rail's power at each sampling period (lines: the mean over the "
            "period, from the energy counters; NVML's is its own power reading, a 1 s "
            "trailing average on Ampere and newer) and each "
            "window's mean power of the rails in the case's total (black segments; a rail "
            "inside another, such as core inside package, counted once)."
            if rails
            else "",
            "One time axis: seconds since the first timed call. Shaded: every other window; "
            "red tint: windows whose thermal state said throttled.",
            "Verdict: throughput of the last window / the first (first-window median / "
            "last-window median) with its 95% bootstrap CI.",
            "Power is the hardware's own energy estimate (the SoC's, GPU board's or CPU "
            "package's counters), not wall power."
            if rails or any(c.get("energy_method") for c in data["cases"])
            else "",
            f"Filters: {opts.describe()}.{more}",
        ),
        resolve={"scale": {"color": "shared", "fill": "shared"}},
        datasets={"windows": windows, "samples": data["samples"], "power": data["power"]},
        description=f"sustained run {run_id}",
    )


def _case(case: dict[str, Any], data: dict[str, Any], color, shade) -> dict[str, Any]:
    import altair as alt

    label = case["label"]
    mine = [w for w in data["windows"] if w["label"] == label]
    end = max((w["end_s"] for w in mine), default=1.0)
    keep = alt.FieldEqualPredicate(field="label", equal=label)  # data, never code
    x_scale = alt.Scale(domain=[0, end], nice=False, zero=True)
    x = alt.X("t_s:Q", scale=x_scale, title=None)
    rects = (
        alt.Chart(style.named("windows"))
        .transform_filter(keep)
        .transform_filter(alt.FieldOneOfPredicate(field="shade", oneOf=list(SHADES)))
        .mark_rect()
        .encode(
            x=alt.X("start_s:Q", scale=x_scale, title=None),
            x2="end_s:Q",
            fill=shade,
            tooltip=_window_tooltip(),
        )
    )
    spread = data["spread"].get(label) or {}
    clip = spread.get("clip")
    y_scale = (
        alt.Scale(domain=clip.domain, nice=False, zero=False, clamp=True)
        if clip
        else alt.Scale(zero=False)
    )
    y = alt.Y("ms:Q", title="latency (ms)", scale=y_scale)
    dots = (
        alt.Chart(style.named("samples"))
        .transform_filter(keep)
        .mark_circle(size=8, opacity=0.35, color=style.OKABE_ITO[0])
        .encode(
            x=x,
            y=y,
            tooltip=[
                alt.Tooltip("t_s:Q", title="started (s)", format=".3f"),
                alt.Tooltip("estimated:N", title="start time estimated"),
                alt.Tooltip("ms:Q", title="latency (ms)", format=".4f"),
                alt.Tooltip("window_index:Q", title="window"),
            ],
        )  # fmt: skip
        .properties(name="sustained_samples")
    )
    medians = (
        alt.Chart(style.named("windows"))
        .transform_filter(keep)
        .mark_rule(color="#000000", strokeWidth=2.5)
        .encode(
            x=alt.X("start_s:Q", scale=x_scale),
            x2="end_s:Q",
            y=alt.Y("median_ms:Q", scale=y_scale),
            tooltip=_window_tooltip(),
        )  # fmt: skip
        .properties(name="window_medians")
    )
    tags = (
        alt.Chart(style.named("windows"))
        .transform_filter(keep)
        .mark_text(fontSize=10, color=style.NEUTRAL, baseline="top", dy=2)
        .encode(x=alt.X("mid_s:Q", scale=x_scale), y=alt.value(0), text="tag:N")
        .properties(name="window_tags")
    )
    latency = alt.layer(rects.properties(name="shade_latency"), dots, medians, tags).properties(
        width=WIDTH, height=170
    )
    panels = [style.part(latency)]
    has_power = any(p["label"] == label for p in data["power"]) or any(
        w.get("power_w_mean") is not None for w in mine
    )
    if has_power:
        lines = (
            alt.Chart(style.named("power"))
            .transform_filter(keep)
            .mark_line(strokeWidth=1.5, interpolate="step-before")
            .encode(
                x=x,
                y=alt.Y("watts:Q", title="power (W)"),
                color=color,
                detail="window_index:N",  # a line per window: a window without readings is a gap
                tooltip=[
                    alt.Tooltip("rail:N", title="rail"),
                    alt.Tooltip("t_s:Q", title="period end (s)", format=".2f"),
                    alt.Tooltip("watts:Q", title="mean power (W)", format=".3g"),
                ],  # fmt: skip
            )
            .properties(name="power_lines")
        )
        means = (
            alt.Chart(style.named("windows"))
            .transform_filter(keep)
            .transform_filter(alt.FieldValidPredicate(field="power_w_mean", valid=True))
            .mark_rule(color="#000000", strokeWidth=2)
            .encode(
                x=alt.X("start_s:Q", scale=x_scale),
                x2="end_s:Q",
                y=alt.Y("power_w_mean:Q"),
                tooltip=_window_tooltip(),
            )  # fmt: skip
            .properties(name="window_power")
        )
        power = alt.layer(rects.properties(name="shade_power"), lines, means).properties(
            width=WIDTH, height=120
        )
        panels.append(style.part(power))
    # the x title once, under the bottom panel
    for i, part in enumerate(panels):
        _x_title(part, "time since the first timed call (s)" if i == len(panels) - 1 else None)
    return {
        "vconcat": panels,
        "spacing": 8,
        "title": {
            "text": label,
            "subtitle": _wrapped(_subtitle(case, mine, spread, clip, has_power)),
            "fontSize": 13,
            "limit": WIDTH + 60,
        },  # fmt: skip
    }


def _x_title(part: dict[str, Any], title: str | None) -> dict[str, Any]:
    """Give every layer's x the same title (Vega merges the layers' axis titles)."""
    for layer in part.get("layer", []):
        x = layer.get("encoding", {}).get("x")
        if x is not None and "field" in x:
            x["title"] = title
    return part


def _wrapped(lines: list[str]) -> list[str]:
    """Lines of at most SUBTITLE_CHARS characters, a longer one wrapped at its spaces:
    Vega cuts a line at the title's limit (WIDTH + 60 px), and the last line, the
    clipped axis' (160 characters), lost its end."""
    import textwrap

    return [part for line in lines for part in textwrap.wrap(line, SUBTITLE_CHARS) or [""]]


def _subtitle(case, windows, spread, clip, has_power: bool) -> list[str]:
    lines = [
        f"{verdict_words(case, windows)}.",
        # a line of its own: after the verdict it was cut off at the title's limit
        f"{_capital(throttled_words(case.get('sustained_throttled')))}.",
        f"Window medians: first {style.fmt_num(case.get('sustained_first_median_ms'), 4)} ms, "
        f"last {style.fmt_num(case.get('sustained_last_median_ms'), 4)} ms; "
        f"{len(windows)} windows of {style.fmt_num(case.get('sustained_window_s'))} s.",
        f"Thermal state per window: {thermal_runs(windows)}.",
    ]
    if not has_power:
        note = case.get("energy_note") or "no power reader ran"
        lines.append(f"No power readings: {note}.")
    elif case.get("energy_method"):
        lines.append(f"Power: {case['energy_method']}.")
    else:  # some windows were read, the case's total was not: say why
        lines.append(f"No energy for the run: {case.get('energy_note') or 'not read'}.")
    if clip:
        lines.append(
            f"Latency axis clipped to {clip.lo:.4g}–{clip.hi:.4g} ms (quartiles ± "
            f"{robust.FENCE:g} IQR, widened to every window's median): slower or faster "
            "samples sit at its edge (tooltip: real value)."
        )
    placed = (spread.get("unstamped") or 0) - (spread.get("unplaced") or 0)
    if placed:
        lines.append(
            f"{placed:,} sample(s) stored without start times: placed in their window by "
            "the latency before them (an estimate)."
        )
    if spread.get("unplaced"):
        lines.append(
            f"{spread['unplaced']:,} sample(s) have neither a start time nor a window: not drawn."
        )
    return lines


def _window_tooltip() -> list:
    import altair as alt

    return [
        alt.Tooltip("window_index:Q", title="window"),
        alt.Tooltip("start_s:Q", title="start (s)", format=".2f"),
        alt.Tooltip("wall_s:Q", title="wall (s)", format=".2f"),
        alt.Tooltip("calls:Q", title="calls"),
        alt.Tooltip("median_ms:Q", title="median (ms)", format=".4f"),
        alt.Tooltip("throughput_ips:Q", title="calls per second", format=",.4g"),
        alt.Tooltip("energy_mj_per_inference:Q", title="mJ per inference", format=",.4g"),
        alt.Tooltip("power_w_mean:Q", title="mean power (W)", format=",.4g"),
        alt.Tooltip("thermal_state:N", title="thermal state"),
        alt.Tooltip("temperature_c:Q", title="temperature (°C)", format=".1f"),
        alt.Tooltip("clock_event_reasons:N", title="clock-event reasons"),
    ]


def thermal_runs(windows: list[dict[str, Any]]) -> str:
    """'windows 0–2 nominal; 3–5 throttled: …' (consecutive windows of one state)."""
    runs: list[list] = []
    for w in windows:
        state = w.get("thermal_state") or "not read"
        if runs and runs[-1][2] == state:
            runs[-1][1] = w["window_index"]
        else:
            runs.append([w["window_index"], w["window_index"], state])
    parts = [f"{a}–{b} {s}" if a != b else f"{a} {s}" for a, b, s in runs]
    return "; ".join(parts)


def verdict_words(case: dict[str, Any], windows: Sequence[dict[str, Any]] = ()) -> str:
    """'degraded: last-window median throughput 0.885x the first (95% CI 0.881–0.890);
    calls/s 0.870x' (the calls delivered, stalls included, from the windows)."""
    from anemll_spec.sustained_grid import cut_short, windows_span_s

    timed = [w for w in windows if w.get("wall_s") is not None]
    verdict = (case.get("sustained_verdict") or "no verdict") + cut_short(
        windows_span_s(timed),
        case.get("sustained_duration_s"),
        case.get("sustained_window_s"),
    )
    ratio = case.get("sustained_throughput_ratio")
    if ratio is None or (isinstance(ratio, float) and math.isnan(ratio)):
        return verdict
    lo, hi = case.get("sustained_ci_low"), case.get("sustained_ci_high")
    r, lo_t, hi_t = ratios(ratio, lo, hi)
    ci = f" (95% CI {lo_t}–{hi_t})" if lo is not None and hi is not None else ""
    calls = calls_ratio(windows)
    return f"{verdict}: last-window median throughput {r}x the first{ci}" + (
        "" if calls is None else f"; calls/s delivered {ratios(calls)[0]}x (stalls included)"
    )


def calls_ratio(windows: Sequence[dict[str, Any]]) -> float | None:
    """Last window's calls/s over the first's: what the median ratio leaves out (stalls)."""
    tput = [w.get("throughput_ips") for w in sorted(windows, key=lambda w: w["window_index"])]
    if len(tput) < 2 or not tput[0] or tput[-1] is None:
        return None
    return float(tput[-1]) / float(tput[0])


def _capital(text: str) -> str:
    return text[:1].upper() + text[1:]
