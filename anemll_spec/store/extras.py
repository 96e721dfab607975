"""A case's energy and sustained-run rows (schema v4), for `writer.append_case`: checked
and completed before the transaction, inserted in it, and held to the same checks as an
import (`energy_checks.problem`) before it commits.

What the writer fills when the caller leaves it out (the formulas docs/store.md gives):
- cases: energy_mj_per_inference, power_w_mean (from energy_total_mj, calls, interval);
- case_energy_rails: mj_per_inference, mean_power_w;
- sustained_windows: window_index (position), calls and median_ms (from the samples
  carrying the window's index), throughput_ips, energy_mj_per_inference, power_w_mean;
- power_samples: idx (position).
A figure the caller gives must equal the one computed (InputError otherwise).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import TypeGuard

import numpy as np

from anemll_spec.errors import InputError
from anemll_spec.store import schema
from anemll_spec.store.columns import sql_literal
from anemll_spec.store.rows import check_row

POWER_COLUMNS = ("idx", "t_s", "rail", "watts", "window_index", "part")


@dataclass
class Extras:
    rails: list[dict] = field(default_factory=list)
    windows: list[dict] = field(default_factory=list)
    power: dict[str, np.ndarray] | None = None  # POWER_COLUMNS -> arrays (+ window_ok)
    sample_windows: np.ndarray | None = None

    @property
    def empty(self) -> bool:
        return not (self.rails or self.windows or self.power or self.sample_windows is not None)


def fill_case(values: dict) -> None:
    """Energy per inference and mean power of a case, when the caller left them out."""
    _fill_energy(
        values, "energy_total_mj", "energy_mj_per_inference", "power_w_mean",
        values.get("energy_calls"), values.get("energy_interval_s"),
    )  # fmt: skip


def _fill_energy(v: dict, total: str, per_call: str, power: str, calls, interval) -> None:
    """v[per_call] = v[total] / calls (mJ per inference) and v[power] = v[total] / 1e3 /
    interval (mean W), each only where left out and computable: the one definition the
    case, its rails and its windows share (energy_checks recomputes them in SQL)."""
    mj = v.get(total)
    if not _num(mj):
        return
    if v.get(per_call) is None and _pos(calls):
        v[per_call] = float(mj) / calls
    if v.get(power) is None and _pos(interval):
        v[power] = float(mj) / 1e3 / interval


def prepare(
    row: Mapping,
    wall: np.ndarray,
    sample_windows,
    rails: Iterable[Mapping],
    power_samples,
    windows: Iterable[Mapping],
) -> Extras:
    """The extras of one case, each row checked against its table (InputError)."""
    out = Extras(sample_windows=window_column(sample_windows, len(wall)))
    calls, interval = row.get("energy_calls"), row.get("energy_interval_s")
    for i, r in enumerate(rails):
        v = dict(r)
        _fill_energy(v, "energy_mj", "mj_per_inference", "mean_power_w", calls, interval)
        out.rails.append(
            check_row(schema.CASE_ENERGY_RAILS, v, managed=("case_id",), what=f"rail {i}")
        )
    for i, w in enumerate(windows):
        v = {"window_index": i, **w}
        _fill_window(v, wall, out.sample_windows)
        out.windows.append(
            check_row(schema.SUSTAINED_WINDOWS, v, managed=("case_id",), what=f"window {i}")
        )
    out.power = power_columns(power_samples)
    return out


def _fill_window(v: dict, wall: np.ndarray, windows: np.ndarray | None) -> None:
    if windows is not None and v.get("window_index") is not None:
        mine = wall[windows == v["window_index"]]
        if v.get("calls") is None:
            v["calls"] = int(mine.size)
        if v.get("median_ms") is None and mine.size:
            v["median_ms"] = float(np.median(mine)) / 1e6
    calls, wall_s = v.get("calls"), v.get("wall_s")
    if v.get("throughput_ips") is None and _num(calls) and _pos(wall_s):
        v["throughput_ips"] = calls / wall_s
    _fill_energy(
        v, "energy_total_mj", "energy_mj_per_inference", "power_w_mean",
        calls, v.get("energy_interval_s"),
    )  # fmt: skip


def _num(x: object) -> TypeGuard[float]:
    """A real number (numpy's too), not a bool: narrows `x` for the type checker."""
    return isinstance(x, int | float | np.integer | np.floating) and not isinstance(x, bool)


def _pos(x: object) -> TypeGuard[float]:
    return _num(x) and x > 0


def window_column(sample_windows, n: int) -> np.ndarray | None:
    """Each sample's sustained window (ints >= 0, one per sample), or None."""
    if sample_windows is None:
        return None
    try:
        w = np.asarray(sample_windows)
        if w.dtype.kind == "f" and np.isfinite(w).all() and (w == np.round(w)).all():
            w = w.astype(np.int64)
        if w.dtype.kind not in "iu":
            raise TypeError
    except (TypeError, ValueError):
        raise InputError("sample_windows: one integer window index per sample") from None
    if w.ndim != 1 or len(w) != n:
        raise InputError(f"sample_windows: {w.size} window indices for {n} samples")
    if w.size and (w.min() < 0 or w.max() > 2**31 - 1):
        raise InputError("sample_windows: window indices must be >= 0")
    return w.astype(np.int32)


def power_columns(power_samples) -> dict[str, np.ndarray] | None:
    """Power samples as columns: a mapping of column -> sequence, or a sequence of dicts
    (t_s, rail, watts; part and window_index optional, None for none; idx = position).
    Values are checked in SQL after the insert (trust.check_values), as on import."""
    if isinstance(power_samples, Mapping):
        cols = dict(power_samples)
    else:
        rows = list(power_samples)
        if not rows:
            return None
        keys = set().union(*(r.keys() for r in rows))
        cols = {k: [r.get(k) for r in rows] for k in keys}
    unknown = sorted(set(cols) - set(POWER_COLUMNS))
    if unknown:
        raise InputError(
            f"power_samples: unknown field(s) {', '.join(map(repr, unknown))}; "
            f"`power_samples` takes: {', '.join(POWER_COLUMNS)}"
        )
    lengths = {len(v) for v in cols.values()}
    if len(lengths) > 1:
        raise InputError("power_samples: columns of different lengths")
    n = lengths.pop() if lengths else 0
    if n == 0:
        return None
    out: dict[str, np.ndarray] = {}
    try:
        out["idx"] = np.asarray(cols.get("idx", np.arange(n)), dtype=np.int64)
        for k in ("t_s", "watts"):
            out[k] = np.asarray(
                [np.nan if x is None else x for x in cols.get(k, [None] * n)], float
            )
        win = cols.get("window_index", [None] * n)
        ok = np.array([x is not None for x in win], dtype=bool)
        out["window_index"] = np.asarray([x if x is not None else 0 for x in win], np.int64)
        out["window_ok"] = ok
    except (TypeError, ValueError):
        raise InputError(
            "power_samples: idx, t_s, watts and window_index must be numbers"
        ) from None
    names: dict[str, int] = {}  # text as codes into one list: no Python objects to scan
    for k in ("rail", "part"):
        vals = cols.get(k, [None] * n)
        if not all(v is None or isinstance(v, str) for v in vals):
            raise InputError(f"power_samples: {k} must be text")
        out[k + "_code"] = np.array(
            [0 if v is None else names.setdefault(v, len(names) + 1) for v in vals], np.int32
        )
    out["names"] = np.array(list(names), dtype=object)  # code k is names[k - 1]
    if np.abs(out["idx"]).max() > 2**31 - 1 or np.abs(out["window_index"]).max() > 2**31 - 1:
        raise InputError("power_samples: idx or window_index does not fit INTEGER")
    return out


def insert_rows(
    con, table: schema.Table, case_id: str, rows: list[dict], into: str | None = None
) -> None:
    """Checked dicts (every column of `table` but case_id) as rows of case `case_id`:
    multi-row INSERT ... VALUES with parameters, a few hundred rows per statement.
    (Registering Python objects with DuckDB costs ~5 ms per relation and per scan; the
    statement costs one bind.) into: another table of the same columns (staging)."""
    cols = [c for c in table.names if c != "case_id"]
    one = "(?, " + ", ".join("?" * len(cols)) + ")"
    for start in range(0, len(rows), ROWS_PER_INSERT):
        chunk = rows[start : start + ROWS_PER_INSERT]
        con.execute(
            f"INSERT INTO {into or table.name} (case_id, {', '.join(cols)}) VALUES "
            + ", ".join([one] * len(chunk)),
            [v for r in chunk for v in (case_id, *(r[c] for c in cols))],
        )


ROWS_PER_INSERT = 256


def insert(con, case_id: str, ex: Extras, samples_rel: str, row: Mapping) -> list[str]:
    """Insert the extras of case `case_id` (a store-made id: safe in SQL text), then hold
    them and the case `row` (every column but case_id) to energy_checks (the groups they
    can fail); returns the names registered (the caller unregisters them). `samples_rel`:
    the case's samples as a relation (case_id, idx, wall_ns, window_index).

    The checks read this case's rows from temporary tables staged here, never the store's
    tables: a scan of those grows with the store (cases has no index; a shared store's
    are Parquet files), and a write must cost the same on the millionth case."""
    from anemll_spec.store import energy_checks
    from anemll_spec.store.trust import check_values

    names: list[str] = []
    staged: list[str] = []

    def stage(table: schema.Table, rows: list[dict]) -> str:
        staged.append(f"_anemll_staged_{table.name}")
        con.execute(
            f"CREATE OR REPLACE TEMP TABLE {staged[-1]} AS SELECT * FROM {table.name} LIMIT 0"
        )
        insert_rows(con, table, case_id, rows, into=staged[-1])
        return staged[-1]

    rels = {"cases": stage(schema.CASES, [dict(row)]), "samples": samples_rel}
    for table, rows in (
        (schema.CASE_ENERGY_RAILS, ex.rails),
        (schema.SUSTAINED_WINDOWS, ex.windows),
    ):
        rels[table.name] = stage(table, rows)
        if rows:
            con.execute(f"INSERT INTO {table.name} SELECT * FROM {rels[table.name]}")
    if ex.power is not None:
        names.append("_anemll_power")
        con.register(names[-1], {k: v for k, v in ex.power.items() if k != "names"})
        text = "[" + ", ".join(sql_literal(str(t)) for t in ex.power["names"]) + "]::VARCHAR[]"
        typed = (
            f"(SELECT '{case_id}' AS case_id, CAST(idx AS INTEGER) AS idx, t_s, "
            f"({text})[rail_code] AS rail, watts, CAST(CASE WHEN window_ok THEN window_index "
            f"END AS INTEGER) AS window_index, ({text})[part_code] AS part FROM _anemll_power)"
        )
        check_values(con, "power_samples", schema.POWER_SAMPLES, typed)
        idx, counts = np.unique(ex.power["idx"], return_counts=True)
        if (counts > 1).any():
            raise InputError(f"power_samples: idx {int(idx[counts > 1][0])} is given twice")
        staged.append("_anemll_staged_power_samples")
        con.execute(f"CREATE OR REPLACE TEMP TABLE {staged[-1]} AS SELECT * FROM {typed}")
        con.execute(f"INSERT INTO power_samples SELECT * FROM {staged[-1]}")
        rels["power_samples"] = staged[-1]
    else:
        rels["power_samples"] = "(SELECT * FROM power_samples WHERE false)"
    groups = ["case"]
    if ex.rails:
        groups.append("rails")
    sustained = any(v is not None for k, v in row.items() if k.startswith("sustained_"))
    timeline_windows = ex.power is not None and bool(ex.power["window_ok"].any())
    if ex.windows or ex.sample_windows is not None or sustained or timeline_windows:
        groups.append("windows")
    found = energy_checks.problem(con, rels, groups)
    if found is not None:
        raise InputError(found)
    for name in staged:
        con.execute(f"DROP TABLE {name}")
    return names
