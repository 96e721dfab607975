"""anemll-spec report: one offline HTML page for a run (host, summary, published, charts)."""

from __future__ import annotations

import argparse

from anemll_spec.cli._common import add_json, add_store, print_json

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
        "--out", metavar="FILE.html", help="where to write it (default: reports/<run>.html)"
    )
    add_json(p)


def run(args: argparse.Namespace) -> int:
    from anemll_spec.chart.report import write_report
    from anemll_spec.store import default_target

    path = write_report(default_target(args.store), args.run, args.out, baseline=args.baseline)
    if args.json:
        print_json({"report": str(path)})
    else:
        print(f"report: {path}")
    return 0
