"""anemll-spec bench SPEC: time every case on its backends, store everything, summarise."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from anemll_spec.cli._common import (
    add_backend,
    add_json,
    add_max_cases,
    add_store,
    print_json,
    table,
)

HELP = "run a spec's benchmarks, record them in the store and print a summary"
DESCRIPTION = (
    "Build each case (cached), time it on the spec's backends (Core ML compute units, "
    "the reference executor), verify outputs, and append every case to the store as it "
    "finishes. Exit status 1 if any case failed."
)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("spec", metavar="SPEC", help="YAML spec file")
    add_backend(p, "run every case on this backend instead of the spec's run.backends")
    add_store(p)
    add_max_cases(p)
    p.add_argument("--report", action="store_true", help="also write the run's HTML report")
    add_json(p)


def run(args: argparse.Namespace) -> int:
    from anemll_spec.run import Runner

    runner = Runner(args.spec, backend=args.backend, store=args.store, max_cases=args.max_cases)
    result = runner.run()
    report = write_report(result) if args.report else None
    if args.json:
        doc = result.to_json()
        if args.report:
            doc["report"] = report
        print_json(doc)
    else:
        print(summary(result))
        if args.report:
            print(f"report: {report}" if report else "report: not written (see the error above)")
    if result.status == "interrupted":
        return 130
    return 1 if result.failed else 0


def summary(result) -> str:
    rows = []
    for r in result.results:
        s = r.summary
        rows.append(
            [
                r.case.index,
                r.case.model_name,
                r.backend,
                r.compute_units or "-",
                f"{s.median_ms:.3f} [{s.ci_low_ms:.3f}, {s.ci_high_ms:.3f}]" if s else "-",
                f"{s.p99_ms:.3f}" if s else "-",
                f"{r.bandwidth_gbs:.2f}" if r.bandwidth_gbs else "-",
                f"{r.tflops:.3f}" if r.tflops else "-",
                _verify(r),
                r.published["text"] if r.published else "-",
            ]
        )
    out = [
        table(
            rows,
            [
                "#",
                "case",
                "backend",
                "units",
                "median ms [95% CI]",
                "p99 ms",
                "GB/s",
                "TFLOPS",
                "verify",
                "vs published",
            ],
        )
    ]
    for r in result.results:
        if r.status != "ok":
            out.append(f"FAILED #{r.case.index} {r.case.model_name} {r.label}: {r.error}")
        for n in r.notes:
            out.append(f"note #{r.case.index} {r.label}: {n}")
        if r.dispatch_floor_ms and r.summary:
            share = r.dispatch_floor_ms / r.summary.median_ms
            out.append(
                f"dispatch floor #{r.case.index} {r.label}: {r.dispatch_floor_ms:.3f} ms for a "
                f"tiny 64->64 model = {100 * share:.2g}% of this median"
            )
    out.append(
        "GB/s = weight bytes / MEDIAN latency (anemll-bench divides by the mean); "
        "TFLOPS = analytic FLOPs / median latency; CI: bootstrap 95% of the median."
    )
    out.append(f"run {result.run_id} ({result.status}) stored in {result.store}")
    return "\n".join(out)


def _verify(r) -> str:
    v = r.verdict
    if v is None:
        return "-"
    if v.status == "pass":
        return f"pass (max err {v.max_abs_error:.2g})"
    return v.status


def write_report(result) -> str | None:
    """The run's HTML report; its absolute path (None if it could not be written)."""
    from anemll_spec.chart.report import write_report as _write

    try:
        path = _write(result.store, run_id=result.run_id)
    except Exception as exc:  # the results are stored; a report problem must not hide them
        print(f"report: failed: {type(exc).__name__}: {exc}", file=sys.stderr)
        return None
    return str(Path(path).resolve())
