"""Finding runs by what users type: a full id, a unique prefix, 'latest', 'previous'."""

from __future__ import annotations

from anemll_spec.errors import InputError

SHORTCUTS = {"latest": 0, "previous": 1}


def resolve_run(con, ref: str) -> str:
    """The run_id meant by `ref` (InputError when none or several match)."""
    ref = ref.strip()
    if ref.lower() in SHORTCUTS:
        rows = con.execute(
            "SELECT run_id FROM runs ORDER BY started_at DESC, run_id DESC LIMIT 1 OFFSET ?",
            [SHORTCUTS[ref.lower()]],
        ).fetchall()
        if not rows:
            raise InputError(f"run {ref!r}: the store does not hold that many runs")
        return rows[0][0]
    if not ref:
        raise InputError("an empty run id")
    rows = con.execute(
        "SELECT run_id FROM runs WHERE starts_with(run_id, ?) ORDER BY run_id LIMIT 6", [ref]
    ).fetchall()
    ids = [r[0] for r in rows]
    if ref in ids:
        return ref
    if not ids:
        raise InputError(
            f'no run {ref!r} in the store (see: anemll-spec query "SELECT * FROM runs")'
        )
    if len(ids) > 1:
        more = ", ..." if len(ids) > 5 else ""
        raise InputError(f"run {ref!r} is ambiguous: {', '.join(ids[:5])}{more}")
    return ids[0]
