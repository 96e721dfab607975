"""anemll-spec plan SPEC: what `bench` would build and run, without building anything."""

from __future__ import annotations

import argparse

from anemll_spec.cli._common import (
    add_backend,
    add_json,
    add_max_cases,
    human_bytes,
    human_flops,
    print_json,
    table,
)

HELP = "list a spec's cases: shapes, estimated size and FLOPs, variants, time budget"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("spec", metavar="SPEC", help="YAML spec file")
    add_backend(p, "plan as if run with bench --backend B")
    add_max_cases(p)
    add_json(p)


def shapes(model: dict) -> str:
    """The family's key shapes in one line."""
    f = model.get("family")
    if f == "lm_head":
        rows = model["vocab_size"] // model["chunks"]
        return (
            f"{model['hidden_size']} -> {model['vocab_size']} as {model['chunks']} x {rows} "
            f"({model['layout']}), seq {model['seq_len']}, batch {model['batch']}"
        )
    if f == "ffn":
        return (
            f"{model['hidden_size']} -> {model['intermediate_size']} -> {model['hidden_size']} "
            f"({model['layout']}), seq {model['seq_len']}, batch {model['batch']}"
        )
    if f == "attention":
        return (
            f"hidden {model['hidden_size']}, {model['heads']}/{model['kv_heads']} heads x "
            f"{model['head_dim']}, context {model['context_length']} ({model['impl']}), "
            f"seq {model['seq_len']}"
        )
    if f == "matmul":
        return f"({model['m']} x {model['k']}) @ ({model['k']} x {model['n']})"
    if f == "external":
        return str(model.get("path"))
    return "-"


def compression(model: dict) -> str:
    c = model.get("compression", "none")
    if not isinstance(c, dict):
        return str(c)
    kind, opts = next(iter(c.items()))
    if kind == "palettize":
        text = f"palettize {opts['nbits']}-bit {opts.get('mode', 'kmeans')}"
        if opts.get("granularity") == "per_grouped_channel":
            text += f" (groups of {opts.get('group_size', 8)})"
        return text
    if kind == "quantize":
        text = f"quantize {opts['dtype']} {opts.get('granularity', 'per_channel')}"
        if opts.get("granularity") == "per_block":
            text += f" (blocks of {opts.get('block_size', 32)})"
        return text
    return str(c)


def budget(run: dict) -> str:
    text = f"warmup {run['warmup']}"
    if run.get("warmup_s"):
        text += f" (>= {run['warmup_s']:g} s)"
    text += (
        f", {run['min_iterations']}..{run['iterations']} it, <= {run['max_time_s']:g} s per variant"
    )
    if run.get("target_ci_pct"):
        text += f", stop at CI +-{run['target_ci_pct']:g}%"
    if run.get("concurrency", 1) > 1:
        text += f", {run['concurrency']} concurrent"
    return text


def estimate(model: dict) -> dict:
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
                "family": case.model.get("family"),
                "shapes": shapes(case.model),
                "dtype": case.model.get("dtype"),
                "compression": compression(case.model),
                "estimate": est,
                "variants": [{"backend": b, "compute_units": cu} for b, cu in variants],
                "budget": {
                    k: case.run[k]
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
