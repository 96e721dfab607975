"""A Ctrl-C after a variant's calls are timed keeps the measurement whole: the statistics
finish (interrupts.deferred) with everything that follows them, every finished variant of
the case is stored, and no reading the Ctrl-C cut short is stored as the case's energy.
Real SIGINTs, sent by the process to itself at the moment under test, in a fresh process
(signal handlers live in the main thread of the process that runs the bench)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from db_util import dict_rows
from power_util import ClockedRapl

ROOT = Path(__file__).resolve().parents[1]
DRIVER = """
import os, signal, sys
from pathlib import Path
from anemll_spec import stats, sustained
from anemll_spec.progress import Progress
from anemll_spec.runner import Runner, record

spec, store, cache, when = sys.argv[1:5]
sent = []

def ctrl_c_in(module, name):
    real = getattr(module, name)
    def wrapped(*a, **k):
        if not sent:
            sent.append(name)
            os.kill(os.getpid(), signal.SIGINT)
        return real(*a, **k)
    setattr(module, name, wrapped)

ctrl_c_in(*{"statistics": (stats, "summarize"), "store": (record, "store_measurement"),
            "verdict": (sustained, "judge")}[when])
res = Runner(Path(spec), store=store, cache_dir=Path(cache), progress=Progress(sys.stderr)).run()
print(res.status, sent)
"""


def _bench_with_ctrl_c(tmp_path: Path, text: str, when: str) -> tuple[Path, str]:
    spec, store = tmp_path / "s.yaml", tmp_path / "s.duckdb"
    spec.write_text(text)
    r = subprocess.run(
        [sys.executable, "-c", DRIVER, str(spec), str(store), str(tmp_path / "cache"), when],
        capture_output=True, text=True, cwd=ROOT, timeout=300,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    return store, r.stdout + r.stderr


def test_a_ctrl_c_during_the_statistics_keeps_the_whole_measurement(tmp_path):
    """deferred() raised as the statistics returned, inside summarize: the case was stored
    with its throughput (and the notes after the statistics) missing."""
    store, said = _bench_with_ctrl_c(
        tmp_path,
        "name: c\nmodel: {family: matmul, m: 4, k: 64, n: 64}\n"
        "run: {backends: [numpy], warmup: 1, iterations: 40, dispatch_floor: false}\n",
        "statistics",
    )
    assert "interrupted ['summarize']" in said and "finishing the statistics of 40" in said
    (case,) = dict_rows(store, "SELECT * FROM cases", ())
    assert case["throughput_ips"] == pytest.approx(1e3 / case["mean_ms"])
    assert case["n_samples"] == 40 and case["status"] == "ok"
    assert dict_rows(store, "SELECT status FROM runs", ())[0]["status"] == "interrupted"


SUSTAINED = (
    "name: s\nmodel: {family: lm_head, hidden_size: 64, vocab_size: 128, chunks: 1}\n"
    "run: {backends: [numpy], warmup: 2, duration_s: 0.6, window_s: 0.2, dispatch_floor: false}\n"
)


@pytest.mark.slow  # a sustained bench process and its Ctrl-C, each: ~7 s (make test-slow; CI runs both)
@pytest.mark.parametrize("when", ["verdict", "statistics"])
def test_a_ctrl_c_after_a_sustained_runs_last_window_keeps_the_case(tmp_path, when):
    """The first/last-window verdict's bootstrap, and the statistics of every call, came
    after the windows: a Ctrl-C in either threw them all away. Both finish, the case is
    stored whole, the run stops."""
    store, said = _bench_with_ctrl_c(tmp_path, SUSTAINED, when)
    name = {"verdict": "judge", "statistics": "summarize"}[when]
    assert f"interrupted [{name!r}]" in said and "Ctrl-C: finishing the statistics of" in said
    (case,) = dict_rows(store, "SELECT * FROM cases", ())
    walls = [r["wall_ns"] for r in dict_rows(store, "SELECT wall_ns FROM samples", ())]
    assert case["sustained_windows"] == 3 and case["sustained_verdict"] is not None
    assert case["n_samples"] == len(walls) > 30 and case["status"] == "ok"
    assert case["median_ms"] == pytest.approx(np.median(walls) / 1e6)
    assert dict_rows(store, "SELECT status FROM runs", ())[0]["status"] == "interrupted"


@pytest.mark.slow  # a bench process and its Ctrl-C: ~9 s (make test-slow; CI runs both)
def test_a_ctrl_c_while_one_variant_is_stored_stores_the_others_too(tmp_path):
    """The first variant's write ended, then the loop was left: the second variant, timed
    and finished, was never stored."""
    pytest.importorskip("torch")
    store, said = _bench_with_ctrl_c(
        tmp_path,
        "name: c\nmodel: {family: matmul, m: 4, k: 64, n: 64}\n"
        "run: {backends: [numpy, torch], device: cpu, warmup: 1, iterations: 20, "
        "dispatch_floor: false}\n",
        "store",
    )
    assert "interrupted ['store_measurement']" in said
    assert "storing the variants just measured, then stopping" in said
    rows = dict_rows(store, "SELECT backend, n_samples FROM cases ORDER BY backend", ())
    assert rows == [{"backend": "numpy", "n_samples": 20}, {"backend": "torch", "n_samples": 20}]


def test_an_energy_pass_cut_short_leaves_no_reading(tmp_path, monkeypatch):
    """The timed loop's reading, too short for the counters, stood while its replacement
    pass ran: a Ctrl-C in the pass stored it as the case's energy, without a word."""
    import io

    from anemll_spec.progress import Progress
    from anemll_spec.runner import Runner, energy, timing

    monkeypatch.setattr(energy, "reader", ClockedRapl(tmp_path / "powercap", watts=10.0).reader)

    def cut(*a, **k):
        raise KeyboardInterrupt  # as a Ctrl-C in the pass's loop would

    monkeypatch.setattr(timing, "_energy_pass", cut)
    spec = tmp_path / "e.yaml"
    spec.write_text(
        "name: e\nmodel: {family: matmul, m: 4, k: 64, n: 64}\n"
        "run: {backends: [numpy], warmup: 1, iterations: 5, dispatch_floor: false, "
        "energy_s: 3}\n"
    )
    store = tmp_path / "s.duckdb"
    res = Runner(spec, store=str(store), cache_dir=tmp_path / "cache",
                 progress=Progress(io.StringIO())).run()  # fmt: skip
    assert res.status == "interrupted"
    (case,) = dict_rows(store, "SELECT * FROM cases", ())
    assert case["n_samples"] == 5 and case["energy_method"] is None
    assert "energy pass that replaces it did not finish" in case["energy_note"], case


def test_a_bench_whose_reader_goes_away_keeps_its_cases_and_exits_141(tmp_path):
    """`bench ... 2>&1 | head -5`: the failed write of a progress line failed the case in
    hand ('internal error: BrokenPipeError'), the run was stored 'failed' and bench exited
    0. Now the case in hand is measured and stored, the run stops as for Ctrl-C
    ('interrupted') and the status is SIGPIPE's, 141."""
    import os

    spec, store = tmp_path / "s.yaml", tmp_path / "s.duckdb"
    spec.write_text(
        "name: p\nmodel: {family: matmul, m: 4, k: 64, n: 64}\n"
        "run: {backends: [numpy], warmup: 1, warmup_s: 3, iterations: 200, "
        "dispatch_floor: false}\n"  # >= 18 s for all six: the pipe closes long before
        "sweep: {model.n: [64, 128, 192, 256, 320, 384]}\n"
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "anemll_spec", "bench", str(spec), "--store", str(store)],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        env={**os.environ, "ANEMLL_SPEC_CACHE": str(tmp_path / "cache")},
    )  # fmt: skip
    assert proc.stdout is not None
    lines = [proc.stdout.readline() for _ in range(3)]  # `head -3`, then gone
    proc.stdout.close()
    assert proc.wait(timeout=120) == 141, lines
    (run,) = dict_rows(store, "SELECT status FROM runs", ())
    cases = dict_rows(store, "SELECT status, n_samples FROM cases", ())
    assert run["status"] == "interrupted" and 1 <= len(cases) < 6, cases
    assert all(c["status"] == "ok" and c["n_samples"] == 200 for c in cases), cases
