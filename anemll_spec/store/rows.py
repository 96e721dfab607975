"""Checking and converting the write API's dicts against the declared columns."""

from __future__ import annotations

import datetime as dt
import json
import math
import numbers
import re
from collections.abc import Iterable, Mapping

import numpy as np

from anemll_spec.errors import InputError
from anemll_spec.store.schema import MAX_CALL_NS, Column, Table
from anemll_spec.text import printable

_INT_RANGE = {"INTEGER": (-(2**31), 2**31 - 1), "BIGINT": (-(2**63), 2**63 - 1)}


def check_row(table: Table, values: Mapping, *, managed: Iterable[str] = (), what: str) -> dict:
    """Values for every column of `table` except `managed` ones (which the store fills).

    An undeclared key is an error; a missing one is NULL (unless the column is required).
    """
    managed = set(managed)
    allowed = [n for n in table.names if n not in managed]
    unknown = sorted(set(values) - set(allowed))
    if unknown:
        raise InputError(
            f"{what}: unknown field(s) {', '.join(map(repr, unknown))}; "
            f"`{table.name}` takes: {', '.join(allowed)}"
        )
    out = {}
    for col in table.columns:
        if col.name not in managed:
            out[col.name] = convert(col, values.get(col.name), what)
    return out


def convert(col: Column, value, what: str):
    """A Python value ready for DuckDB, or InputError naming the field."""
    where = f"{what}: {col.name}"
    if value is not None:
        value = _by_type(col, value, where)
    if value is None:
        if col.required:
            raise InputError(f"{where} is required")
        return None
    if col.pattern is not None and not re.fullmatch(col.pattern, value):
        raise InputError(f"{where} = {printable(value)[:80]!r} is not of the form {col.pattern}")
    if col.choices and value not in col.choices:
        raise InputError(f"{where} = {value!r} is not one of {', '.join(col.choices)}")
    if col.min is not None and value < col.min:
        raise InputError(f"{where} = {value!r} is below its minimum {col.min:g}")
    if col.max is not None and value > col.max:
        raise InputError(f"{where} = {value!r} is above its maximum {col.max:g}")
    return value


def _by_type(col: Column, value, where: str):
    t = col.type
    if t == "VARCHAR":
        if not isinstance(value, str):
            raise InputError(f"{where} must be a string, not {type(value).__name__}")
        return _text(col, value, where)
    if t == "JSON":
        if isinstance(value, str):
            try:
                json.loads(value)
            except ValueError:
                raise InputError(f"{where} is not valid JSON text") from None
        else:
            value = json.dumps(value, sort_keys=True, default=str)
        if col.name == "notes":
            check_notes(json.loads(value), where)
        return _text(col, value, where)
    if t == "BOOLEAN":
        if not isinstance(value, bool | np.bool_):
            raise InputError(f"{where} must be a bool, not {type(value).__name__}")
        return bool(value)
    if t == "DOUBLE":
        if isinstance(value, bool | np.bool_) or not isinstance(value, numbers.Real):
            raise InputError(f"{where} must be a number, not {type(value).__name__}")
        f = float(value)
        if math.isnan(f):
            return None
        if math.isinf(f):
            raise InputError(f"{where} is infinite")
        return f
    if t in _INT_RANGE:
        if isinstance(value, bool | np.bool_) or not isinstance(value, numbers.Real):
            raise InputError(f"{where} must be an integer, not {type(value).__name__}")
        if not isinstance(value, numbers.Integral) and not float(value).is_integer():
            raise InputError(f"{where} = {value!r} must be an integer")
        i = int(float(value)) if not isinstance(value, numbers.Integral) else int(value)
        lo, hi = _INT_RANGE[t]
        if not lo <= i <= hi:
            raise InputError(f"{where} = {i} does not fit {t}")
        return i
    if t == "TIMESTAMP":
        if isinstance(value, str):
            try:
                value = dt.datetime.fromisoformat(value)
            except ValueError:
                raise InputError(f"{where} = {value!r} is not an ISO timestamp") from None
        if not isinstance(value, dt.datetime):
            raise InputError(f"{where} must be a datetime, not {type(value).__name__}")
        return to_utc_naive(value)
    raise AssertionError(f"no conversion for SQL type {t}")


# Control characters a single-line field refuses; multi-line text allows \t \n \r.
CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
CONTROL_MULTILINE = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")
CONTROL_VERBATIM = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x84\x86-\x9f]")  # NEL kept
TRUNCATED = " [... truncated]"


def _text(col: Column, value: str, where: str) -> str:
    """The write path's text rules (import refuses what they would change): a name with
    a control character or over its limit is an error; free text (multi-line) has its
    other control characters escaped and is cut to its limit, marked."""
    limit = col.text_limit or len(value)
    if not col.multiline:
        if CONTROL.search(value):
            raise InputError(f"{where} contains a control character: {printable(value)[:80]}")
        if len(value) > limit:
            raise InputError(f"{where} is {len(value):,} characters long; the limit is {limit:,}")
        return value
    control = CONTROL_VERBATIM if col.verbatim else CONTROL_MULTILINE
    value = control.sub(lambda m: repr(m.group())[1:-1], value)
    if len(value) > limit:
        value = value[: limit - len(TRUNCATED)] + TRUNCATED
    return value


def check_notes(notes, where: str) -> None:
    """`cases.notes` is a JSON list of strings."""
    if not isinstance(notes, list) or not all(isinstance(n, str) for n in notes):
        raise InputError(f"{where} must be a list of strings")


def to_utc_naive(value: dt.datetime) -> dt.datetime:
    """Timestamps are stored as naive UTC (TIMESTAMP, readable without pytz)."""
    if value.tzinfo is not None:
        value = value.astimezone(dt.UTC).replace(tzinfo=None)
    return value


def utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)


def sample_columns(samples) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(wall_ns int64, runtime_ns int64, runtime_valid bool) from the accepted forms:

    - a 1-D sequence/array of wall_ns (runtime_ns all NULL);
    - an (n, 2) array or sequence of pairs (wall_ns, runtime_ns); runtime_ns is NULL
      where it is None (lists) or NaN (float arrays).
    Integral floats are accepted; negative or non-finite wall_ns are errors.
    """
    arr = np.asarray(samples)
    if arr.dtype == object:
        arr = _object_pairs(arr)
    if arr.ndim == 1:
        wall = _as_ns(arr, "wall_ns")
        return wall, np.zeros(len(wall), np.int64), np.zeros(len(wall), bool)
    if arr.ndim == 2 and arr.shape[1] == 2:
        wall = _as_ns(arr[:, 0], "wall_ns")
        rt = arr[:, 1]
        valid = ~np.isnan(rt) if rt.dtype.kind == "f" else np.ones(len(rt), bool)
        rt_ns = _as_ns(np.where(valid, rt, 0), "runtime_ns")
        return wall, rt_ns, valid
    raise InputError(
        f"samples: expected a 1-D sequence of wall_ns or an (n, 2) array of "
        f"(wall_ns, runtime_ns), got shape {arr.shape}"
    )


def _object_pairs(arr: np.ndarray) -> np.ndarray:
    """Lists with None (NULL runtime_ns) -> a float array with NaN."""
    if arr.ndim != 2:
        raise InputError(f"samples: cannot read samples of shape {arr.shape} and mixed types")
    try:
        return np.array([[np.nan if v is None else v for v in row] for row in arr], np.float64)
    except (TypeError, ValueError):
        raise InputError(
            "samples: values must be numbers (None for a missing runtime_ns)"
        ) from None


def _as_ns(col: np.ndarray, name: str) -> np.ndarray:
    if col.dtype.kind in "iu":
        out = col.astype(np.int64, copy=False)
    elif col.dtype.kind == "f":
        if not np.isfinite(col).all():
            raise InputError(f"samples: {name} must be finite")
        out = col.astype(np.int64)
        if not np.array_equal(out, col):
            raise InputError(f"samples: {name} must be whole nanoseconds")
    elif col.size == 0:
        out = col.astype(np.int64)
    else:
        raise InputError(f"samples: {name} must be integers (ns), not {col.dtype}")
    if out.size and out.min() < 0:
        raise InputError(f"samples: {name} must not be negative")
    if name != "start_ns" and out.size and out.max() > MAX_CALL_NS:
        raise InputError(f"samples: {name} {int(out.max()):,} ns is longer than any real call")
    return out


def start_column(starts_ns, n: int) -> np.ndarray | None:
    """Each call's start (ns, any origin, e.g. perf_counter_ns) -> ns after the case's
    earliest start, as stored in `samples.start_ns`; None when not given."""
    if starts_ns is None:
        return None
    st = np.asarray(starts_ns)
    if st.ndim != 1 or len(st) != n:
        raise InputError(f"samples: {len(st)} start times for {n} samples")
    st = _as_ns(st - st.min() if st.size else st, "start_ns")
    return st


def host_id(host: Mapping) -> str:
    """Content hash of a host snapshot: identical snapshots share one `hosts` row.

    `host` holds every `hosts` column but host_id (None where unknown), as check_row
    gives it; import recomputes it (store.trust.host_ids)."""
    from anemll_spec.hashing import digest

    return digest(dict(host), 16)
