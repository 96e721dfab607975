"""The power readers' and sustained runs' results as `append_case` arguments.

    kw = energy_rows(reader.stop(), calls, t0_ns=starts_ns[0])
    kw = sustained_rows(run_sustained(...))
    case.update(kw.pop("case")); append_case(target, run_id, case, samples, **kw)

`energy_rows` turns a power.Energy (or Unavailable, or None: no reader) into the case's
energy columns, its case_energy_rails rows (each rail's parts apart, e.g. an Ultra's
ANE0_0 and ANE0_1) and its power_samples (seconds after `t0_ns`, the case's first timed
call on the perf_counter_ns clock). `sustained_rows` does the same for every window of a
sustained.Sustained, plus the windows, their samples and the verdict; the case's energy
is then all windows' together, windows that read 0 mJ included (NULL, with the reason,
when any window has no reading, or the total over all of them is 0 mJ).
Nothing here measures: it only moves figures into the store's columns. Rail names are
normalised to the store's form (lower case); RAPL zones become rail + part
('package-0.dram' -> rail 'dram', part 'package-0').
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable

import numpy as np

from anemll_spec.power.base import UPDATE_PERIOD_S
from anemll_spec.store.columns import ENERGY_METHODS, NAME, TEXT


def rail_and_part(method: str, rail: str) -> tuple[str, str | None]:
    """A reader's rail name -> (store rail, part)."""
    if method == "rapl":
        m = re.fullmatch(r"(package-\d+)(?:\.(.+))?", rail)
        if m:
            return _rail(m.group(2) or "package"), m.group(1)
    return _rail(rail), None


def _rail(name: str) -> str:
    out = re.sub(r"[^a-z0-9_.-]", "_", name.strip().lower())
    return out if re.match(r"[a-z]", out) else "rail_" + out


def energy_rows(
    energy, calls: int | None, *, t0_ns: int, window_of: Callable[[int], int | None] | None = None
) -> dict:
    """{'case': energy columns, 'rails': [...], 'power_samples': [...]} of one reading.

    energy: power.Energy | power.Unavailable | None. calls: the calls made in the
    reading's interval (the divisor). window_of(t_ns): the sustained window of a
    timeline point (None: not sustained)."""
    if energy is None:
        return {"case": {}, "rails": [], "power_samples": []}
    if not hasattr(energy, "rails_mj"):  # Unavailable: NULL energy, and why
        return _none(str(energy.reason))
    why = unusable(energy, calls)
    if why:  # stored as NULL with the reason: a reading the store would refuse
        return _none(f"{energy.method} reading not stored: {why}")  # fails no timing case
    notes = list(energy.notes)
    points, dropped = [], 0
    for p in energy.timeline:
        if not (math.isfinite(p.watts) and p.watts >= 0):
            dropped += 1  # a point the counters cannot have meant: kept out, and said so
            continue
        rail, part = rail_and_part(energy.method, p.rail)
        points.append(
            {
                "t_s": (p.t_ns - t0_ns) / 1e9,
                "rail": rail,
                "part": part,
                "watts": float(p.watts),
                "window_index": window_of(p.t_ns) if window_of else None,
            }
        )
    if dropped:
        notes.append(f"{dropped} timeline point(s) left out: negative or not finite")
    limit = energy.extra.get("power_limit_w") if energy.extra else None
    case = {
        "energy_method": energy.method,
        "energy_note": "; ".join(notes) or None,
        "energy_interval_s": float(energy.interval_s),
        "energy_samples": int(energy.samples),
        "energy_calls": calls,
        "energy_timed_only": bool(energy.timed_only),
        "energy_total_mj": float(energy.total_mj),
        "gpu_power_limit_w": None if limit is None else float(limit),
    }
    return {"case": case, "rails": rail_rows(energy), "power_samples": points}


def _none(note: str) -> dict:
    return {"case": {"energy_note": _text(note, TEXT)}, "rails": [], "power_samples": []}


def unusable(energy, calls, *, moved: bool = True) -> str | None:
    """Why a reading cannot be a figure (a reader's bug or a counter gone wrong), or None.
    moved=False: a total of 0 mJ passes (a sustained window, counted in the run's sum)."""
    if not (isinstance(calls, int) and calls >= 1):
        return f"{calls!r} calls: energy per inference needs at least one"
    if not (math.isfinite(energy.interval_s) and energy.interval_s > 0):
        return f"its interval is {energy.interval_s!r} s"
    if not any(r in energy.rails_mj for r in energy.total_rails):
        return "no rail of its total was read (its total would be 0 mJ)"
    if moved and energy.total_mj <= 0:  # nothing draws no power: the counter did not move
        return (
            f"its total is 0 mJ over {energy.interval_s:.3g} s: the counters did not move "
            "(an interval shorter than their update period; run.energy_s sets a longer one)"
        )
    bad = [r for r, mj in energy.rails_mj.items() if not (math.isfinite(mj) and mj >= 0)]
    if bad:
        return f"rail {bad[0]} read {energy.rails_mj[bad[0]]!r} mJ"
    if energy.method not in ENERGY_METHODS:
        return f"unknown reader {energy.method!r}"
    return None


def _text(value: str, limit: int = NAME) -> str:
    """Single-line text as the store takes it: control characters replaced, clipped."""
    return re.sub(r"[\x00-\x1f\x7f-\x9f]", "?", str(value))[:limit]


def rail_rows(energy) -> list[dict]:
    """One row per rail, or per part where the reader kept what it summed."""
    rows = []
    for rail, mj in energy.rails_mj.items():
        name, part = rail_and_part(energy.method, rail)
        parts = {
            _text(k.split("/", 1)[1]): v
            for k, v in energy.parts_mj.items()
            if k.startswith(rail + "/")
        }
        if parts and not math.isclose(sum(parts.values()), mj, rel_tol=1e-12, abs_tol=1e-9):
            parts = {}  # the parts do not make up the rail: the rail as one
        for p, v in parts.items() if parts else [(part, mj)]:
            rows.append(
                {
                    "rail": name,
                    "part": p,
                    "energy_mj": float(v),
                    "in_total": rail in energy.total_rails,
                }
            )
    return rows


def sustained_rows(s, energy=None) -> dict:
    """append_case arguments of a sustained.Sustained: {'case', 'samples',
    'sample_windows', 'windows', 'rails', 'power_samples'}.

    energy: the case's energy as the runner already summed it for the summary (or why
    there is none), so the store holds what was shown; None: `combined_energy` here."""
    wins = s.windows
    t0 = wins[0].start_ns
    windows, points = [], []
    for w in wins:
        row = {
            "window_index": w.index,
            "start_s": (w.start_ns - t0) / 1e9,
            "wall_s": w.wall_s,
            "calls": w.calls,
            "median_ms": w.median_ms,
        }
        # a window shorter than its counter's update period has no energy of its own (one
        # update may hold several windows' worth): the case's figure sums the windows
        period = UPDATE_PERIOD_S.get(getattr(w.energy, "method", ""), 0.0)
        if (
            hasattr(w.energy, "rails_mj")
            and not unusable(w.energy, w.calls)
            and w.energy.interval_s >= period
        ):
            row["energy_total_mj"] = float(w.energy.total_mj)
            row["energy_interval_s"] = float(w.energy.interval_s)
            of = w.index  # the window's own reader: its timeline is this window's
            points += energy_rows(w.energy, w.calls, t0_ns=t0, window_of=_constant(of))[
                "power_samples"
            ]
        row.update(_thermal(w.thermal))
        windows.append(row)
    v = s.verdict
    case = {
        "sustained_duration_s": float(s.duration_s),
        "sustained_window_s": float(s.window_s),
        "sustained_windows": len(wins),
        "sustained_first_median_ms": v.first_median_ms,
        "sustained_last_median_ms": v.last_median_ms,
        "sustained_throughput_ratio": v.throughput_ratio,
        "sustained_ci_low": v.ci_low,
        "sustained_ci_high": v.ci_high,
        "sustained_verdict": v.verdict,
        "sustained_throttled": v.throttled,
    }
    whole = energy_rows(
        combined_energy(wins) if energy is None else energy, sum(w.calls for w in wins), t0_ns=t0
    )
    case.update(whole["case"])
    for i, w in enumerate(points):
        w["idx"] = i
    return {
        "case": case,
        "samples": np.concatenate([w.samples_ns for w in wins]),
        "sample_windows": np.repeat(np.arange(len(wins)), [w.calls for w in wins]),
        "windows": windows,
        "rails": whole["rails"],
        "power_samples": points,
    }


def _thermal(t) -> dict:
    if not hasattr(t, "throttled"):
        return {}
    detail = getattr(t, "detail", {}) or {}
    reasons = detail.get("clock_event_reasons")
    temp = detail.get("temperature_c")
    return {
        "thermal_state": _text(t.state),
        "throttled": bool(t.throttled),
        "temperature_c": None if temp is None else float(temp),
        "clock_event_reasons": ",".join(reasons) if reasons else None,
    }


def combined_energy(wins):
    """All windows' energy as one reading (None when no window had a reader).

    Every window whose reading is an Energy counts, 0 mJ included: a window shorter than
    the counters' update period (NVML's 100 ms) can fall between two updates while the
    sum over the windows is sound. Unavailable (the first window's reason) where a window
    has no reading or one the store cannot take for another reason (no interval, a
    negative rail), where the windows together are shorter than the counter's update
    period (then as short as a single reading, which Guarded.stop refuses), where the
    total over all windows is 0 mJ, and where the reader's own
    check of the summed reading refuses it (IOReport's zeroed counters, which no window
    is long enough to tell by itself)."""
    from anemll_spec.power.base import Energy, Unavailable

    readings = [w.energy for w in wins]
    if all(r is None for r in readings):
        return None
    for i, r in enumerate(readings):
        why = (
            unusable(r, wins[i].calls, moved=False)
            if hasattr(r, "rails_mj")
            else getattr(r, "reason", None) or "no reader"
        )
        if why:
            return Unavailable(f"no energy for window {i} of {len(wins)}: {why}")
    rails: dict[str, float] = {}
    parts: dict[str, float] = {}
    for r in readings:
        for k, v in r.rails_mj.items():
            rails[k] = rails.get(k, 0.0) + v
        for k, v in r.parts_mj.items():
            parts[k] = parts.get(k, 0.0) + v
    notes = list(dict.fromkeys(n for r in readings for n in r.notes))
    total = sum(rails.get(x, 0.0) for x in {x for r in readings for x in r.total_rails})
    seconds = sum(r.interval_s for r in readings)
    period = UPDATE_PERIOD_S.get(readings[0].method)
    if period is not None and seconds < period:  # the sum is one short reading
        return Unavailable(
            f"the {len(readings)} windows' readings together cover {seconds:.3g} s, shorter "
            f"than the {readings[0].method} counter's update period (up to {period} s): one "
            f"update there holds up to {period / seconds:.3g} times their energy, or none "
            "does (run.duration_s sets a longer run)",
            readings[0].method,
        )
    if readings[0].method == "ioreport":
        from anemll_spec.power.ioreport import check_reading

        found = check_reading(rails, seconds)
        if isinstance(found, Unavailable):  # "not published" over the windows together
            return Unavailable(f"{found.reason} (the {len(readings)} windows summed)", "ioreport")
    if total <= 0:
        return Unavailable(
            f"its total is 0 mJ over the {len(readings)} windows' {seconds:.3g} s: the "
            "counters did not move in any window (shorter than their update period: "
            "run.window_s and run.duration_s set longer ones)"
        )
    still = sum(1 for r in readings if r.total_mj == 0)
    if still:  # said: their windows' rows have no energy of their own
        notes.insert(
            0,
            f"{still} of the {len(readings)} windows read 0 mJ (a window shorter than the "
            "counters' update period; run.window_s sets a longer one): their energy is in "
            "the other windows' readings, and the sum holds it",
        )
    return Energy(
        rails_mj=rails,
        total_rails=tuple(dict.fromkeys(x for r in readings for x in r.total_rails)),
        interval_s=sum(r.interval_s for r in readings),
        method=readings[0].method,
        samples=sum(r.samples for r in readings),
        timed_only=all(r.timed_only for r in readings),
        notes=(f"the {len(readings)} windows' readings summed", *notes),
        extra=dict(readings[-1].extra),
        parts_mj=parts,
    )


def _constant(index: int) -> Callable[[int], int | None]:
    """window_of for a reading that covers one window: every sample is in it."""
    return lambda _t_ns: index
