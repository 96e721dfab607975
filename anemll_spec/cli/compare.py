"""anemll-spec compare RUN_A RUN_B: per variant, the ratio of medians B/A with a 95% CI."""

from __future__ import annotations

import argparse

from anemll_spec.cli._common import (
    add_json,
    add_run_flag,
    add_store,
    finite_float,
    nonnegative_int,
    print_json,
    runs_given,
)

HELP = "compare two runs variant by variant (ratio of medians with bootstrap CI)"
DESCRIPTION = (
    "For every measured variant (variant_key, i.e. the model and what was measured, x "
    "backend x device x compute units x concurrency) in both runs: median B / median A "
    "with a percentile-bootstrap CI over the stored samples, pooled over the run's repeats "
    "of that variant (fixed seed: the same store gives the same answer), and a "
    "verdict: 'slower' / 'faster' when the whole CI is above / below 1.0 and the change "
    "exceeds the noise floor, else 'no change'; 'too few samples' (never a regression) "
    "when a side has fewer than 6. Run ids may be unique prefixes, "
    "'latest' (the last run that stored a case) or 'previous': the previous run of the SAME spec as "
    "the other run (so `compare previous latest` compares the latest run with the run of "
    "its spec before it, whatever else ran in between)."
)


MAX_N_BOOT = 100_000  # more resamples change nothing but the memory used


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "runs",
        nargs="*",
        metavar="RUN",
        help="two runs: RUN_A, the baseline ('previous': of RUN_B's spec, before it), then the run to "
        "judge (e.g. latest)",
    )
    add_run_flag(p, "RUN_A, then RUN_B, as flags")
    p.add_argument(
        "--fail-on-regression",
        type=finite_float,
        metavar="PCT",
        help="exit 1 when a case got slower by more than PCT percent "
        "(judged by the CI's low end: low > 1 + PCT/100), or when a variant measured in "
        "RUN_A failed in every case of RUN_B",
    )
    p.add_argument(
        "--noise-floor",
        type=finite_float,
        default=1.0,
        metavar="PCT",
        help="changes smaller than PCT percent are 'no change' (default 1)",
    )
    p.add_argument("--level", type=finite_float, default=0.95, help="confidence level (0.95)")
    p.add_argument(
        "--n-boot", type=int, default=2000, metavar="N", help="bootstrap resamples (2000)"
    )
    p.add_argument("--seed", type=nonnegative_int, default=0, help="bootstrap seed (0)")
    add_json(p)
    add_store(p)


def run(args: argparse.Namespace) -> int:
    from anemll_spec.compare import compare_runs
    from anemll_spec.errors import InputError
    from anemll_spec.store import default_target

    if not 0 < args.level < 1:
        raise InputError(f"--level must be between 0 and 1, got {args.level}")
    if not 100 <= args.n_boot <= MAX_N_BOOT:
        raise InputError(f"--n-boot must be 100 to {MAX_N_BOOT:,}, got {args.n_boot}")
    for name in ("fail_on_regression", "noise_floor"):
        value = getattr(args, name)
        if value is not None and value < 0:
            raise InputError(f"--{name.replace('_', '-')} must not be negative")
    run_a, run_b = runs_given(args, "runs", exactly=2)
    result = compare_runs(
        default_target(args.store),
        run_a,
        run_b,
        level=args.level,
        n_boot=args.n_boot,
        seed=args.seed,
        noise_floor_pct=args.noise_floor,
        fail_on_regression_pct=args.fail_on_regression,
    )
    gate = args.fail_on_regression is not None
    if not result["comparisons"] and not (gate and result["failed_in_b"]):
        # nothing in common: a gate (--fail-on-regression) must not pass on nothing
        raise InputError(
            f"runs {result['run_a']} and {result['run_b']} have no measured variant in common "
            f"(only in A: {len(result['only_in_a'])}, only in B: {len(result['only_in_b'])})"
        )
    if args.json:
        print_json(result)
    else:
        _print(result)
    return 1 if result["regressions"] or (gate and result["failed_in_b"]) else 0


def percent(level: float) -> str:
    """A confidence level as the percent it is, never rounded to 0 or 100 and never in
    exponent form: 0.995 -> '99.5', 0.9999999 -> '99.99999', 1e-9 -> '0.0000001'."""
    from decimal import Decimal

    return format((Decimal(repr(level)) * 100).normalize(), "f")


def _print(result: dict) -> None:
    """The text report; store text (model names, ids) is data: control characters are
    shown escaped (render_table escapes its cells)."""
    from decimal import Decimal

    from anemll_spec.cli.query import CELL_WIDTH, render_table
    from anemll_spec.compare import UNMATCHED, hosts_note, pooled_name
    from anemll_spec.text import distinct, printable, ratios

    pct = percent(result["level"])
    for side in ("a", "b"):
        h = result[f"host_{side}"]
        where = ", ".join(str(h[k]) for k in ("chip", "os_name", "os_version", "hostname") if h[k])
        print(printable(f"{side.upper()} = {result[f'run_{side}']} ({where or 'host unknown'})"))
    if note := hosts_note(result):
        print(f"note: {note}")
    columns = [
        "model",
        "backend",
        "units",
        "A median ms",
        "B median ms",
        "B/A",
        f"{pct}% CI",
        "verdict",
    ]
    rows = []
    for c in result["comparisons"]:
        # digits enough to tell the medians apart, and the ratio's CI from 1 and itself
        a_ms, b_ms = distinct((c["median_a_ms"], c["median_b_ms"]), 4, 7)
        ratio, low, high = ratios(c["ratio"], c["ci_low"], c["ci_high"])
        rows.append(
            (
                pooled_name(c, width=CELL_WIDTH),  # cut in the middle, marker kept
                c["backend"] if c["device"] is None else f"{c['backend']}:{c['device']}",
                c["compute_units"] or "-",  # as bench's summary shows it
                Decimal(a_ms),  # numbers (right-aligned) that print as formatted
                Decimal(b_ms),
                Decimal(ratio),
                f"[{low}, {high}]",
                c["verdict"] + (" REGRESSION" if c["regression"] else ""),
            )
        )
    if rows:
        print(render_table(columns, rows), end="")
    for key, words in UNMATCHED:
        if result[key]:
            print(f"{words}: {', '.join(printable(x) for x in result[key])}")
    if result["regressions"]:
        print(f"{result['regressions']} regression(s) above {result['fail_on_regression_pct']:g}%")
    if result["failed_in_b"] and result["fail_on_regression_pct"] is not None:
        print(f"{len(result['failed_in_b'])} variant(s) measured in A failed in B")
