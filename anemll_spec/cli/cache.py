"""anemll-spec cache list|clear: the built-model cache."""

from __future__ import annotations

import argparse

from anemll_spec.cli._common import add_json, human_bytes, print_json, table

HELP = "list or clear the cache of built models"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "action",
        choices=["list", "clear"],
        help="list entries, or delete them all (only the folders the cache made)",
    )
    p.add_argument(
        "--cache-dir",
        metavar="DIR",
        help="cache folder (default: $ANEMLL_SPEC_CACHE, else $XDG_CACHE_HOME/anemll-spec)",
    )
    add_json(p)


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from anemll_spec.build import cache

    cache_dir = Path(args.cache_dir) if args.cache_dir else cache.default_cache_dir()
    if args.action == "clear":
        n, freed = cache.clear(cache_dir)
        if args.json:
            print_json({"cache_dir": str(cache_dir), "removed": n, "freed_bytes": freed})
        else:
            print(
                f"removed {n} entr{'y' if n == 1 else 'ies'} from {cache_dir}, freed {human_bytes(freed)}"
            )
        return 0
    items = cache.entries(cache_dir)
    if args.json:
        print_json({"cache_dir": str(cache_dir), "entries": items})
        return 0
    print(f"cache: {cache_dir}")
    rows = [
        [
            e["key"],
            e["family"],
            human_bytes(e["weight_bytes"]),
            human_bytes(e["disk_bytes"]),
            e["created"],
            "ok" if e["ok"] else f"damaged: {e['problem']}",
        ]
        for e in items
    ]
    print(
        table(rows, ["key", "family", "weights", "on disk", "created", "state"])
        if rows
        else "(empty)"
    )
    return 0
