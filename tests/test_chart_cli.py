"""`anemll-spec chart` and `anemll-spec report` through the real CLI: files written,
filters refused, empty stores explained, the store never written.

SYNTHETIC samples for chart rendering (tests/fixtures/chart), not measurements.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent / "fixtures" / "chart"))
import chart_synthetic as syn  # noqa: E402

from anemll_spec.chart.source import check_filter  # noqa: E402
from anemll_spec.errors import InputError  # noqa: E402


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> dict:
    path = tmp_path_factory.mktemp("chartcli") / "results.duckdb"
    return {
        "path": path,
        "lm_a": syn.lm_head_run(path, seed=3),
        "lm_b": syn.lm_head_run(path, seed=4, scale=0.97),
        "sweep": syn.sweep_run(path),
    }


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_chart_writes_html_png_svg_and_json(cli, store, tmp_path):
    out = tmp_path / "out"
    r = cli("chart", "factors", "--store", store["path"], "--out", out, "--json")
    assert r.returncode == 0, r.stderr
    files = {k: Path(v) for k, v in json.loads(r.stdout)["files"].items()}
    assert set(files) == {"html", "png", "svg", "json"}
    assert files["png"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    svg = ET.parse(files["svg"]).getroot()
    texts = " ".join(t.text or "" for t in svg.iter("{http://www.w3.org/2000/svg}text"))
    assert "bandwidth (GB/s, higher is better)" in texts and "M1 Max" in texts
    spec = json.loads(files["json"].read_text())
    assert spec["$schema"].startswith("https://vega.github.io/schema/vega-lite/")
    html = files["html"].read_text()
    # offline: Vega is inlined, nothing is loaded from anywhere
    assert "<script src" not in html and "vegaEmbed" in html
    assert "default-src 'none'" in html


@pytest.mark.slow  # chart processes: ~8 s (make test-slow; CI runs both)
def test_compare_takes_two_runs_either_way(cli, store, tmp_path):
    a, b = store["lm_a"], store["lm_b"]
    for args in (["--run", a, "--run", b], ["--runs", a, b]):
        r = cli("chart", "compare", "--store", store["path"], "--out", tmp_path, *args)
        assert r.returncode == 0, r.stderr
        spec = json.loads((tmp_path / "compare.vl.json").read_text())
        assert {d["verdict"] for d in spec["datasets"]["comparisons"]} == {"faster"}
    r = cli("chart", "compare", "--store", store["path"], "--out", tmp_path, "--run", a)
    assert r.returncode == 2 and "two runs" in r.stderr


@pytest.mark.parametrize(
    "where",
    [
        "1=1; DROP TABLE runs",
        "chip = 'x' -- comment",
        "1=1) OR (1=1",
        "(DELETE FROM runs)",
        "chip IN (SELECT 1); ATTACH 'x.db'",
    ],
)
def test_unsafe_where_is_refused_and_nothing_written(cli, store, tmp_path, where):
    before = digest(store["path"])
    out = tmp_path / "out"
    r = cli("chart", "latency", "--store", store["path"], "--out", out, "--where", where)
    assert r.returncode == 2
    assert "--where" in r.stderr and "Traceback" not in r.stderr
    assert not out.exists()
    assert digest(store["path"]) == before


def test_where_cannot_reach_files_or_write(cli, store, tmp_path):
    secret = tmp_path / "secret.csv"
    secret.write_text("a\n1\n")
    before = digest(store["path"])
    for where in (
        f"(SELECT count(*) FROM read_csv('{secret}')) > 0",
        "nextval('nope') > 0",
    ):
        r = cli(
            "chart", "latency", "--store", store["path"], "--out", tmp_path / "o", "--where", where
        )
        assert r.returncode == 2, where
        assert "Traceback" not in r.stderr
    assert digest(store["path"]) == before


def test_filter_check_accepts_expressions_with_keywords_in_strings():
    assert check_filter("spec_name = 'update; drop'") == "spec_name = 'update; drop'"
    assert check_filter("  ") is None
    with pytest.raises(InputError, match="not allowed"):
        check_filter("copy_to = 1 OR COPY")
    # a placeholder would take one of the chart's own parameters (the energy chart bound
    # it to the run id); inside a string it is text
    with pytest.raises(InputError, match=r"parameters \('\?'\) are not allowed"):
        check_filter("coalesce(run_id = ?, true)")
    with pytest.raises(InputError, match="parameters"):
        check_filter("chip = $1")
    assert check_filter("chip <> '?'") == "chip <> '?'"


def test_good_where_filters_the_chart(cli, store, tmp_path):
    r = cli(
        "chart",
        "sweep",
        "--store",
        store["path"],
        "--out",
        tmp_path,
        "--json",
        "--where",
        "compute_units = 'CPU_AND_NE'",
    )
    assert r.returncode == 0, r.stderr
    spec = json.loads((tmp_path / "sweep.vl.json").read_text())
    values = spec["datasets"]["sweep"]
    assert {v["series"] for v in values} == {"coreml · CPU_AND_NE"}
    assert any("compute_units = 'CPU_AND_NE'" in s for s in spec["title"]["subtitle"])


@pytest.mark.slow  # chart processes: ~9 s (make test-slow; CI runs both)
def test_empty_or_missing_store_is_a_clear_input_error(cli, tmp_path):
    from anemll_spec.store import open_store

    missing = tmp_path / "none.duckdb"
    r = cli("chart", "latency", "--store", missing, "--out", tmp_path / "o")
    assert r.returncode == 2 and "no results store" in r.stderr
    assert not missing.exists()
    empty = tmp_path / "empty.duckdb"
    open_store(empty).close()  # a fresh store: reference rows, no runs
    r = cli("chart", "latency", "--store", empty, "--out", tmp_path / "o")
    assert r.returncode == 2 and "no cases to draw" in r.stderr
    r = cli("chart", "factors", "--store", empty, "--out", tmp_path / "o", "--model", "nope")
    assert r.returncode == 2 and "model = 'nope'" in r.stderr
    r = cli("report", "--store", empty, "--out", tmp_path / "r.html")
    assert r.returncode == 2 and "no runs" in r.stderr
    assert not (tmp_path / "o").exists() and not (tmp_path / "r.html").exists()
    # the published rows alone still make a factors chart
    r = cli("chart", "factors", "--store", empty, "--out", tmp_path / "o")
    assert r.returncode == 0, r.stderr


def test_unknown_baseline_lists_the_chips(cli, store, tmp_path):
    r = cli(
        "chart", "factors", "--store", store["path"], "--out", tmp_path, "--baseline", "M9 Ultra"
    )
    assert r.returncode == 2 and "'M1 Max'" in r.stderr


def test_report_page_has_every_section_and_escapes_labels(cli, store, tmp_path):
    xss = syn.xss_run(store["path"])
    out = tmp_path / "report.html"
    r = cli("report", "--store", store["path"], "--run", xss, "--out", out, "--json")
    assert r.returncode == 0, r.stderr
    html = out.read_text()
    assert json.loads(r.stdout) == {"report": str(out), "run_id": xss}
    assert syn.XSS not in html  # neither in the tables nor inside the charts' JSON
    assert "&lt;script&gt;document.title=&#x27;pwned&#x27;&lt;/script&gt;" in html
    for heading in (
        "Host and versions",
        "Cases (1)",
        "Comparison with published results",
        "Latency distribution",
        "Sweep",
    ):
        assert heading in html
    # a chart that does not apply is a visible note, not a blank
    assert "swept no parameter" in html


def test_report_of_a_published_model_run(cli, store, tmp_path):
    out = tmp_path / "r.html"
    r = cli("report", "--store", store["path"], "--run", store["lm_b"], "--out", out)
    assert r.returncode == 0, r.stderr
    html = out.read_text()
    for div in (
        "chart-factors",
        "chart-latency",
        "chart-timeline",
        "chart-placement",
        "chart-compare",
    ):
        assert f'id="{div}"' in html
    assert "llama_lm_head_lut6" in html and "inference factor" in html


def test_report_of_an_older_run_keeps_its_published_comparison(cli, store, tmp_path):
    """lm_b (same chip, later) replaced lm_a in chip_factors; lm_a's report still shows
    lm_a's own rows and factors, the ones share and bench give (store.factors.for_run)."""
    import duckdb

    from anemll_spec.chart.style import fmt_factor, fmt_num
    from anemll_spec.store.factors import for_run

    with duckdb.connect(str(store["path"]), read_only=True) as con:
        mine = {r["model"]: r for r in for_run(con, store["lm_a"])}
        later = {r["model"]: r for r in for_run(con, store["lm_b"])}
    assert set(mine) == {"llama_lm_head", "llama_lm_head_lut6"} == set(later)
    out = tmp_path / "older.html"
    r = cli("report", "--store", store["path"], "--run", store["lm_a"], "--out", out)
    assert r.returncode == 0, r.stderr
    html = out.read_text()
    assert "None of this run" not in html
    for model, row in mine.items():
        ms = fmt_num(row["latency_ms"], 4)  # as the report's number cells
        assert ms != fmt_num(later[model]["latency_ms"], 4)  # lm_a's own figure, not lm_b's
        assert f'<td class="num">{ms}</td>' in html
        for k in ("bandwidth_factor", "inference_factor"):
            if row[k] is not None:
                assert f'<td class="num">{fmt_factor(row[k])}' in html


def test_commands_import_nothing_heavy():
    code = (
        "import sys, anemll_spec.cli.chart, anemll_spec.cli.report, anemll_spec.chart;"
        "heavy = [m for m in ('altair', 'duckdb', 'vl_convert', 'numpy', 'coremltools')"
        " if m in sys.modules]; print(heavy)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


@pytest.mark.slow  # every README chart command in a fresh process: 16-19 s (make test-slow; CI runs both)
def test_readme_chart_examples_run_as_written(cli, tmp_path):
    """Every `anemll-spec chart` / `report` line of the README's charts section runs, on a
    store with energy and sustained runs, a sweep run and then two head runs (the order
    its examples assume)."""
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    section = readme.split("## Charts and the report", 1)[1].split("```sh", 1)[1]
    lines = [
        line.split("#", 1)[0].strip()
        for line in section.split("```", 1)[0].splitlines()
        if line.startswith("anemll-spec ")
    ]
    assert len(lines) >= 8
    path = tmp_path / "results.duckdb"
    import chart_energy
    import chart_sustained

    chart_energy.energy_run(path, chart_energy.M1_MAX_HOST)  # chart energy
    chart_sustained.sustained_run(path)  # chart sustained
    syn.sweep_run(path)
    syn.lm_head_run(path, seed=5)
    syn.lm_head_run(path, seed=6, scale=1.03)
    import shlex

    for i, line in enumerate(lines):
        args = shlex.split(line)[1:]
        args = [
            str(tmp_path / f"out{i}")
            if a == "charts/"
            else a.replace("report.html", str(tmp_path / "r.html"))
            for a in args
        ]
        r = cli(*args, "--store", path, "--json")
        assert r.returncode == 0, (line, r.stderr)
        written = json.loads(r.stdout)
        paths = written["files"].values() if "files" in written else [written["report"]]
        assert all(Path(p).stat().st_size > 0 for p in paths), (line, written)


def svg_legend_and_lines(svg_text: str) -> tuple[dict, dict, str]:
    """(legend label -> (stroke, dash) of its symbol, drawn series -> (stroke, dash) of
    its line, the title's subtitle) as vl-convert drew them."""
    import chart_dom as dom

    root = dom.parse(svg_text)
    legend = {}
    for g in root.find("g"):
        syms = [c for c in g.children if "role-legend-symbol" in c.classes]
        labels = [c for c in g.children if "role-legend-label" in c.classes]
        if syms and labels:
            sym = syms[0].find("path")[0].attrs
            label = labels[0].all_text()
            assert label not in legend, label
            legend[label] = (sym.get("stroke"), sym.get("stroke-dasharray", "solid"))
    lines = {}
    for g in root.find("g"):
        if "role-mark" in g.classes and "lines_marks" in g.classes:
            for path in g.find("path"):
                aria = dict(
                    p.split(": ", 1) for p in path.attrs["aria-label"].split("; ") if ": " in p
                )
                lines[aria["series"]] = (
                    path.attrs["stroke"],
                    path.attrs.get("stroke-dasharray", "solid"),
                )
    subtitle = " ".join(
        g.attrs.get("aria-label", "") for g in root.find("g") if "role-title-subtitle" in g.classes
    )
    return legend, lines, subtitle


def test_sweep_over_two_params_has_a_legend_of_every_series(cli, tmp_path):
    from anemll_spec.chart.style import OKABE_ITO

    path = tmp_path / "results.duckdb"
    syn.chunks_sweep_run(path)
    out = tmp_path / "out"
    r = cli("chart", "sweep", "--store", path, "--out", out, "--param", "model.vocab_size")
    assert r.returncode == 0, r.stderr
    legend, lines, subtitle = svg_legend_and_lines((out / "sweep.svg").read_text())
    want = {"numpy · model.chunks=1", "numpy · model.chunks=2"}
    assert set(lines) == want
    assert set(legend) == want  # every series, labelled
    for series, drawn in lines.items():
        assert legend[series] == drawn  # the legend's colour is the line's
    assert len({s for s, _d in legend.values()}) == 2
    assert {s.upper() for s, _d in legend.values()} <= {c.upper() for c in OKABE_ITO}
    # the caption names what a series is: backend and the other swept parameter
    assert "model.chunks" in subtitle and "compute units" not in subtitle


def test_placement_without_placements_says_so(cli, tmp_path):
    path = tmp_path / "results.duckdb"
    syn.linux_run(path)  # numpy only: no compute plan, so no placements
    r = cli("chart", "placement", "--store", path, "--out", tmp_path / "o")
    assert r.returncode == 2, r.stderr
    assert "no case has op placements" in r.stderr and "coreml backend on macOS" in r.stderr
    assert "no cases to draw" not in r.stderr and "Traceback" not in r.stderr
    assert not (tmp_path / "o").exists()


def test_report_refuses_an_unknown_baseline_chip(cli, store, tmp_path):
    from anemll_spec.store import open_store

    out = tmp_path / "r.html"
    r = cli("report", "--store", store["path"], "--out", out, "--baseline", "Nope")
    assert r.returncode == 2
    assert "--baseline 'Nope'" in r.stderr and "'M1 Max'" in r.stderr
    assert "Traceback" not in r.stderr and not out.exists()
    # an empty store: still the report's own answer, not the baseline's
    empty = tmp_path / "empty.duckdb"
    open_store(empty).close()
    r = cli("report", "--store", empty, "--out", out, "--baseline", "Nope")
    assert r.returncode == 2 and "no runs" in r.stderr and "--baseline" not in r.stderr
    # a chip the store has is taken
    r = cli("report", "--store", store["path"], "--out", out, "--baseline", "M4 Pro")
    assert r.returncode == 0, r.stderr
    assert "baseline M4 Pro" in out.read_text()


@pytest.mark.slow  # chart processes: ~9 s (make test-slow; CI runs both)
def test_by_os_through_the_cli(cli, tmp_path):
    path = tmp_path / "results.duckdb"
    syn.lm_head_run(path, seed=1, host={**syn.MAC_HOST, "os_version": "14.7"})
    syn.lm_head_run(path, seed=2)
    out = tmp_path / "o"
    r = cli("chart", "factors", "--by", "os", "--store", path, "--out", out, "--json")
    assert r.returncode == 0, r.stderr
    spec = json.loads((out / "factors.vl.json").read_text())
    assert {d["series"] for d in spec["datasets"]["factors"]} == {"macOS 14.7", "macOS 15.3.1"}
    r = cli("chart", "latency", "--by", "os", "--store", path, "--out", out)
    assert r.returncode == 2 and "--by applies to the factors chart only" in r.stderr
    # only published rows (a fresh store): nothing to compare across OS versions, said so
    from anemll_spec.store import open_store

    empty = tmp_path / "empty.duckdb"
    open_store(empty).close()
    r = cli("chart", "factors", "--by", "os", "--store", empty, "--out", tmp_path / "e")
    assert r.returncode == 2 and "no measured runs to compare across OS versions" in r.stderr


@pytest.mark.slow  # report processes: ~7 s (make test-slow; CI runs both)
def test_a_report_against_a_measured_baseline_says_so_in_its_heading(cli, store, tmp_path):
    """`--baseline` a chip the store measured: the factors are against its own rows, and
    the heading said "Comparison with published results" all the same."""
    out = tmp_path / "own.html"
    r = cli("report", "--store", store["path"], "--run", store["lm_b"], "--out", out,
            "--baseline", "M4 Max")  # fmt: skip
    assert r.returncode == 0, r.stderr
    html = out.read_text()
    assert "<h2>Comparison with baseline M4 Max (measured) and with published results</h2>" in html
    assert "Comparison with published results (baseline" not in html
    assert "M4 Max (own, " in html  # each row says what its factor is against
    r = cli("report", "--store", store["path"], "--run", store["lm_b"], "--out", out, "--force")
    assert "<h2>Comparison with published results (baseline M1 Max)</h2>" in out.read_text()
