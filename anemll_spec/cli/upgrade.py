"""anemll-spec upgrade [--store PATH]: bring a store to this anemll-spec's schema on purpose.

Read-only commands (query, chart, report, compare, export, share) never change a store, so
after installing a newer anemll-spec they refuse an older store until something writes to
it; this is that write, and nothing else: no run is added.
"""

from __future__ import annotations

import argparse

from anemll_spec.cli._common import add_json, add_store, is_new_store, print_json, shown_store

HELP = "upgrade a results store to this anemll-spec's schema (read-only commands never do)"
DESCRIPTION = (
    "Upgrade the store in place to this anemll-spec's schema version and re-install its "
    "views, macros and reference rows (also where they are another anemll-spec's), each "
    "step in a transaction: a kill leaves the store consistent, reading commands refuse "
    "it until upgrade runs again and completes it. A store at the current version is left "
    "as it is. After upgrading a shared store, older anemll-spec versions can no longer "
    "read or write it. A missing store is not created."
)


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_json(p)
    add_store(p)


def run(args: argparse.Namespace) -> int:
    from anemll_spec.errors import InputError
    from anemll_spec.store import SCHEMA_VERSION, default_target, open_store
    from anemll_spec.store.connection import upgrade_store
    from anemll_spec.store.prepare import StoreOutdated, views_stale

    target = default_target(args.store)
    shown = shown_store(target)
    if is_new_store(target):
        raise InputError(f"no store at {shown}: nothing to upgrade")
    try:  # read first: a store with nothing to do is not opened for writing
        con = open_store(target, read_only=True)
        try:
            before, changed = SCHEMA_VERSION, views_stale(con)
        finally:
            con.close()
    except StoreOutdated as exc:
        before, changed = exc.version, True
    if changed:  # what the writing open did (another process may have done it first)
        done = upgrade_store(target)
        before, changed = done.version or SCHEMA_VERSION, done.changed
    if args.json:
        print_json(
            {"store": shown, "from_version": before, "to_version": SCHEMA_VERSION,
             "upgraded": changed}
        )  # fmt: skip
    elif before < SCHEMA_VERSION:
        print(f"upgraded {shown} from schema v{before} to v{SCHEMA_VERSION}")
    elif changed:
        print(
            f"{shown} is at schema v{SCHEMA_VERSION}; re-installed its views, macros and "
            "reference rows (they were another anemll-spec's, or an upgrade had stopped)"
        )
    else:
        print(f"{shown} is already at schema v{SCHEMA_VERSION}: nothing to do")
    return 0
