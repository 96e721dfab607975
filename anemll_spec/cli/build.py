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
        help="cache folder (default: $ANEMLL_SPEC_CACHE, else $XDG_CACHE_HOME/anemll-spec)",
    )
    add_max_cases(p)
    add_json(p)


class _Progress:
    """One status line redrawn in place on a TTY; plain lines otherwise (logs, CI)."""

    def __init__(self, label: str, tty: bool):
        self.label, self.tty, self.width = label, tty, 0

    def __call__(self, msg: str) -> None:
        line = f"{self.label} {msg}"
        if self.tty:
            pad = max(0, self.width - len(line))
            sys.stderr.write("\r" + line + " " * pad)
            sys.stderr.flush()
            self.width = len(line)
        else:
            print(line, file=sys.stderr)

    def done(self) -> None:
        if self.tty and self.width:
            sys.stderr.write("\r" + " " * self.width + "\r")
            sys.stderr.flush()


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from anemll_spec.build import build, estimate
    from anemll_spec.spec import load_cases

    spec, cases = load_cases(args.spec, max_cases=args.max_cases)
    cache_dir = Path(args.cache_dir) if args.cache_dir else None
    tty = sys.stderr.isatty() and not args.json
    results = []
    for n, case in enumerate(cases, 1):
        est = estimate(case.model)
        progress = _Progress(f"[{n}/{len(cases)}] {case.model_name}:", tty)
        for w in est.warnings:
            print(f"warning: {case.model_name}: {w}", file=sys.stderr)
        built = build(case.model, cache_dir=cache_dir, progress=progress)
        progress.done()
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
