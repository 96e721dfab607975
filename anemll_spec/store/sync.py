"""push / pull: copy runs between two stores (a local file and a shared DuckLake, or any
two), checked exactly like `import`, all or nothing, and idempotent.

The runs travel as a results bundle (export), so they pass the very checks an imported
bundle passes (`bundle.stage`, which import calls too). Then they are merged
by id: a run, case or host already in the destination is never added twice, and a run
present on both sides gains the cases it lacks, and its newer status ('running' <
'interrupted' < 'finished'/'failed'). So a bench that fell back to the local store in
mid-run (its shared store unreachable) is completed by a later push, and pushing twice
adds nothing. On a shared store the merge `claim`s the lake: two pushes of the same run
at once conflict in DuckLake, and the loser is retried and then finds the run there.
"""

from __future__ import annotations

import contextlib
import os
import random
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from anemll_spec.errors import InputError
from anemll_spec.store import lake, lake_target, schema
from anemll_spec.store.connection import ENV_STORE, default_target, open_store, store_path

ATTEMPTS = 30


def _same_file(a: str, b: str) -> bool:
    """Two spellings of one file store (./x.duckdb and /abs/x.duckdb)."""
    if lake_target.is_lake(a) or lake_target.is_lake(b):
        return False
    try:
        return store_path(a).resolve() == store_path(b).resolve()
    except (InputError, OSError):
        return False


def copy_runs(source, dest, run_refs: Sequence[str] = ()) -> dict:
    """Copy the runs `run_refs` (all when empty) from `source` into `dest`.

    Runs entering a shared store are stamped origin 'pushed' (by this host); runs
    entering a local store from a shared one, 'imported' from it (its redacted name)."""
    from anemll_spec.machine_id import hostname
    from anemll_spec.store.bundle import read_header
    from anemll_spec.store.exporting import export_bundle
    from anemll_spec.store.importing import check_in_scratch, forget_created, not_made
    from anemll_spec.store.trust import Origin

    src, dst = default_target(source), default_target(dest)
    if src == dst or _same_file(src, dst):
        unnamed = "--store" if source is None or dest is None else None
        raise InputError(
            "the source and destination are the same store"
            + (
                f" ({unnamed} defaults to ${ENV_STORE}: name the local file with --store)"
                if unnamed and os.environ.get(ENV_STORE)
                else ""
            )
        )
    if not lake_target.is_lake(src) and not store_path(src).is_file():  # not --store's hint
        raise InputError(f"no results store at {store_path(src)} to copy runs from")
    if lake_target.is_lake(dst):
        origin = Origin("pushed", ref=hostname())
    else:
        origin = Origin("imported", ref=lake_target.redact(src)[-200:])
    created = None if lake_target.is_lake(dst) else not_made(store_path(dst))
    label = lake_target.redact(src)
    with tempfile.TemporaryDirectory(prefix="anemll-sync-") as tmp:
        path = Path(tmp) / "runs.parquet"
        exported = export_bundle(src, path, run_refs)
        header = read_header(path, name=label)  # a refusal names the store, not the temp file
        try:
            # checked before the destination is opened for writing, which would upgrade an
            # older one (a teammate still on that version is then locked out) even where
            # the copy is refused; and the statistics are recomputed without its lock
            check_in_scratch(
                [path], [header], None if created else dst, label=label, origin=origin,
                measured_here=False,
            )  # fmt: skip
            counts = _merge(dst, path, header, origin, label=label)
        except BaseException:
            forget_created(created)  # a pull refused: no empty store left behind
            raise
    return {"runs": exported["runs"], **counts}


def _merge(dest: str, path: Path, header: dict, origin, label: str) -> dict:
    """Stage the bundle (the very checks of `import`, its statistics already recomputed
    in scratch by copy_runs) and merge it, in one transaction; on a shared store, claimed
    and retried when another writer won."""
    import duckdb

    from anemll_spec.store.bundle import stage

    shared = lake_target.is_lake(dest)
    shown = lake_target.redact(dest)
    parsed = lake_target.parse_target(dest) if shared else None  # named <catalog>
    for attempt in range(ATTEMPTS):
        try:
            con = open_store(dest)
        except lake.StoreUnreachable as exc:  # an earlier attempt was rolled back
            raise lake.StoreUnreachable(f"{exc}; nothing written") if attempt else exc from None
        try:
            con.execute("BEGIN")
            if shared:
                lake.claim(con)
            # our own temporary file, checked whole in scratch: not recomputed, nor hashed
            # again (stage_file's guards are for files someone else may change meanwhile)
            staged = stage(con, "_imp0", path, header, label=label, origin=origin, recomputed=True)[
                "staged"
            ]
            counts = _insert(con, staged)
            con.execute("COMMIT")
        except duckdb.TransactionException as exc:
            lake._rollback(con)
            gone = lake.lost_catalog(con, exc) if shared else None  # not a conflict
            if gone is not None:
                raise lake.failed(
                    shown, gone, " during the copy", "; nothing written", parsed
                ) from None
            if not shared or attempt == ATTEMPTS - 1:
                raise InputError(
                    f"could not write to {shown}: other writers kept conflicting; nothing written"
                ) from None
            time.sleep(0.05 * (1 + random.random()) * min(attempt + 1, 10))
        except duckdb.Error as exc:
            lake._rollback(con)
            if lake.transient(exc):
                raise lake.failed(
                    shown, exc, " during the copy", "; nothing written", parsed
                ) from None
            msg = lake._message(exc, parsed)
            raise InputError(f"copy into {shown} failed, nothing written: {msg}") from None
        except BaseException:
            lake._rollback(con)
            raise
        else:  # committed: nothing below may say "nothing written"
            if not shared:  # into the file, as import does: a copy of it alone is whole
                with contextlib.suppress(duckdb.Error):  # (what pull added sat in the .wal)
                    con.execute("CHECKPOINT")
            warning = lake.tidy_hosts(con) if shared else None
            return {**counts, **({"warning": warning} if warning else {})}
        finally:
            con.close()
    raise AssertionError("unreachable")


# A run writer.mark_interrupted closed, not its writer: its finished_at is its last
# case's, or its start (a writer's own finish_run sets the time after its last case).
_LAST_CASE = "(SELECT max(c.finished_at) FROM cases c WHERE c.run_id = runs.run_id)"
MARKED_INTERRUPTED = (
    "status = 'interrupted' AND finished_at IS NOT DISTINCT FROM "
    f"coalesce({_LAST_CASE}, started_at)"
)


def _insert(con, staged: dict[str, str]) -> dict:
    """Merge the staged tables into the store; returns rows added per table."""
    from anemll_spec.store.bundle import advance_status, copy_rows

    h, r, c = (staged[t] for t in ("hosts", "runs", "cases"))

    def copy(table: schema.Table, src: str, where: str) -> int:
        return copy_rows(con, table, src, where)

    con.execute(
        f"CREATE TEMP TABLE _new_cases AS SELECT case_id FROM {c} "
        f"WHERE case_id NOT IN (SELECT case_id FROM cases)"
    )
    new_cases = "WHERE case_id IN (SELECT case_id FROM _new_cases)"
    # a run measured in this store keeps the status its writer gave it; one it left
    # 'running' (its store was locked or its server lost, and the run went on in a store
    # of its own) takes a later, also once a later bench here marked it 'interrupted'
    # (writer.mark_interrupted, its pid having exited), which it tells by finished_at:
    # its last case's (or its start), where a writer's own finish_run sets the time after
    con.execute(f"CREATE TEMP TABLE _marked AS SELECT run_id FROM runs WHERE {MARKED_INTERRUPTED}")
    updated = advance_status(
        con,
        f"(SELECT * FROM {r} WHERE run_id NOT IN (SELECT run_id FROM runs "
        "WHERE coalesce(origin, 'measured') = 'measured' AND status <> 'running' "
        f"AND NOT ({MARKED_INTERRUPTED})))",
    )
    counts = {
        "hosts_added": copy(schema.HOSTS, h, "WHERE host_id NOT IN (SELECT host_id FROM hosts)"),
        "runs_added": copy(schema.RUNS, r, "WHERE run_id NOT IN (SELECT run_id FROM runs)"),
        "cases_added": copy(schema.CASES, c, new_cases),
        **{f"{t.name}_added": copy(t, staged[t.name], new_cases) for t in schema.CASE_TABLES},
    }
    # a run marked interrupted here ends at its last case: with later cases pushed into it
    # (its copy elsewhere still 'running'), its finish moves to theirs, so it stays one a
    # later push can tell as marked (MARKED_INTERRUPTED), not one its writer ended
    (moved,) = con.execute(
        f"UPDATE runs SET finished_at = {_LAST_CASE} WHERE run_id IN (SELECT run_id FROM "
        f"_marked) AND status = 'interrupted' AND {_LAST_CASE} > finished_at"
    ).fetchone()
    return {**counts, "runs_updated": int(updated) + int(moved)}
