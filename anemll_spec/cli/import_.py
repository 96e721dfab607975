"""anemll-spec import FILE...: add results bundles to the store (idempotent)."""

from __future__ import annotations

import argparse
import sys

from anemll_spec.cli._common import (
    add_json,
    add_store,
    extra_rows,
    is_new_store,
    nonempty,
    note_created,
    print_json,
)

HELP = "add results bundles to the store (merged: present runs gain only what they lack)"
DESCRIPTION = (
    "Import parquet bundles written by `anemll-spec export` (schema v2 and later). A "
    "bundle is untrusted: its size and text lengths are checked from the file first, "
    "then every value, id and hash, and every statistic is recomputed from its samples; "
    "a bundle whose figures disagree is refused. All bundles are written in one "
    "transaction, or none. They merge as `pull` does: a run already in the store gains "
    "only the cases it lacks and a later status (so importing twice changes nothing), "
    "and a run measured in the store itself takes none. Imported runs are marked with the bundle's name and sha256 "
    "(results.source = 'imported'). See docs/store.md, 'The trust boundary'."
)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("files", nargs="+", type=nonempty, metavar="FILE", help="bundles (.parquet)")
    add_json(p)
    add_store(p)


_later = "with a later status: interrupted, finished or failed"


def run(args: argparse.Namespace) -> int:
    from anemll_spec.store import default_target
    from anemll_spec.store.importing import import_bundles
    from anemll_spec.text import printable

    target = default_target(args.store)
    was_new = is_new_store(target)
    summaries = import_bundles(target, args.files)
    note_created(target, was_new, "this import")
    if summaries and summaries[0].get("warning"):
        print(f"warning: {summaries[0]['warning']}", file=sys.stderr)
    if args.json:
        print_json(summaries)
    else:
        for s in summaries:
            r = s["rows"]
            line = (
                f"{printable(s['file'])}: {s['runs_added']} run(s) added, "
                f"{s['runs_skipped']} already present"
                + (f" ({s['runs_updated']} now {_later})" if s["runs_updated"] else "")
                + f"; {r['cases']} case(s), "
                f"{r['samples']} sample(s)"
            )
            v4 = extra_rows(r)
            if v4:
                line += ", " + ", ".join(v4)
            if s["drift_slope_dropped"]:
                line += (
                    f"; drift slope of {s['drift_slope_dropped']} case(s) dropped "
                    f"(a v{s['schema_version']} bundle has no start times to check it)"
                )
            print(line)
    return 0
