"""The benchmark scripts run in a quick mode (their module constants or arguments made
small) and print what the project's standard asks of them: one JSON line with the figure,
the baseline measured in the same process and their ratio, which must be the ratio of the
printed numbers (up to their rounding). Where a script compares two sides, the side that
goes first alternates, so drift on the machine favours neither; that is checked on the
order of the calls, with the measuring itself stubbed out.

Nothing here checks a target: a quick run on a loaded test machine says nothing about one.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parent.parent / "benchmarks"


def load(name: str, monkeypatch):
    """The benchmark script as a fresh module (its helpers importable, as when run)."""
    monkeypatch.syspath_prepend(str(BENCH))
    spec = importlib.util.spec_from_file_location(f"bench40_{name}", BENCH / f"{name}.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, spec.name, module)
    spec.loader.exec_module(module)
    return module


def printed(capsys) -> dict:
    """The one JSON line the script printed (the last line of its stdout)."""
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines, "the benchmark printed nothing"
    return json.loads(lines[-1])


def digits(x: float) -> int:
    """Decimal places of a number as json printed it (round(v, k) prints <= k places)."""
    text = repr(float(x))
    return 0 if "e" in text else len(text.split(".")[1].rstrip("0"))


def assert_ratio(
    ratio: float,
    num: float,
    den: float,
    places: int | tuple[int, int] | None = None,
    terms: int = 1,
) -> None:
    """`ratio` is num / den of the printed numbers, each rounded to its `places` decimal
    places (one for both, or (num's, den's); default: as many as each shows, which is at
    most as many as it was rounded to) and each a sum of `terms` rounded numbers: the
    quotient's range over every value they can have been rounded from, widened by the
    ratio's own rounding."""
    pn, pd = places if isinstance(places, tuple) else (places, places)
    en = terms * 0.5 * 10.0 ** -(digits(num) if pn is None else pn)
    ed = terms * 0.5 * 10.0 ** -(digits(den) if pd is None else pd)
    e_ratio = 0.5 * 10.0 ** -digits(ratio)
    assert abs(den) > ed, "the baseline rounds to zero: no ratio can be checked"
    corners = [(num + a) / (den + b) for a in (-en, en) for b in (-ed, ed)]
    lo, hi = min(corners), max(corners)
    assert lo - e_ratio <= ratio <= hi + e_ratio, (ratio, num, den, lo, hi)


def _fake_checkout(tmp_path: Path):
    """A stand-in for _worktree.checkout: an 'old tree' with specs and the old modules."""
    old = tmp_path / "before"
    (old / "specs").mkdir(parents=True)
    (old / "anemll_spec" / "spec").mkdir(parents=True)
    for name in ("schema.py", "validate.py"):
        (old / "anemll_spec" / "spec" / name).write_text("x = 1\n")

    @contextlib.contextmanager
    def checkout(commit):
        yield old

    return old, checkout


def test_spec_load_alternates_which_tree_goes_first(monkeypatch, capsys, tmp_path):
    m = load("spec_load", monkeypatch)
    old, checkout = _fake_checkout(tmp_path)
    order: list[str] = []

    def fake_load(tree, specs, repeat):
        order.append("old" if tree == old else "new")
        return 0.02 if tree == old else 0.03  # seconds per load of all specs

    monkeypatch.setattr(m, "checkout", checkout)
    monkeypatch.setattr(m, "_load", fake_load)
    monkeypatch.setattr(m.subprocess, "run", lambda *a, **kw: None)  # --help's timing
    monkeypatch.setattr(sys, "argv", ["spec_load.py", "--rounds", "4", "--repeat", "1"])
    assert m.main() == 0
    assert order == ["old", "new", "new", "old", "old", "new", "new", "old"]
    got = printed(capsys)
    assert (got["new_median_ms"], got["baseline_median_ms"]) == (30.0, 20.0)
    assert_ratio(got["ratio_vs_baseline"], got["new_median_ms"], got["baseline_median_ms"])


def test_side_by_side_alternates_which_tree_goes_first(monkeypatch, capsys, tmp_path):
    m = load("side_by_side", monkeypatch)
    old, checkout = _fake_checkout(tmp_path)
    order: list[str] = []

    def fake_run(tree, name, cache):
        order.append("before" if tree == old else "now")
        return {"median_ms": 40.0 if tree == old else 30.0}

    monkeypatch.setattr(m, "checkout", checkout)
    monkeypatch.setattr(m, "_run", fake_run)
    monkeypatch.setattr(m, "_package", lambda tree: str(tree / "anemll_spec" / "__init__.py"))
    monkeypatch.setattr(sys, "argv", ["side_by_side.py", "store_append", "--rounds", "4"])
    assert m.main() == 0
    assert order == ["before", "now", "now", "before", "before", "now", "now", "before"]
    got = printed(capsys)
    assert (got["before_median"], got["now_median"]) == (40.0, 30.0)
    assert_ratio(got["ratio_now_vs_before"], got["now_median"], got["before_median"])


class _Recording:
    """A store connection whose queries are recorded in order."""

    def __init__(self, con, log: list[str]):
        self._con, self._log = con, log

    def execute(self, sql, *args):
        self._log.append(sql)
        return self._con.execute(sql, *args)

    def __getattr__(self, name):
        return getattr(self._con, name)


def test_store_chip_factors_quick_and_alternating(monkeypatch, capsys):
    m = load("store_chip_factors", monkeypatch)
    monkeypatch.setattr(m, "N_CASES", 400)
    monkeypatch.setattr(m, "REPEATS", 4)
    bulk = m.bulk_store
    monkeypatch.setattr(m, "bulk_store", lambda p, n, **kw: bulk(p, n, **{**kw, "n_runs": 4}))
    log: list[str] = []
    opened = m.open_store
    monkeypatch.setattr(m, "open_store", lambda *a, **kw: _Recording(opened(*a, **kw), log))
    m.main()
    got = printed(capsys)
    assert got["cases"] == 400 and got["rows"] > 0
    assert_ratio(got["ratio_vs_baseline"], got["median_ms"], got["baseline_median_ms"])
    assert got["ok"] == (got["median_ms"] <= got["target_ms"])
    # every query after the count: the view or the baseline's scan, taking turns, the one
    # that goes first swapping every round, after one untimed run of each
    timed = ["view" if "chip_factors" in q else "base" for q in log[1:]]
    assert timed == ["view", "base"] + ["view", "base", "base", "view"] * 2


@pytest.mark.slow
def test_store_import_quick(monkeypatch, capsys):
    m = load("store_import", monkeypatch)
    monkeypatch.setattr(m, "SIZES", (100, 200, 400))
    monkeypatch.setattr(m, "ROUNDS", 1)
    m.main()
    got = printed(capsys)
    s = {int(k): v for k, v in got["seconds"].items()}
    assert sorted(s) == [100, 200, 400] and all(v > 0 for v in s.values())
    assert_ratio(got["ratio_100k_vs_25k"], s[400], s[100], places=3)
    for n, us in got["us_per_case"].items():
        assert us == pytest.approx(s[int(n)] / int(n) * 1e6, abs=0.5e-3 / int(n) * 1e6 + 0.005)
    if s[200] - s[100] > 0.01:  # the step ratio from the printed seconds (if well defined)
        assert_ratio(got["step_ratio"], s[400] - s[200], s[200] - s[100], places=3, terms=2)
    assert got["ok"] == (got["step_ratio"] < 3.0)


def test_power_overhead_quick(monkeypatch, capsys):
    m = load("power_overhead", monkeypatch)
    monkeypatch.setattr(m, "ROUNDS", 4)
    monkeypatch.setattr(m, "CALLS", 20)
    m.main([])
    got = printed(capsys)
    for period in m.PERIODS:
        r = got[f"period_{period}s"]
        assert r["call_median_ms_off"] > 0 and r["call_median_ms_on"] > 0
        # the figure is the median of the rounds' ratios (on / off, adjacent blocks), not
        # the ratio of the pooled medians: the line says so
        assert r["overhead_pct"] == pytest.approx((r["ratio"] - 1) * 100, abs=0.006)
        assert "median" in r["ratio_is"] and "round" in r["ratio_is"]
    assert got["overhead_pct_default_period"] == got[f"period_{m.PERIODS[0]}s"]["overhead_pct"]
    assert got["ok"] == (got["overhead_pct_default_period"] < got["target_overhead_pct"])


def test_cli_startup_says_how_many_timings_each_median_has(monkeypatch, capsys, tmp_path):
    m = load("cli_startup", monkeypatch)
    walls = {"help": 0.2, "build_miss": 1.5, "bench_numpy": 0.9}

    def fake_run(args, env, block, tree):
        cmd = "build_miss" if "--cache-dir" in args else args[0].lstrip("-")
        cmd = "bench_numpy" if cmd == "bench" else cmd
        return walls.get(cmd, 0.3), (["coremltools"] if cmd == "build_miss" else [])

    class Done:
        returncode = 0

    monkeypatch.setattr(m, "_run", fake_run)
    monkeypatch.setattr(m, "_bare", lambda: 0.02)
    monkeypatch.setattr(m, "_package", lambda tree, env, spec: tmp_path / "model.mlpackage")
    monkeypatch.setattr(m.subprocess, "run", lambda *a, **kw: Done())
    monkeypatch.setattr(m.tempfile, "mkdtemp", lambda prefix: str(tmp_path))
    monkeypatch.setattr(sys, "argv", ["cli_startup.py", "--repeats", "3"])
    m.main()
    got = printed(capsys)
    commands = got["commands"]
    assert set(commands) == {
        "help", "build_hit", "inspect_1gb", "predict_smoke", "cache_list", "build_miss",
        "bench_numpy",
    }  # fmt: skip
    for cmd, modes in commands.items():
        for entry in modes.values():
            # bench runs once per mode: its "median" is one timing, and the line says so
            assert entry["n"] == (1 if cmd == "bench_numpy" else 3), cmd
            assert_ratio(entry["ratio_vs_bare"], entry["median_s"], got["python_bare_median_s"])
    assert commands["help"]["with_torch"]["median_s"] == 0.2
    assert got["ok"] is True


@pytest.mark.slow
@pytest.mark.parametrize("name", ["chart_factors", "chart_report"])
def test_chart_benchmark_quick(name, monkeypatch, capsys):
    pytest.importorskip("vl_convert")
    m = load(name, monkeypatch)
    m.main(repeats=1, n_cases=300)
    got = printed(capsys)
    assert got["benchmark"] == name and got["cases"] == 300
    assert got["median_s"] > 0 and got["baseline_median_s"] > 0 and got["cli_median_s"] > 0
    assert_ratio(got["ratio_vs_baseline"], got["median_s"], got["baseline_median_s"])
    assert got["ok"] == (
        got["median_s"] <= got["target_s"] and got["cli_median_s"] <= got["target_s"]
    )


def test_harness_overhead_quick(monkeypatch, capsys):
    m = load("harness_overhead", monkeypatch)
    monkeypatch.setattr(m, "N", 2_000)
    monkeypatch.setattr(m, "REPEATS", 3)
    m.main()
    got = printed(capsys)
    assert got["benchmark"] == "harness_overhead"
    assert (got["iterations"], got["repeats"]) == (2_000, 3)
    bare, harness = got["bare_loop_ns_per_iter_median"], got["harness_ns_per_iter_median"]
    assert bare > 0 and harness > 0
    assert got["overhead_ns_per_iter"] == pytest.approx(harness - bare, abs=0.16)
    assert_ratio(got["ratio"], harness, bare, places=1)
    assert got["ok"] == (got["overhead_ns_per_iter"] < got["target_overhead_ns"])


def test_bootstrap_ci_quick(monkeypatch, capsys):
    m = load("bootstrap_ci", monkeypatch)
    monkeypatch.setattr(sys, "argv", ["bootstrap_ci.py", "3000"])
    monkeypatch.setattr(m, "REPEATS", 1)
    m.main()
    got = printed(capsys)
    assert got["benchmark"] == "bootstrap_ci" and got["samples"] == 3000
    assert got["summarize_s"] > 0 and got["summarize_resampled_s"] > 0
    # speedup = the replaced draw's seconds / the figure's seconds (baseline / figure)
    assert_ratio(got["speedup"], got["summarize_resampled_s"], got["summarize_s"], places=(3, 4))
    assert "median of" in got["what"]


def test_store_append_quick(monkeypatch, capsys):
    m = load("store_append", monkeypatch)
    monkeypatch.setattr(m, "REPEATS", 2)
    m.main()
    got = printed(capsys)
    assert got["repeats"] == 2 and got["samples_per_case"] == 10_000
    assert_ratio(got["ratio_vs_baseline"], got["median_ms"], got["baseline_median_ms"])
    assert_ratio(got["ratio_vs_before"], got["median_ms"], got["before_median_ms"])
    assert_ratio(got["energy_ratio_vs_plain"], got["energy_case_median_ms"], got["median_ms"])
    assert got["ok"] == (got["median_ms"] <= got["target_ms"])


def test_store_shared_takes_the_two_stores_in_turns(monkeypatch):
    m = load("store_shared", monkeypatch)
    calls: list[str] = []

    class Con:
        def __init__(self, target):
            self.target = target

        def execute(self, sql):
            calls.append(f"query {self.target}")
            return self

        def fetchall(self):
            return [(1,), (2,)]

        def close(self):
            pass

    monkeypatch.setattr(m, "APPENDS", 4)
    monkeypatch.setattr(m, "REPEATS", 4)
    monkeypatch.setattr(m, "begin_run", lambda target, *a: f"run-{target}")
    monkeypatch.setattr(m, "append_case", lambda t, rid, row, wall: calls.append(f"append {t}"))
    monkeypatch.setattr(m, "open_store", lambda target, read_only: Con(target))
    turns = ["lake", "file", "file", "lake"] * 2
    got = m.median_append_ms(["lake", "file"])
    assert len(got) == 2 and all(ms >= 0 for ms in got)
    assert calls == [f"append {t}" for t in ["lake", "file", *turns]]  # one untimed each
    calls.clear()
    (_, rows), (_, file_rows) = m.median_query_ms(["lake", "file"], "SELECT 1")
    assert (rows, file_rows) == (2, 2)
    assert calls == [f"query {t}" for t in ["lake", "file", *turns]]
