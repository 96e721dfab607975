"""The whole bench flow on the numpy backend: real small models, a real DuckDB store.

Stored statistics are recomputed here from the stored samples with plain numpy.
"""

from __future__ import annotations

import io
import json
import os
import re
import shlex
import shutil
import sys
from pathlib import Path

import duckdb
import numpy as np
import pytest
from bench_util import interrupted_bench
from build_util import lm_head

from anemll_spec.progress import Progress
from anemll_spec.runner import Runner

LM_HEAD = """
name: tiny_head
model: {family: lm_head, hidden_size: 64, vocab_size: 256, chunks: 2}
run: {backends: [numpy], warmup: 3, iterations: 40, max_time_s: 10}
sweep:
  model.layout: [conv, linear]
"""
FFN = """
name: tiny_ffn
model: {family: ffn, hidden_size: 64, intermediate_size: 128, seq_len: 4}
run: {backends: [auto], compute_units: [CPU_AND_NE, ALL], warmup: 2, iterations: 30}
"""
ATTENTION = """
name: tiny_attention
model: {family: attention, hidden_size: 64, heads: 4, kv_heads: 2, head_dim: 16,
        context_length: 32}
run: {backends: [numpy], warmup: 2, iterations: 25}
"""


@pytest.fixture(scope="module")
def cache(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("cache")


def _spec(tmp_path: Path, text: str, name: str = "spec.yaml") -> Path:
    p = tmp_path / name
    p.write_text(text)
    return p


def _run(spec: Path, store: Path, cache: Path, **kw):
    runner = Runner(
        spec, store=str(store), cache_dir=cache, progress=Progress(io.StringIO(), live=False), **kw
    )
    return runner.run()


def _cases(store: Path) -> list[dict]:
    con = duckdb.connect(str(store), read_only=True)
    try:
        cur = con.execute("SELECT * FROM cases ORDER BY case_index, finished_at")
        names = [d[0] for d in cur.description]
        return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]
    finally:
        con.close()


def _samples(store: Path, case_id: str) -> tuple[np.ndarray, list]:
    con = duckdb.connect(str(store), read_only=True)
    try:
        rows = con.execute(
            "SELECT wall_ns, runtime_ns FROM samples WHERE case_id = ? ORDER BY idx", [case_id]
        ).fetchall()
    finally:
        con.close()
    return np.array([r[0] for r in rows], dtype=np.float64), [r[1] for r in rows]


def _check_stats(store: Path, row: dict) -> None:
    """Every stored statistic, recomputed from the stored samples."""
    wall_ns, runtime = _samples(store, row["case_id"])
    ms = wall_ns / 1e6
    n = len(ms)
    assert n == row["n_samples"] > 0
    approx = lambda v: pytest.approx(v, rel=1e-9, abs=1e-12)  # noqa: E731
    assert row["median_ms"] == approx(np.median(ms)) == row["p50_ms"]
    assert row["mean_ms"] == approx(ms.mean())
    assert row["std_ms"] == approx(ms.std(ddof=1))
    assert row["min_ms"] == approx(ms.min()) and row["max_ms"] == approx(ms.max())
    for q in (5, 90, 95, 99):
        assert row[f"p{q}_ms"] == approx(np.percentile(ms, q))
    q1, q3 = np.percentile(ms, [25, 75])
    assert row["iqr_ms"] == approx(q3 - q1)
    assert row["mad_ms"] == approx(np.median(np.abs(ms - np.median(ms))))
    iqr = q3 - q1
    assert row["outliers"] == np.sum((ms < q1 - 1.5 * iqr) | (ms > q3 + 1.5 * iqr))
    assert row["cv"] == approx(ms.std(ddof=1) / ms.mean())
    assert row["ci_low_ms"] <= row["median_ms"] <= row["ci_high_ms"]
    srt = np.sort(ms)  # the bootstrap CI of a median sits within ~3 sigma of the middle ranks
    k = int(np.ceil(1.5 * np.sqrt(n)))
    assert (
        srt[max(0, n // 2 - k)] <= row["ci_low_ms"]
        and row["ci_high_ms"] <= srt[min(n - 1, n // 2 + k)]
    )
    d = n // 10
    if d >= 2:
        assert row["drift_ratio"] == approx(np.median(ms[-d:]) / np.median(ms[:d]))
    assert row["bandwidth_gbps"] == approx(row["weight_bytes"] / (np.median(ms) / 1e3) / 1e9)
    assert row["tflops"] == approx(row["flops"] / (np.median(ms) / 1e3) / 1e12)
    if row["backend"] == "numpy":
        assert all(r is None for r in runtime)  # the executor has no duration of its own
        assert row["runtime_median_ms"] is None


def test_bench_cli_end_to_end(cli, tmp_path):
    spec = _spec(tmp_path, LM_HEAD)
    store = tmp_path / "store.duckdb"
    res = cli("bench", spec, "--store", store, "--json")
    assert res.returncode == 0, res.stderr
    assert f"note: no store at {store} yet: this run creates it" in res.stderr
    doc = json.loads(res.stdout)
    assert doc["status"] == "finished" and len(doc["results"]) == 2
    rows = _cases(store)
    assert [r["params"] for r in rows] == ['{"model.layout": "conv"}', '{"model.layout": "linear"}']
    for row, got in zip(rows, doc["results"], strict=True):
        assert row["status"] == "ok" and row["backend"] == "numpy"
        assert row["compute_units"] is None and row["n_samples"] == 40
        assert row["case_id"] == got["case_id"] and row["median_ms"] == got["stats"]["median_ms"]
        assert row["variant_key"] == got["variant_key"]  # what compare pairs runs on
        # numpy is the reference executor: it is checked against the program in fp16
        assert row["verify_status"] == "pass", row["verify_note"]
        assert row["verify_note"] == (
            "compared: the same program in fp16 (every op rounded) as the output, numpy "
            "executor fp32 as the reference"
        )
        assert 0 < row["verify_max_abs_error"] <= 0.05  # fp16 rounding shows, within tolerance
        assert row["load_ms"] > 0 and row["first_predict_ms"] > 0 and row["compile_ms"] is None
        assert row["dispatch_floor_ms"] > 0
        assert row["weight_bytes"] > 64 * 256 * 2 and row["flops"] == 2 * 64 * 256
        _check_stats(store, row)
    con = duckdb.connect(str(store), read_only=True)
    run = con.execute("SELECT status, spec_name, spec_yaml, command FROM runs").fetchone()
    host = con.execute("SELECT python_version, numpy_version FROM hosts").fetchone()
    con.close()
    assert run[0] == "finished" and run[1] == "tiny_head" and run[2] == spec.read_text()
    assert run[3] == shlex.join(
        ["anemll-spec", "bench", str(spec), "--store", str(store), "--json"]
    )
    assert host == (
        ".".join(map(str, sys.version_info[:3])),
        __import__("numpy").__version__,
    )
    # the text summary; the store, named relative to the working folder, by its full path
    res = cli("bench", spec, "--store", store.name, cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    assert "note: no store" not in res.stderr and f"stored in {store}\n" in res.stdout
    assert "median ms [95% CI]" in res.stdout and "tiny_head[layout=linear]" in res.stdout
    assert "MEDIAN latency (anemll-bench divides by the mean)" in res.stdout


def test_ffn_and_attention_on_auto(tmp_path, cache):
    store = tmp_path / "s.duckdb"
    r1 = _run(_spec(tmp_path, FFN, "ffn.yaml"), store, cache)
    r2 = _run(_spec(tmp_path, ATTENTION, "att.yaml"), store, cache)
    assert r1.status == r2.status == "finished"
    rows = _cases(store)
    assert [r["model_family"] for r in rows] == ["ffn", "attention"]
    if sys.platform != "darwin":  # auto -> numpy; its two compute units collapse into one
        assert rows[0]["backend"] == "numpy" and rows[0]["compute_units"] is None
        assert any("collapsed into one" in n for n in r1.results[0].notes)
    for row in rows:
        assert row["status"] == "ok"
        _check_stats(store, row)
    assert rows[1]["n_samples"] == 25  # a stateful model (KV cache) timed like any other


def test_failed_case_is_recorded_and_the_run_goes_on(cli, tmp_path, cache):
    from anemll_spec.build import build

    good = build(
        lm_head(hidden_size=64, vocab_size=128, chunks=1, layout="linear"), cache_dir=cache
    )
    shutil.copytree(good.path, tmp_path / "good.mlpackage")
    broken = tmp_path / "broken.mlpackage"
    shutil.copytree(good.path, broken)
    # an op no runtime knows, the package whole: bench's checks before the run pass (a
    # package that is no model, or whose weights are damaged, is refused up front), the
    # case fails when its program is prepared
    from coremltools.proto import Model_pb2

    model_file = broken / "Data" / "com.apple.CoreML" / "model.mlmodel"
    proto = Model_pb2.Model()
    proto.ParseFromString(model_file.read_bytes())
    for block in proto.mlProgram.functions["main"].block_specializations.values():
        block.operations[-1].type = "made_up_op"
    model_file.write_bytes(proto.SerializeToString())
    spec = _spec(
        tmp_path,
        "name: ext\nmodel: {family: external, path: broken.mlpackage}\n"
        "run: {backends: [numpy], warmup: 1, iterations: 10}\n"
        "sweep: {model.path: [broken.mlpackage, good.mlpackage]}\n",
    )
    store = tmp_path / "s.duckdb"
    res = cli("bench", spec, "--store", store)
    assert res.returncode == 1, res.stderr
    assert "FAILED #0" in res.stdout
    rows = _cases(store)
    assert [r["status"] for r in rows] == ["failed", "ok"]
    assert "unsupported op type 'made_up_op'" in rows[0]["error"]
    assert rows[0]["n_samples"] == 0 and rows[0]["median_ms"] is None
    assert rows[1]["n_samples"] == 10
    con = duckdb.connect(str(store), read_only=True)
    assert con.execute("SELECT status FROM runs").fetchone() == ("failed",)
    con.close()


def test_max_time_stops_a_long_run(tmp_path, cache):
    spec = _spec(
        tmp_path,
        "name: mt\nmodel: {family: lm_head, hidden_size: 64, vocab_size: 128, chunks: 1}\n"
        "run: {backends: [numpy], warmup: 1, iterations: 1000000, max_time_s: 0.3}\n",
    )
    res = _run(spec, tmp_path / "s.duckdb", cache)
    (r,) = res.results
    assert r.timing.stop == "max_time" and 10 < r.summary.n < 1_000_000
    # it stopped on the first call to end past 0.3 s of timed calls: the rule exactly
    ends = r.timing.starts_ns + r.timing.samples_ns
    assert ends[:-1].max() - r.timing.starts_ns[0] < 0.3e9 <= r.timing.timed_s * 1e9
    (row,) = _cases(tmp_path / "s.duckdb")
    _check_stats(tmp_path / "s.duckdb", row)


def test_adaptive_stop_at_target_ci(tmp_path, cache):
    spec = _spec(
        tmp_path,
        "name: ci\nmodel: {family: lm_head, hidden_size: 64, vocab_size: 128, chunks: 1}\n"
        "run: {backends: [numpy], warmup: 5, iterations: 1000000, max_time_s: 30,\n"
        "      target_ci_pct: 2.0}\n",
    )
    res = _run(spec, tmp_path / "s.duckdb", cache)
    (r,) = res.results
    assert r.timing.stop == "target_ci" and r.summary.n < 1_000_000
    # the 95% CI the run stored is close to the target (bootstrap vs order-statistic CI)
    assert r.summary.ci_reach_pct < 4.0


def test_concurrency_reports_aggregate_throughput(tmp_path, cache):
    spec = _spec(
        tmp_path,
        "name: conc\nmodel: {family: lm_head, hidden_size: 256, vocab_size: 2048, chunks: 2}\n"
        "run: {backends: [numpy], warmup: 2, iterations: 2000, concurrency: 2}\n",
    )
    res = _run(spec, tmp_path / "s.duckdb", cache)
    (r,) = res.results
    (row,) = _cases(tmp_path / "s.duckdb")
    # both instances' calls: one ran its 2000, the other stopped with it (after its call)
    assert row["concurrency"] == 2 and 2000 < row["n_samples"] <= 4000
    # aggregate rate: at least one instance's rate, at most two instances at full speed
    # (a few hundred ms of calls each: a thread woken 20 ms late costs a few %, not half)
    one = 1e3 / row["mean_ms"]
    assert 0.5 * one < row["throughput_ips"] <= 2 * 1e3 / row["min_ms"]
    # exactly the calls over the span the stored samples cover (first start, last end)
    con = duckdb.connect(str(tmp_path / "s.duckdb"), read_only=True)
    n, span_ns = con.execute(
        "SELECT count(*), max(start_ns + wall_ns) - min(start_ns) FROM samples"
    ).fetchone()
    con.close()
    assert row["throughput_ips"] == pytest.approx(n / (span_ns / 1e9), rel=1e-9)
    assert any("concurrency 2" in n and "first met its rule (iterations)" in n for n in r.notes)
    assert row["n_samples"] == n
    _check_stats(tmp_path / "s.duckdb", row)


def test_ctrl_c_keeps_finished_cases_and_marks_the_run_interrupted(tmp_path, cache):
    spec = _spec(
        tmp_path,
        "name: intr\nmodel: {family: lm_head, hidden_size: 64, vocab_size: 128, chunks: 1}\n"
        "run: {backends: [numpy], warmup: 1, iterations: 1000000, max_time_s: 1}\n"
        "sweep: {run.max_time_s: [0.2, 120]}\n",
    )
    store = tmp_path / "s.duckdb"
    status, said = interrupted_bench(
        spec, store, cache, lambda ln: "[2/2]" in ln and "timing" in ln, delay_s=0.5
    )
    assert status == 130, said
    rows = _cases(store)
    assert len(rows) == 1 and rows[0]["status"] == "ok"
    con = duckdb.connect(str(store), read_only=True)
    assert con.execute("SELECT status FROM runs").fetchone() == ("interrupted",)
    con.close()


def test_ctrl_c_before_any_case_finishes_prints_no_table_legend(tmp_path, cache):
    """Stop 27: 'no case finished' was followed by the GB/s ... legend of a table that was
    not printed. The run's line still says where it is stored."""
    spec = _spec(
        tmp_path,
        "name: early\nmodel: {family: lm_head, hidden_size: 64, vocab_size: 128, chunks: 1}\n"
        "run: {backends: [numpy], warmup: 1, iterations: 1000000, max_time_s: 120}\n",
    )
    store = tmp_path / "s.duckdb"
    out: list[str] = []
    status, said = interrupted_bench(
        spec, store, cache, lambda ln: "[1/1]" in ln and "timing" in ln, 0.3, stdout=out
    )
    assert status == 130, said
    assert _cases(store) == []
    lines = out[0].splitlines()
    assert lines[0] == "no case finished: nothing to summarise", out[0]
    assert re.fullmatch(r"run \S+ \(interrupted\) stored in .*s\.duckdb", lines[1]), out[0]
    assert "GB/s" not in out[0] and "MEDIAN" not in out[0]


def test_a_run_started_from_python_records_the_command_that_ran(tmp_path, cache):
    """Stop 27: Runner(...).run() from Python recorded 'anemll-spec', a command never run;
    it records the Python command line (here `python -c CODE`), the CLI its own."""
    import subprocess

    spec = _spec(tmp_path, LM_HEAD[: LM_HEAD.index("sweep:")])  # one case
    store = tmp_path / "s.duckdb"
    code = (
        "from anemll_spec.runner import Runner\n"
        f"Runner({str(spec)!r}, backend='numpy', store={str(store)!r}).run()\n"
    )
    env = {**os.environ, "ANEMLL_SPEC_CACHE": str(cache)}
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert res.returncode == 0, res.stderr
    con = duckdb.connect(str(store), read_only=True)
    (command,) = con.execute("SELECT command FROM runs").fetchone()
    con.close()
    assert command == shlex.join([sys.executable, "-c", code])


def test_an_embedded_interpreter_records_no_command(tmp_path, cache, monkeypatch):
    """An interpreter embedded in another program has no command line (sys.orig_argv is
    empty): NULL, not an empty string."""
    monkeypatch.setattr(sys, "orig_argv", [])
    spec = _spec(tmp_path, LM_HEAD[: LM_HEAD.index("sweep:")])
    store = tmp_path / "s.duckdb"
    assert _run(spec, store, cache).status == "finished"
    con = duckdb.connect(str(store), read_only=True)
    assert con.execute("SELECT command FROM runs").fetchall() == [(None,)]
    con.close()


def test_the_cli_called_from_python_records_the_command_it_was_given(tmp_path, cache, monkeypatch):
    """main(argv) records its own argv, not the process's sys.argv (a driver script's
    flags, or pytest's)."""
    from anemll_spec.cli import main

    spec = _spec(tmp_path, LM_HEAD[: LM_HEAD.index("sweep:")])
    store = tmp_path / "s.duckdb"
    monkeypatch.setattr(sys, "argv", ["driver.py", "--my-flag"])
    argv = ["bench", str(spec), "--store", str(store), "--backend", "numpy"]
    assert main(argv) == 0
    con = duckdb.connect(str(store), read_only=True)
    (command,) = con.execute("SELECT command FROM runs").fetchone()
    con.close()
    assert command == shlex.join(["anemll-spec", *argv])


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="no /dev/full (Linux has one)")
def test_bench_on_a_full_disk_says_its_output_failed_and_its_run_is_stored(tmp_path, cache, capsys):
    """`bench ... > /dev/full` said 'error: No space left on device', exit 2 (bad input),
    with the run stored 'finished' and not a word of it. Now the output is named, the run
    and where it is stored, exit 1."""
    from anemll_spec.cli import main

    spec = _spec(tmp_path, LM_HEAD[: LM_HEAD.index("sweep:")])
    store = tmp_path / "s.duckdb"
    argv = ["bench", str(spec), "--store", str(store), "--cache-dir", str(cache)]
    real = sys.stdout
    with open("/dev/full", "w") as full:
        sys.stdout = full
        try:
            status = main(argv)
        finally:
            sys.stdout = real
    con = duckdb.connect(str(store), read_only=True)
    runs = con.execute("SELECT run_id, status FROM runs").fetchall()
    n_cases = con.execute("SELECT count(*) FROM cases WHERE status = 'ok'").fetchone()
    con.close()
    assert status == 1 and len(runs) == 1 and runs[0][1] == "finished" and n_cases == (1,)
    assert capsys.readouterr().err.splitlines()[-1] == (
        "anemll-spec bench: error: could not write the output (stdout): No space left on "
        f"device; run {runs[0][0]} (finished) is stored in {store}"
    )


def test_compare_pairs_the_same_variant_across_spec_lists_and_backend_override(tmp_path, cache):
    """Run A lists auto with two compute units (one numpy variant on Linux); run B is the
    same model forced with --backend numpy. They measured the same thing: compare pairs them."""
    from anemll_spec.compare import compare_runs

    store = tmp_path / "r.duckdb"
    a = _run(_spec(tmp_path, FFN, "a.yaml"), store, cache)
    b = _run(_spec(tmp_path, FFN, "b.yaml"), store, cache, backend="numpy")
    result = compare_runs(store, a.run_id, b.run_id, n_boot=200)
    assert len(result["comparisons"]) == 1
    assert result["only_in_a"] == result["only_in_b"] == []
    (c,) = result["comparisons"]
    assert c["backend"] == "numpy" and c["n_a"] == c["n_b"] == 30


def test_dispatch_floor_is_measured_once_per_kind_of_tiny_model(cli, tmp_path):
    """The floor model follows the case's dtype, precision and target: a sweep over the
    target measures one floor per target (built into the cache), not the first one's."""
    spec = _spec(
        tmp_path,
        LM_HEAD.replace("sweep:\n  model.layout: [conv, linear]", "")
        + "sweep:\n  model.deployment_target: [iOS17, iOS18]\n  model.layout: [conv, linear]\n",
    )
    res = cli("bench", spec, "--store", tmp_path / "s.duckdb", "--json")
    assert res.returncode == 0, res.stderr
    listing = json.loads(cli("cache", "list", "--json").stdout)
    tiny = [
        e["model"]
        for e in listing["entries"]
        if e["model"].get("hidden_size") == 64 and e["model"].get("vocab_size") == 64
    ]
    assert sorted(m["deployment_target"] for m in tiny) == ["iOS17", "iOS18"]
    by_target: dict[str, set] = {}
    for r in _cases(tmp_path / "s.duckdb"):
        target = json.loads(r["params"])["model.deployment_target"]
        by_target.setdefault(target, set()).add(r["dispatch_floor_ms"])
    # one floor per target, shared by its two layouts (measured once, then reused)
    assert sorted(by_target) == ["iOS17", "iOS18"]
    assert all(len(f) == 1 and next(iter(f)) > 0 for f in by_target.values()), by_target


def test_compressed_weights_on_the_executor_say_what_gbps_counts(tmp_path, cache):
    text = LM_HEAD.replace(
        "chunks: 2}",
        "chunks: 2, compression: {palettize: {nbits: 4, mode: uniform}}}",
    ).replace("sweep:\n  model.layout: [conv, linear]\n", "")
    r = _run(_spec(tmp_path, text), tmp_path / "s.duckdb", cache)
    assert r.status == "finished"
    (res,) = r.results
    assert res.status == "ok"
    assert any("GB/s counts the stored (compressed) bytes" in n for n in res.notes), res.notes
    plain = _run(_spec(tmp_path, LM_HEAD, "plain.yaml"), tmp_path / "s.duckdb", cache)
    assert not any("compressed" in n for x in plain.results for n in x.notes)


def test_a_case_the_store_refuses_is_stored_failed_without_its_figures(tmp_path, cache):
    """A value the store refuses (here an infinite verify error) fails that case: it is
    stored again as failed, with the reason, and with none of its measured figures (a
    failed row with a throughput or a dispatch floor would still be charted)."""
    import dataclasses

    from anemll_spec.runner import record
    from anemll_spec.store import writer

    spec = _spec(tmp_path, LM_HEAD.split("sweep:")[0])
    store = tmp_path / "s.duckdb"
    res = _run(spec, store, cache)
    (m,) = res.results
    (stored,) = _cases(store)
    assert stored["status"] == "ok" and stored["throughput_ips"] is not None
    m.verdict = dataclasses.replace(m.verdict, max_abs_error=float("inf"))
    case_id = record.store_measurement(writer, str(store), stored["run_id"], m)
    (row,) = [c for c in _cases(store) if c["case_id"] == case_id]
    assert row["status"] == "failed" and "could not be stored as measured" in row["error"]
    assert "max_abs_error" in row["error"]
    measured = [
        "n_samples", "median_ms", "mean_ms", "throughput_ips", "bandwidth_gbps",
        "dispatch_floor_ms", "verify_max_abs_error", "energy_total_mj",
    ]  # fmt: skip
    assert {k: row[k] for k in measured} == {k: (0 if k == "n_samples" else None) for k in measured}
    assert row["case_key"] == stored["case_key"]  # the same case, named as before


def test_attention_says_what_its_gbps_counts_and_leaves_out(tmp_path, cache):
    """Attention's weight file holds the whole RoPE tables (a call gathers seq_len rows)
    and not the KV cache (read whole each call): the stored note says both sizes. The
    tables' size is checked against the stored weight bytes of two context lengths, at
    each compute precision (the tables are stored in it; the cache is always fp16)."""
    import re

    text = ATTENTION.replace(
        "context_length: 32}",
        "context_length: 32}\nsweep:\n  model.context_length: [32, 96]\n"
        "  model.compute_precision: [float16, float32]",
    )
    store = tmp_path / "s.duckdb"
    assert _run(_spec(tmp_path, text), store, cache).status == "finished"
    sizes: dict[str, dict[int, tuple[float, int]]] = {}
    for row in _cases(store):
        params = json.loads(row["params"])
        ctx, precision = params["model.context_length"], params["model.compute_precision"]
        (note,) = [n for n in json.loads(row["notes"]) if n.startswith("GB/s counts the weight")]
        rope_mb, kv_mb = map(float, re.findall(r"([\d.]+) MB", note))
        assert "of which a call reads 1 row(s)" in note
        kv = 2 * 1 * 2 * ctx * 16 * 2  # key + value, batch 1, 2 kv heads, head_dim 16, fp16
        assert kv_mb == pytest.approx(kv / 1e6, rel=1e-3)
        sizes.setdefault(precision, {})[ctx] = (rope_mb, row["weight_bytes"])
    assert set(sizes) == {"float16", "float32"}
    for by_ctx in sizes.values():
        (r32, w32), (r96, w96) = by_ctx[32], by_ctx[96]
        # the tables, read back from the stored sizes (the note rounds to 3 digits)
        assert (r96 - r32) * 1e6 == pytest.approx(w96 - w32, rel=1e-2)
    others = _cases_of(_run(_spec(tmp_path, LM_HEAD, "h.yaml"), tmp_path / "h.duckdb", cache))
    assert not any("GB/s counts the weight" in n for n in others)


def _cases_of(result) -> list[str]:
    return [n for x in result.results for n in x.notes]


def test_stored_verify_figures_are_numpy_over_both_precisions(tmp_path, cache):
    """An LM head's stored verify figures, top-1 included, recomputed here from the
    executor's two precisions with numpy formulas (the numpy backend is checked in fp32
    against the same program with every op rounded to fp16)."""
    from anemll_spec.build import build
    from anemll_spec.executor import load
    from anemll_spec.model_io import describe, synth_inputs

    spec = _spec(
        tmp_path,
        "name: top1_head\n"
        "model: {family: lm_head, hidden_size: 64, vocab_size: 256, chunks: 2, seq_len: 5}\n"
        "run: {backends: [numpy], warmup: 1, iterations: 5, dispatch_floor: false}\n"
        "sweep: {model.layout: [conv, linear]}\n",
    )
    store = tmp_path / "store.duckdb"
    _run(spec, store, cache)
    rows = _cases(store)
    assert [r["status"] for r in rows] == ["ok", "ok"]
    for row, layout in zip(rows, ["conv", "linear"], strict=True):
        model = lm_head(hidden_size=64, vocab_size=256, chunks=2, seq_len=5, layout=layout)
        built = build(model, cache_dir=cache)
        assert built.cached  # the very package the run timed
        inputs = synth_inputs(describe(built.path), seed=0)
        fp32 = load(built.path).predict(inputs)
        fp16 = load(built.path, fp16=True).predict(inputs)
        # the fp16 program is the side judged (the output), fp32 the reference
        out = np.concatenate([np.ravel(fp16[k]).astype(np.float64) for k in fp32])
        ref = np.concatenate([np.ravel(v).astype(np.float64) for v in fp32.values()])
        diff = out - ref
        assert row["verify_max_abs_error"] == pytest.approx(np.abs(diff).max(), rel=1e-12)
        assert row["verify_rel_l2_error"] == pytest.approx(
            np.linalg.norm(diff) / np.linalg.norm(ref), rel=1e-9
        )
        assert row["verify_cosine"] == pytest.approx(
            min(1.0, out @ ref / np.linalg.norm(out) / np.linalg.norm(ref)), rel=1e-12
        )

        def positions(outs: dict) -> np.ndarray:
            """(positions, vocab): each chunk's logits axis (size 128) last, chunks joined."""
            parts = [
                np.moveaxis(np.asarray(c), list(np.shape(c)).index(128), -1) for c in outs.values()
            ]
            return np.concatenate(parts, axis=-1).reshape(-1, 256)

        a, b = positions(fp32), positions(fp16)
        assert a.shape == (5, 256)
        assert row["verify_top1_agreement"] == np.mean(a.argmax(1) == b.argmax(1))


def test_an_attention_step_that_fills_the_cache_runs_at_position_0(tmp_path):
    """seq_len == context_length validates, but the position was drawn from [0, 1]: at 1
    the step's rows ran past the RoPE table and the KV cache, and every case failed."""
    from anemll_spec.spec import load_cases

    spec = tmp_path / "att.yaml"
    spec.write_text(
        "name: full\nmodel: {family: attention, hidden_size: 64, heads: 2, kv_heads: 1, "
        "head_dim: 32, context_length: 4, seq_len: 4}\n"
        "run: {backends: [numpy], warmup: 1, iterations: 5, dispatch_floor: false}\n"
        "sweep: {model.seed: [0, 1, 2, 3]}\n"  # seeds whose [0, 1] draw gave position 1
    )
    cases = load_cases(spec)[1]
    assert {c.model.int_ranges()["position"] for c in cases} == {(0, 0)}
    shorter = cases[0].model.model_copy(update={"seq_len": 3})
    assert shorter.int_ranges() == {"position": (0, 1)}  # as drawn before: keys' inputs hold
    out = io.StringIO()
    res = Runner(spec, store=str(tmp_path / "s.duckdb"), cache_dir=tmp_path / "c",
                 progress=Progress(out)).run()  # fmt: skip
    assert [m.status for m in res.results] == ["ok"] * 4, [m.error for m in res.results]


def test_an_fp32_programs_fp16_deviation_on_numpy_informs_and_does_not_fail(tmp_path, cache):
    """The numpy backend is checked against every op rounded to fp16; an fp32 program runs
    in fp32 on every device that runs it, so a deviation past the tolerance there failed a
    right case (and left it untimed). The fp16 program keeps its verdict."""
    text = (
        "name: mm32\nmodel: {family: matmul, m: 4, k: 512, n: 64, dtype: float32}\n"
        "run: {backends: [numpy], warmup: 1, iterations: 5, dispatch_floor: false,\n"
        "      tolerance: {max_abs_error: 1.0e-6}}\n"
        "sweep: {model.compute_precision: [float32, float16]}\n"
    )
    store = tmp_path / "s.duckdb"
    _run(_spec(tmp_path, text), store, cache)
    fp32, fp16 = _cases(store)
    assert (fp32["status"], fp32["verify_status"]) == ("ok", "skipped")
    assert fp32["n_samples"] == 5 and fp32["verify_max_abs_error"] > 1e-6  # timed, figures kept
    assert "for information only: an fp32 program" in fp32["verify_note"]
    assert (fp16["status"], fp16["verify_status"]) == ("failed", "fail")


def test_a_reused_dispatch_floor_names_the_case_it_was_timed_after(cli, tmp_path):
    """The floor is timed once per run and kind of tiny model, after the first case that
    needs it; a later case's line said it was 'timed after the case' (its own). Each line
    now names the case: its own, or the earlier one whose floor it reuses (stored the
    same)."""
    spec = _spec(
        tmp_path,
        "name: two\nmodel: {family: lm_head, hidden_size: 256, vocab_size: 2048, chunks: 2}\n"
        "run: {backends: [numpy], warmup: 1, iterations: 20, energy_s: 0}\n"
        "sweep: {model.seed: [1, 2]}\n",
    )
    store = tmp_path / "s.duckdb"
    res = cli("bench", spec, "--store", store)
    assert res.returncode == 0, res.stderr
    lines = [ln for ln in res.stdout.splitlines() if ln.startswith("dispatch floor #")]
    assert len(lines) == 2, res.stdout
    floors = [r["dispatch_floor_ms"] for r in _cases(store)]
    assert floors[0] == floors[1] > 0  # timed once, after case #0
    shown = f"{floors[0]:.3f} ms for a tiny 64->64 model"
    assert lines[0].startswith(f"dispatch floor #0 numpy: {shown}")
    assert lines[1].startswith(f"dispatch floor #1 numpy: {shown}")
    assert "timed after this case" in lines[0] and "case #" not in lines[0]
    assert "timed after case #0, reused" in lines[1] and "this case" not in lines[1]
