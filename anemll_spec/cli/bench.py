"""anemll-spec bench SPEC...: time every case on its backends, store everything, summarise."""

from __future__ import annotations

import argparse
import contextlib
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from anemll_spec.cli._common import (
    add_backend,
    add_cache_dir,
    add_json,
    add_max_cases,
    add_store,
    cache_dir_of,
    check_build_env,
    nonempty,
    note_new_store,
    print_json,
    shown_store,
    table,
)
from anemll_spec.text import sig, with_ci

HELP = "run specs' benchmarks, record them in the store and print a summary"
DESCRIPTION = (
    "Build each case (cached), time it on the spec's backends (Core ML compute units, "
    "the reference executor), verify outputs, read energy counters where the platform "
    "allows, and append every case to the store as it finishes. Several specs run one "
    "after another, each as its own run. Exit status 1 if any case failed."
)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("specs", nargs="+", type=nonempty, metavar="SPEC", help="YAML spec files")
    add_backend(p, "run every case on this backend instead of the spec's run.backends")
    add_store(p)
    add_cache_dir(p)
    add_max_cases(p)
    p.add_argument("--report", action="store_true", help="also write each run's HTML report")
    add_json(p)


def run(args: argparse.Namespace) -> int:
    from anemll_spec.backends.coreml_stdout import stdout_to_stderr
    from anemll_spec.runner import Runner
    from anemll_spec.runner.bench import preflight_together
    from anemll_spec.store.lake_target import command_text

    # every spec is checked before the first one runs: bad input stops all, writes nothing
    check_build_env()
    with stdout_to_stderr(args.json):  # in --json mode, stdout holds only the JSON
        runners = [
            Runner(
                spec,
                backend=args.backend,
                store=args.store,
                max_cases=args.max_cases,
                cache_dir=cache_dir_of(args),
                command=command_text(args.argv),
            )
            for spec in args.specs
        ]
        preflight_together(runners)
    note_new_store(runners[0].target, "this run")
    docs, status, done = [], 0, []
    for runner in runners:
        # in --json mode, whatever a native library prints goes to stderr, not the JSON
        with stdout_to_stderr(args.json):
            result = runner.run()
            report = write_report(result) if args.report else None
        done.append(result)
        if args.json:
            doc = result.to_json()
            doc["store"] = shown_store(result.store)  # as the text says it: absolute
            if args.report:
                doc["report"] = report
            docs.append(doc)
        else:
            with _stored_anyway(done):  # said now, not after the next spec's run
                print(summary(result))
                if args.report:
                    print(f"report: {report}" if report else "report: not written (see above)")
                sys.stdout.flush()
        if result.status == "interrupted":  # Ctrl-C, or its output's reader gone (SIGPIPE's)
            from anemll_spec.cli import interrupted_status

            status = 141 if runner.output_lost else interrupted_status()
            break
        status = max(status, exit_status(result))
    if args.json:
        with _stored_anyway(done):
            print_json(docs[0] if len(docs) == 1 else docs)
            sys.stdout.flush()
    return status


@contextlib.contextmanager
def _stored_anyway(results: list) -> Iterator[None]:
    """stdout failing (a full disk) loses the summary, not the runs: the error says
    where each is stored."""
    from anemll_spec.cli._stdout import OutputError

    try:
        yield
    except OutputError as exc:
        runs = "; ".join(
            f"run {r.run_id} ({r.status}) is stored in {shown_store(r.store)}" for r in results
        )
        raise OutputError(f"{exc}; {runs}") from None


def exit_status(result: Any) -> int:
    """1 where a case failed, or where the run's cases went to another store than the one
    named (locked, or unreachable: its message prints the push that merges them), so a
    script that reads the store after `bench && ...` never reads it without them."""
    return 1 if result.failed or result.store_message else 0


def pct(share: float) -> str:
    """A share as a percentage people read: 150%, 12%, 3.4%, 0.21%."""
    p = 100 * share
    return f"{p:.0f}%" if p >= 10 else f"{p:.2g}%"


def _factor(m: Any) -> str:
    f = m.factors
    if not f:
        return "-"
    from anemll_spec.store.sqlparts import DERIVED_BASELINE

    bw, ms = f["bandwidth_factor_label"], f["inference_factor_label"]
    # the factor against a published figure before one against a derived one (a LUT6
    # head's published figure is its ms; its GB/s baseline is derived from that)
    use_ms = ms and (
        not bw or (bw.endswith(DERIVED_BASELINE) and not ms.endswith(DERIVED_BASELINE))
    )
    label, what = (ms, "ms") if use_ms else (bw, "GB/s")
    if not label:
        return "-"
    return f"{label} ({what}) vs {f['baseline_label']}"


def summary(result: Any) -> str:
    rows = []
    for m in result.results:
        s, v = m.summary, m.variant
        rows.append(
            [
                v.case.index,
                v.case.label,
                v.backend + (f"/{m.device}" if m.device and v.backend == "torch" else ""),
                v.compute_units or "-",
                with_ci(s.median_ms, s.ci_low_ms, s.ci_high_ms) if s else "-",
                sig(s.p90_ms, 4) if s else "-",
                sig(s.p99_ms, 4) if s else "-",
                sig(m.bandwidth_gbps),
                sig(m.tflops),
                _energy(m),
                _verify(m),
                _factor(m),
            ]
        )
    header = ["#", "case", "backend", "units", "median ms [95% CI]", "p90 ms", "p99 ms"]
    header += ["GB/s", "TFLOPS", "mJ/inference", "verify", "factor"]
    out = [table(rows, header) if rows else "no case finished: nothing to summarise"]
    for m in result.results:
        out += _lines(m)
    if rows:  # the table's legend: none for a table not printed (Ctrl-C before any case)
        out.append(
            "GB/s = weight bytes / MEDIAN latency (anemll-bench divides by the mean); "
            "TFLOPS = analytic FLOPs / median latency; CI: bootstrap 95% of the median; "
            "factor: against the baseline chip (default M1 Max) as the store's chip_factors "
            "rule defines it; mJ/inference: the SoC's, GPU board's or CPU package's own energy "
            "counters (an estimate), not wall power."
        )
    out.append(f"run {result.run_id} ({result.status}) stored in {shown_store(result.store)}")
    if result.store_message:
        out.append(result.store_message)
    return "\n".join(out)


def _lines(m: Any) -> list[str]:
    """What a reader of the table must also know about one result."""
    from anemll_spec.stats import bandwidth_gbps

    v = m.variant
    where = f"#{v.case.index} {v.label}"
    out = []
    if m.status != "ok":
        out.append(f"FAILED #{v.case.index} {v.case.model_name} {v.label}: {m.error}")
    if m.verdict is not None and m.verdict.status == "skipped":
        out.append(f"verify {where}: skipped: {m.verdict.note}")
    elif m.verdict is not None and m.verdict.note:
        out.append(f"verify {where}: {m.verdict.note}")
    rt = m.runtime_median_ms
    if rt is not None and m.summary is not None:
        gbps = bandwidth_gbps(m.weight_bytes, rt)
        out.append(
            f"runtime {where}: {rt:.3f} ms the runtime's own"
            + (f" ({gbps:.2f} GB/s)" if gbps else "")
            + f"; call overhead (wall - runtime) {m.summary.median_ms - rt:.3f} ms"
        )
    reason = getattr(m.energy, "reason", None) or _refused(m)
    if reason:
        out.append(f"energy {where}: not measured: {reason}")
    for n in m.notes:
        out.append(f"note {where}: {n}")
    if m.dispatch_floor_ms and m.summary:
        after = m.dispatch_floor_after  # timed once per run and kind: said where it was
        when = "this case" if after in (None, v.case.index) else f"case #{after}, reused"
        floor = f"dispatch floor {where}: {m.dispatch_floor_ms:.3f} ms for a tiny 64->64 model"
        if m.dispatch_floor_ms >= m.summary.median_ms:  # what is known, not why
            floor += (
                f", timed after {when}, is at or above its median "
                f"({m.summary.median_ms:.3f} ms): a model as fast as the tiny one, or "
                "conditions that changed between the two; no overhead share"
            )
        else:
            share = pct(m.dispatch_floor_ms / m.summary.median_ms)
            floor += f" (timed after {when}) = {share} of this median"
        out.append(floor)
    return out


def _refused(m: Any) -> str | None:
    """Why the store took a reading as no figure (as its energy_note words it), or None:
    the table's "-" is then explained, not silent."""
    from anemll_spec.store.energy import unusable

    e = m.energy
    if e is None or not hasattr(e, "rails_mj") or m.status != "ok":
        return None
    why = unusable(e, m.reading_calls)
    return f"{e.method} reading not stored: {why}" if why else None


def _energy(m: Any) -> str:
    """mJ per inference as the store keeps it: none where the store refuses the reading
    (store.energy.unusable: a counter that did not move read 0 mJ, and 1/0 crashed here)."""
    from anemll_spec.store.energy import unusable

    e, calls = m.energy, m.reading_calls
    if e is None or not hasattr(e, "per_inference_mj") or not calls or unusable(e, calls):
        return "-"
    mj = e.per_inference_mj(calls).get("total")
    return "-" if not mj else f"{sig(mj)} ({sig(1e3 / mj)}/J)"


def _verify(m: Any) -> str:
    v = m.verdict
    if v is None:
        return "-"
    if v.status == "pass" and v.max_abs_error is not None:  # None: a classifier's labels
        return f"pass (max err {v.max_abs_error:.2g})"
    return v.status


def write_report(result: Any) -> str | None:
    """The run's HTML report; its absolute path (None if it could not be written)."""
    from anemll_spec.chart.report import write_report as _write

    try:
        path = _write(result.target or result.store, run_id=result.run_id)
    except Exception as exc:  # the results are stored; a report problem must not hide them
        print(f"report: failed: {type(exc).__name__}: {exc}", file=sys.stderr)
        return None
    return str(Path(path).resolve())
