"""The store's trust boundary: rows that come from elsewhere (import, push) are claims.

`check_staged` is THE check. Import (bundle.py) and push/pull into a shared store call
it on staged tables before anything reaches the store, so a stranger's rows are held to
the same rules whichever way they arrive. What it checks and what it recomputes is
listed in docs/store.md ("The trust boundary").
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from anemll_spec.errors import InputError
from anemll_spec.store import derive, energy_checks, stat_checks
from anemll_spec.store.published import MODEL_WEIGHT_BYTES
from anemll_spec.store.rows import utc_now
from anemll_spec.store.schema import BUNDLE_TABLES, CASE_TABLES, Table, sql_literal
from anemll_spec.text import printable, quoted

CLOCK_SKEW = dt.timedelta(minutes=5)  # a timestamp later than now + this is refused
# RE2 classes of the control characters a field refuses (C0, DEL, C1)
_CONTROL = r"[\x00-\x1f\x7f-\x{9f}]"
_CONTROL_MULTILINE = r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x{9f}]"
_CONTROL_VERBATIM = r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x{84}\x{86}-\x{9f}]"  # NEL kept
PARAM_KEY = r"(model|run)(\.[A-Za-z_][A-Za-z0-9_]*)+"  # a sweep field path


@dataclass(frozen=True)
class Origin:
    """Where staged runs come from, recorded in runs.origin*."""

    kind: str  # 'imported' | 'pushed'
    ref: str | None = None  # the bundle's file name | the pushing host
    sha256: str | None = None  # the bundle file's sha256


def check_staged(
    con,
    staged: Mapping[str, str],
    *,
    label: str,
    origin: Origin,
    now: dt.datetime | None = None,
    recomputed: bool = False,
) -> dict:
    """Check rows staged for the store, recompute what can be recomputed, stamp origin.

    con: a connection that sees the store's tables (for clashes with rows already
    there) and the staged relations. staged: bundle table name (schema.BUNDLE_TABLES:
    'hosts', 'runs', 'cases', 'samples', 'placements', 'case_energy_rails',
    'power_samples', 'sustained_windows') -> a TEMP table holding that table's columns
    at the current schema version (older rows upgraded: new columns NULL, new tables
    empty). label: what to name in messages (a bundle's path, a remote store).

    Raises InputError (one line, `label: what`) on the first problem: a value outside
    its column's type, range, allowed set or length limit; a control character in a
    name; an id not in its documented form or not derived from what it names
    (host_id = hash of the host, case_id = run_id + '-<8 hex>', run_id = start time +
    random, spec_sha256, case/variant/build keys re-expanded from the spec); a
    timestamp in the future; a broken reference; a statistic that the samples do not
    give (median, CI, percentiles, GB/s, TFLOPS, ...); a published model with other
    weight bytes; an energy or sustained-run figure that its inputs do not give
    (energy_checks: per-inference energy, mean power, window medians and calls, the
    sustained ratio, CI and verdict); a run whose id the store has, but which is another
    run (another host, start, spec, command or writer). Then normalises the staged tables in place: drift_slope_ms_per_s
    becomes NULL where samples carry no start times (it cannot be recomputed), and
    every run gets origin = origin.kind, origin_ref, origin_sha256, origin_at = now.
    Returns counts of what was checked and normalised.

    recomputed: the same rows (the same file, by its sha256) passed every check before,
    in an empty scratch store: the statistics and energy figures, the costly part, are
    not recomputed again (an import holds the store's lock only for the rest)."""
    now = now or utc_now()
    for t in BUNDLE_TABLES:
        check_values(con, label, t, staged[t.name])
        _check_unique(con, label, t, staged[t.name])
    _check_references(con, label, staged)
    _check_ids_and_times(con, label, staged, now)
    _check_hosts(con, label, staged["hosts"])
    _check_json_shapes(con, label, staged["cases"])
    _check_specs(con, label, staged)
    if not recomputed:
        stat_checks.check_statistics(con, label, staged)
        found = energy_checks.problem(con, staged)
        if found is not None:
            _fail(label, printable(found))
    dropped = stat_checks.drop_unprovable_drift(con, staged)
    check_same_runs(con, label, staged["runs"])
    con.execute(
        f"UPDATE {staged['runs']} SET origin = ?, origin_ref = ?, origin_sha256 = ?, origin_at = ?",
        [origin.kind, origin.ref, origin.sha256, now],
    )
    (n_runs,) = con.execute(f"SELECT count(*) FROM {staged['runs']}").fetchone()
    return {"runs": int(n_runs), "drift_slope_dropped": dropped}


def _fail(label: str, what: str) -> None:
    raise InputError(f"{label}: {what}")


def _refuse_first(
    con, label: str, checks: Sequence[tuple[str, str]], params: Sequence = ()
) -> None:
    """Each check: a query for the least offending value (ORDER BY 1 LIMIT 1: the same
    one every time) and the message naming it ({}); fails with the first that finds a
    row. `params`: values for the queries' `?`, each taking as many as it has."""
    for sql, message in checks:
        row = con.execute(sql, list(params)[: sql.count("?")]).fetchone()
        if row is not None:
            _fail(label, message.format(quoted(row[0])))


# Columns that must equal an id of another staged table (checked by _check_references):
# their form, length and characters are that id's, so they are not scanned again.
_REFERENCES = {("cases", "run_id")} | {(t.name, "case_id") for t in CASE_TABLES}


def check_values(con, label: str, t: Table, rel: str) -> None:
    """Every value of `rel` (rows of table `t`) within its column's declared rules:
    required, allowed set, finite, range, JSON, text limit, control characters, id form.
    Also the writer's check of power samples (inserted in bulk, never row by row)."""
    checks: list[tuple[str, str]] = []
    for c in t.columns:
        n = c.name
        if (t.name, n) in _REFERENCES:
            if c.required:
                checks.append((f"{n} IS NULL", f"{n} is NULL"))
            continue
        if c.required:
            checks.append((f"{n} IS NULL", f"{n} is NULL"))
        if c.choices:
            allowed = ", ".join(sql_literal(v) for v in c.choices)
            checks.append((f"{n} NOT IN ({allowed})", f"{n} not in {{{', '.join(c.choices)}}}"))
        if c.type == "DOUBLE":
            checks.append((f"NOT isfinite({n})", f"{n} not finite"))
        if c.type == "JSON":
            checks.append((f"NOT json_valid({n})", f"{n} not valid JSON"))
        if c.min is not None:
            checks.append((f"{n} < {c.min!r}", f"{n} below {c.min:g}"))
        if c.max is not None:
            checks.append((f"{n} > {c.max!r}", f"{n} above {c.max:g}"))
        if c.text_limit is not None:
            checks.append((f"length({n}) > {c.text_limit}", f"{n} over {c.text_limit:,} chars"))
            ctl = _CONTROL_MULTILINE if c.multiline or c.type == "JSON" else _CONTROL
            ctl = _CONTROL_VERBATIM if c.verbatim else ctl
            checks.append((f"regexp_matches({n}, '{ctl}')", f"a control character in {n}"))
        if c.pattern is not None:
            checks.append(
                (
                    f"NOT regexp_full_match({n}, {sql_literal(c.pattern)})",
                    f"{n} not of the form {c.pattern}",
                )
            )
    sql = ", ".join(f"count(*) FILTER (WHERE {cond})" for cond, _ in checks)
    counts = con.execute(f"SELECT {sql} FROM {rel}").fetchone()
    problems = [f"{n} row(s) with {what}" for (_, what), n in zip(checks, counts, strict=True) if n]
    if problems:
        _fail(label, f"bad values in {t.name}: {'; '.join(problems[:6])}")


def _check_unique(con, label: str, t: Table, rel: str) -> None:
    key = t.unique or t.primary_key
    if not key or t.name == "samples":  # (case_id, idx): in _check_references' count
        return
    cols = ", ".join(key)
    row = con.execute(
        f"SELECT {cols} FROM {rel} GROUP BY {cols} HAVING count(*) > 1 ORDER BY 1 LIMIT 1"
    ).fetchone()
    if row is not None:
        _fail(label, f"duplicate {t.name} key ({cols}) = {', '.join(quoted(v) for v in row)}")


def _check_references(con, label: str, s: Mapping[str, str]) -> None:
    h, r, c, smp, p = (s[n] for n in ("hosts", "runs", "cases", "samples", "placements"))
    checks = [
        (
            f"SELECT host_id FROM {r} WHERE host_id IS NOT NULL "
            f"AND host_id NOT IN (SELECT host_id FROM {h}) ORDER BY 1 LIMIT 1",
            "a run refers to host {}, which is not in the bundle",
        ),
        (
            f"SELECT run_id FROM {c} WHERE run_id NOT IN (SELECT run_id FROM {r}) ORDER BY 1 LIMIT 1",
            "a case refers to run {}, which is not in the bundle",
        ),
        (
            f"SELECT case_id FROM {smp} WHERE case_id NOT IN (SELECT case_id FROM {c}) ORDER BY 1 LIMIT 1",
            "a sample refers to case {}, which is not in the bundle",
        ),
        (
            f"SELECT case_id FROM {p} WHERE case_id NOT IN (SELECT case_id FROM {c}) ORDER BY 1 LIMIT 1",
            "a placement refers to case {}, which is not in the bundle",
        ),
        *(
            (
                f"SELECT case_id FROM {s[t]} WHERE case_id NOT IN (SELECT case_id FROM {c}) "
                "ORDER BY 1 LIMIT 1",
                f"a row of {t} refers to case {{}}, which is not in the bundle",
            )
            for t in (t.name for t in CASE_TABLES)
            if t not in ("samples", "placements")  # named above in their own words
        ),
        (
            f"SELECT c.case_id FROM {c} c LEFT JOIN (SELECT case_id, count(*) AS n, "
            f"count(DISTINCT idx) AS d, min(idx) AS lo, max(idx) AS hi FROM {smp} "
            f"GROUP BY case_id) k USING (case_id) "
            f"WHERE coalesce(k.n, 0) <> c.n_samples OR coalesce(k.d, 0) <> c.n_samples "
            f"OR coalesce(k.lo, 0) <> 0 OR coalesce(k.hi, -1) <> c.n_samples - 1 ORDER BY 1 LIMIT 1",
            "case {}: n_samples does not match its samples (count or idx 0..n-1, each once)",
        ),
        (
            f"SELECT case_id FROM {c} WHERE case_id IN (SELECT case_id FROM cases) "
            f"AND run_id NOT IN (SELECT run_id FROM runs) ORDER BY 1 LIMIT 1",
            "case {} is already in the store under another run",
        ),
    ]
    _refuse_first(con, label, checks)


def check_same_runs(con, label: str, r: str, stored: str = "runs") -> None:
    """A run id names one run: a staged run whose id the store has must be that run (a
    push completes it with the cases it lacks), not another one under its id. Checked
    last, so that a run altered in transit is named by what was altered. stored: the
    store's runs (a copy of those of the staged ids, for import's scratch pass)."""
    differs = " OR ".join(f"x.{n} IS DISTINCT FROM y.{n}" for n in RUN_IDENTITY)
    _refuse_first(con, label, [(
        f"SELECT x.run_id FROM {r} x JOIN {stored} y USING (run_id) WHERE {differs} "
        "ORDER BY 1 LIMIT 1",
        "run {} is already in the store as another run (its host, start, spec, command "
        "or writer differ): a run id names one run, and its cases are that run's",
    )])  # fmt: skip


# What makes a run that run (origin and status are not: a pushed copy has its own
# origin, and a run may finish after it was pushed).
RUN_IDENTITY = (
    "started_at", "spec_name", "spec_sha256", "spec_yaml", "tool_version", "git_commit",
    "git_dirty", "host_id", "command", "writer_pid", "writer_hostname", "writer_machine_id",
)  # fmt: skip


def _check_ids_and_times(con, label: str, s: Mapping[str, str], now: dt.datetime) -> None:
    r, c = s["runs"], s["cases"]
    latest = now + CLOCK_SKEW
    checks = [
        (
            f"SELECT run_id FROM {r} WHERE left(run_id, 15) <> "
            f"strftime(started_at, '%Y%m%d-%H%M%S') ORDER BY 1 LIMIT 1",
            "run {}: its id does not start with its start time (YYYYmmdd-HHMMSS)",
        ),
        (
            f"SELECT case_id FROM {c} WHERE NOT starts_with(case_id, run_id || '-') ORDER BY 1 LIMIT 1",
            "case {}: its id does not start with its run's id",
        ),
        (
            f"SELECT run_id FROM {r} WHERE started_at > ?::TIMESTAMP "
            f"OR finished_at > ?::TIMESTAMP ORDER BY 1 LIMIT 1",
            "run {} is dated in the future (later than now + the clock skew allowed)",
        ),
        (
            f"SELECT case_id FROM {c} WHERE finished_at > ?::TIMESTAMP ORDER BY 1 LIMIT 1",
            "case {} is dated in the future (later than now + the clock skew allowed)",
        ),
        (
            f"SELECT run_id FROM {r} WHERE finished_at < started_at - INTERVAL 5 MINUTE ORDER BY 1 LIMIT 1",
            "run {} finished before it started",
        ),
    ]
    _refuse_first(con, label, checks, [latest, latest])


def _check_hosts(con, label: str, rel: str) -> None:
    cur = con.execute(f"SELECT * FROM {rel}")
    names = [d[0] for d in cur.description]
    for values in cur.fetchall():
        row = dict(zip(names, values, strict=True))
        if not derive.host_id_matches(row):
            _fail(
                label,
                f"host {quoted(row['host_id'])}: host_id is not the hash of the host's fields "
                "(a bundle cannot re-attribute runs to another host)",
            )


def _check_json_shapes(con, label: str, rel: str) -> None:
    checks = [
        (
            f"SELECT case_id FROM {rel} WHERE params IS NOT NULL "
            f"AND (json_type(params) <> 'OBJECT' OR len(list_filter(json_keys(params), "
            f"k -> NOT regexp_full_match(k, {sql_literal(PARAM_KEY)}))) > 0) ORDER BY 1 LIMIT 1",
            "case {}: params must map field paths (model.x, run.x) to values",
        ),
        (
            f"SELECT case_id FROM {rel} WHERE notes IS NOT NULL AND (json_type(notes) <> 'ARRAY' "
            f"OR len(list_filter(json_type(notes, '$[*]'), t -> t <> 'VARCHAR')) > 0) ORDER BY 1 LIMIT 1",
            "case {}: notes must be a list of strings",
        ),
    ]
    _refuse_first(con, label, checks)


def _check_specs(con, label: str, s: Mapping[str, str]) -> None:
    """spec_sha256, and the keys and published names derived from each run's spec: in
    SQL down to the distinct (spec, case, variant) claims, each checked once."""
    r, c = s["runs"], s["cases"]
    sql = (
        f"SELECT run_id FROM {r} WHERE spec_yaml IS NOT NULL "
        f"AND sha256(spec_yaml) IS DISTINCT FROM spec_sha256 ORDER BY 1 LIMIT 1"
    )  # a spec without its hash (NULL) is refused too: the hash is what runs pair by
    _refuse_first(con, label, [(sql, "run {}: spec_sha256 is not the hash of its spec text")])
    checker = derive.SpecChecker()
    runs = con.execute(
        f"SELECT any_value(spec_yaml), spec_name, min(run_id) FROM {r} "
        "WHERE spec_yaml IS NOT NULL GROUP BY sha256(spec_yaml), spec_name ORDER BY 3"
    ).fetchall()
    for text, spec_name, run_id in runs:  # `previous` finds runs by their spec's name
        problem = checker.check_spec_name(text, spec_name)
        if problem:
            _fail(label, printable(f"run {run_id}: {problem}"))
    published = ", ".join(sql_literal(m) for m in MODEL_WEIGHT_BYTES)
    claims = "c.case_index, c.case_key, c.variant_key, c.build_key, c.model_name, c.params, "
    claims += "c.model_family, c.concurrency, c.instances, c.backend, c.compute_units, "
    claims += "c.device, c.weight_bytes"
    cur = con.execute(
        f"SELECT any_value(r.spec_yaml), min(c.case_id), {claims} FROM {c} c "
        f"JOIN {r} r USING (run_id) WHERE r.spec_yaml IS NOT NULL OR c.model_name IN "
        f"({published}) GROUP BY sha256(r.spec_yaml), {claims} ORDER BY 2"
    )
    names = ["spec", "case_id", *(n.strip().removeprefix("c.") for n in claims.split(","))]
    for values in cur.fetchall():
        row = dict(zip(names, values, strict=True))
        problem = checker.check_run(row["spec"], [row])
        if problem:
            _fail(label, printable(problem))
