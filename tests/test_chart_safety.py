"""Stored text is hostile: run ids that are paths, names with terminal escapes, params
keys with quotes. Through the real CLI on real DuckDB files (rows inserted with SQL, as
an import could before the store validated them).

SYNTHETIC samples for chart rendering (tests/fixtures/chart), not measurements.
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent / "fixtures" / "chart"))
import chart_synthetic as syn  # noqa: E402

from anemll_spec.chart.report_out import default_out, is_report_of, safe_name  # noqa: E402

ESC = "\x1b[31m"


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def tree(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")}


@pytest.mark.parametrize(
    "text",
    ["/etc/passwd", "../../x", "..", ".hidden", "a/b\\c", "a\x1b[2Jb", "", "x" * 300, "ok-1.2_3"],
)
def test_safe_names_are_plain_and_distinct(text):
    name = safe_name(text)
    assert name and len(name) <= 96 + 13
    assert all(c.isascii() and (c.isalnum() or c in "._-") for c in name), name
    assert not name.startswith(".")
    assert Path(name).name == name and name not in (".", "..")
    assert default_out(text) == Path("reports") / f"{name}.html"
    if text == "ok-1.2_3":
        assert name == text  # a plain id (the documented run id form) is kept as it is
    else:  # a changed name carries a hash of the text: two texts never share a file
        assert name != text and name != safe_name(text + "!")


def test_report_of_a_hostile_run_id_stays_in_reports(cli, tmp_path):
    store = tmp_path / "store" / "results.duckdb"
    good = syn.lm_head_run(store, seed=1)
    victim = tmp_path / "victim.html"
    victim.write_text("<!DOCTYPE html><p>the user's own page</p>")
    before = digest(victim)
    absolute = syn.hostile_copy(store, good, str(tmp_path / "victim"), minutes=1)
    dotdot = syn.hostile_copy(store, good, "../../outside/page", minutes=2)
    work = tmp_path / "work" / "deep"
    work.mkdir(parents=True)
    for run_id in (absolute, dotdot):
        r = cli("report", "--store", store, "--run", run_id, "--json", cwd=work)
        assert r.returncode == 0, r.stderr
        path = Path(json.loads(r.stdout)["report"])
        assert path == Path("reports") / f"{safe_name(run_id)}.html"
        assert is_report_of(work / path, run_id)
    # only work/deep/reports/ was written: the victim is untouched, no folder outside
    assert digest(victim) == before
    assert tree(tmp_path / "work") == {"deep", "deep/reports"} | {
        f"deep/reports/{safe_name(r)}.html" for r in (absolute, dotdot)
    }
    assert not (tmp_path / "outside").exists()
    # `latest` is the '../' run (it started last): the same safe path
    r = cli("report", "--store", store, "--json", cwd=work)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["report"] == str(Path("reports") / f"{safe_name(dotdot)}.html")


@pytest.mark.slow  # report processes: ~9 s (make test-slow; CI runs both)
def test_report_replaces_only_its_own_run_report(cli, tmp_path):
    store = tmp_path / "results.duckdb"
    a = syn.lm_head_run(store, seed=1)
    b = syn.lm_head_run(store, seed=2)
    out = tmp_path / "r.html"
    r = cli("report", "--store", store, "--run", a, "--out", out)
    assert r.returncode == 0, r.stderr
    first = digest(out)
    # the same run's report again: documented as replaceable
    assert cli("report", "--store", store, "--run", a, "--out", out).returncode == 0
    # another run's report, or any other HTML page, only with --force
    r = cli("report", "--store", store, "--run", b, "--out", out)
    assert r.returncode == 2 and "--force" in r.stderr and "Traceback" not in r.stderr
    page = tmp_path / "page.html"
    page.write_text("<!DOCTYPE html><title>mine</title>")
    r = cli("report", "--store", store, "--run", a, "--out", page)
    assert r.returncode == 2 and page.read_text() == "<!DOCTYPE html><title>mine</title>"
    assert digest(out) == first or is_report_of(out, a)
    r = cli("report", "--store", store, "--run", b, "--out", out, "--force")
    assert r.returncode == 0 and is_report_of(out, b) and not is_report_of(out, a)
    # the default path too: a file there that is not this run's report is kept
    work = tmp_path / "w"
    (work / "reports").mkdir(parents=True)
    squatter = work / default_out(a)
    squatter.write_text("<!DOCTYPE html><p>not a report</p>")
    r = cli("report", "--store", store, "--run", a, cwd=work)
    assert r.returncode == 2 and "--force" in r.stderr
    assert squatter.read_text() == "<!DOCTYPE html><p>not a report</p>"


def test_library_write_report_refuses_to_overwrite(tmp_path, monkeypatch):
    """bench writes the default report through write_report: the same rule holds there."""
    from anemll_spec.chart.report import write_report
    from anemll_spec.errors import InputError

    store = tmp_path / "results.duckdb"
    run_id = syn.lm_head_run(store, seed=1)
    monkeypatch.chdir(tmp_path)
    squatter = default_out(run_id)
    squatter.parent.mkdir()
    squatter.write_text("keep me")
    with pytest.raises(InputError, match="not this run's report"):
        write_report(store, run_id)
    assert squatter.read_text() == "keep me"
    assert write_report(store, run_id, force=True) == squatter
    assert is_report_of(squatter, run_id)
    assert write_report(store, run_id) == squatter  # its own report: replaced


@pytest.mark.slow  # chart and report processes: ~10 s (make test-slow; CI runs both)
def test_control_characters_never_reach_the_terminal(cli, tmp_path):
    store = tmp_path / "results.duckdb"
    good = syn.lm_head_run(store, seed=1)
    evil = syn.hostile_copy(store, good, f"run{ESC}x\x07", model_name=f"head{ESC}\x1b]0;t\x07")
    work = tmp_path / "w"
    work.mkdir()
    for args in (
        ["report", "--run", evil],
        ["report", "--run", evil, "--out", "page.html", "--json"],
        ["chart", "factors", "--out", "c", "--model", "nope"],  # lists stored model names
        ["chart", "latency", "--out", "c", "--run", evil],
        ["chart", "sweep", "--out", "c", "--run", evil],  # "run ... swept no parameter"
    ):
        r = cli(*args, "--store", store, cwd=work)
        assert r.returncode in (0, 2), (args, r.returncode, r.stderr)  # no crash (SIGABRT)
        assert "\x1b" not in r.stdout + r.stderr and "\x07" not in r.stdout + r.stderr, args
        assert "Traceback" not in r.stderr
    r = cli("chart", "factors", "--out", "c", "--model", "nope", "--store", store, cwd=work)
    assert r.returncode == 2 and "\\x1b[31m" in r.stderr  # shown escaped, not dropped
    r = cli("report", "--run", evil, "--store", store, cwd=work)
    assert r.returncode == 0 and r.stdout == f"report: {default_out(evil)}\n"
    assert r.stdout.startswith("report: reports/run__31mx_-")


def test_params_key_with_a_quote_draws_the_sweep_and_the_report(tmp_path):
    import vl_convert

    from anemll_spec.chart import build_chart
    from anemll_spec.chart.report import write_report
    from anemll_spec.chart.source import Options
    from anemll_spec.store import append_case, begin_run, finish_run

    key = 'model.a"b\\c'
    path = tmp_path / "results.duckdb"
    run_id = begin_run(path, {"spec_name": "q", "command": "synthetic"}, syn.LINUX_HOST)
    for i, v in enumerate((1000, 2000, 4000)):
        wall = syn.samples_ns(v / 1000, 30, i)
        row = syn.case_row(
            f"q[{i}]", wall, weight_bytes=v * 100, backend="numpy", compute_units=None,
            index=i, params={key: v, "x'y": 1},
        )  # fmt: skip
        append_case(path, run_id, row, wall)
    finish_run(path, run_id, "finished")
    spec = build_chart("sweep", str(path), Options(runs=(run_id,)))
    rows = spec["datasets"]["sweep"]
    assert sorted(r["x_num"] for r in rows) == [1000, 2000, 4000]
    for r in rows:
        assert r["value"] == pytest.approx(r["x_num"] * 100 / (r["median_ms"] * 1e6))
    svg = vl_convert.vegalite_to_svg(spec, vl_version="6.4")
    assert "model.a&quot;b\\c (swept" in svg  # the axis names the key, as text
    spec = build_chart("sweep", str(path), Options(runs=(run_id,), param=key))
    assert len(spec["datasets"]["sweep"]) == 3
    page = write_report(path, run_id, tmp_path / "r.html")
    html = page.read_text()
    assert 'id="chart-sweep"' in html and "swept no parameter" not in html


def test_a_huge_stored_name_does_not_make_a_huge_report(tmp_path):
    """A label is repeated in every sample point a chart draws: a 200 kB model name
    (before the store limited text on import) must not multiply into the page."""
    from anemll_spec.chart.report import write_report

    store = tmp_path / "results.duckdb"
    good = syn.lm_head_run(store, seed=1)
    name = "m" * 200_000
    big = syn.hostile_copy(store, good, "big-run", model_name=name)
    page = write_report(store, big, tmp_path / "r.html")
    plain = write_report(store, good, tmp_path / "p.html")
    html_text = page.read_text()
    # whole once per case in the table and in the latency boxes' rows (2 cases), never
    # once per sample point (600 samples): labels are cut
    assert html_text.count(name) == 4
    assert page.stat().st_size < plain.stat().st_size + 5 * len(name)
