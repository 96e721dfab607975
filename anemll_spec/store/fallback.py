"""The runner's writes to a shared store, which must never lose a measured case.

`BenchStore(target)` offers the write API's three calls with the same signatures
(begin_run, append_case, finish_run: the `target` argument is ignored). On a DuckDB
file they are the write API itself. On a shared store (ducklake:...) each call is
retried while the catalog is unreachable or a commit conflicts, for the store timeout
($ANEMLL_SPEC_STORE_LOCK_TIMEOUT_S, 60 s); a retry first looks whether the failed
attempt did commit (a lost acknowledgement), so a case lands once. When the shared
store stays unreachable, the run moves to the local store (same run id, same host) and
every later case goes there; `message` then says how to push the run when the shared
store is back (`anemll-spec push`, which adds the missing cases to the run already
there). A DuckDB file that stays locked by another process (a writer, or a reader such
as an open `duckdb` session) past the timeout is treated alike: the rest of the run goes
to a store file of its own beside it (`<store>.run-<run id>.duckdb`), to be pushed once
the store is free. Passwords in the target or the command line are never stored or shown.
"""

from __future__ import annotations

import os
import shlex
import sys
import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path

from anemll_spec.errors import AnemllError, InputError
from anemll_spec.machine_id import hostname, machine_id
from anemll_spec.store import lake, lake_target, writer
from anemll_spec.store.connection import (
    DEFAULT_PATH,
    StoreLocked,
    default_target,
    lock_timeout,
    open_store,
)
from anemll_spec.store.rows import utc_now
from anemll_spec.text import path_word

ENV_FALLBACK = "ANEMLL_SPEC_FALLBACK_STORE"


def _check_fallback(local: str, named: bool) -> None:
    """The local store a shared store's run moves to when its server is lost must take it:
    found unwritable only then (a name DuckDB cannot take, a folder this process cannot
    write), the case just measured and the rest of the run were lost, exit 2."""
    import tempfile

    from anemll_spec.store.connection import store_path, utf8_name

    utf8_name(local, f"fallback store (${ENV_FALLBACK})" if named else "fallback store")
    where = f"(${ENV_FALLBACK}) {lake_target.redact(local)}" if named else local
    fix = f"set ${ENV_FALLBACK} to a file in a writable folder"
    if lake_target.is_lake(local):  # the run would "fall back" into a lost server
        raise InputError(
            f"fallback store {where}: a shared store; a run moves there when the shared "
            f"store becomes unreachable, so it must be a local file: {fix}"
        )
    path = store_path(local)
    if path.exists():
        ok, why = path.is_file() and os.access(path, os.W_OK), "not a writable file"
    else:
        at = path.absolute().parent
        while not at.exists() and at != at.parent:
            at = at.parent
        try:  # a real probe: root passes access() checks that the file system refuses
            Path(tempfile.mkdtemp(prefix=".tmp-probe-", dir=at)).rmdir()
            ok, why = True, ""
        except OSError as exc:
            ok, why = False, f"cannot write in {at} ({exc.strerror or exc})"
    if not ok:
        raise InputError(
            f"fallback store {where}: {why}; a run moves there if the shared store becomes "
            f"unreachable, and would be lost: {fix}"
        )


def _stderr(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


class BenchStore:
    def __init__(
        self,
        target: str | None = None,
        *,
        local: str | None = None,
        note: Callable[[str], None] = _stderr,
        timeout_s: float | None = None,
    ):
        self.target = default_target(target)
        self.shared = lake_target.is_lake(self.target)
        # a shared store's fallback; a locked file's is a file of the run's own (_fall_back)
        self.local = local or os.environ.get(ENV_FALLBACK) or DEFAULT_PATH
        if self.shared:  # where a lost server's run goes: checked before anything is measured
            _check_fallback(self.local, named=not local and bool(os.environ.get(ENV_FALLBACK)))
        self.note = note
        self.timeout = lock_timeout(timeout_s)
        self.fell_back: str | None = None  # why the run moved to the local store
        self._run: dict | None = None
        self._host: dict | None = None
        self._moved: set[str] = set()

    # ---- where the run is
    @property
    def where(self) -> str:
        """The store the run is in, as it may be printed (password redacted)."""
        return self.local if self.fell_back else lake_target.redact(self.target)

    @property
    def message(self) -> str | None:
        """What to do about a run that fell back to the local store (None if it did not)."""
        if not self.fell_back:
            return None
        runs, to = " ".join(sorted(self._moved)), lake_target.redact(self.target)
        local = shlex.quote(path_word(self.local))  # a command to paste: a shell's words
        if not self.shared:
            return (
                f"the store {self.target} stayed locked by another process ({self.fell_back}); "
                f"the cases of run {runs} measured from then on are in {self.local}. Once "
                f"the store is free, push them: anemll-spec push {runs} --store {local} "
                f"--to {shlex.quote(path_word(self.target))}"
            )
        secret = " (with the password in place of ***)" if "***" in to else ""
        return (
            f"the shared store {to} was unreachable ({self.fell_back}); "
            f"this run is in the local store {self.local}. When the shared store is back, "
            f"push it: anemll-spec push {runs} --store {local} --to {shlex.quote(to)}{secret}"
        )

    # ---- the write API
    def begin_run(self, target, run: Mapping, host: Mapping, **kw) -> str:
        run = dict(run)
        if run.get("command"):
            run["command"] = lake_target.redact(run["command"])
        run.setdefault("started_at", utc_now())  # fixed now: a retry can find its own run
        self._host = dict(host)
        if not self.shared:
            run_id = writer.begin_run(self.target, run, host, **kw)
        else:
            try:
                run_id = self._retry(
                    lambda: writer.begin_run(self.target, run, host, **kw),
                    lambda con: _own_run(con, run["started_at"]),
                )
                with _closing(open_store(self.target)) as con:
                    lake.dedupe_hosts(con)
            except _Unreachable as exc:
                self._fall_back(str(exc))
                run_id = writer.begin_run(self.local, run, host, **kw)
                self._moved.add(run_id)
                self._announce()
        self._run = run
        return run_id

    def append_case(
        self, target, run_id: str, case: Mapping, samples, placements: Iterable[Mapping] = (), **kw
    ) -> str:
        case = dict(case)
        case.setdefault("finished_at", utc_now())  # fixed now: how a retry finds its case
        placements = list(placements)
        for k in ("rails", "windows", "power_samples"):  # a retry must see them again
            if k in kw and not isinstance(kw[k], Mapping):
                kw[k] = list(kw[k])
        if self.shared and not self.fell_back:
            try:
                return self._retry(
                    lambda: writer.append_case(
                        self.target, run_id, case, samples, placements, **kw
                    ),
                    lambda con: _own_case(con, run_id, case),
                )
            except _Unreachable as exc:
                self._fall_back(str(exc))
        if not self.fell_back:
            try:
                return writer.append_case(self.target, run_id, case, samples, placements, **kw)
            except StoreLocked:  # the case is measured: it goes to a store of its own
                self._fall_back(self._locked(), run_id)
        self._move(run_id)
        return writer.append_case(self.local, run_id, case, samples, placements, **kw)

    def finish_run(self, target, run_id: str, status: str, **kw) -> None:
        if self.shared and not self.fell_back:
            try:
                self._retry(lambda: writer.finish_run(self.target, run_id, status, **kw), None)
                return
            except _Unreachable as exc:
                self._fall_back(str(exc))
        if not self.fell_back:
            try:
                writer.finish_run(self.target, run_id, status, **kw)
                return
            except StoreLocked:
                self._fall_back(self._locked(), run_id)
        self._move(run_id)
        writer.finish_run(self.local, run_id, status, **kw)
        self._announce()

    # ---- internals
    def _retry(self, call: Callable, landed: Callable | None):
        """call() until it succeeds; between attempts ask `landed(con)` whether the last
        one committed after all. _Unreachable once the timeout has passed."""
        import duckdb

        deadline = time.monotonic() + self.timeout
        delay, last = 0.1, None
        while True:
            try:
                if last is not None and landed is not None:
                    with _closing(open_store(self.target, lock_timeout_s=1.0)) as con:
                        found = landed(con)
                    if found is not None:
                        return found
                return call()
            except (duckdb.Error, lake.StoreUnreachable, writer.StoreWriteFailed) as exc:
                last = exc  # an InputError (a refused value) is the caller's: raised
            lake.forget(lake_target.parse_target(self.target))
            if time.monotonic() + delay > deadline:
                raise _Unreachable(lake._message(last)) from None
            time.sleep(delay)
            delay = min(delay * 2, 5.0)

    def _fall_back(self, why: str, run_id: str | None = None) -> None:
        if self.fell_back:
            return
        self.fell_back = why
        if not self.shared:  # a file of the run's own: nothing else holds it
            target = Path(self.target)
            self.local = str(target.with_name(f"{target.stem}.run-{run_id}.duckdb"))
            self.note(
                f"store {self.target} locked by another process: writing the rest of this "
                f"run to {self.local}"
            )
            return
        self.note(
            f"shared store {lake_target.redact(self.target)} unreachable ({why}): writing the "
            f"rest of this run to the local store {self.local}"
        )

    def _locked(self) -> str:
        return f"still locked after {self.timeout:g} s"

    def _move(self, run_id: str) -> None:
        """The run's host and run rows in the local store, under the same ids."""
        if run_id in self._moved or self._run is None or self._host is None:
            return
        host, _, run = writer.run_rows(self._run, self._host, run_id)
        with writer.transaction(self.local) as con:
            writer.insert_run(con, host, run)
        self._moved.add(run_id)

    def _announce(self) -> None:
        if self.message:
            self.note(self.message)


class _Unreachable(AnemllError):
    pass


def _own_run(con, started_at) -> str | None:
    row = con.execute(
        "SELECT run_id FROM runs WHERE started_at = ? AND writer_pid = ? AND writer_hostname = ? "
        "AND writer_machine_id IS NOT DISTINCT FROM ?",
        [started_at, os.getpid(), hostname(), machine_id()],
    ).fetchone()
    return None if row is None else row[0]


def _own_case(con, run_id: str, case: Mapping) -> str | None:
    row = con.execute(
        "SELECT case_id FROM cases WHERE run_id = ? AND case_key = ? AND finished_at = ?",
        [run_id, case.get("case_key"), case["finished_at"]],
    ).fetchone()
    return None if row is None else row[0]


class _closing:
    def __init__(self, con):
        self.con = con

    def __enter__(self):
        return self.con

    def __exit__(self, *exc) -> None:
        self.con.close()
