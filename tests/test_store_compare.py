"""Bootstrap CIs and `compare` on synthetic samples with known shifts."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
from db_util import rows
from fixtures.store.synth import case, new_run, samples_ns

from anemll_spec.bootstrap import bootstrap_medians, median_ci, ratio_of_medians_ci
from anemll_spec.compare import compare_runs, verdict
from anemll_spec.errors import InputError
from anemll_spec.hashing import digest
from anemll_spec.store import append_case, finish_run


@pytest.mark.parametrize("n", [1, 2, 101, 1000])
def test_rank_resampling_equals_naive_bootstrap(n):
    """The old draw (kept to check CIs stored by versions up to b03f3c6) gives exactly the
    medians of real resamples: its partition of ranks is no shortcut."""
    x = np.random.default_rng(1).lognormal(size=n)
    fast = bootstrap_medians(x, 300, np.random.default_rng(42), resampled=True)
    rng = np.random.default_rng(42)
    idx = rng.integers(0, n, size=(300, n), dtype=np.int32)
    naive = np.median(np.sort(x)[idx], axis=1)
    np.testing.assert_allclose(fast, naive, rtol=0, atol=1e-12)


def test_median_ci_is_deterministic_and_covers():
    x = np.random.default_rng(2).normal(10, 1, 301)
    a, b = median_ci(x, seed=7), median_ci(x, seed=7)
    assert a == b and a.low < a.estimate < a.high
    assert a.estimate == np.median(x)
    assert median_ci(x, seed=8) != a
    # coverage of the true median (10) over repeated samples: ~95%
    rng = np.random.default_rng(3)
    hits = sum(
        (ci := median_ci(rng.normal(10, 1, 101), n_boot=500, seed=i)).low <= 10 <= ci.high
        for i in range(200)
    )
    assert 0.88 <= hits / 200 <= 0.995
    with pytest.raises(ValueError):
        median_ci([])


def test_ratio_ci_finds_a_known_shift():
    rng = np.random.default_rng(4)
    a = rng.normal(10, 0.3, 400)
    b = 1.2 * rng.normal(10, 0.3, 400)
    ci = ratio_of_medians_ci(a, b)
    assert ci.low < 1.2 < ci.high and ci.low > 1.15
    assert ci.estimate == pytest.approx(np.median(b) / np.median(a))
    same = ratio_of_medians_ci(a, rng.normal(10, 0.3, 400))
    assert same.low < 1.0 < same.high


@pytest.mark.parametrize(
    "ratio, low, high, floor, expected",
    [
        (1.2, 1.15, 1.25, 1.0, "slower"),
        (0.8, 0.75, 0.85, 1.0, "faster"),
        (1.01, 0.99, 1.03, 1.0, "no change"),
        (1.005, 1.002, 1.008, 1.0, "no change"),  # significant but under the noise floor
        (1.005, 1.002, 1.008, 0.1, "slower"),
    ],
)
def test_verdicts(ratio, low, high, floor, expected):
    assert verdict(ratio, low, high, floor) == expected


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Run A; B = 1.2 x A + noise on case 'shift', 0.8 x on 'gain', unchanged on 'same'."""
    store = tmp_path_factory.mktemp("cmp") / "r.duckdb"
    rng = np.random.default_rng(9)
    ids = []
    for factors in ({"shift": 1.0, "gain": 1.0, "same": 1.0, "gone": 1.0},
                    {"shift": 1.2, "gain": 0.8, "same": 1.0, "new": 1.0}):  # fmt: skip
        run_id = new_run(store)
        for key, f in factors.items():
            wall = samples_ns(rng, 300, 10.0 * f, noise=0.03)
            append_case(store, run_id, case(key, f"model_{key}", wall=wall), wall)
        append_case(store, run_id, case("broken", status="failed", error="x"), [])
        finish_run(store, run_id, "finished")
        ids.append(run_id)
    return store, ids


def test_compare_runs_known_shifts(runs):
    store, (a, b) = runs
    result = compare_runs(store, a, b, fail_on_regression_pct=10)
    by = {c["model_name"].removeprefix("model_"): c for c in result["comparisons"]}
    assert set(by) == {"shift", "gain", "same"}
    assert {c["variant_key"] for c in result["comparisons"]} == {
        digest(k)
        for k in ("shift", "gain", "same")  # no variant key: the case key
    }
    assert (
        by["shift"]["verdict"] == "slower" and by["shift"]["ci_low"] < 1.2 < by["shift"]["ci_high"]
    )
    assert by["shift"]["regression"] is True and result["regressions"] == 1
    assert by["gain"]["verdict"] == "faster" and by["gain"]["ci_low"] < 0.8 < by["gain"]["ci_high"]
    assert by["same"]["verdict"] == "no change"
    assert result["only_in_a"] == ["model_gone (coreml/CPU_AND_NE/1)"]
    assert result["only_in_b"] == ["model_new (coreml/CPU_AND_NE/1)"]
    assert by["shift"]["n_a"] == by["shift"]["n_b"] == 300
    # a one-case variant's medians are its stored median_ms, to the last digit (share and
    # the report print those: compare printed 0.08476 beside their 0.08477)
    stored = dict(
        ((run, model), median)
        for run, model, median in rows(store, "SELECT run_id, model_name, median_ms FROM cases")
    )
    for c in result["comparisons"]:
        assert (c["median_a_ms"], c["median_b_ms"]) == (
            stored[(a, c["model_name"])],
            stored[(b, c["model_name"])],
        )
    # same inputs, same answer
    assert compare_runs(store, a, b, fail_on_regression_pct=10) == result


def test_rows_follow_the_spec_and_a_pooled_row_says_so(tmp_path, cli):
    """Rows come in case order (not by key hash); a variant a run measured twice (a sweep
    over a field it does not use) is one row over both cases' samples, and says so."""
    store = tmp_path / "s.duckdb"
    rng = np.random.default_rng(4)
    ids, walls = [], {}
    for r in range(2):
        run_id = new_run(store)
        for index, (key, model) in enumerate(
            [("a", "alpha"), ("z", "zeta"), ("p", "pooled[cu=ALL]"), ("p", "pooled[cu=CPU]")]
        ):
            wall = samples_ns(rng, 40, 2.0 + index, noise=0.05)
            walls[r, index] = wall
            append_case(store, run_id, case(key, model, wall=wall, case_index=index), wall)
        finish_run(store, run_id, "finished")
        ids.append(run_id)
    assert digest("a") > digest("z")  # key order would put zeta first
    result = compare_runs(store, *ids)
    rows = result["comparisons"]
    assert [c["model_name"] for c in rows] == ["alpha", "zeta", "pooled[cu=ALL]"]
    pooled = rows[2]
    assert (pooled["cases_a"], pooled["cases_b"], pooled["n_a"]) == (2, 2, 80)
    both = np.concatenate([walls[0, 2], walls[0, 3]])
    assert pooled["median_a_ms"] == pytest.approx(np.median(both) / 1e6)
    out = cli("compare", *ids, "--store", store)
    assert out.returncode == 0, out.stderr
    assert "pooled[cu=ALL | cu=CPU] (2 cases pooled)" in out.stdout and "alpha (" not in out.stdout
    assert pooled["pooled_names"] == ["pooled[cu=ALL]", "pooled[cu=CPU]"]


LONG = "a_spec_with_a_rather_long_name[hidden_size=4096,compute_units="
LONG_MODELS = [f"{LONG}ALL]", f"{LONG}CPU_ONLY]", "another_spec_with_a_long_name_" * 3]


def _long_names_runs(store: Path) -> list[str]:
    """Two runs of a long pooled variant (two cases) and a long one-case variant."""
    rng = np.random.default_rng(6)
    ids = []
    for _ in range(2):
        run_id = new_run(store)
        for index, (key, model) in enumerate(zip("ppz", LONG_MODELS, strict=True)):
            wall = samples_ns(rng, 30, 2.0, noise=0.05)
            append_case(store, run_id, case(key, model, wall=wall, case_index=index), wall)
        finish_run(store, run_id, "finished")
        ids.append(run_id)
    return ids


def test_the_compare_chart_keeps_a_long_pooled_names_marker_in_sight(tmp_path):
    """The chart's labels were cut at their end by Vega (labelLimit): the pooled marker
    went first. Drawn by vl-convert: the marker and the backend are on the axis."""
    import vl_convert

    from anemll_spec.chart import build_chart
    from anemll_spec.chart.source import Options

    store = tmp_path / "s.duckdb"
    ids = _long_names_runs(store)
    svg = vl_convert.vegalite_to_svg(build_chart("compare", str(store), Options(runs=tuple(ids))))
    labels = [t for t in re.findall(r"<text[^>]*>([^<]*)</text>", svg) if "…" in t]
    assert len(labels) == 2, labels  # both long names cut, in the middle
    pooled = [t for t in labels if "(2 cases pooled) · coreml · CPU_AND_NE" in t]
    assert len(pooled) == 1 and len(pooled[0]) == 60, labels
    assert all(t.startswith(("a_spec_with_a_", "another_spec_")) for t in labels), labels


def test_a_long_pooled_name_is_cut_in_the_middle_and_keeps_its_marker(tmp_path, cli):
    """The table cut a cell at 60 characters from the end: a long pooled row lost its
    '(2 cases pooled)' and read as one case. Now the middle of the name goes."""
    store = tmp_path / "s.duckdb"
    models = LONG_MODELS
    ids = _long_names_runs(store)
    out = cli("compare", *ids, "--store", store)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    rule = next(i for i, x in enumerate(lines) if x.startswith("---"))
    width = len(lines[rule].split("  ")[0])
    pooled, single = (x[:width].rstrip() for x in lines[rule + 1 : rule + 3])
    full = (
        "a_spec_with_a_rather_long_name[hidden_size=4096,compute_units=ALL | "
        "hidden_size=4096,compute_units=CPU_ONLY]"
    )
    marker = " (2 cases pooled)"
    assert width == len(pooled) == 60 < len(full) + len(marker) and pooled.endswith(marker)
    head, tail = pooled[: -len(marker)].split("…")
    assert full.startswith(head) and full.endswith(tail) and abs(len(head) - len(tail)) <= 1
    assert tail.endswith("=CPU_ONLY]")  # the last sweep value stays readable
    head, tail = single.split("…")  # a long name of one case: its middle cut too
    assert len(single) == 60 and models[2].startswith(head) and models[2].endswith(tail)


def test_the_ci_level_is_shown_as_the_percent_it_is():
    from anemll_spec.cli.compare import percent

    assert [percent(x) for x in (0.95, 0.995, 0.9999999, 1e-9)] == [
        "95", "99.5", "99.99999", "0.0000001",
    ]  # fmt: skip


def test_compare_cli(cli, runs):
    store, (a, b) = runs
    out = cli("compare", "previous", "latest", "--store", store)
    assert out.returncode == 0, out.stderr
    assert "slower" in out.stdout and "faster" in out.stdout and "no change" in out.stdout
    assert " 95% CI " in out.stdout
    # the header names the level asked for, unrounded
    out = cli("compare", "previous", "latest", "--store", store, "--level", "0.995")
    assert out.returncode == 0 and " 99.5% CI " in out.stdout and "100% CI" not in out.stdout
    js = cli("compare", a[:-2], b, "--store", store, "--json", "--fail-on-regression", "10")
    assert js.returncode == 1
    data = json.loads(js.stdout)
    assert data["run_a"] == a and data["run_b"] == b and data["regressions"] == 1
    # a 1.2x slowdown is not a regression beyond 30%
    assert cli("compare", a, b, "--store", store, "--fail-on-regression", "30").returncode == 0
    bad = cli("compare", "nope", b, "--store", store)
    assert bad.returncode == 2 and "no run 'nope'" in bad.stderr


def test_a_regression_is_a_slower_verdict_never_a_no_change(runs):
    """--noise-floor 60 calls the 1.2x case 'no change'; the gate used to count it as a
    regression anyway ('no change REGRESSION', exit 1)."""
    store, (a, b) = runs
    result = compare_runs(store, a, b, noise_floor_pct=60, fail_on_regression_pct=5)
    shift = next(c for c in result["comparisons"] if c["model_name"] == "model_shift")
    assert shift["verdict"] == "no change" and shift["ci_low"] > 1.05
    assert shift["regression"] is False and result["regressions"] == 0


def test_runs_of_two_machines_say_so(cli, tmp_path):
    """'previous' pairs by spec: after a pull it can be a colleague's machine. The header
    names each side's chip, OS and host, and a note says they differ."""
    from fixtures.store.synth import host, run

    from anemll_spec.store import begin_run

    store = tmp_path / "s.duckdb"
    rng = np.random.default_rng(2)
    for chip, os_version in (("Apple M1 Max", "15.1"), ("Apple M4 Max", "15.3")):
        run_id = begin_run(store, run(), host(chip=chip, os_version=os_version))
        wall = samples_ns(rng, 40, 10.0)
        append_case(store, run_id, case(wall=wall), wall)
        finish_run(store, run_id, "finished")
    out = cli("compare", "previous", "latest", "--store", store)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0].endswith("(M1 Max, macOS, 15.1, synthetic-host)")
    assert lines[1].endswith("(M4 Max, macOS, 15.3, synthetic-host)")
    assert lines[2].startswith("note: A and B differ in chip, os_version:")
    data = json.loads(cli("compare", "previous", "latest", "--store", store, "--json").stdout)
    assert data["hosts_differ"] == ["chip", "os_version"]
    assert data["host_a"]["chip"] == "M1 Max" and data["host_b"]["os_version"] == "15.3"
    page = tmp_path / "r.html"
    assert cli("report", "--store", store, "--out", page).returncode == 0
    assert "measured on different machines or systems (chip: M1 Max then M4 Max; " in (
        page.read_text()
    )


def test_ambiguous_prefix_is_refused(runs):
    store, (a, b) = runs
    common = a[:9]  # 'YYYYmmdd-' is shared by both runs
    assert b.startswith(common)
    with pytest.raises(InputError, match="ambiguous"):
        compare_runs(store, common, b)


def test_previous_is_the_previous_run_of_the_same_spec(cli, tmp_path):
    """Issue 14.7: `compare previous latest` after an unrelated bench still pairs the
    latest run with the run of ITS spec before it; the help says so."""
    store = tmp_path / "s.duckdb"
    rng = np.random.default_rng(4)
    ids = {}
    for name, spec, ms in (
        ("a1", "lm_head", 10.0),
        ("other", "smoke", 1.0),
        ("a2", "lm_head", 12.0),
    ):
        run_id = new_run(store, spec_name=spec)
        wall = samples_ns(rng, 200, ms)
        append_case(store, run_id, case("k", "m", wall=wall), wall)
        finish_run(store, run_id, "finished")
        ids[name] = run_id
    result = compare_runs(store, "previous", "latest")
    assert (result["run_a"], result["run_b"]) == (ids["a1"], ids["a2"])
    # relative to an explicit run, on either side
    assert compare_runs(store, ids["a2"], "previous")["run_b"] == ids["a1"]
    with pytest.raises(InputError, match="no run of spec 'smoke' before"):
        compare_runs(store, "previous", ids["other"])
    out = cli("compare", "previous", "latest", "--store", store, "--json")
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["run_a"] == ids["a1"]
    assert "previous run of the SAME spec" in cli("compare", "--help").stdout.replace("\n", " ")


def test_compare_text_escapes_store_text(cli, tmp_path):
    """Issue 15.8: names from the store (here written straight into the file, as an
    older import could have) reach the terminal with control characters escaped."""
    import duckdb

    store = tmp_path / "s.duckdb"
    rng = np.random.default_rng(5)
    for _ in range(2):
        run_id = new_run(store)
        for key in ("k", "only"):
            wall = samples_ns(rng, 50, 5.0)
            append_case(store, run_id, case(key, "m", wall=wall), wall)
        finish_run(store, run_id, "finished")
    con = duckdb.connect(str(store))
    con.execute(
        "UPDATE cases SET model_name = 'evil' || chr(27) || '[2J', case_key = 'x' || case_id "
        "WHERE case_key = ?",
        [digest("only")],
    )
    con.close()
    out = cli("compare", "previous", "latest", "--store", store)
    assert out.returncode == 0, out.stderr
    assert "\x1b" not in out.stdout and "only in A: evil\\x1b[2J" in out.stdout


def test_two_gpus_behind_one_cpu_are_told_apart(cli, tmp_path):
    """CUDA runs on an H100 and an H200 of one host type: compare named both by the
    host's CPU and saw no difference."""
    from fixtures.store.synth import host, run

    from anemll_spec.store import begin_run

    store = tmp_path / "s.duckdb"
    rng = np.random.default_rng(3)
    for gpu in ("NVIDIA H100 80GB HBM3", "NVIDIA H200"):
        h = host(chip=None, cpu_model="Intel(R) Xeon(R)", gpu=gpu, os_name="Linux")
        run_id = begin_run(store, run(), h)
        wall = samples_ns(rng, 40, 0.4)
        row = case(wall=wall, backend="torch", device="cuda", compute_units=None)
        append_case(store, run_id, row, wall)
        finish_run(store, run_id, "finished")
    data = json.loads(cli("compare", "previous", "latest", "--store", store, "--json").stdout)
    assert data["host_a"]["chip"] == "H100 80GB HBM3" and data["host_b"]["chip"] == "H200"
    assert data["hosts_differ"] == ["chip"]


def test_a_variant_that_failed_in_b_is_named_and_fails_the_gate(tmp_path, cli):
    """Only ok cases were compared, so a variant measured in A whose case failed in B
    read as 'only in A', and --fail-on-regression passed (exit 0)."""
    store = tmp_path / "s.duckdb"
    rng = np.random.default_rng(11)
    ids = []
    for broken in (False, True):
        run_id = new_run(store)
        for key in ("kept", "lost"):
            if broken and key == "lost":
                append_case(store, run_id, case(key, f"m_{key}", status="failed", error="x"), [])
                continue
            wall = samples_ns(rng, 60, 5.0, noise=0.02)
            append_case(store, run_id, case(key, f"m_{key}", wall=wall), wall)
        finish_run(store, run_id, "finished")
        ids.append(run_id)
    result = compare_runs(store, *ids, fail_on_regression_pct=5)
    assert result["failed_in_b"] == ["m_lost (coreml/CPU_AND_NE/1)"]
    assert result["only_in_a"] == [] and result["regressions"] == 0
    out = cli("compare", *ids, "--store", store, "--fail-on-regression", "5")
    assert out.returncode == 1, (out.stdout, out.stderr)
    assert "failed in B (every case): m_lost (coreml/CPU_AND_NE/1)" in out.stdout
    assert "1 variant(s) measured in A failed in B" in out.stdout
    assert cli("compare", *ids, "--store", store).returncode == 0  # no gate: reported only
    back = compare_runs(store, ids[1], ids[0])  # the other way round: failed in A
    assert back["failed_in_a"] == ["m_lost (coreml/CPU_AND_NE/1)"] and back["only_in_b"] == []


def test_the_table_keeps_close_medians_and_a_tight_ci_apart(tmp_path, cli):
    """Medians 40 ns apart at 0.1 ms printed '0.1' and '0.1', B/A '1' and the CI
    '[1.000, 1.000]' beside 'slower REGRESSION'; and a median of 0 ns (which the
    schema allows) ended in a traceback instead of a line saying there is no ratio."""
    store = tmp_path / "s.duckdb"
    ids = []
    for base in (100_000, 100_040):
        run_id = new_run(store)
        wall = np.full(60, base, np.int64) + np.arange(60) % 3
        append_case(store, run_id, case("tight", "m_tight", wall=wall), wall)
        zero = np.zeros(20, np.int64)
        append_case(store, run_id, case("zero", "m_zero", wall=zero, case_index=1), zero)
        finish_run(store, run_id, "finished")
        ids.append(run_id)
    out = cli("compare", *ids, "--store", store, "--noise-floor", "0")
    assert out.returncode == 0, out.stderr
    (row,) = [line for line in out.stdout.splitlines() if line.startswith("m_tight")]
    want = compare_runs(store, *ids, noise_floor_pct=0)["comparisons"][0]
    cells = row.split()
    a_ms, b_ms, ratio = float(cells[3]), float(cells[4]), float(cells[5])
    assert a_ms != b_ms and abs(a_ms - want["median_a_ms"]) < 1e-5
    assert ratio != 1.0 and abs(ratio - want["ratio"]) < 1e-5
    low, high = (float(x) for x in row.split("[")[1].split("]")[0].split(", "))
    assert low > 1.0 and "slower" in row  # the printed CI excludes 1, as its verdict says
    assert "no ratio (a median of 0 ns): m_zero (coreml/CPU_AND_NE/1)" in out.stdout
