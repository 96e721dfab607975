"""anemll-spec push [RUN_ID...] --to TARGET: copy runs from the local store to a shared one."""

from __future__ import annotations

import argparse
import sys

from anemll_spec.cli._common import (
    add_json,
    add_run_flag,
    add_store,
    extra_rows,
    is_new_store,
    nonempty,
    note_created,
    print_json,
    runs_given,
)

HELP = "copy runs from the local store into a shared store (idempotent)"
DESCRIPTION = (
    "Copy runs (all, or the RUN_IDs given: full ids, unique prefixes, 'latest', 'previous') "
    "from the local store (--store) into another store, usually a shared one "
    "(ducklake:postgres:<connection> data_path=<folder>). The runs are checked exactly as "
    "`import` checks a bundle and written in one transaction: all or nothing. Runs, cases "
    "and hosts keep their ids, so pushing twice adds nothing; a run already there gains "
    "the cases it lacks (e.g. those a bench wrote locally while the shared store was down)."
)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("runs", nargs="*", metavar="RUN_ID", help="runs to push (default: all)")
    add_run_flag(p, "a run to push")
    p.add_argument(
        "--to", required=True, type=nonempty, metavar="TARGET", help="the store to copy into"
    )
    add_json(p)
    add_store(p)


def run(args: argparse.Namespace) -> int:
    from anemll_spec.store.sync import copy_runs

    was_new = is_new_store(args.to)
    summary = copy_runs(args.store, args.to, runs_given(args, "runs"))
    note_created(args.to, was_new, "this push")
    return report(summary, args.json, "pushed")


def report(summary: dict, as_json: bool, verb: str) -> int:
    if summary.get("warning"):
        print(f"warning: {summary['warning']}", file=sys.stderr)
    if as_json:
        print_json(summary)
        return 0
    print(
        f"{verb} {len(summary['runs'])} run(s): {summary['runs_added']} added, "
        f"{summary['runs_updated']} updated, {summary['cases_added']} case(s) and "
        f"{summary['samples_added']} sample(s) added (the rest were already there)"
        + "".join(f"; {e}" for e in extra_rows(summary, "_added"))
    )
    return 0
