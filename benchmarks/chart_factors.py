"""`chart factors` over a store of 100,000 cases must take at most 2 s.

The big store is SYNTHETIC (made-up figures, not measurements): the schema and the
published reference rows come from the real `open_store`; then 20 hosts, 1,000 runs,
100,000 cases and 50 samples per case (5 M rows) are bulk-inserted with DuckDB SQL
(`INSERT ... SELECT ... FROM range(n)`), since one `append_case` transaction per case
would take minutes. The last run gets 100 cases of 300 samples, like a real run.

Prints one JSON line: the median wall time of writing the factors chart (HTML, PNG,
SVG, JSON) in-process over the big store and, as the baseline measured in the same
process, over a store holding only the published rows and one run; plus the median
of the whole CLI command (`anemll-spec chart factors`, a fresh process) on the big store.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

N_CASES = 100_000
CASES_PER_RUN = 100
N_HOSTS = 20
SAMPLES_PER_CASE = 50
LAST_RUN_SAMPLES = 300
MODELS = ("llama_lm_head", "llama_lm_head_lut6", "sweep_vocab[vocab_size=32000]", "ffn")
WEIGHT_BYTES = (1_050_673_728, 396_055_616, 262_144_000, 352_321_536)


def make_store(path: Path, n_cases: int = N_CASES) -> str:
    """Create the synthetic store; returns the id of its last run."""
    import duckdb

    from anemll_spec.store import open_store

    open_store(path).close()  # schema, views, reference rows
    n_runs = max(1, n_cases // CASES_PER_RUN)
    con = duckdb.connect(str(path))
    try:
        con.execute("BEGIN")
        con.execute(
            """INSERT INTO hosts (host_id, hostname, chip, os_name, os_version, cpu_model,
                                  python_version, coremltools_version)
               SELECT printf('h%015d', i), 'host' || i,
                      'Apple M' || (1 + i % 5) || ['', ' Pro', ' Max', ' Ultra'][1 + i // 5],
                      'macOS', '15.' || (i % 4), 'Apple', '3.11.9', '9.0'
               FROM range(?) t(i)""",
            [N_HOSTS],
        )
        con.execute(
            """INSERT INTO runs (run_id, started_at, finished_at, status, spec_name, host_id)
               SELECT printf('20260101-%06d-%08x', i, i),
                      TIMESTAMP '2026-01-01' + INTERVAL (i) MINUTE,
                      TIMESTAMP '2026-01-01' + INTERVAL (i) MINUTE + INTERVAL 50 SECOND,
                      'finished', 'lm_head', printf('h%015d', i % ?)
               FROM range(?) t(i)""",
            [N_HOSTS, n_runs],
        )
        con.execute(
            f"""INSERT INTO cases (case_id, run_id, case_key, case_index, model_name, params,
                    model_family, weight_bytes, backend, compute_units, concurrency, status,
                    n_samples, median_ms, mean_ms, ci_low_ms, ci_high_ms, p90_ms, cv,
                    bandwidth_gbps, verify_status, finished_at)
               WITH c AS (
                   SELECT i, i // {CASES_PER_RUN} AS r, i % {CASES_PER_RUN} AS k,
                          i % {len(MODELS)} AS m,
                          ['CPU_ONLY', 'CPU_AND_GPU', 'CPU_AND_NE', 'ALL'][1 + (i // 4) % 4]
                              AS cu,
                          (3.0 + (hash(i) % 1000) / 100.0) AS ms
                   FROM range(?) t(i))
               SELECT printf('20260101-%06d-%08x-%08x', r, r, k), printf('20260101-%06d-%08x', r, r),
                      printf('key%04d', k), k, {_sql_list(MODELS)}[1 + m], '{{}}', 'lm_head',
                      {_sql_list(WEIGHT_BYTES)}[1 + m], 'coreml', cu, 1, 'ok',
                      CASE WHEN r = {n_runs - 1} THEN {LAST_RUN_SAMPLES} ELSE {SAMPLES_PER_CASE} END,
                      ms, ms * 1.02, ms * 0.99, ms * 1.01, ms * 1.1, 0.03,
                      {_sql_list(WEIGHT_BYTES)}[1 + m] / (ms * 1e6), 'pass',
                      TIMESTAMP '2026-01-01' + INTERVAL (r) MINUTE + INTERVAL (k) SECOND
               FROM c""",
            [n_cases],
        )
        con.execute(
            """INSERT INTO samples (case_id, idx, wall_ns)
               SELECT case_id, s.idx,
                      CAST(median_ms * 1e6 * (1 + ((hash(case_id, s.idx) % 200)::INTEGER - 100) / 2000.0)
                           AS BIGINT)
               FROM cases, LATERAL (SELECT unnest(range(n_samples)) AS idx) s"""
        )
        con.execute("COMMIT")
        last = con.execute("SELECT max(run_id) FROM runs").fetchone()[0]
    finally:
        con.close()
    return last


def _sql_list(values) -> str:
    return "[" + ", ".join(repr(v) for v in values) + "]"


def time_write(target: Path, out: Path) -> tuple[float, float, float]:
    """(wall s, CPU s of this process with vl-convert's threads, wall s of the query and
    spec alone, i.e. the part that depends on the store's size)."""
    from anemll_spec.chart import build_chart, render
    from anemll_spec.chart.source import Options

    t0, c0 = time.perf_counter(), time.process_time()
    spec = build_chart("factors", str(target), Options())
    t1 = time.perf_counter()
    render.write_chart(spec, out, "factors", "anemll-spec factors")
    return time.perf_counter() - t0, time.process_time() - c0, t1 - t0


def time_cli(target: Path, out: Path) -> float:
    t0 = time.perf_counter()
    subprocess.run(
        [
            sys.executable,
            "-m",
            "anemll_spec",
            "chart",
            "factors",
            "--store",
            str(target),
            "--out",
            str(out),
        ],
        check=True,
        capture_output=True,
    )
    return time.perf_counter() - t0


def main(repeats: int = 5, n_cases: int = N_CASES) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        big, small = tmp / "big.duckdb", tmp / "small.duckdb"
        t0 = time.perf_counter()
        make_store(big, n_cases)
        gen_s = time.perf_counter() - t0
        make_store(small, n_cases=CASES_PER_RUN)
        time_write(small, tmp / "warm")  # imports, Vega bundle cache, renderer start-up
        bigs, smalls, clis = [], [], []
        for _ in range(repeats):  # interleaved, so drift hits both alike
            bigs.append(time_write(big, tmp / "big"))
            smalls.append(time_write(small, tmp / "small"))
            clis.append(time_cli(big, tmp / "cli"))
        big_s, small_s = (statistics.median(t[0] for t in x) for x in (bigs, smalls))
        big_cpu = statistics.median(t[1] for t in bigs)
        big_spec, small_spec = (statistics.median(t[2] for t in x) for x in (bigs, smalls))
        cli_s = statistics.median(clis)
        print(
            json.dumps(
                {
                    "benchmark": "chart_factors",
                    "cases": n_cases,
                    "median_s": round(big_s, 4),
                    "baseline_median_s": round(small_s, 4),
                    "baseline": f"same chart, store of {CASES_PER_RUN} cases",
                    "ratio_vs_baseline": round(big_s / small_s, 2),
                    "cpu_median_s": round(big_cpu, 4),
                    "query_and_spec_median_s": round(big_spec, 4),
                    "baseline_query_and_spec_median_s": round(small_spec, 4),
                    "cli_median_s": round(cli_s, 4),
                    "loadavg_1m": round(os.getloadavg()[0], 2),
                    "cpus": os.cpu_count(),
                    "store_generation_s": round(gen_s, 2),
                    "target_s": 2.0,
                    "ok": big_s <= 2.0 and cli_s <= 2.0,
                }
            )
        )


if __name__ == "__main__":
    main()
