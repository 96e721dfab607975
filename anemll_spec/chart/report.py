"""The report of one run: a single offline HTML page.

Host and versions, a summary table of the run's cases, its comparison with the
published anemll-bench results, its energy and sustained-run figures where it has
them, and every chart that applies to it (a chart with
nothing to draw becomes a visible note, never a blank space). Every label from the
store is escaped: it is data, never markup.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from anemll_spec.chart import compare, latency, placement, render, sweep, timeline
from anemll_spec.chart.report_energy import energy_section, sustained_section
from anemll_spec.chart.report_out import default_out, is_report_of, meta
from anemll_spec.chart.report_published import num, os_section, published_section
from anemll_spec.chart.source import DEFAULT_BASELINE, NoData, Options, connect, fetch
from anemll_spec.chart.style import esc, fmt_num
from anemll_spec.compare import hosts_where
from anemll_spec.errors import InputError
from anemll_spec.paths import write_file
from anemll_spec.store.factors import check_baseline
from anemll_spec.store.labels import case_label
from anemll_spec.store.sqlparts import CASE_ORDER, PROVENANCE
from anemll_spec.text import distinct, printable

__all__ = ["default_out", "is_report_of", "resolve", "write_report"]

HOST_FIELDS = (
    ("hostname", "host name"),
    ("chip_raw", "chip"),
    ("model_identifier", "hardware model"),
    ("os_name", "OS"),
    ("os_version", "OS version"),
    ("os_build", "OS build"),
    ("cpu_model", "CPU"),
    ("cores_total", "CPU cores"),
    ("memory_gb", "memory (GB)"),
    ("gpu", "GPU"),
    ("power_source", "power source"),
    ("low_power_mode", "low power mode"),
    ("energy_mode", "energy mode"),
    ("thermal_state", "thermal state"),
    ("python_version", "Python"),
    ("coremltools_version", "coremltools"),
    ("numpy_version", "numpy"),
    ("duckdb_version", "duckdb"),
    ("torch_version", "torch"),
    ("cuda_version", "CUDA"),
    ("gpu_driver", "GPU driver"),
)
RUN_FIELDS = (
    ("run_id", "run"),
    ("spec_name", "spec"),
    ("spec_sha256", "spec sha256"),
    ("provenance", "provenance"),
    ("status", "status"),
    ("started_at", "started (UTC)"),
    ("finished_at", "finished (UTC)"),
    ("command", "command"),
    ("tool_version", "anemll-spec"),
    ("git_commit", "git commit"),
    ("git_dirty", "uncommitted changes"),
)
NO_COMMIT = "unknown"  # share says the same: no .git, no git, or git refused (ownership)
# column, header, is-number
CASE_COLUMNS = (
    ("case_index", "#", True),
    ("label", "model", False),
    ("backend", "backend", False),
    ("compute_units", "compute units", False),
    ("status", "status", False),
    ("n_samples", "samples", True),
    ("median_ms", "median (ms)", True),
    ("ci", "95% CI of median (ms)", False),
    ("p90_ms", "p90 (ms)", True),
    ("p99_ms", "p99 (ms)", True),
    ("cv_pct", "CV (%)", True),
    ("bandwidth_gbps", "GB/s", True),
    ("tflops", "TFLOP/s", True),
    ("dispatch_floor_ms", "dispatch floor (ms)", True),
    ("verify_status", "verify", False),
    ("flags", "flags", False),
)


def resolve(store_target: str | Path | None, ref: str | None, baseline: str) -> str:
    """The run id a report of `ref` (default 'latest') is about; InputError when the
    store has no runs, `baseline` is no chip of it, or `ref` matches no single run."""
    con = connect(None if store_target is None else str(store_target))
    try:
        return _resolve(con, ref, baseline)
    finally:
        con.close()


def _resolve(con, ref: str | None, baseline: str) -> str:
    from anemll_spec.store.lookup import resolve_run

    if not fetch(con, "SELECT 1 FROM runs LIMIT 1"):
        raise InputError("the store holds no runs yet: run `anemll-spec bench SPEC` first")
    # a chip no row has would silently give 'no baseline' everywhere (as in factors)
    check_baseline(con, baseline)
    return resolve_run(con, "latest" if ref is None else ref)


def write_report(
    store_target: str | Path | None,
    run_id: str | None = None,
    out: Path | str | None = None,
    *,
    baseline: str = DEFAULT_BASELINE,
    force: bool = False,
) -> Path:
    """Write the report of `run_id` (default: the latest run) and return its path.

    Default path: reports/<safe name of the run id>.html. An existing file is replaced
    only when it is this run's report, or with `force`; else InputError, nothing written.
    """
    target = None if store_target is None else str(store_target)
    con = connect(target)
    try:
        run_id = _resolve(con, run_id, baseline)
        path = Path(out) if out is not None else default_out(run_id)
        if path.exists() and not force and not is_report_of(path, run_id):
            raise InputError(
                f"{printable(path)}: the file exists and is not this run's report; give "
                "--force (or another --out) to replace it"
            )
        run, sections, charts, previous = _sections(con, run_id, baseline)
    finally:
        con.close()
    # compare reads the samples through its own connection: ours is closed by now
    sections.append(_compare_section(target, run_id, previous, charts))
    title = f"anemll-spec report: {run.get('spec_name') or ''} run {run_id}"
    body = f"<h1>{esc(title)}</h1>\n" + "\n".join(sections)
    write_file(path, render.page(title, body, charts, head=meta(run_id)))
    return path


def _sections(con, run_id: str, baseline: str):
    """(run row, HTML sections, charts by element id, previous run of the same spec)."""
    run = fetch(
        con,
        f"""SELECT h.*, r.*, h.chip AS chip_raw, round(h.memory_bytes / 1e9, 1) AS memory_gb,
                  {PROVENANCE.format(r="r.")} AS provenance
           FROM runs r LEFT JOIN hosts h ON h.host_id = r.host_id WHERE r.run_id = ?""",
        [run_id],
    )[0]
    run["git_commit"] = run.get("git_commit") or NO_COMMIT  # a row that says so, not none
    cases = fetch(con, f"SELECT * FROM results WHERE run_id = ? ORDER BY {CASE_ORDER}", [run_id])
    for c in cases:  # shown with its sweep's values (model_name alone pairs with others)
        c["label"] = case_label(c["model_name"], c["params"])
    charts: dict[str, dict] = {}
    opts = Options(runs=(run_id,), baseline=baseline)
    sections = [
        _kv_table("Run", run, RUN_FIELDS),
        _kv_table("Host and versions", run, HOST_FIELDS),
        _cases_table(cases),
        published_section(con, run_id, cases, opts, charts),
        os_section(con, run, cases, opts, charts),
        # v4 data: a section only where the run has it
        energy_section(con, run_id, cases, opts, charts),
        sustained_section(con, run_id, cases, charts),
    ]
    sections = [s for s in sections if s]
    for mod in (latency, timeline, sweep, placement):
        sections.append(
            _chart_section(mod.TITLE, mod.KIND, lambda m=mod: m.build(con, opts), charts)
        )
    from anemll_spec.store.lookup import resolve_run

    try:  # 'previous' as every command means it: the same spec's run before, with cases
        previous: str | None = resolve_run(con, "previous", previous_of=run_id)
    except InputError:
        previous = None
    return run, sections, charts, previous


def _chart_section(heading: str, kind: str, make, charts: dict[str, dict]) -> str:
    try:
        spec = make()
    except NoData as exc:
        return f'<h2>{esc(heading)}</h2>\n<p class="note">{esc(exc)}</p>'
    charts[f"chart-{kind}"] = spec
    return f'<h2>{esc(heading)}</h2>\n<div id="chart-{kind}" class="chart"></div>'


def _compare_section(target, run_id: str, previous: str | None, charts) -> str:
    head = "<h2>Against the previous run of this spec</h2>"
    if previous is None:
        return head + '<p class="note">No earlier run of this spec in the store.</p>'
    opts = Options(runs=(previous, run_id))
    result = compare.compute(target, opts)
    rows = compare.keep(None, result, opts)
    # what the chart leaves out (failed in this run, in one run only, no ratio), as
    # `compare` says it: a variant that failed here must not just vanish
    lines = compare.unmatched(result, opts)
    missing = (
        f'<p class="note">A is run {esc(previous)}, B this run ({esc(run_id)}). '
        + " ".join(esc(line) for line in lines)
        + "</p>"
        if lines
        else ""
    )
    if not rows:
        return head + (
            f'<p class="note">Runs {esc(previous)} and {esc(run_id)} have no measured '
            "variant in common.</p>" + missing
        )
    charts["chart-compare"] = compare.chart(rows, result, opts)
    note = missing
    if result["hosts_differ"]:  # a pulled run of another machine, say
        note += (
            f'<p class="note">The two runs were measured on different machines or systems '
            f"({esc(hosts_where(result))}): each ratio compares those too, not only "
            "what changed.</p>"
        )
    return head + note + '<div id="chart-compare" class="chart"></div>'


def _kv_table(heading: str, row: dict[str, Any], fields) -> str:
    cells = "".join(
        f"<tr><th>{esc(label)}</th><td>{esc(fmt_num(row.get(key)))}</td></tr>"
        for key, label in fields
        if row.get(key) is not None
    )
    return f"<h2>{esc(heading)}</h2>\n<table>{cells}</table>"


def _cases_table(cases: list[dict]) -> str:
    if not cases:
        return '<h2>Cases</h2>\n<p class="note">This run stored no cases.</p>'
    head = "".join(f"<th>{esc(h)}</th>" for _k, h, _n in CASE_COLUMNS)
    body = []
    for c in cases:
        c = dict(c)
        if c.get("backend") == "torch" and c.get("device"):  # as bench prints it: torch/cpu
            c["backend"] = f"torch/{c['device']}"
        if None not in (c.get("median_ms"), c.get("ci_low_ms"), c.get("ci_high_ms")):
            # digits enough to keep the median off its CI's ends, as bench and share
            c["median_ms"], low, high = distinct((c["median_ms"], c["ci_low_ms"],
                                                  c["ci_high_ms"]), 4, 7)  # fmt: skip
            c["ci"] = f"{low} – {high}"
        cv = c.get("cv")  # stored as a fraction; bench prints it in percent
        c["cv_pct"] = None if cv is None else 100.0 * cv
        c["flags"] = (
            ", ".join(
                f for f, on in (("throttled", c.get("throttled")), ("noisy", c.get("noisy"))) if on
            )
            or None
        )
        if (c.get("concurrency") or 1) > 1:  # latency and GB/s are per call, under load
            ips = c.get("throughput_ips")
            n, kind = c["concurrency"], c.get("instances") or "shared"
            at_once = f"{n} {kind} instances at once"
            aggregate = f": {fmt_num(ips, 4)} inferences/s in all" if ips is not None else ""
            if ips is None and c.get("status") == "ok":  # no overlap: no aggregate measured
                at_once = f"{n} {kind} instances, not all at once (no aggregate measured)"
            c["flags"] = ", ".join(f for f in (at_once + aggregate, c["flags"]) if f)
        if c.get("status") != "ok" and c.get("error"):
            c["flags"] = f"error: {c['error']}"
        tds = "".join(
            num(c.get(k)) if is_num else f"<td>{esc(c.get(k))}</td>"
            for k, _h, is_num in CASE_COLUMNS
        )
        body.append(f"<tr>{tds}</tr>")
    return (
        f"<h2>Cases ({len(cases)})</h2>\n<table><tr>{head}</tr>{''.join(body)}</table>"
        '<p class="muted">Latency: wall clock per predict call, median with a bootstrap '
        "95% CI. GB/s = weight bytes / median latency (1 GB = 10^9 bytes). With several "
        "instances at once, both are per call under that load; the flags give all "
        "instances' inferences/s.</p>"
    )
