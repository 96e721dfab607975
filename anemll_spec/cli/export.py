"""anemll-spec export [--run ID ...] --out FILE.parquet: write runs as a results bundle."""

from __future__ import annotations

import argparse
import sys

from anemll_spec.cli._common import (
    add_json,
    add_run_flag,
    add_store,
    extra_rows,
    nonempty,
    out_file,
    print_json,
    runs_given,
)

HELP = "write runs to a self-describing parquet bundle (for sharing)"
DESCRIPTION = (
    "Write runs (all, or those given as RUN or with --run; ids may be unique prefixes, 'latest' "
    "or 'previous') with their hosts, cases, samples, placements, energy readings, "
    "sustained windows and spec text to one parquet file that `anemll-spec import` reads "
    "and plain DuckDB SQL can query."
)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("runs", nargs="*", metavar="RUN", help="runs to export (default: all)")
    add_run_flag(p, "a run to export")
    p.add_argument(
        "--out", required=True, type=nonempty, metavar="FILE.parquet", help="bundle to write"
    )
    p.add_argument("--force", action="store_true", help="replace --out if it exists")
    add_json(p)
    add_store(p)


def run(args: argparse.Namespace) -> int:
    from anemll_spec.store import SCHEMA_VERSION, default_target
    from anemll_spec.store.connection import utf8_name
    from anemll_spec.store.exporting import export_bundle
    from anemll_spec.text import printable

    store = default_target(args.store)
    utf8_name(args.out, "--out")  # DuckDB writes it (its folder; import reads it by name)
    # what the path is first (the store itself, a folder, a file to keep), then its name
    out_file(args.out, store=store, force=args.force)
    if not args.out.lower().endswith(".parquet"):
        from anemll_spec.errors import InputError

        raise InputError(
            f"--out {printable(args.out)}: a bundle is a parquet file; give a name ending in "
            ".parquet (it is not CSV: `anemll-spec query ... --format csv` writes CSV)"
        )
    summary = export_bundle(store, args.out, runs_given(args, "runs"))
    if summary["schema_version"] < SCHEMA_VERSION:
        print(
            f"note: the store is at schema v{summary['schema_version']} (not upgraded): the "
            "bundle is written in that version, which `import` reads",
            file=sys.stderr,
        )
    if args.json:
        print_json(summary)
    else:
        c = summary["counts"]
        print(
            f"wrote {printable(summary['file'])}: {c['runs']} run(s), {c['cases']} case(s), "
            f"{c['samples']} sample(s), {c['placements']} placement(s), {c['hosts']} host(s)"
            + "".join(f", {e}" for e in extra_rows(c))
        )
    return 0
