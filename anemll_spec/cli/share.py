"""anemll-spec share [RUN]: a Markdown block to paste into a GitHub issue."""

from __future__ import annotations

import argparse

from anemll_spec.cli._common import add_json, add_run_flag, add_store, print_json, runs_given
from anemll_spec.vocab import DEFAULT_BASELINE

HELP = "print a run as Markdown to paste into a GitHub issue (table, host, factors)"
DESCRIPTION = (
    "Print one run (default: the latest) as a Markdown block ready to paste into a GitHub "
    "issue: the summary table (median with its 95% CI, p90, p99, GB/s, TFLOPS, verify), "
    "the host (chip, OS, versions), the comparison with published results (factors "
    "against --baseline, by the store's one factor rule) and the exact command that "
    "exports the run's bundle to attach. Text from the store is escaped: a name cannot "
    "break the table. --json: the same block as {run_id, baseline, markdown, "
    "export_command}, for scripts that post it."
)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "run",
        nargs="?",
        metavar="RUN",
        help="run id, unique prefix, 'latest' (default) or 'previous'",
    )
    add_run_flag(p, "the run to share, instead of RUN", repeatable=False)
    p.add_argument(
        "--baseline",
        default=DEFAULT_BASELINE,
        metavar="CHIP",
        help=f"chip the factors are against (default {DEFAULT_BASELINE}, as published)",
    )
    add_store(p)
    add_json(p)


def run(args: argparse.Namespace) -> int:
    import sys

    from anemll_spec.store import default_target, open_store
    from anemll_spec.store.factors import check_baseline
    from anemll_spec.store.lookup import resolve_run
    from anemll_spec.store.share import export_command, share_markdown

    (ref,) = runs_given(args, "run", at_most=1) or ["latest"]
    con = open_store(default_target(args.store), read_only=True)
    try:
        run_id = resolve_run(con, ref)
        check_baseline(con, args.baseline)  # a misspelt chip: 'no baseline' everywhere
        text = share_markdown(con, run_id, baseline=args.baseline, store_arg=args.store)
    finally:
        con.close()
    if args.json:
        command = export_command(run_id, args.store)
        print_json({"run_id": run_id, "baseline": args.baseline, "markdown": text,
                    "export_command": command})  # fmt: skip
    else:
        sys.stdout.write(text)
    return 0
