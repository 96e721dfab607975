"""The write API the runner calls. Each call opens the store, writes in ONE transaction
and closes it, so the file is never held across a benchmark (and other processes can
write between two cases)."""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import Iterable, Iterator, Mapping

import numpy as np

from anemll_spec import __version__
from anemll_spec.errors import InputError, RunFailed
from anemll_spec.machine_id import hostname, machine_id
from anemll_spec.store import extras, lake_target, schema
from anemll_spec.store.connection import default_target, describe_target, open_store
from anemll_spec.store.diagnose import unwritable
from anemll_spec.store.rows import (  # noqa: I001
    check_row,
    host_id,
    sample_columns,
    start_column,
    utc_now,
)
from anemll_spec.text import printable

RUN_MANAGED = (
    "run_id",
    "status",
    "finished_at",
    "host_id",
    "writer_pid",
    "writer_hostname",
    "writer_machine_id",
    "origin",
    "origin_ref",
    "origin_sha256",
    "origin_at",
)
FINAL_STATUSES = ("finished", "failed", "interrupted")


class StoreWriteFailed(RunFailed):
    """The store could not be written (disk full, a file size limit, an I/O error).

    The transaction is rolled back: nothing of that write is kept, and what earlier
    transactions committed stays (a bench keeps its finished cases). Exit status 1;
    import and export report it as bad input instead (exit 2)."""


@contextlib.contextmanager
def transaction(target, *, checkpoint: bool = False, **open_kw) -> Iterator:
    """An open writable connection inside BEGIN ... COMMIT (ROLLBACK on error), then closed.

    A failed write (duckdb.IOException: disk full, file too large) becomes ONE line,
    StoreWriteFailed; a rollback that fails because DuckDB already ended the transaction
    does not hide the first error. checkpoint: after the commit, merge the write-ahead
    log into a file store (finish_run: readers and copies of the file then replay
    nothing); a checkpoint that fails loses nothing (the log stays) and is not an error."""
    import duckdb

    con = open_store(target, **open_kw)
    committing = False
    try:
        con.execute("BEGIN")
        try:
            yield con
            committing = True  # a COMMIT that fails is a write that failed (WAL, disk)
            con.execute("COMMIT")
            if checkpoint and not lake_target.is_lake(default_target(target)):
                with contextlib.suppress(duckdb.Error):
                    con.execute("CHECKPOINT")
        except BaseException as exc:
            with contextlib.suppress(duckdb.Error):
                con.execute("ROLLBACK")
            if isinstance(exc, duckdb.IOException) or (
                committing and isinstance(exc, duckdb.Error)
            ):
                raise StoreWriteFailed(write_failure(target, exc)) from None
            raise
    finally:
        with contextlib.suppress(duckdb.Error):
            con.close()


def write_failure(target, exc: BaseException) -> str:
    """One line for a failed write: which file, DuckDB's reason, what was kept."""
    reason = (lake_target.redact(str(exc)).strip().splitlines() or [type(exc).__name__])[0]
    reason = reason.removeprefix("IO Error: ").removeprefix("TransactionContext Error: ")
    meaning = unwritable(reason)
    return (
        f"could not write the store {describe_target(target)}: {printable(reason)}"
        + (f" ({meaning})" if meaning else "")
        + "; this write was rolled back, earlier ones are kept"
    )


def new_run_id(now=None) -> str:
    now = now or utc_now()
    return f"{now:%Y%m%d-%H%M%S}-{secrets.token_hex(4)}"


def begin_run(target, run: Mapping, host: Mapping, *, lock_timeout_s: float | None = None) -> str:
    """Record a new run (status 'running') and its host; returns the run_id.

    `run` takes the columns of `runs` except the managed ones (run_id, status,
    finished_at, host_id, writer_*, origin*); started_at defaults to now, tool_version to
    this anemll-spec's. `host` takes the columns of `hosts` except host_id. The run's
    origin is 'measured' (here).
    Also marks this host's earlier runs whose process died as 'interrupted'.
    """
    host_row, hid, run_row = run_rows(run, host)
    with transaction(target, lock_timeout_s=lock_timeout_s) as con:
        mark_interrupted(con)
        insert_run(con, host_row, run_row)
    return run_row["run_id"]


def run_rows(run: Mapping, host: Mapping, run_id: str | None = None) -> tuple[dict, str, dict]:
    """(host row, host_id, run row) of a run measured here, checked: the run 'running',
    written by this process, origin 'measured'; started_at defaults to now, tool_version
    to this anemll-spec's, run_id to a new one (the fallback store gives the shared
    store's, so the run keeps its id)."""
    host_row = check_row(schema.HOSTS, host, managed=("host_id",), what="host")
    hid = host_id(host_row)
    values = dict(run)
    values.setdefault("started_at", utc_now())
    values.setdefault("tool_version", __version__)
    run_row = check_row(schema.RUNS, values, managed=RUN_MANAGED, what="run")
    run_row.update(
        run_id=run_id or new_run_id(run_row["started_at"]),
        status="running",
        finished_at=None,
        host_id=hid,
        writer_pid=os.getpid(),
        writer_hostname=hostname(),
        writer_machine_id=machine_id(),
        origin="measured",
        origin_ref=None,
        origin_sha256=None,
        origin_at=utc_now(),
    )
    return host_row, hid, run_row


def insert_run(con, host_row: Mapping, run_row: Mapping) -> None:
    """The run's host (unless stored) and the run (unless stored), in `con`'s transaction."""
    hid = run_row["host_id"]
    if con.execute("SELECT 1 FROM hosts WHERE host_id = ?", [hid]).fetchone() is None:
        _insert(con, "hosts", {"host_id": hid, **host_row})
    if con.execute("SELECT 1 FROM runs WHERE run_id = ?", [run_row["run_id"]]).fetchone() is None:
        _insert(con, "runs", run_row)


def append_case(
    target,
    run_id: str,
    case: Mapping,
    samples,
    placements: Iterable[Mapping] = (),
    *,
    starts_ns=None,
    sample_windows=None,
    rails: Iterable[Mapping] = (),
    power_samples=(),
    windows: Iterable[Mapping] = (),
    lock_timeout_s: float | None = None,
) -> str:
    """Store one finished case with all its rows in ONE transaction; returns the case_id.

    `case` takes exactly the columns of `cases` except case_id and run_id (unknown key:
    InputError; missing: NULL); n_samples defaults to len(samples) and must match it.
    `samples`: a 1-D sequence of wall_ns (ints), or an (n, 2) array of
    (wall_ns, runtime_ns) with NaN/None for a missing runtime_ns. numpy arrays are
    inserted in bulk (no per-row Python work).
    `placements`: dicts with the columns of `placements` except case_id; op_index
    defaults to the position in the sequence.
    `starts_ns`: when each call started (ns, any origin; the harness's starts_ns), so
    that drift, like every statistic, can be recomputed from the stored samples.
    Energy and sustained runs (schema v4; store/energy.py makes all of these from the
    power readers' and sustained.py's results):
    `sample_windows`: each sample's sustained window index (ints, one per sample).
    `rails`: dicts with the columns of `case_energy_rails` except case_id.
    `power_samples`: dicts (or a mapping of columns) with t_s, rail, watts, and
    optionally part, window_index, idx (default: the position).
    `windows`: dicts with the columns of `sustained_windows` except case_id.
    Figures derived from others are filled when left out and checked when given
    (store/extras.py); the rows are held to the import's checks before the commit.
    """
    wall, runtime, runtime_ok = sample_columns(samples)
    starts = start_column(starts_ns, len(wall))
    values = dict(case)
    if values.get("n_samples") is None:
        values["n_samples"] = len(wall)
    values.setdefault("finished_at", utc_now())
    extras.fill_case(values)
    row = check_row(schema.CASES, values, managed=("case_id", "run_id"), what="case")
    if row["n_samples"] != len(wall):
        raise InputError(f"case: n_samples = {row['n_samples']} but {len(wall)} samples given")
    plc = [
        check_row(
            schema.PLACEMENTS,
            {"op_index": i, **p},
            managed=("case_id",),
            what=f"placement {i}",
        )
        for i, p in enumerate(placements)
    ]
    more = extras.prepare(row, wall, sample_windows, rails, power_samples, windows)
    v4 = not more.empty or any(row[c] is not None for c in V4_CASE_COLUMNS)
    case_id = f"{run_id}-{secrets.token_hex(4)}"
    with transaction(target, lock_timeout_s=lock_timeout_s) as con:
        _require_run(con, run_id)
        _insert(con, "cases", {"case_id": case_id, "run_id": run_id, **row})
        registered: list[str] = []
        try:
            if len(wall):
                registered.append("_anemll_samples")
                _insert_samples(con, case_id, wall, runtime, runtime_ok, starts, more)
            if plc:
                _insert_placements(con, case_id, plc)
            if v4:
                samples_rel = (
                    f"(SELECT '{case_id}' AS case_id, idx, wall_ns, "
                    f"{'window_index' if more.sample_windows is not None else 'NULL::INTEGER'}"
                    " AS window_index FROM _anemll_samples)"
                    if len(wall)
                    else "(SELECT * FROM samples WHERE false)"
                )
                registered += extras.insert(
                    con, case_id, more, samples_rel, {"run_id": run_id, **row}
                )
        finally:
            for name in registered:
                con.unregister(name)
    return case_id


# cases columns whose presence means the case is held to energy_checks on write
V4_CASE_COLUMNS = tuple(
    c.name
    for c in schema.CASES.columns
    if c.name.startswith(("energy_", "power_w", "sustained_")) or c.name == "instances"
)


def _insert_samples(con, case_id, wall, runtime, runtime_ok, starts, more) -> None:
    """The samples from numpy, in bulk; `_anemll_samples` stays registered (the caller's
    checks read it) until the caller unregisters it."""
    columns = {
        "idx": np.arange(len(wall), dtype=np.int32),
        "wall_ns": wall,
        "runtime_ns": runtime,
        "runtime_ok": runtime_ok,
    }
    if starts is not None:
        columns["start_ns"] = starts
    if more.sample_windows is not None:
        columns["window_index"] = more.sample_windows
    con.register("_anemll_samples", columns)
    start = "start_ns" if starts is not None else "NULL"
    window = "window_index" if more.sample_windows is not None else "NULL"
    con.execute(
        "INSERT INTO samples (case_id, idx, wall_ns, runtime_ns, start_ns, window_index) "
        "SELECT ?, idx, wall_ns, CASE WHEN runtime_ok THEN runtime_ns END, "
        f"{start}, {window} FROM _anemll_samples",
        [case_id],
    )


def _insert_placements(con, case_id: str, plc: list[dict]) -> None:
    extras.insert_rows(con, schema.PLACEMENTS, case_id, plc)  # check_row gave every column


def finish_run(target, run_id: str, status: str, *, lock_timeout_s: float | None = None) -> None:
    """Close a run: 'finished' | 'failed' | 'interrupted'."""
    if status not in FINAL_STATUSES:
        raise InputError(f"finish_run: status {status!r} is not one of {', '.join(FINAL_STATUSES)}")
    with transaction(target, lock_timeout_s=lock_timeout_s, checkpoint=True) as con:
        _require_run(con, run_id)
        con.execute(
            "UPDATE runs SET status = ?, finished_at = ? WHERE run_id = ?",
            [status, utc_now(), run_id],
        )


def mark_interrupted(con) -> list[str]:
    """Runs of this machine still 'running' whose writer process is gone -> 'interrupted'.

    A process counts as gone when its pid does not exist or was started after the run
    (pid reuse). Runs written elsewhere are left alone (their pids mean nothing here):
    elsewhere is another hostname, or the same hostname on another machine (another
    `writer_machine_id`; a run without one, from before v5 or a machine without an id, is
    matched by hostname alone). So are runs imported or pulled from another store, whatever host
    wrote them: an exported run that was still running may be running yet, and its bundle
    says so. finished_at becomes the time of the run's last case (or its start): how a
    push tells such a run from one its writer interrupted (sync.MARKED_INTERRUPTED).
    """
    import psutil

    rows = con.execute(
        "SELECT run_id, writer_pid, epoch(started_at) FROM runs "
        "WHERE status = 'running' AND writer_hostname = ? AND writer_pid IS NOT NULL "
        "AND (writer_machine_id IS NULL OR writer_machine_id = ?) "
        "AND coalesce(origin, 'measured') = 'measured'",  # NULL: before v3, measured
        [hostname(), machine_id()],
    ).fetchall()
    dead = [run_id for run_id, pid, started in rows if not _alive(pid, started, psutil)]
    for run_id in dead:
        con.execute(
            "UPDATE runs SET status = 'interrupted', finished_at = coalesce("
            "(SELECT max(finished_at) FROM cases WHERE run_id = ?), started_at) "
            "WHERE run_id = ?",
            [run_id, run_id],
        )
    return dead


def _alive(pid: int, started_epoch: float, psutil) -> bool:
    try:
        proc = psutil.Process(pid)
        return proc.create_time() <= started_epoch + 1.0 and proc.status() != "zombie"
    except (psutil.NoSuchProcess, psutil.ZombieProcess):
        return False
    except psutil.AccessDenied:  # exists, someone else's: assume it is the writer
        return True


def _require_run(con, run_id: str) -> None:
    if con.execute("SELECT 1 FROM runs WHERE run_id = ?", [run_id]).fetchone() is None:
        raise InputError(f"no run {run_id!r} in the store")


def _insert(con, table: str, row: Mapping) -> None:
    cols = list(row)
    con.execute(
        f"INSERT INTO {table} ({', '.join(cols)}) VALUES ({', '.join('?' * len(cols))})",
        [row[c] for c in cols],
    )
