"""A run as a Markdown block to paste into a GitHub issue (`anemll-spec share`).

anemll-bench users submit results by pasting into an issue; this gives them the same
habit with the numbers that matter and where they came from: the summary table, the
host, the comparison with published results (the store's one factor rule), and the
command that exports the bundle to attach. Every piece of store text goes through
`markdown.escape`, so a hostile name renders as text.
"""

from __future__ import annotations

import shlex
from decimal import Decimal

from anemll_spec.store import factors, lake_target, markdown, published
from anemll_spec.store.labels import case_label, labels_of
from anemll_spec.store.markdown import escape
from anemll_spec.store.sqlparts import CASE_ORDER
from anemll_spec.sustained_grid import SPAN_SQL, cut_short
from anemll_spec.text import distinct, path_word, printable, ratios, throttled_words

# What the published figures are, said under the comparison as the report and the factors
# chart say it (chart/report_published.PUBLISHED_NOTE): a reader of the issue compares a
# mean with a median, and the GB/s and ms of two different heads, otherwise.
_SUMMARY = (
    "model_name",
    "backend",
    "device",
    "compute_units",
    "status",
    "n_samples",
    "median_ms",
    "ci_low_ms",
    "ci_high_ms",
    "p90_ms",
    "p99_ms",
    "bandwidth_gbps",
    "tflops",
    "verify_status",
    "concurrency",
    "instances",
    "throughput_ips",
    "params",  # with model_name, the case's label (labels.case_label)
    "error",  # said under the table, one line a case that is not ok
)
ERROR_LIMIT = 300  # characters of a case's error said under the table
_HOST = (
    ("chip", "chip"),
    ("model_identifier", "model"),
    ("os", "OS"),
    ("cpu_model", "CPU"),
    ("cores_total", "cores"),
    ("memory_bytes", "memory"),
    ("gpu", "GPU"),
    ("power_source", "power"),
    ("low_power_mode", "Low Power Mode"),
    ("energy_mode", "Energy Mode"),
    ("thermal_state", "thermal state"),
    ("python_version", "Python"),
    ("coremltools_version", "coremltools"),
    ("numpy_version", "numpy"),
    ("duckdb_version", "DuckDB"),
    ("torch_version", "torch"),
    ("cuda_version", "CUDA"),
    ("gpu_driver", "GPU driver"),
)


def share_markdown(con, run_id: str, *, baseline: str, store_arg: str | None = None) -> str:
    """The Markdown block of one run. store_arg: the --store the user gave (repeated in
    the export command), or None for the default store."""
    run = _one(con, "SELECT * FROM runs WHERE run_id = ?", [run_id])
    host = _one(
        con,
        "SELECT *, concat_ws(' ', os_name, os_version, '(' || os_build || ')') AS os "
        "FROM hosts WHERE host_id = ?",
        [run["host_id"]],
    )
    # what the cases ran on, as the views name it (a CUDA run's GPU, not the host's CPU)
    chips = [r[0] for r in con.execute(
        "SELECT DISTINCT chip FROM results WHERE run_id = ? AND chip IS NOT NULL ORDER BY 1",
        [run_id],
    ).fetchall()]  # fmt: skip
    chip = " + ".join(chips) or (host.get("chip") or host.get("cpu_model") or "unknown chip")
    chip = chip.removeprefix("Apple ")
    out = [
        f"### anemll-spec: {escape(run['spec_name'] or 'unnamed spec')} on {escape(chip)}",
        "",
        _summary(con, run_id),
        "**Host**: "
        + "; ".join(
            f"{label} {escape(_host_value(key, host.get(key)))}"
            for key, label in _HOST
            if host.get(key) not in (None, "")
        ),
        "",
        "**Run**: "
        + "; ".join(
            [
                f"id {escape(run_id)}",
                f"status {escape(run['status'])}",
                f"started {escape(_fmt(run['started_at']))} UTC",
                f"anemll-spec {escape(run['tool_version'] or '?')}",
                f"commit {escape((run['git_commit'] or '')[:12] or 'unknown')}"
                + (" (uncommitted changes)" if run["git_dirty"] else ""),
                f"spec sha256 {escape((run['spec_sha256'] or '?')[:12])}",
                _provenance(con, run_id),
            ]
        ),
        "",
        _factors(con, run_id, baseline),
        _energy(con, run_id, baseline),
        _sustained(con, run_id),
        "To attach the full data (every sample, the spec, the host), export the run and "
        "attach the file:",
        "",
        "```sh",
        export_command(run_id, store_arg),
        "```",
        "",
    ]
    if _redacted(store_arg):
        out += ["The store's password is shown as `***`: put yours there before running it.", ""]
    return "\n".join(out)


def export_command(run_id: str, store_arg: str | None) -> str:
    """The exact command, quoted for a POSIX shell (ids and paths are data); a shared
    store's password is shown as *** (the block is pasted into a public issue)."""
    words = ["anemll-spec", "export", "--run", run_id, "--out", f"{run_id}.parquet"]
    if store_arg:
        shown = lake_target.redact(store_arg) if _redacted(store_arg) else path_word(store_arg)
        words += ["--store", shown]
    return " ".join(shell_word(w) for w in words)


def shell_word(word: str) -> str:
    """`word` quoted for bash and zsh. One with a control character (a path with a
    newline or tab) in bash's $'...' (ANSI-C quoting), each such character as the \\xHH
    of its UTF-8 bytes (bash 3.2, macOS's, has no \\u): escaped after shlex.join, a
    newline inside quotes became the two characters \\n, another path. Never a raw
    control character: the block is pasted into an issue, and read in terminals."""
    if word.isprintable():
        return shlex.quote(word)
    out = []
    for c in word:
        if c in "\\'":
            out.append("\\" + c)
        elif c.isprintable():
            out.append(c)
        else:  # a lone surrogate is a byte of a non-UTF-8 file name: that byte
            out += [f"\\x{b:02x}" for b in c.encode("utf-8", "surrogateescape")]
    return "$'" + "".join(out) + "'"


def _redacted(store_arg: str | None) -> bool:
    """Whether `store_arg` is a shared store's target with a password in it."""
    return lake_target.is_lake(store_arg) and lake_target.redact(store_arg or "") != store_arg


def _summary(con, run_id: str) -> str:
    cols = ", ".join(_SUMMARY)
    cur = con.execute(
        f"SELECT {cols} FROM results WHERE run_id = ? ORDER BY {CASE_ORDER}",
        [run_id],
    )
    rows = cur.fetchall()
    if not rows:
        return "No cases were stored for this run.\n"
    names = ["model", "backend", "device", "units", "status", "n", "median ms"]
    names += ["95% CI ms", "p90 ms", "p99 ms", "GB/s", "TFLOPS", "verify"]
    concurrent = any((r[14] or 1) > 1 for r in rows)
    shown = [
        (
            case_label(r[0], r[17]),
            *r[1:6],
            *_median_ci(r[6], r[7], r[8]),
            *r[9:14],
            *((f"{r[14]} {r[15]}" if (r[14] or 1) > 1 else "1", r[16]) if concurrent else ()),
        )
        for r in rows
    ]
    if concurrent:
        names += ["instances", "inferences/s"]
    return (
        markdown.table(names, shown, digits=4, null="-")
        + "".join(_why_not_ok(i, r) for i, r in enumerate(rows, 1) if r[4] != "ok")
        + "".join(
            f"\nRow {i}: its {r[14]} instances did not all run at once (too few calls to "
            "overlap), so no aggregate inferences/s was measured; the case's note says which "
            "made no call.\n"
            for i, r in enumerate(rows, 1)
            if r[4] == "ok" and (r[14] or 1) > 1 and r[16] is None
        )
        + (
            "\nWith several instances at once, latency and GB/s are per call under that load; "
            "inferences/s counts every instance's calls over the time they ran together.\n"
            if concurrent
            else ""
        )
    )


def _why_not_ok(row_number: int, r: tuple) -> str:
    """The line under the table for a case that is not ok: its row and its stored error
    (as the report and bench show it), on one line, cut to ERROR_LIMIT characters."""
    error = printable(r[18] or "no error was stored")
    if len(error) > ERROR_LIMIT:
        error = error[: ERROR_LIMIT - 1] + "…"
    what = escape(f"{case_label(r[0], r[17])}, {r[1]}")
    return f"\ncase {row_number} ({what}) {escape(r[4])}: {escape(error)}\n"


def _median_ci(median, low, high) -> tuple:
    """The median (a number, right-aligned as written) and its CI in words, with as many
    significant digits (4 to 7) as keep the three apart, as bench prints them: 4 digits
    put a median of 123.449 on its CI's edge ('123.4 | 123.4 to 123.5')."""
    if median is None or low is None or high is None:
        return median, None
    m, lo, hi = distinct((median, low, high), 4, 7)
    return Decimal(m), f"{lo} to {hi}"


def _factors(con, run_id: str, baseline: str) -> str:
    rows = factors.for_run(con, run_id, baseline)
    if not rows:  # factors compare ok cases of one instance at a time only
        stored, ok, concurrent = con.execute(
            "SELECT count(*), count(*) FILTER (WHERE status = 'ok'), "
            "count(*) FILTER (WHERE status = 'ok' AND concurrency > 1) "
            "FROM cases WHERE run_id = ?",
            [run_id],
        ).fetchone()
        if concurrent:
            why = f"{concurrent} of its {ok} ok case(s) ran several instances at once"
        elif not stored:
            why = "it stored no cases"
        else:
            why = "none finished ok" if not ok else "its cases name no model or chip"
        return (
            f"**Compared with the baseline chip**: no case of this run can be compared with "
            f"{escape(baseline)} ({why}; factors compare ok cases that ran one instance).\n"
        )
    labels = labels_of(con, run_id)  # a sweep's points apart, as bench shows them
    table = markdown.table(
        ["model", "backend", "units", "GB/s", "ms", "bandwidth factor", "inference factor", "vs"],
        [
            (
                labels.get(r["case_id"], r["model"]),
                r["backend"] + (f" {r['device']}" if r["device"] else ""),
                r["compute_units"],
                r["bandwidth_gbps"],
                r["latency_ms"],
                r["bandwidth_factor_label"] or "no baseline",
                r["inference_factor_label"] or "no baseline",
                r["baseline_label"] or "no baseline",
            )
            for r in rows
        ],
        digits=4,
        null="-",
    )
    # what the published figures are is said only where a row is compared with one
    against_published = any(str(r["baseline_source"] or "").startswith("published") for r in rows)
    heading = "published results" if against_published else "the baseline chip"
    return (
        f"**Compared with {heading}** (bandwidth factor = GB/s / the baseline's; "
        f"inference factor = the baseline's ms / ms; baseline {escape(baseline)}):\n\n"
        + table
        + (f"\n{escape(published.CAVEAT)}\n" if against_published else "")
    )


def _energy(con, run_id: str, baseline: str) -> str:
    """Energy per inference of the cases that have it, with what the figure is ('' when
    none: a run on a machine without power counters)."""
    rows = factors.energy_for_run(con, run_id, baseline)
    if not rows:
        return ""
    labels = labels_of(con, run_id)
    table = markdown.table(
        ["model", "backend", "units", "instances", "mJ per inference", "inferences per J", "mean W",
         "reader", "timed calls only", f"vs {baseline}"],
        [
            (
                labels.get(r["case_id"], r["model"]),
                r["backend"] + (f" {r['device']}" if r["device"] else ""),
                r["compute_units"],
                r["concurrency"],
                r["energy_mj_per_inference"],
                r["inferences_per_joule"],
                r["power_w_mean"],
                r["energy_method"],
                r["energy_timed_only"],
                r["energy_factor_label"] or "no baseline",
            )
            for r in rows
        ],
        digits=4,
        null="-",
    )  # fmt: skip
    caveats = dict.fromkeys(r["caveat"] for r in rows if r["caveat"])
    return (
        "**Energy** (mJ per inference = the counters' energy over the interval / its calls, "
        "all instances' calls where several ran at once):\n\n"
        + table
        + "".join(f"\n{escape(c)}." for c in caveats)
        + "\n"
    )


def _sustained(con, run_id: str) -> str:
    """The verdict of each sustained case ('' when none)."""
    cur = con.execute(
        f"""SELECT model_name, params, backend, device, compute_units, sustained_verdict,
                  sustained_throughput_ratio, sustained_ci_low, sustained_ci_high,
                  sustained_windows, sustained_window_s, sustained_throttled,
                  sustained_duration_s, (SELECT {SPAN_SQL} FROM sustained_windows w
                                         WHERE w.case_id = cases.case_id) AS timed_s
           FROM cases WHERE run_id = ? AND sustained_windows > 0
           ORDER BY {CASE_ORDER}""",
        [run_id],
    )
    rows = cur.fetchall()
    if not rows:
        return ""
    shown = []
    for (model, params, backend, device, units, verdict, ratio, lo, hi, n, window_s,
         throttled, duration_s, timed_s) in rows:  # fmt: skip
        r, lo_t, hi_t = ratios(ratio, lo, hi)
        verdict = (verdict or "-") + cut_short(timed_s, duration_s, window_s)
        shown.append((
            case_label(model, params), backend + (f" {device}" if device else ""), units, verdict,
            None if ratio is None else r,
            None if lo is None or hi is None else f"{lo_t} to {hi_t}",
            f"{n} x {window_s:g} s", throttled_words(throttled),
        ))  # fmt: skip
    table = markdown.table(
        ["model", "backend", "units", "verdict", "last/first throughput", "95% CI", "windows",
         "thermal"],
        shown,
        null="-",
    )  # fmt: skip
    return (
        "**Sustained** (last/first throughput = first-window median / last-window median; "
        "below 1: slower at the end):\n\n" + table
    )


def _provenance(con, run_id: str) -> str:
    (text,) = con.execute(
        "SELECT any_value(provenance) FROM results WHERE run_id = ?", [run_id]
    ).fetchone() or (None,)
    return f"provenance: {escape(text)}" if text else "provenance: no cases"


def _one(con, sql: str, params: list) -> dict:
    cur = con.execute(sql, params)
    row = cur.fetchone()
    return {} if row is None else dict(zip([d[0] for d in cur.description], row, strict=True))


def _host_value(key: str, v) -> str:
    """Memory in GB (10^9 bytes, as report and info give it), the rest as stored."""
    if key == "memory_bytes" and isinstance(v, int | float):
        return f"{v / 1e9:.1f} GB"
    return _fmt(v)


def _fmt(v) -> str:
    if isinstance(v, bool):
        return "on" if v else "off"
    if hasattr(v, "strftime"):
        return v.strftime("%Y-%m-%d %H:%M:%S")
    return str(v)
