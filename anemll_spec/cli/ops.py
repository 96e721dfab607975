"""anemll-spec ops: every op of the ML Program opsets and whether the reference executor
runs it, on numpy and on torch (and why not, where it does not)."""

from __future__ import annotations

import argparse

from anemll_spec.cli._common import add_json, print_json, table

HELP = "list every op of the iOS15-iOS18 opsets and whether the executor runs it (numpy, torch)"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--missing", action="store_true", help="only the ops that are not supported everywhere"
    )
    add_json(p)


def _opsets(defs: tuple[str, ...]) -> str:
    """'iOS15+', with the opsets that changed the op in brackets: 'iOS15+ (iOS17)'."""
    if not defs:
        return "-"
    changed = f" ({', '.join(defs[1:])})" if len(defs) > 1 else ""
    return f"{defs[0]}+{changed}"


def run(args: argparse.Namespace) -> int:
    from anemll_spec.executor.kernels.coverage import coverage, totals

    rows = coverage()
    counts = totals(rows)
    if args.missing:
        rows = [r for r in rows if r.numpy.status != "supported" or r.torch.status != "supported"]
    if args.json:
        print_json({"ops": [r.to_dict() for r in rows], "totals": counts})
        return 0
    lines = []
    for r in rows:
        note = r.numpy.note or r.torch.note
        if r.numpy.note and r.torch.note and r.torch.note != r.numpy.note:
            note = f"{r.numpy.note}; torch: {r.torch.note}"
        elif r.torch.note and not r.numpy.note:
            note = f"torch: {r.torch.note}"
        lines.append([r.op, _opsets(r.opsets), r.numpy.status, r.torch.status, note])
    print(table(lines, ["op", "opsets", "numpy", "torch", "note"]))
    total = len(coverage())
    for side in ("numpy", "torch"):
        c = counts[side]
        print(
            f"{side}: {c['supported']} of {total} ops supported, {c['refused']} refused, "
            f"{c['not supported']} not supported"
        )
    return 0
