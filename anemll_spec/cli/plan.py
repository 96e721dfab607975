"""anemll-spec plan SPEC: what `bench` would build and run, without building anything."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from anemll_spec.cli._common import (
    add_backend,
    add_json,
    add_max_cases,
    human_bytes,
    human_flops,
    print_json,
    table,
)

if TYPE_CHECKING:
    from anemll_spec.spec.families import ModelBase
    from anemll_spec.spec.run_section import Run

HELP = "list a spec's cases: shapes, estimated size and FLOPs, variants, time budget"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("spec", metavar="SPEC", help="YAML spec file")
    add_backend(p, "plan as if run with bench --backend B")
    add_max_cases(p)
    add_json(p)


def budget(run: Run) -> str:
    text = f"warmup {run.warmup}"
    if run.warmup_s:
        text += f" (>= {run.warmup_s:g} s)"
    text += f", {run.min_iterations}..{run.iterations} it, <= {run.max_time_s:g} s per variant"
    if run.target_ci_pct:
        text += f", stop at CI +-{run.target_ci_pct:g}%"
    if run.concurrency > 1:
        text += f", {run.concurrency} concurrent"
    return text


def estimate(model: ModelBase) -> dict:
    """The builder's analytic estimate (weights, FLOPs, ANE warnings); never builds."""
    from anemll_spec.build import estimate as build_estimate

    try:
        est = build_estimate(model)
    except Exception as exc:  # an external model that is missing, say: show, don't stop
        return {"weight_bytes": None, "flops": None, "warnings": [f"no estimate: {exc}"]}
    return {
        "weight_bytes": est.weight_bytes,
        "flops": est.flops,
        "warnings": [str(w) for w in est.warnings],
    }


def run(args: argparse.Namespace) -> int:
    from anemll_spec.run import check_backends, override_backend, resolve_variants
    from anemll_spec.spec import load_cases
    from anemll_spec.spec.compression import describe

    spec, cases = load_cases(args.spec, max_cases=args.max_cases)
    cases = override_backend(cases, args.backend)
    auto, notes = check_backends(cases, preview=True)
    items = []
    for case in cases:
        variants, vnotes = resolve_variants(case, auto)
        est = estimate(case.model)
        items.append(
            {
                "index": case.index,
                "key": case.key,
                "build_key": case.build_key,
                "model_name": case.model_name,
                "params": case.params,
                "family": case.model.family,
                "shapes": case.model.shapes(),
                "dtype": case.model.dtype,
                "compression": describe(case.model.compression),
                "estimate": est,
                "variants": [{"backend": b, "compute_units": cu} for b, cu in variants],
                "budget": {
                    k: getattr(case.run, k)
                    for k in (
                        "warmup",
                        "warmup_s",
                        "iterations",
                        "min_iterations",
                        "max_time_s",
                        "target_ci_pct",
                        "concurrency",
                        "interleave",
                        "verify",
                    )
                },
                "budget_text": budget(case.run),
                "notes": vnotes,
            }
        )
    if args.json:
        print_json({"spec": str(spec.path), "name": spec.name, "notes": notes, "cases": items})
        return 0
    print(f"{spec.name}: {len(items)} case{'s' * (len(items) != 1)}  ({spec.path})")
    for n in notes:
        print(n)
    rows = []
    for it in items:
        variants = ", ".join(
            v["backend"] + (f"/{v['compute_units']}" if v["compute_units"] else "")
            for v in it["variants"]
        )
        rows.append(
            [
                it["index"],
                it["model_name"],
                it["shapes"],
                it["compression"],
                human_bytes(it["estimate"]["weight_bytes"]),
                human_flops(it["estimate"]["flops"]),
                variants,
            ]
        )
    print(table(rows, ["#", "case", "shapes", "compression", "weights", "FLOPs", "variants"]))
    for it in items:
        extra = [*it["estimate"]["warnings"], *it["notes"]]
        print(f"#{it['index']} {it['key']}: {it['budget_text']}")
        for w in extra:
            print(f"    warning: {w}" if w in it["estimate"]["warnings"] else f"    note: {w}")
    return 0
