"""anemll-spec report: one offline HTML page for a run (host, summary, published, charts)."""

from __future__ import annotations

import argparse

from anemll_spec.cli._common import (
    add_json,
    add_run_flag,
    add_store,
    nonempty,
    out_file,
    print_json,
    runs_given,
)
from anemll_spec.vocab import DEFAULT_BASELINE

HELP = "write the HTML report of a run (offline, one self-contained file)"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "run", nargs="?", metavar="RUN", help="run id, unique prefix, 'latest' or 'previous' "
        "(default: latest)"
    )  # fmt: skip
    add_run_flag(p, "the run to report, instead of RUN", repeatable=False)
    add_store(p)
    p.add_argument(
        "--baseline",
        metavar="CHIP",
        default=DEFAULT_BASELINE,
        help=f"baseline chip of the factors ({DEFAULT_BASELINE})",
    )
    p.add_argument(
        "--out",
        metavar="FILE.html",
        type=nonempty,
        help="where to write it (default: reports/<run>.html, the run id mapped to a safe "
        "file name); an earlier report of the same run there is replaced, any other file "
        "only with --force",
    )
    p.add_argument("--force", action="store_true", help="replace --out whatever it holds")
    add_json(p)


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from anemll_spec.chart.report import default_out, is_report_of, resolve, write_report
    from anemll_spec.errors import InputError
    from anemll_spec.store import default_target
    from anemll_spec.text import printable

    store = default_target(args.store)
    try:
        (ref,) = runs_given(args, "run", at_most=1) or ["latest"]
        run_id = resolve(store, ref, args.baseline)
        # the path comes from the user, or from stored text through a safe-name mapping
        target = args.out or str(default_out(run_id))
        out_file(
            target,
            store=store,
            force=args.force,
            replaceable=lambda p: is_report_of(p, run_id),
            kind=(".html", "a report is an HTML page"),
        )
        path = write_report(store, run_id, Path(target), baseline=args.baseline, force=args.force)
    except InputError as exc:  # its text may quote stored text: no control characters raw
        raise InputError(printable(exc)) from None
    if args.json:
        print_json({"report": str(path), "run_id": run_id})
    else:
        print(f"report: {printable(path)}")
    return 0
