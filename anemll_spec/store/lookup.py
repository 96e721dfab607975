"""Finding runs by what users type: a full id, a unique prefix, 'latest', 'previous'."""

from __future__ import annotations

from anemll_spec.errors import InputError
from anemll_spec.text import printable

# a run that stored no case (stopped before its first) is nothing to show, share or
# compare: the shortcuts skip it, in every command alike
HAS_CASES = "EXISTS (SELECT 1 FROM cases c WHERE c.run_id = {run}.run_id)"


def resolve_run(con, ref: str, *, previous_of: str | None = None) -> str:
    """The run_id meant by `ref` (InputError when none or several match).

    'latest' is the run started last of those that stored a case; 'previous' is the run
    of the same spec started last before `previous_of` (a run id; default: 'latest'),
    again of those that stored a case. Every command means the same by them."""
    ref = ref.strip()
    if ref.lower() == "latest":
        return _latest(con)
    if ref.lower() == "previous":
        return _previous_of(con, previous_of or _latest(con))
    if not ref:
        raise InputError("an empty run id")
    shown = printable(ref)
    rows = con.execute(
        "SELECT run_id FROM runs WHERE starts_with(run_id, ?) ORDER BY run_id LIMIT 6", [ref]
    ).fetchall()
    ids = [r[0] for r in rows]
    if ref in ids:
        return ref
    if not ids:
        raise InputError(
            f'no run {shown!r} in the store (see: anemll-spec query "SELECT * FROM runs")'
        )
    if len(ids) > 1:
        more = ", ..." if len(ids) > 5 else ""
        raise InputError(f"run {shown!r} is ambiguous: {', '.join(ids[:5])}{more}")
    return ids[0]


def resolve_pair(con, ref_a: str, ref_b: str) -> tuple[str, str]:
    """Two runs to compare. 'previous' on one side means the previous run of the SAME
    spec as the other side's run (so `previous latest` still pairs two runs of one spec
    after an unrelated bench); on both sides, the one before 'latest'."""
    a_prev = ref_a.strip().lower() == "previous"
    b_prev = ref_b.strip().lower() == "previous"
    if a_prev and not b_prev:
        b = resolve_run(con, ref_b)
        return resolve_run(con, ref_a, previous_of=b), b
    if b_prev and not a_prev:
        a = resolve_run(con, ref_a)
        return a, resolve_run(con, ref_b, previous_of=a)
    return resolve_run(con, ref_a), resolve_run(con, ref_b)


def _latest(con) -> str:
    row = con.execute(
        f"SELECT run_id FROM runs r WHERE {HAS_CASES.format(run='r')} "
        "ORDER BY started_at DESC, run_id DESC LIMIT 1"
    ).fetchone()
    if row is None:
        (n,) = con.execute("SELECT count(*) FROM runs").fetchone()
        held = f"its {n} run(s) stored no case" if n else "it holds no run"
        raise InputError(f"run 'latest': {held} (run `anemll-spec bench` first)")
    return row[0]


def _previous_of(con, run_id: str) -> str:
    row = con.execute(
        "SELECT p.run_id FROM runs r JOIN runs p ON p.spec_name IS NOT DISTINCT FROM r.spec_name "
        "AND (p.started_at, p.run_id) < (r.started_at, r.run_id) "
        f"WHERE r.run_id = ? AND {HAS_CASES.format(run='p')} "
        "ORDER BY p.started_at DESC, p.run_id DESC LIMIT 1",
        [run_id],
    ).fetchone()
    if row is None:
        (spec,) = con.execute("SELECT spec_name FROM runs WHERE run_id = ?", [run_id]).fetchone()
        raise InputError(f"run 'previous': no run of spec {printable(str(spec))!r} before {run_id}")
    return row[0]
