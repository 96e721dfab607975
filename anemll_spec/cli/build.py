"""anemll-spec build SPEC...: build (or fetch from the cache) every case's Core ML model."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from anemll_spec.cli._common import (
    add_cache_dir,
    add_json,
    add_max_cases,
    cache_dir_of,
    check_build_env,
    human_bytes,
    human_flops,
    nonempty,
    print_json,
)

HELP = "build every case of a spec as a Core ML package (cached)"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("specs", nargs="+", type=nonempty, metavar="SPEC", help="YAML spec files")
    add_cache_dir(p)
    add_max_cases(p)
    add_json(p)


def run(args: argparse.Namespace) -> int:

    from anemll_spec.build import build, estimate
    from anemll_spec.progress import Progress
    from anemll_spec.spec import load_cases

    # every spec is checked before the first build: bad input stops all, builds nothing
    loaded = [load_cases(path, max_cases=args.max_cases) for path in args.specs]
    cache_dir = cache_dir_of(args)
    check_build_env()
    _preflight(loaded, cache_dir)
    # bench's progress line: live on a terminal, a line every few seconds in logs
    progress = Progress(live=sys.stderr.isatty() and not args.json)
    results = []
    for spec, case, n, total in (
        (spec, case, n, len(cases)) for spec, cases in loaded for n, case in enumerate(cases, 1)
    ):
        est = estimate(case.model)
        progress.case(n, total, case.model_name)
        for w in est.warnings:
            progress.note(f"warning: {case.model_name}: {w}")
        built = build(
            case.model, cache_dir=cache_dir, progress=progress.build_step, spec_name=spec.name
        )
        progress.close()
        row: dict[str, Any] = {"spec": spec.name, "case": case.key, "model_name": case.model_name}
        row.update(built.to_json(), warnings=est.warnings)
        results.append(row)
        if not args.json:
            state = "cached" if built.cached else f"built in {built.build_s:.1f} s"
            print(
                f"case {case.key}  {case.model_name}\n"
                f"    {built.path}\n"
                f"    weights {human_bytes(built.weight_bytes)} ({built.weight_bytes:,} B), "
                f"{human_flops(built.flops)}, {state}"
            )
    if args.json:
        print_json(results)
    return 0


def _preflight(loaded: list, cache_dir: Path | None) -> None:
    """Every case of every spec through the build's checks (memory, cache folder, disk)
    before the first build, each refusal naming its spec and case as bench does; then the
    disk all the builds need together."""
    from anemll_spec.build import preflight, preflight_disk
    from anemll_spec.errors import InputError

    seen: set[str] = set()
    builds = []  # the estimates of the models to be built: room for all of them
    for spec, cases in loaded:
        for case in cases:
            if case.build_key in seen:
                continue
            seen.add(case.build_key)
            try:
                est = preflight(case.model, cache_dir)
            except InputError as exc:
                where = spec.refused_at(case, str(exc))
                raise InputError(f"{where}: {case.model_name}: {exc}") from None
            if est is not None:
                builds.append(est)
    try:
        preflight_disk(builds, cache_dir)
    except InputError as exc:
        raise InputError(f"{', '.join(str(s.path) for s, _ in loaded)}: {exc}") from None
