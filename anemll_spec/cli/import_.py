"""anemll-spec import FILE...: add results bundles to the store (idempotent)."""

from __future__ import annotations

import argparse

from anemll_spec.cli._common import add_json, add_store, print_json

HELP = "add results bundles to the store (runs already present are skipped)"
DESCRIPTION = (
    "Import parquet bundles written by `anemll-spec export`. Every bundle is checked "
    "completely (schema version, columns, types, value ranges, references, sample "
    "counts) before anything is written; all of them are written in one transaction. "
    "Runs already in the store are skipped, so importing twice changes nothing."
)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("files", nargs="+", metavar="FILE", help="bundles (.parquet)")
    add_json(p)
    add_store(p)


def run(args: argparse.Namespace) -> int:
    from anemll_spec.store import default_target
    from anemll_spec.store.bundle import import_bundles

    summaries = import_bundles(default_target(args.store), args.files)
    if args.json:
        print_json(summaries)
    else:
        for s in summaries:
            r = s["rows"]
            print(
                f"{s['file']}: {s['runs_added']} run(s) added, {s['runs_skipped']} already "
                f"present; {r['cases']} case(s), {r['samples']} sample(s)"
            )
    return 0
