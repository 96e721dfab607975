"""anemll-spec cache list|clear: the built-model cache."""

from __future__ import annotations

import argparse
import re

from anemll_spec.cli._common import (
    add_cache_dir,
    add_json,
    cache_dir_of,
    human_bytes,
    print_json,
    table,
)

HELP = "list or clear the cache of built models"

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def duration(text: str) -> float:
    """'7d', '12h', '30m', '90s', '2w' -> seconds (argparse type)."""
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*", text)
    if not m:
        raise argparse.ArgumentTypeError(
            f"{text!r}: give a number and a unit, e.g. 7d, 12h, 30m (s m h d w)"
        )
    return float(m.group(1)) * _UNITS[m.group(2)]


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "action",
        choices=["list", "clear"],
        help="list entries, or delete them (only the folders the cache made)",
    )
    add_cache_dir(p)
    p.add_argument(
        "--older-than",
        metavar="AGE",
        type=duration,
        help="clear: only entries built more than AGE ago (e.g. 7d, 12h, 30m)",
    )
    add_json(p)


def _leftover(x: dict) -> str:
    if x["kind"] == "trash":
        return "an interrupted discard (clear removes it)"
    if x["alive"]:
        return f"a build running now (pid {x['pid']})"
    if x["alive"] is False:
        return f"staging of a build that died (pid {x['pid']}; clear removes it)"
    if x["stale"]:
        return "staging of another host's or an older build, over an hour old (clear removes it)"
    return f"staging of another host's or an older build (pid {x['pid']}), kept for an hour"


def _what(e: dict) -> str:
    return e.get("spec") or e.get("family") or e["kind"]


def run(args: argparse.Namespace) -> int:
    from anemll_spec.build import cache, leftovers
    from anemll_spec.build.checks import cache_folder

    cache_dir = cache_folder(cache_dir_of(args))  # a file there: refused, as build does
    if args.action == "clear":
        removed = cache.clear(cache_dir, older_than_s=args.older_than)
        entries = [e for e in removed if e["kind"] == "entry"]
        freed = sum(e["bytes"] for e in removed)
        if args.json:
            print_json(
                {
                    "cache_dir": str(cache_dir),
                    "removed": len(entries),
                    "freed_bytes": freed,
                    "items": removed,
                }
            )
            return 0
        for e in removed:
            print(f"removed {e['key']} ({_what(e)}, {human_bytes(e['bytes'])})")
        n = len(entries)
        print(
            f"removed {n} entr{'y' if n == 1 else 'ies'} from {cache_dir}, freed {human_bytes(freed)}"
        )
        return 0
    if args.older_than is not None:
        from anemll_spec.errors import InputError

        raise InputError("--older-than applies to `cache clear` only")
    items = cache.entries(cache_dir)
    extra = cache.assets(cache_dir)
    left = leftovers.found(cache_dir)
    total = sum(e["disk_bytes"] for e in items) + sum(a["bytes"] for a in extra)
    total += sum(x["bytes"] for x in left)
    if args.json:
        print_json(
            {"cache_dir": str(cache_dir), "total_bytes": total, "entries": items, "assets": extra,
             "leftovers": left}
        )  # fmt: skip
        return 0
    print(f"cache: {cache_dir}")
    rows = [
        [
            e["key"],
            e.get("spec") or "-",
            e["family"],
            human_bytes(e["weight_bytes"]),
            human_bytes(e["disk_bytes"]),
            e["created"],
            "ok" if e["ok"] else f"damaged: {e['problem']}",
        ]
        for e in items
    ]
    print(
        table(rows, ["cache key", "spec", "family", "weights", "on disk", "created", "state"])
        if rows
        else "(no built models)"
        if extra or left
        else "(empty)"
    )
    for a in extra:
        print(f"also {a['name']}/: {a['what']}, {human_bytes(a['bytes'])}")
    for x in left:
        print(f"also {x['name']}: {_leftover(x)}, {human_bytes(x['bytes'])}")
    if rows or extra or left:
        n = len(rows)
        print(f"{n} entr{'y' if n == 1 else 'ies'}, {human_bytes(total)} on disk in all")
    return 0
