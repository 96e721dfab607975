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
    nonempty,
    print_json,
    table,
)

if TYPE_CHECKING:
    from anemll_spec.spec.families import ModelBase
    from anemll_spec.spec.run_section import Run

HELP = "list specs' cases: shapes, estimated size and FLOPs, variants, time budget"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("specs", nargs="+", type=nonempty, metavar="SPEC", help="YAML spec files")
    add_backend(p, "plan as if run with bench --backend B")
    add_max_cases(p)
    add_json(p)


def budget(run: Run) -> str:
    text = f"warmup {run.warmup}"
    if run.warmup_s:
        text += f" (>= {run.warmup_s:g} s)"
    if run.duration_s is not None:  # a sustained run times for its duration, in windows
        windows = f"{run.window_s:g} s windows"
        return text + f" (<= {run.max_time_s:g} s), sustained {run.duration_s:g} s in {windows}"
    low = min(run.min_iterations, run.iterations)  # the harness caps the minimum
    text += f", {low}..{run.iterations} it, <= {run.max_time_s:g} s per variant"
    if run.target_ci_pct:
        text += f", stop at CI +-{run.target_ci_pct:g}%"
    if run.concurrency > 1:
        text += f", {run.concurrency} concurrent"
    return text


def estimate(model: ModelBase) -> dict:
    """The builder's analytic estimate (weights, FLOPs, ANE warnings), and what a first
    build will cost (k-means groups); never builds."""
    from anemll_spec.build import estimate as build_estimate
    from anemll_spec.build import kmeans_groups

    try:
        est = build_estimate(model)
    except Exception as exc:  # an external model that is missing, say: show, don't stop
        return {"weight_bytes": None, "flops": None, "warnings": [f"no estimate: {exc}"]}
    return {
        "weight_bytes": est.weight_bytes,
        "flops": est.flops,
        "warnings": [str(w) for w in est.warnings] + kmeans_warning(kmeans_groups(model)),
    }


def kmeans_warning(groups: int) -> list[str]:
    """k-means palettization is a first run's longest step (bench counts its groups down):
    said before it starts. Minutes are claimed only for thousands of groups."""
    if not groups:
        return []
    cost = "minutes on a laptop the first time" if groups >= 1000 else "the first build only"
    return [f"build: k-means over {groups:,} LUT groups: {cost} (cached after)"]


def run(args: argparse.Namespace) -> int:
    docs = [plan_one(path, args) for path in args.specs]
    if args.json:
        print_json(docs[0] if len(docs) == 1 else docs)
        return 0
    for i, doc in enumerate(docs):
        if i:
            print()
        print_plan(doc)
    return 0


def plan_one(path: str, args: argparse.Namespace) -> dict:
    from anemll_spec.runner.plan import override_backend, plan_cases, time_bound_s
    from anemll_spec.spec import load_cases
    from anemll_spec.spec.compression import describe

    spec, cases = load_cases(path, max_cases=args.max_cases)
    planned, notes = plan_cases(override_backend(cases, args.backend), preview=True)
    items = []
    for p in planned:
        case = p.case
        items.append(
            {
                "index": case.index,
                "key": case.key,
                "build_key": case.build_key,
                "model_name": case.model_name,
                "label": case.label,
                "params": case.params,
                "family": case.model.family,
                "shapes": case.model.shapes(),
                "dtype": case.model.dtype,
                "compression": describe(case.model.compression),
                "estimate": estimate(case.model),
                "variants": [
                    {"backend": v.backend, "compute_units": v.compute_units} for v in p.variants
                ],
                "budget": {k: getattr(case.run, k) for k in BUDGET_FIELDS},
                "budget_text": budget(case.run),
                "time_bound_s": time_bound_s(case, len(p.variants)),
                "notes": p.notes,
            }
        )
    return {
        "spec": str(spec.path),
        "name": spec.name,
        "notes": list(dict.fromkeys(spec.notes + notes)),
        "cases": items,
        "time_bound_s": sum(it["time_bound_s"] for it in items),
    }


BUDGET_FIELDS = (
    "warmup",
    "warmup_s",
    "iterations",
    "min_iterations",
    "max_time_s",
    "target_ci_pct",
    "concurrency",
    "instances",
    "duration_s",
    "interleave",
    "verify",
)


def print_plan(doc: dict) -> None:
    from anemll_spec.progress import seconds
    from anemll_spec.text import printable

    items = doc["cases"]
    name, path = printable(doc["name"]), printable(doc["spec"])
    print(f"{name}: {len(items)} case{'s' * (len(items) != 1)}  ({path})")
    for n in doc["notes"]:
        print(printable(n))
    rows = []
    for it in items:
        variants = ", ".join(
            v["backend"] + (f"/{v['compute_units']}" if v["compute_units"] else "")
            for v in it["variants"]
        )
        rows.append(
            [
                it["index"],
                printable(it["label"]),
                it["shapes"],
                it["compression"],
                human_bytes(it["estimate"]["weight_bytes"]),
                human_flops(it["estimate"]["flops"]),
                variants,
            ]
        )
    print(table(rows, ["#", "case", "shapes", "compression", "weights", "FLOPs", "variants"]))
    for it in items:
        print(f"#{it['index']} case {it['key']}: {it['budget_text']}")
        for w in it["estimate"]["warnings"]:
            print(f"    warning: {w}")
        for n in it["notes"]:
            print(f"    note: {n}")
    print(
        f"timing takes at most {seconds(doc['time_bound_s'], up=True)} "
        "(per variant: warm-up and timing each capped by max_time_s, and an energy pass "
        "of energy_s counted whenever run.power is on, though only a machine that reads "
        "power makes one, and sustained and concurrent runs read theirs while timing; "
        "builds, and the statistics of a sustained run's calls (about 0.3 s a million), not "
        "included; min_iterations calls slower than max_time_s take longer)"
    )
