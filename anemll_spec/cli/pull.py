"""anemll-spec pull [RUN_ID...] --from TARGET: copy runs from a shared store to the local one."""

from __future__ import annotations

import argparse

from anemll_spec.cli._common import (
    add_json,
    add_run_flag,
    add_store,
    is_new_store,
    nonempty,
    note_created,
    runs_given,
)

HELP = "copy runs from a shared store into the local store (idempotent)"
DESCRIPTION = (
    "Copy runs (all, or the RUN_IDs given) from another store, usually a shared one, into "
    "the local store (--store). Checked exactly as `import` checks a bundle, written in one "
    "transaction (all or nothing); ids are kept, so pulling twice adds nothing."
)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("runs", nargs="*", metavar="RUN_ID", help="runs to pull (default: all)")
    add_run_flag(p, "a run to pull")
    p.add_argument(
        "--from",
        dest="source",
        required=True,
        type=nonempty,
        metavar="TARGET",
        help="the store to copy from",
    )
    add_json(p)
    add_store(p)


def run(args: argparse.Namespace) -> int:
    from anemll_spec.cli.push import report
    from anemll_spec.store import default_target
    from anemll_spec.store.sync import copy_runs

    target = default_target(args.store)
    was_new = is_new_store(target)
    summary = copy_runs(args.source, args.store, runs_given(args, "runs"))
    note_created(target, was_new, "this pull")
    return report(summary, args.json, "pulled")
