"""The rows that `share` and the report show of a run, read back as a user sees them (the
Markdown block's cells; the report opened in Chromium) and checked against the store
(SQL): their order, each case's name, and how its figures are written."""

from __future__ import annotations

import io
import re
import sys
from pathlib import Path

import pytest
from db_util import dict_rows

from anemll_spec.chart.report import write_report
from anemll_spec.store.connection import open_store
from anemll_spec.store.share import share_markdown

sys.path.insert(0, str(Path(__file__).parent / "fixtures" / "chart"))
import chart_dom as dom  # noqa: E402


def cells(line: str) -> list[str]:
    return [c.strip() for c in re.split(r"(?<!\\)\|", line.strip())[1:-1]]


def unescape(md: str) -> str:
    return re.sub(r"\\(.)", r"\1", md)


def share(store: Path, run_id: str) -> str:
    con = open_store(store, read_only=True)
    try:
        return share_markdown(con, run_id, baseline="M1 Max")
    finally:
        con.close()


def md_table(text: str, heading: str) -> list[dict[str, str]]:
    """The rows of the first table after the line starting with `heading` ('' = the
    summary, the block's first table), as header -> cell."""
    lines = text.splitlines()
    start = next(i for i, ln in enumerate(lines) if ln.startswith(heading)) if heading else 0
    first = next(i for i in range(start, len(lines)) if lines[i].startswith("|"))
    end = next((i for i in range(first, len(lines)) if not lines[i].startswith("|")), len(lines))
    head = cells(lines[first])
    return [dict(zip(head, cells(ln), strict=True)) for ln in lines[first + 2 : end]]


def report_table(root: dom.Node, heading: str) -> list[dict[str, str]]:
    """The rows of the report's table under the <h2> starting with `heading`."""
    body = root.find("body")[0]
    kids = body.children
    at = next(i for i, n in enumerate(kids) if n.tag == "h2" and n.all_text().startswith(heading))
    table = next(n for n in kids[at + 1 :] if n.tag == "table")
    rows = table.find("tr")
    head = [th.all_text() for th in rows[0].find("th")]
    return [dict(zip(head, [td.all_text() for td in r.find("td")], strict=True)) for r in rows[1:]]


@pytest.fixture(scope="module")
def sweep_run(tmp_path_factory) -> tuple[Path, str]:
    """A real bench of a two-backend sweep (numpy and torch, four points): each case
    index holds two variants, measured one after the other. Benched again (at most five
    runs) until the case ids, which end in a random hash, order some case's variants
    otherwise than bench measured them: else an order by case id would pass unseen."""
    from anemll_spec.progress import Progress
    from anemll_spec.runner import Runner

    tmp = tmp_path_factory.mktemp("sweep")
    spec = tmp / "two.yaml"
    spec.write_text(
        "name: two\nmodel: {family: lm_head, hidden_size: 64, vocab_size: 256, chunks: 1, "
        "dtype: float32}\nrun: {backends: [numpy, torch], warmup: 1, iterations: 10, "
        "dispatch_floor: false, energy_s: 0}\nsweep:\n  model.vocab_size: [256, 320, 384, 448]\n"
    )
    store = tmp / "s.duckdb"
    for _ in range(5):
        res = Runner(spec, store=str(store), cache_dir=tmp / "cache",
                     progress=Progress(io.StringIO())).run()  # fmt: skip
        rows = dict_rows(
            store,
            "SELECT case_index, case_id FROM cases WHERE run_id = ? "
            "ORDER BY case_index, finished_at",
            [res.run_id],
        )
        by_index: dict[int, list[str]] = {}
        for r in rows:
            by_index.setdefault(r["case_index"], []).append(r["case_id"])
        if any(ids != sorted(ids) for ids in by_index.values()):
            return store, res.run_id
    raise AssertionError("five runs' case ids all sorted as measured")


@pytest.mark.torch
@pytest.mark.browser
def test_share_and_the_report_list_a_runs_variants_in_one_order(chromium, sweep_run, tmp_path):
    """share's summary listed a case's variants as bench measured them, its factor table
    and the report's tables by case id (a random hash): numpy above torch in one table,
    below it in the next. Every table now follows the summary's order."""
    store, run_id = sweep_run
    measured = [
        (r["model_name"], r["backend"])
        for r in dict_rows(
            store,
            "SELECT model_name, backend FROM cases WHERE run_id = ? "
            "ORDER BY case_index, finished_at, case_id",
            [run_id],
        )
    ]
    assert len(measured) == 8 and {b for _, b in measured} == {"numpy", "torch"}
    text = share(store, run_id)
    summary = [(unescape(r["model"]), r["backend"]) for r in md_table(text, "")]
    factors = [
        (unescape(r["model"]), r["backend"].split()[0]) for r in md_table(text, "**Compared with")
    ]
    assert summary == measured and factors == measured
    page = write_report(store, run_id, tmp_path / "r.html")
    root = dom.dump_dom(chromium, page, tmp_path)
    cases = [(r["model"], r["backend"]) for r in report_table(root, "Cases")]
    assert cases == [(m, "torch/cpu" if b == "torch" else b) for m, b in measured]  # + device
    assert [r["#"] for r in report_table(root, "Cases")] == ["0", "0", "1", "1", "2", "2", "3", "3"]


def one_run(path: Path, *rows: tuple[dict, object]) -> str:
    """A finished run of synthetic cases (row, samples), through the write API."""
    from fixtures.store.synth import new_run

    from anemll_spec.store import append_case, finish_run

    run_id = new_run(path)
    for row, wall in rows:
        append_case(path, run_id, row, wall)
    finish_run(path, run_id, "finished")
    return run_id


@pytest.mark.browser
def test_a_tight_ci_never_puts_the_median_on_its_edge(chromium, tmp_path):
    """At 4 significant digits, a median of 123.449 ms with a CI [123.446, 123.451] read
    '123.4 | 123.4 to 123.5' in share and the report: the median on its CI's low end.
    Both now print as many digits as keep the three apart (as bench does)."""
    import numpy as np
    from fixtures.store.synth import case, samples_ns

    store = tmp_path / "s.duckdb"
    wall = samples_ns(np.random.default_rng(11), 200, 123.449, noise=1e-4)
    run_id = one_run(store, (case(wall=wall), wall))
    (row,) = dict_rows(store, "SELECT median_ms, ci_low_ms, ci_high_ms FROM cases", ())
    values = (row["median_ms"], row["ci_low_ms"], row["ci_high_ms"])
    assert f"{values[0]:.4g}" == f"{values[1]:.4g}"  # the case the old rule failed
    (got,) = md_table(share(store, run_id), "")
    low, high = got["95% CI ms"].split(" to ")
    page = write_report(store, run_id, tmp_path / "r.html")
    (cases,) = report_table(dom.dump_dom(chromium, page, tmp_path), "Cases")
    assert (cases["median (ms)"], cases["95% CI of median (ms)"]) == (
        got["median ms"], f"{low} – {high}"
    )  # fmt: skip
    shown = (got["median ms"], low, high)
    assert len(set(shown)) == 3, shown
    digits = len(shown[0].replace(".", "")) - 3  # decimals: 123.xxx
    for text, value in zip(shown, values, strict=True):  # each, rounded, is its value
        assert float(text) == pytest.approx(value, abs=0.51 * 10**-digits), (text, value)
    assert float(low) < float(got["median ms"]) < float(high)


@pytest.mark.browser
def test_sweep_points_of_a_published_model_are_told_apart(chromium, tmp_path):
    """Two points of a sweep of the published lm_head spec (run.iterations 20 and 40) were
    each shown as 'llama_lm_head | numpy' in share and the report. They are shown by the
    label plan and bench give them (spec.case.Case.label); model_name, which the views pair
    on, stays the published name, so the factors still compare them with published rows."""
    import numpy as np
    from fixtures.store.synth import ROOT, case, samples_ns

    from anemll_spec.spec import load_cases

    spec = tmp_path / "lm_head.yaml"
    text = (ROOT / "specs" / "lm_head.yaml").read_text()
    spec.write_text(text + "sweep:\n  run.iterations: [20, 40]\n")
    _, expanded = load_cases(spec)
    want = [c.label for c in expanded]
    assert want == ["llama_lm_head[iterations=20]", "llama_lm_head[iterations=40]"]
    rng = np.random.default_rng(9)
    rows = []
    for c, ms in zip(expanded, (10.0, 30.0), strict=True):
        wall = samples_ns(rng, 60, ms)
        row = case(wall=wall, model=c.model_name, params=c.params, case_index=c.index,
                   case_key=c.key, backend="numpy", compute_units=None,
                   variant_key=c.variant_key("numpy", None, None))  # fmt: skip
        rows.append((row, wall))
    store = tmp_path / "s.duckdb"
    run_id = one_run(store, *rows)
    stored = dict_rows(store, "SELECT model_name FROM cases ORDER BY case_index", ())
    # what the views pair on, unchanged
    assert [r["model_name"] for r in stored] == ["llama_lm_head"] * 2
    text = share(store, run_id)
    assert [unescape(r["model"]) for r in md_table(text, "")] == want
    factors = md_table(text, "**Compared with")
    assert [unescape(r["model"]) for r in factors] == want
    assert {r["vs"] for r in factors} == {"M1 Max (published, Core ML ANE)"}
    page = write_report(store, run_id, tmp_path / "r.html")
    root = dom.dump_dom(chromium, page, tmp_path)
    assert [r["model"] for r in report_table(root, "Cases")] == want
    published = report_table(root, "Comparison with published results")
    assert [r["model"] for r in published] == want


def test_a_stored_label_is_the_one_plan_gives(tmp_path):
    """labels.case_label rebuilds Case.label from what the store keeps (model_name and the
    params JSON), for a sweep whose points are published models of their own (compression
    none and LUT6) and for one that is no published model."""
    import json

    from fixtures.store.synth import ROOT

    from anemll_spec.spec import load_cases
    from anemll_spec.store.labels import case_label

    lut6 = "{palettize: {nbits: 6, granularity: per_grouped_channel, group_size: 8}}"
    spec = tmp_path / "lm_head.yaml"
    spec.write_text(
        (ROOT / "specs" / "lm_head.yaml").read_text()
        + f"sweep:\n  model.compression: [none, {lut6}]\n  run.backends: [[numpy], [torch]]\n"
        + "  model.vocab_size: [128256, 1024]\n"
    )
    _, expanded = load_cases(spec)
    assert len(expanded) == 8
    published = {c.model_name for c in expanded if "[" not in c.model_name}
    assert published == {"llama_lm_head", "llama_lm_head_lut6"}
    for c in expanded:
        assert case_label(c.model_name, json.dumps(c.params)) == c.label, c.label


@pytest.mark.browser
def test_large_figures_are_written_whole_as_the_report_does(chromium, tmp_path):
    """share wrote 10602.7 inferences/s as '1.06e+04' (and a 12.3 s p90 as '1.234e+04')
    where the report shows 10,603: one rule (text.figure) for both now."""
    import numpy as np
    from fixtures.store.synth import case, samples_ns

    rng = np.random.default_rng(12)
    fast = samples_ns(rng, 60, 0.19)
    slow = samples_ns(rng, 20, 12_345.0)
    concurrent = case(wall=fast, concurrency=2, instances="shared", throughput_ips=10602.7)
    store = tmp_path / "s.duckdb"
    run_id = one_run(
        store, (concurrent, fast), (case("slow", "slow_head", wall=slow, case_index=1), slow)
    )
    stored = dict_rows(store, "SELECT throughput_ips, p90_ms FROM cases ORDER BY case_index", ())
    ips, p90 = stored[0]["throughput_ips"], stored[1]["p90_ms"]
    assert ips >= 1e4 and p90 >= 1e4
    text = share(store, run_id)
    assert "e+0" not in text
    rows = md_table(text, "")
    assert rows[0]["inferences/s"] == f"{ips:,.0f}" == "10,603"
    assert rows[1]["p90 ms"] == f"{p90:,.0f}"
    page = write_report(store, run_id, tmp_path / "r.html")
    cases = report_table(dom.dump_dom(chromium, page, tmp_path), "Cases")
    assert f"{rows[0]['inferences/s']} inferences/s in all" in cases[0]["flags"]
    assert cases[1]["p90 (ms)"] == rows[1]["p90 ms"]


def test_a_figure_that_rounds_up_to_ten_to_the_digits_is_written_whole():
    """9999.7 at 4 digits printed '1e+04' (one significant digit): the whole-number rule
    looked at the value before rounding. Every value that rounds to 10**digits or more
    is written whole; one just below keeps its digits."""
    from anemll_spec.text import figure

    for digits in range(3, 8):
        top = 10**digits
        for v in (top - 0.5, top - 0.3, top - 0.01, -(top - 0.3)):
            assert figure(v, digits) == f"{round(v):,}", (v, digits)
        below = top - 0.6  # rounds to top - 1: digits significant digits, no e-notation
        assert figure(below, digits) == str(top - 1) == f"{round(below)}"
    assert figure(9999.7, 4) == "10,000" and figure(999999.7, 6) == "1,000,000"
    assert figure(999_999_999_999_999.7, 6) == "1e+15"  # rounds to 10**15: past whole


def test_a_figure_past_a_floats_whole_digits_is_not_written_whole():
    """3.3e25 as '33,000,000,000,000,001,056,964,608' showed float noise as data."""
    from anemll_spec.text import figure

    assert (figure(10602.7, 4), figure(1.234e14, 4)) == ("10,603", "123,400,000,000,000")
    assert (figure(3.3e25, 6), figure(-1.234e20, 4), figure(0.5, 4)) == (
        "3.3e+25",
        "-1.234e+20",
        "0.5",
    )
