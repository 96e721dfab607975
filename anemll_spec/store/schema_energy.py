"""The energy and sustained-run tables of schema v4, declared once, as data.

Each belongs to one case (case_id) and is written in the case's transaction. Figures
derived from others (per-inference energy, mean power, each window's calls, median and
throughput) are recomputed on write and on import (store/energy_checks.py), so a stored
figure always is what its inputs give.
"""

from __future__ import annotations

from anemll_spec.store.columns import (
    CASE_ID,
    MAX_SECONDS,
    MAX_WATTS,
    NAME,
    RAIL,
    TEXT,
    Column,
    Table,
    ms,
)

C = Column

CASE_ENERGY_RAILS = Table(
    "case_energy_rails",
    "Energy of each power rail (and each part of a rail: an Ultra's two ANEs) over the "
    "case's energy interval. The hardware's own estimate, not wall power. Summing a rail's "
    "parts gives the rail; summing the rows with in_total gives cases.energy_total_mj.",
    (
        C("case_id", "VARCHAR", "-> cases.case_id", required=True, pattern=CASE_ID, since=4),
        C(
            "rail",
            "VARCHAR",
            "cpu | gpu | ane | dram (IOReport, powermetrics), gpu (NVML), package | dram | core "
            "| uncore | psys (RAPL), ...",
            required=True,
            pattern=RAIL,
            since=4,
        ),
        C(
            "part",
            "VARCHAR",
            "the counter summed into the rail: an IOReport channel ('ANE0_1' on an Ultra, "
            "'DIE_1_CPU Energy'), a RAPL package ('package-0'); NULL: the rail as one",
            max_len=NAME,
            since=4,
        ),
        C(
            "energy_mj",
            "DOUBLE",
            "energy over the interval",
            "mJ",
            min=0.0,
            required=True,
            since=4,
        ),
        C(
            "mj_per_inference",
            "DOUBLE",
            "energy_mj / cases.energy_calls",
            "mJ",
            min=0.0,
            since=4,
        ),
        C(
            "mean_power_w",
            "DOUBLE",
            "energy_mj / 1000 / cases.energy_interval_s",
            "W",
            min=0.0,
            max=MAX_WATTS,
            since=4,
        ),
        C(
            "in_total",
            "BOOLEAN",
            "counted in cases.energy_total_mj (false: it overlaps others, e.g. powermetrics' "
            "package, RAPL's core inside its package, IOReport's GPU SRAM)",
            required=True,
            since=4,
        ),
    ),
    unique=("case_id", "rail", "part"),
    since=4,
)

POWER_SAMPLES = Table(
    "power_samples",
    "The power timeline of a case: mean power of a rail over each sampling period, "
    "stamped at the period's end on the clock of the timed calls.",
    (
        C("case_id", "VARCHAR", "-> cases.case_id", required=True, pattern=CASE_ID, since=4),
        C(
            "idx",
            "INTEGER",
            "0-based position in the case's timeline",
            min=0,
            required=True,
            since=4,
        ),
        C(
            "t_s",
            "DOUBLE",
            "seconds since the case's first timed call (end of the sampling period)",
            "s",
            required=True,
            min=-MAX_SECONDS,
            max=MAX_SECONDS,
            since=4,
        ),
        C(
            "rail",
            "VARCHAR",
            "the rail, as in case_energy_rails",
            required=True,
            pattern=RAIL,
            since=4,
        ),
        C(
            "watts",
            "DOUBLE",
            "mean power of the rail over the period",
            "W",
            required=True,
            min=0.0,
            max=MAX_WATTS,
            since=4,
        ),
        C(
            "window_index",
            "INTEGER",
            "the sustained window the point falls in (NULL: not a sustained run)",
            min=0,
            since=4,
        ),
        C("part", "VARCHAR", "the rail's part, as in case_energy_rails", max_len=NAME, since=4),
    ),
    unique=("case_id", "idx"),
    since=4,
)

SUSTAINED_WINDOWS = Table(
    "sustained_windows",
    "The windows of a sustained run: each window's latency (from its samples, "
    "samples.window_index), energy and thermal state at its end.",
    (
        C("case_id", "VARCHAR", "-> cases.case_id", required=True, pattern=CASE_ID, since=4),
        C("window_index", "INTEGER", "0-based window", min=0, required=True, since=4),
        C(
            "start_s",
            "DOUBLE",
            "start of the window, seconds after the first window's start",
            "s",
            min=0.0,
            max=MAX_SECONDS,
            since=4,
        ),
        C(
            "wall_s",
            "DOUBLE",
            "wall time of the window",
            "s",
            required=True,
            min=0.0,
            max=MAX_SECONDS,
            since=4,
        ),
        C(
            "calls",
            "INTEGER",
            "calls timed in the window (its samples)",
            required=True,
            min=1,
            since=4,
        ),
        ms("median_ms", "median latency of the window's samples", since=4),
        C(
            "throughput_ips",
            "DOUBLE",
            "calls / wall_s (includes the loop's own bookkeeping)",
            "1/s",
            min=0.0,
            since=4,
        ),
        C(
            "energy_total_mj",
            "DOUBLE",
            "energy over the window (rails that do not overlap)",
            "mJ",
            min=0.0,
            since=4,
        ),
        C(
            "energy_mj_per_inference",
            "DOUBLE",
            "energy_total_mj / calls",
            "mJ",
            min=0.0,
            since=4,
        ),
        C(
            "power_w_mean",
            "DOUBLE",
            "energy_total_mj / 1000 / energy_interval_s",
            "W",
            min=0.0,
            max=MAX_WATTS,
            since=4,
        ),
        C(
            "thermal_state",
            "VARCHAR",
            "at the window's end: 'nominal' or what limits the machine (pmset, NVML)",
            since=4,
        ),
        C("throttled", "BOOLEAN", "the thermal state says throttled", since=4),
        C(
            "temperature_c",
            "DOUBLE",
            "GPU temperature (NVML)",
            "°C",
            min=-100.0,
            max=300.0,
            since=4,
        ),
        C(
            "clock_event_reasons",
            "VARCHAR",
            "NVML clock-event reasons at the window's end, comma-separated",
            max_len=TEXT,
            since=4,
        ),
        C(
            "energy_interval_s",
            "DOUBLE",
            "seconds the window's energy counters cover (the reader's interval)",
            "s",
            min=0.0,
            max=MAX_SECONDS,
            since=4,
        ),
    ),
    unique=("case_id", "window_index"),
    since=4,
)
