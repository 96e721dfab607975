"""Size checks for declared shapes, made before anything is allocated.

A saved model is untrusted input: a shape of [2**32, 2**32] wraps to 0 in int64 (so a
size check passes), an empty constant of [1e6, 1e6] asks for 8 TB. Element counts here
are Python integers (exact at any size), and every allocation a declared shape implies is
checked against the memory this machine has available, with one line naming what and where.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

from anemll_spec.errors import InputError

# A declared shape may not imply more than this many elements even where memory would
# allow it (e.g. a sparse or palettized weight): 2**40 covers any model a phone could run.
MAX_ELEMENTS = 1 << 40
# Past this many elements an allocation a runtime value decides is checked against the
# memory available first (below it, no /proc read on an ordinary call)
CHECK_MEMORY_FROM = 1 << 24


def fixed_shape(shape: Iterable[int | None], where: str) -> tuple[int, ...]:
    """The shape's dimensions as ints (InputError for one not fixed, or negative)."""
    dims = list(shape)
    fixed: list[int] = []
    for d in dims:
        if d is None:
            raise InputError(f"{where}: shape {dims} is not fixed")
        if int(d) < 0:
            raise InputError(f"{where}: negative dimension in shape {dims}")
        fixed.append(int(d))
    return tuple(fixed)


def element_count(shape: Iterable[int | None], where: str) -> int:
    """Exact number of elements of a static shape (InputError for negative dimensions)."""
    dims = list(shape)
    n = math.prod(fixed_shape(dims, where))
    if n > MAX_ELEMENTS:
        raise InputError(f"{where}: shape {dims} declares {n:,} elements (limit {MAX_ELEMENTS:,})")
    return n


def check_size(shape: Iterable[int], where: str, what: str, itemsize: int = 8) -> int:
    """Element count of a tensor whose shape a runtime value decides (a fill shape, tile
    reps, a range's bounds), checked before it is made: a negative dimension, more than
    MAX_ELEMENTS, or (past CHECK_MEMORY_FROM elements) more than the memory available for
    `itemsize` bytes an element is an InputError naming `what`. An allocation that does
    not fit would get the process killed, not an exception."""
    dims = list(shape)
    n = element_count(dims, where)
    if n > CHECK_MEMORY_FROM:
        check_alloc(n * itemsize, where, f"{what} of shape {dims} needs")
    return n


def available_bytes() -> int:
    """Memory this process may still allocate: MemAvailable (Linux), else psutil's figure."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        import psutil

        return int(psutil.virtual_memory().available)
    except Exception:  # pragma: no cover - no way to ask: do not block the work
        return 1 << 62


def check_alloc(nbytes: int, where: str, what: str = "needs") -> None:
    """InputError when `nbytes` exceed the memory available now."""
    avail = available_bytes()
    if nbytes > avail:
        raise InputError(f"{where}: {what} {_gib(nbytes)} of memory, {_gib(avail)} is available")


def _gib(n: int) -> str:
    return f"{n / 2**30:,.1f} GiB" if n >= 2**30 else f"{n / 2**20:,.1f} MiB"


def as_array(vals: list, np_dtype: Any, name: str, where: str) -> Any:
    """np.array(vals) in `np_dtype`, an integer value outside the type's range refused
    (astype wraps it: 999 as int8 is -25) with one line naming it."""
    import numpy as np

    dt = np.dtype(np_dtype)
    if dt.kind in "iu" and vals:
        info = np.iinfo(dt)
        lo, hi = min(vals), max(vals)  # Python numbers: exact comparisons
        if lo < info.min or hi > info.max:
            bad = lo if lo < info.min else hi
            raise InputError(
                f"{where}: value {bad} is out of range for {name} ({info.min}..{info.max})"
            )
    return np.array(vals).astype(dt)
