"""anemll-spec validate SPEC...: check specs, report every problem of every file."""

from __future__ import annotations

import argparse
import sys

from anemll_spec.cli._common import add_json, add_max_cases, nonempty, print_json

HELP = "check spec files and report every problem"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("specs", nargs="+", type=nonempty, metavar="SPEC", help="YAML spec files")
    add_max_cases(p)
    add_json(p)


def run(args: argparse.Namespace) -> int:
    from anemll_spec.errors import SpecError
    from anemll_spec.spec import expand, parse
    from anemll_spec.text import printable

    results = []
    failed = False
    for path in args.specs:
        try:
            spec = parse(path)
            cases = expand(spec, max_cases=args.max_cases)
        except SpecError as exc:
            failed = True
            results.append(
                {"file": path, "ok": False, "problems": [p.__dict__ for p in exc.problems]}
            )
            if not args.json:
                for p in exc.problems:
                    print(f"error: {printable(p)}", file=sys.stderr)
            continue
        notes = spec.notes
        if len(cases) > 1:  # sweep points bench measures once on this machine (plan's rule)
            from anemll_spec.runner.plan import measured_once

            cases, once = measured_once(cases)
            notes = notes + once
        result = {"file": path, "ok": True, "name": spec.name, "cases": len(cases)}
        results.append({**result, "notes": notes} if notes else result)
        if not args.json:
            print(
                f"ok: {printable(path)} ({printable(spec.name)}, {len(cases)} case{'s' * (len(cases) != 1)})"
            )
            for note in notes:
                print(f"note: {printable(note)}")
    if args.json:
        print_json(results)
    return 2 if failed else 0
