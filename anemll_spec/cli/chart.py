"""anemll-spec chart KIND: draw one chart from the store (HTML, PNG, SVG, Vega-Lite JSON)."""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING

from anemll_spec.chart import DEFAULT_SWEEP_METRIC, KINDS, SWEEP_METRICS
from anemll_spec.cli._common import add_json, add_store, nonempty, out_dir, print_json

if TYPE_CHECKING:
    from anemll_spec.chart.render_worker import Worker

HELP = "draw a chart from the store (offline HTML, PNG, SVG and Vega-Lite JSON)"
DESCRIPTION = (
    HELP
    + ". Kinds: "
    + "; ".join(f"{k}: {v}" for k, v in KINDS.items())
    + ". --where is a SQL filter over the chart's source rows (chip_factors for factors, "
    "energy_factors for energy, results for the others), run read-only."
)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("kind", choices=list(KINDS), metavar="KIND", help=", ".join(KINDS))
    add_store(p)
    # '' is a mistake, not "no filter" (the SQL read it as one, the messages as none)
    p.add_argument("--model", type=nonempty, metavar="M", help="only this model (model_name)")
    p.add_argument(
        "--baseline",
        metavar="CHIP",
        help="factors, energy: baseline chip (M1 Max)",
    )
    p.add_argument(
        "--where",
        type=nonempty,
        metavar="SQL",
        help="filter expression over the chart's source rows, e.g. \"backend = 'coreml'\"",
    )
    p.add_argument(
        "--run",
        action="append",
        default=[],
        type=nonempty,
        metavar="ID",
        help="run id, unique prefix, 'latest' or 'previous' (compare: give it twice)",
    )
    p.add_argument(
        "--runs", nargs=2, type=nonempty, metavar=("A", "B"), help="compare: the two runs"
    )
    p.add_argument(
        "--by",
        choices=["chip", "os"],
        default="chip",
        help="factors: one row per chip (chip, the default: OS versions apart where a chip "
        "has several) or compare each chip's OS versions (os: measured runs only)",
    )
    p.add_argument(
        "--metric",
        choices=SWEEP_METRICS,
        help=f"sweep: the metric on y ({DEFAULT_SWEEP_METRIC})",
    )
    p.add_argument(
        "--param",
        type=nonempty,
        metavar="FIELD",
        help="sweep: the swept field on x, e.g. model.vocab_size",
    )
    p.add_argument(
        "--out",
        metavar="DIR",
        required=True,
        type=nonempty,
        help="directory to write KIND.html, .png, .svg and .vl.json to (an earlier chart "
        "there is replaced, other files only with --force)",
    )
    p.add_argument("--force", action="store_true", help="replace whatever files --out holds")
    add_json(p)


def run(args: argparse.Namespace) -> int:
    from anemll_spec.chart.render_worker import Worker

    with Worker() as worker:  # warms the renderer on another core while the chart is built
        return _run(args, worker)


def _run(args: argparse.Namespace, worker: Worker) -> int:
    from pathlib import Path

    from anemll_spec.chart import build_chart, render
    from anemll_spec.chart.source import DEFAULT_BASELINE, Options
    from anemll_spec.errors import InputError
    from anemll_spec.store import default_target
    from anemll_spec.text import printable

    runs = tuple(args.run) + tuple(args.runs or ())
    if args.kind == "compare" and len(runs) != 2:
        raise InputError("chart compare: give two runs (--run A --run B, or --runs A B)")
    if args.kind != "compare" and args.runs:
        raise InputError(f"chart {args.kind}: --runs A B applies to chart compare; give one --run")
    if args.kind != "compare" and len(runs) > 1:
        raise InputError(f"chart {args.kind}: give at most one --run")
    if args.by != "chip" and args.kind != "factors":
        raise InputError(f"chart {args.kind}: --by applies to the factors chart only")
    for flag, value, kinds in (
        ("--metric", args.metric, ("sweep",)),
        ("--param", args.param, ("sweep",)),
        ("--baseline", args.baseline, ("factors", "energy")),
    ):  # an option that would be ignored is refused: the user expects it to act
        if value and args.kind not in kinds:
            raise InputError(f"chart {args.kind}: {flag} applies to {' and '.join(kinds)} only")
    opts = Options(
        model=args.model,
        baseline=DEFAULT_BASELINE if args.baseline is None else args.baseline,
        where=args.where,
        runs=runs,
        metric=args.metric,
        param=args.param,
        by=args.by,
    )
    out_dir(args.out, store=args.store)
    theirs = [] if args.force else render.foreign_files(Path(args.out), args.kind)
    if theirs:
        raise InputError(
            f"--out {printable(args.out)}: {printable(theirs[0].name)} exists and is not a "
            f"chart of this command; give --force to replace it (or another --out)"
        )
    try:
        spec = build_chart(args.kind, default_target(args.store), opts)
        title = f"anemll-spec {args.kind}"
        files = render.write_chart(spec, Path(args.out), args.kind, title, worker)
    except InputError as exc:  # its text may quote stored text: no control characters raw
        raise InputError(printable(exc)) from None
    if args.json:
        runs = spec.get("usermeta", {}).get("runs", [])  # [] : every chip's latest rows
        print_json(
            {"kind": args.kind, "runs": runs, "files": {k: str(v) for k, v in files.items()}}
        )
    else:
        for fmt, path in files.items():
            print(f"{fmt:>4}: {printable(path)}", file=sys.stdout)
    return 0
