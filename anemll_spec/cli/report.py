"""anemll-spec report: one offline HTML page for a run (host, summary, published, charts)."""

from __future__ import annotations

import argparse

from anemll_spec.cli._common import add_json, add_store, nonempty, out_file, print_json

HELP = "write the HTML report of a run (offline, one self-contained file)"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--run", metavar="ID", help="run id, unique prefix, 'latest' or 'previous' (latest)"
    )
    add_store(p)
    p.add_argument(
        "--baseline", metavar="CHIP", default="M1 Max", help="baseline chip of the factors (M1 Max)"
    )
    p.add_argument(
        "--out",
        metavar="FILE.html",
        type=nonempty,
        help="where to write it (default: reports/<run>.html); an earlier report there is "
        "replaced, any other file only with --force",
    )
    p.add_argument("--force", action="store_true", help="replace --out whatever it holds")
    add_json(p)


def _a_report(path) -> bool:
    """A file this command wrote before (an HTML page), which it may replace."""
    try:
        with open(path, "rb") as f:
            return f.read(15).lower() == b"<!doctype html>"
    except OSError:
        return False


def run(args: argparse.Namespace) -> int:
    from anemll_spec.chart.report import write_report
    from anemll_spec.store import default_target

    store = default_target(args.store)
    if args.out:
        out_file(args.out, store=store, force=args.force, replaceable=_a_report)
    path = write_report(store, args.run, args.out, baseline=args.baseline)
    if args.json:
        print_json({"report": str(path)})
    else:
        print(f"report: {path}")
    return 0
