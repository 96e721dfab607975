"""Import: bundles into a store, all or nothing, held to the trust boundary first.

Every file is checked from its metadata (bundle.read_header), then staged in temp tables
and checked (bundle.stage -> trust.check_staged), and only then written, all bundles in
one transaction. The checks run first in an in-memory scratch store (push and pull
too), without the store's write lock and before a writing open could upgrade an older
store that the bundle then fails. Bundles merge as pull does: a run already in the store
gains only the cases it lacks and a later status, so importing twice changes nothing,
and a run measured in the store takes neither. Each bundle's runs are held to one run per
id against the store as the earlier bundles of the same import left it. Into a shared store (DuckLake) the
transaction `claim`s the lake right after BEGIN, as push/pull do: two imports of one
bundle at once conflict at COMMIT, and the loser is retried and finds the winner's rows
(no run is added twice).
"""

from __future__ import annotations

import contextlib
import os
import random
import stat
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import duckdb

from anemll_spec.errors import InputError
from anemll_spec.store import lake, lake_target, schema
from anemll_spec.store.bundle import (
    advance_status,
    copy_rows,
    file_sha256,
    first_line,
    read_header,
    stage,
)
from anemll_spec.store.connection import open_store, store_path
from anemll_spec.store.diagnose import cannot_open, locked_by_another
from anemll_spec.store.prepare import check_not_newer, read_version
from anemll_spec.store.schema import LONG_NAME, Table
from anemll_spec.store.trust import Origin, check_same_runs
from anemll_spec.text import printable, quoted

ATTEMPTS = 30  # a shared store: commits that conflict with another claiming writer


def import_bundles(target, paths: Sequence[str | os.PathLike]) -> list[dict]:
    """Import bundles (all or nothing); returns per-file summaries."""
    files = [Path(p) for p in paths]
    headers = [read_header(p) for p in files]  # every file, before the store is touched
    shared = lake_target.is_lake(str(target)) if target is not None else False
    path = store_path(target)
    created = None if shared else not_made(path)
    # without the store's lock (a bench may write meanwhile), and a refused import leaves
    # an older store un-upgraded (a file store with no .wal; a shared one still usable by
    # teammates on the older version)
    checked = check_in_scratch(files, headers, target if shared else None if created else path)
    for attempt in range(ATTEMPTS):
        try:
            return _import_once(target, files, headers, shared, checked)
        except duckdb.TransactionException as exc:
            if shared and attempt < ATTEMPTS - 1:  # lost the claim: look again
                time.sleep(0.05 * (1 + random.random()) * min(attempt + 1, 10))
                continue
            forget_created(created)
            raise _failed(target, shared, exc) from None
        except BaseException as exc:
            forget_created(created)
            if isinstance(exc, duckdb.Error):
                raise _failed(target, shared, exc) from None
            raise
    raise AssertionError("unreachable")


@dataclass(frozen=True)
class NotMade:
    """A store path with no store yet: nothing there, or an empty file (`touch`ed, or
    left by a full disk), which opening makes a store of."""

    path: Path
    empty_mode: int | None  # the empty file's permissions; None: there was no file


def not_made(path: Path) -> NotMade | None:
    """What a failed import or pull must leave at `path` (None: a store is there)."""
    try:
        st = path.stat()
    except FileNotFoundError:
        return NotMade(path, None)
    except OSError:
        return None
    if stat.S_ISREG(st.st_mode) and st.st_size == 0:
        return NotMade(path, stat.S_IMODE(st.st_mode))
    return None


def forget_created(created: NotMade | None) -> None:
    """A store made only for this import (or pull) goes with it, and an empty file that
    was there is left empty, not a store with no runs: nothing written."""
    if created is None or _holds_runs(created.path):
        return
    path = created.path
    for f in (path, path.with_name(path.name + ".wal")):
        with contextlib.suppress(FileNotFoundError, NotADirectoryError):  # never made
            f.unlink()
    if created.empty_mode is not None:
        with contextlib.suppress(OSError):
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, created.empty_mode)
            os.close(fd)


def _holds_runs(path: Path) -> bool:
    """Whether another process (a bench started meanwhile) made a store here and wrote runs
    to it: then it is theirs, not ours to remove. Locked by a writer: kept too; a file
    DuckDB cannot read (what a full disk left of ours) is not a store with runs."""
    try:
        if not path.is_file() or path.stat().st_size == 0:
            return False
        con = duckdb.connect(str(path), read_only=True)
    except OSError:
        return True
    except duckdb.Error:  # held by a writer (asked of the OS: DuckDB's word for a damaged
        return locked_by_another(path, write=False)  # block holds "lock" too), or damaged
    try:
        (n,) = con.execute("SELECT count(*) FROM runs").fetchone() or (0,)
        return n > 0
    except duckdb.Error:
        return False  # no runs table: only the header of a store this process began
    finally:
        con.close()


def _import_once(
    target, files: list[Path], headers: list[dict], shared: bool, checked: list[str]
) -> list[dict]:
    """checked: each file's sha256 when its rows passed the trust checks in scratch."""
    con = open_store(target)
    try:
        con.execute("SET enable_progress_bar = false")  # long scans must not draw on stderr
        con.execute("BEGIN")
        try:
            if shared:
                lake.claim(con)
            staged = [
                stage_file(con, i, p, h, checked[i])
                for i, (p, h) in enumerate(zip(files, headers, strict=True))
            ]
            summaries = [
                _insert(con, i, p, s) for i, (p, s) in enumerate(zip(files, staged, strict=True))
            ]
            con.execute("COMMIT")
        except BaseException as exc:
            lake._rollback(con)
            gone = (
                lake.lost_catalog(con, exc)
                if shared and isinstance(exc, duckdb.TransactionException)
                else None
            )
            if gone is not None:  # not a conflict to retry: the store's failure
                raise _failed(target, shared, gone) from None
            raise
        if not shared:  # into the file, as finish_run does: a copy of it alone is whole
            with contextlib.suppress(duckdb.Error):
                con.execute("CHECKPOINT")
        warning = lake.tidy_hosts(con) if shared else None
        if warning:
            summaries = [{**s, "warning": warning} for s in summaries]
    finally:
        with contextlib.suppress(duckdb.Error):
            con.close()
    return summaries


def _failed(target, shared: bool, exc: BaseException) -> Exception:
    """The error of an import the store refused: a shared store's failure (its server
    went away) is the store's, exit 1; a file store's write is reported as bad input."""
    if shared:
        shown = lake_target.redact(str(target))
        return lake.failed(shown, exc, " during the import", "; nothing written")
    return InputError(f"import failed, nothing written: {printable(first_line(exc))}")


def check_in_scratch(
    files: list[Path],
    headers: list[dict],
    store: str | Path | None,
    *,
    label: str | None = None,
    origin: Origin | None = None,
    measured_here: bool = True,
) -> list[str]:
    """Every bundle staged and held to the trust boundary in an empty in-memory store,
    before the store is opened for writing (import, push and pull): a bad bundle is
    refused while an older store is still as it was (not upgraded), and the costly part
    (every statistic recomputed from its samples) runs without the store's write lock,
    which a bench started meanwhile waits for. What the store itself refuses (a case id
    it holds under another run, a run of the same id that is another run, cases added to
    a run measured there) is checked here against `store` opened read-only (None: no
    store yet), and again in the writing transaction (the store may change in between).
    label/origin: as stage_file's; measured_here: refuse cases for a run measured in the
    store (import; a push completes such a run). Returns each file's sha256 as checked."""
    con = duckdb.connect()
    try:
        for table in schema.TABLES:
            con.execute(schema.create_table_sql(table))
        staged = [
            stage_file(con, i, p, h, label=label, origin=origin)
            for i, (p, h) in enumerate(zip(files, headers, strict=True))
        ]
        stored = None if store is None else _read_store(con, store, [s["staged"] for s in staged])
        if stored is not None:
            staged_tables = [s["staged"] for s in staged]
            _check_against_store(con, stored, files, staged_tables, label, measured_here)
        return [s["sha256"] for s in staged]
    finally:
        con.close()


def _read_store(con, store: str | Path, staged: list[dict]) -> tuple[list, list, list] | None:
    """The store's runs and cases of the staged ids, read from a read-only open
    (check=False: an older store is read as it is, its missing columns NULL, as upgrading
    it would make them): (run columns, runs, (case_id, run_id) rows). None where a shared
    store cannot be read so (not made yet): the writing transaction checks it all."""
    # (no Python local may be named like a table: DuckDB would scan it in place of one)
    run_sql = " UNION ALL ".join(f"SELECT run_id FROM {s['runs']}" for s in staged)
    case_sql = " UNION ALL ".join(f"SELECT case_id FROM {s['cases']}" for s in staged)
    run_ids = [r for (r,) in con.execute(f"SELECT DISTINCT run_id FROM ({run_sql})").fetchall()]
    case_ids = [c for (c,) in con.execute(f"SELECT DISTINCT case_id FROM ({case_sql})").fetchall()]
    shared = lake_target.is_lake(str(store))
    try:
        src = open_store(store, read_only=True, check=False)
    except lake.StoreUnreachable:
        raise
    except (InputError, duckdb.Error):
        if shared:
            return None
        raise
    try:
        if not shared:  # a results store (not another database), not newer than this code
            version = read_version(src, store)
            if version is None:  # an empty database: no store yet
                return None
            check_not_newer(version, store)
        have = {d[0] for d in src.execute("SELECT * FROM runs LIMIT 0").description}
        cols = [c for c in schema.RUNS.names if c in have]
        wanted = "IN (SELECT unnest(?::VARCHAR[]))"
        cur = src.execute(f"SELECT {', '.join(cols)} FROM runs WHERE run_id {wanted}", [run_ids])
        stored_runs = cur.fetchall()
        cur = src.execute(f"SELECT case_id, run_id FROM cases WHERE case_id {wanted}", [case_ids])
        stored_cases = cur.fetchall()
    except duckdb.Error as exc:
        if shared and not lake.transient(exc):  # a lake with no tables yet
            return None
        if shared:
            at = lake_target.parse_target(str(store))
            raise lake.failed(at.shown, exc, " as it was read", "; nothing written", at) from None
        raise cannot_open(store, exc) from None
    finally:
        src.close()
    return cols, stored_runs, stored_cases


def _check_against_store(
    con,
    stored: tuple[list, list, list],
    files: list[Path],
    staged: list[dict],
    label: str | None,
    measured_here: bool,
) -> None:
    """The staged bundles against the store's runs and cases of the same ids (_read_store)."""
    cols, stored_runs, stored_cases = stored
    con.execute("CREATE TEMP TABLE _store_runs AS SELECT * FROM runs LIMIT 0")
    if stored_runs:
        marks = ", ".join("?" * len(cols))
        con.executemany(
            f"INSERT INTO _store_runs ({', '.join(cols)}) VALUES ({marks})", stored_runs
        )
    con.execute("CREATE TEMP TABLE _store_cases (case_id VARCHAR, run_id VARCHAR)")
    if stored_cases:
        con.executemany("INSERT INTO _store_cases VALUES (?, ?)", stored_cases)
    for path, s in zip(files, staged, strict=True):
        c, where = s["cases"], label or str(path)
        clash = con.execute(
            f"SELECT x.case_id FROM {c} x JOIN _store_cases y USING (case_id) "
            "WHERE x.run_id NOT IN (SELECT run_id FROM _store_runs) ORDER BY 1 LIMIT 1"
        ).fetchone()
        if clash is not None:
            raise InputError(
                f"{where}: case {quoted(clash[0])} is already in the store under another run"
            )
        check_same_runs(con, where, s["runs"], stored="_store_runs")
        if measured_here:
            _refuse_measured_here(con, where, c, "_store_runs", "_store_cases")


def stage_file(
    con,
    i: int,
    path: Path,
    header: dict,
    checked: str | None = None,
    *,
    label: str | None = None,
    origin: Origin | None = None,
) -> dict:
    """One bundle staged (as `_imp<i>_*`) and checked; `checked`: its sha256 when the
    same file passed every check in scratch (so its statistics are not recomputed again:
    see check_staged). label: what errors name (default: the file); origin: what its runs
    are stamped (default: imported from this file)."""
    where = label or str(path)
    sha256 = file_sha256(path)
    if checked is not None and sha256 != checked:
        raise InputError(f"{where}: the file changed while it was imported; nothing written")
    if origin is None:
        origin = Origin("imported", ref=printable(path.name)[:LONG_NAME], sha256=sha256)
    result = stage(
        con, f"_imp{i}", path, header, label=where, origin=origin,
        recomputed=checked is not None,
    )  # fmt: skip
    if checked is not None and file_sha256(path) != checked:  # changed while read
        raise InputError(f"{where}: the file changed while it was imported; nothing written")
    return {"counts": header["counts"], "version": header["version"], "sha256": sha256, **result}


def _refuse_measured_here(con, path: Path | str, cases: str, runs: str, known: str) -> None:
    """A run measured in this store (`runs`; origin NULL: stored before v3, when only
    measuring wrote runs) takes no case from a file that `known` lacks: it would count as
    measured here."""
    own = con.execute(
        f"SELECT x.run_id FROM {cases} x JOIN {runs} s USING (run_id) "
        "WHERE coalesce(s.origin, 'measured') = 'measured' "
        f"AND x.case_id NOT IN (SELECT case_id FROM {known}) ORDER BY 1 LIMIT 1"
    ).fetchone()
    if own is not None:
        raise InputError(
            f"{path}: run {own[0]} was measured in this store; a bundle cannot add cases to "
            "it (they would count as measured here)"
        )


def _insert(con, i: int, path: Path, staged: dict) -> dict:
    """Merge one staged bundle, as `pull` merges: new runs come whole, and a run the store
    holds gains the cases it lacks and its later status (a bundle exported while the run
    was still running, then again when it finished)."""
    h, r, c = (staged["staged"][n] for n in ("hosts", "runs", "cases"))
    new_runs = "WHERE run_id NOT IN (SELECT run_id FROM runs)"
    (added,) = con.execute(f"SELECT count(*) FROM {r} {new_runs}").fetchone()
    (total,) = con.execute(f"SELECT count(*) FROM {r}").fetchone()

    def copy(table: Table, src: str, where: str) -> int:
        return copy_rows(con, table, src, where)

    # _stage checked against the store as it was; an earlier bundle of this same import
    # may have added a case id since, under another run (the writers keep ids unique)
    clash = con.execute(
        f"SELECT x.case_id FROM {c} x JOIN cases s USING (case_id) "
        "WHERE s.run_id <> x.run_id ORDER BY 1 LIMIT 1"
    ).fetchone()
    if clash is not None:
        raise InputError(f"{path}: case {clash[0]!r} is already in another bundle of this import")
    check_same_runs(con, str(path), r)  # against the runs an earlier bundle just added too
    _refuse_measured_here(con, path, c, "runs", "cases")
    new = f"_imp{i}_new_cases"
    con.execute(
        f"CREATE TEMP TABLE {new} AS SELECT case_id FROM {c} "
        "WHERE case_id NOT IN (SELECT case_id FROM cases)"
    )
    case_filter = f"WHERE case_id IN (SELECT case_id FROM {new})"
    # a later status, but never for a run measured here: its own writer decides it (an
    # interrupted run is not made 'finished' by a file)
    updated = advance_status(
        con,
        f"(SELECT * FROM {r} WHERE run_id NOT IN (SELECT run_id FROM runs "
        "WHERE coalesce(origin, 'measured') = 'measured'))",
    )
    # a run completed from this bundle names it (its provenance is per run, not per case)
    con.execute(
        f"UPDATE runs SET origin_ref = x.origin_ref, origin_sha256 = x.origin_sha256, "
        f"origin_at = x.origin_at FROM {r} x WHERE runs.run_id = x.run_id "
        f"AND runs.run_id IN (SELECT run_id FROM {c} WHERE case_id IN (SELECT case_id FROM {new}))"
    )
    counts = {
        "hosts": copy(
            schema.HOSTS,
            h,
            f"WHERE host_id NOT IN (SELECT host_id FROM hosts) AND host_id IN "
            f"(SELECT host_id FROM {r} {new_runs})",
        ),
        "runs": copy(schema.RUNS, r, new_runs),
        "cases": copy(schema.CASES, c, case_filter),
        **{t.name: copy(t, staged["staged"][t.name], case_filter) for t in schema.CASE_TABLES},
    }
    return {
        "file": str(path),
        "schema_version": staged["version"],
        "runs_added": int(added),
        "runs_skipped": int(total - added),
        "runs_updated": int(updated),
        "rows": counts,
        "drift_slope_dropped": staged["drift_slope_dropped"],
    }
