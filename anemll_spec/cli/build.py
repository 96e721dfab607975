"""anemll-spec build SPEC: build (or fetch from the cache) every case's Core ML model."""

from __future__ import annotations

import argparse
import sys

from anemll_spec.cli._common import add_json, add_max_cases, human_bytes, human_flops, print_json

HELP = "build every case of a spec as a Core ML package (cached)"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("spec", metavar="SPEC", help="YAML spec file")
    p.add_argument(
        "--cache-dir",
        metavar="DIR",
        help="cache folder (default: $ANEMLL_SPEC_CACHE, else $XDG_CACHE_HOME or ~/.cache, "
        "/anemll-spec)",
    )
    add_max_cases(p)
    add_json(p)


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from anemll_spec.build import build, estimate
    from anemll_spec.progress import Progress
    from anemll_spec.spec import load_cases

    spec, cases = load_cases(args.spec, max_cases=args.max_cases)
    cache_dir = Path(args.cache_dir) if args.cache_dir else None
    # bench's progress line: live on a terminal, a line every few seconds in logs
    progress = Progress(live=sys.stderr.isatty() and not args.json)
    results = []
    for n, case in enumerate(cases, 1):
        est = estimate(case.model)
        progress.case(n, len(cases), case.model_name)
        for w in est.warnings:
            progress.note(f"warning: {case.model_name}: {w}")
        built = build(
            case.model, cache_dir=cache_dir, progress=progress.build_step, spec_name=spec.name
        )
        progress.close()
        row = {"case": case.key, "model_name": case.model_name, **built.to_json()}
        row["warnings"] = est.warnings
        results.append(row)
        if not args.json:
            state = "cached" if built.cached else f"built in {built.build_s:.1f} s"
            print(
                f"{case.key}  {case.model_name}\n"
                f"    {built.path}\n"
                f"    weights {human_bytes(built.weight_bytes)} ({built.weight_bytes:,} B), "
                f"{human_flops(built.flops)}, {state}"
            )
    if args.json:
        print_json(results)
    return 0
