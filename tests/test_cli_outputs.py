"""Files the CLI writes, and what it refuses to write over: through the real CLI, each bad
path is exit 2 with a one-line error (no traceback), and nothing the user had is lost.

SYNTHETIC runs for the store (tests/fixtures/chart), not measurements.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import duckdb
import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).parent / "fixtures" / "chart"))
import chart_synthetic as syn  # noqa: E402

from anemll_spec.store import open_store  # noqa: E402


def refused(r, *needles: str) -> str:
    assert r.returncode == 2, (r.returncode, r.stdout, r.stderr)
    assert "Traceback" not in r.stderr, r.stderr
    for n in needles:
        assert n in r.stderr, r.stderr
    return r.stderr


def runs_in(store: Path) -> int:
    con = duckdb.connect(str(store), read_only=True)
    try:
        return con.execute("SELECT count(*) FROM runs").fetchone()[0]
    finally:
        con.close()


@pytest.fixture()
def store(tmp_path) -> Path:
    path = tmp_path / "results.duckdb"
    syn.lm_head_run(path, seed=1)
    syn.lm_head_run(path, seed=2, scale=1.02)
    return path


def test_export_never_writes_over_the_store_or_another_file(cli, store, tmp_path):
    refused(cli("export", "--store", store, "--out", store), "that is the results store")
    refused(cli("export", "--store", store, "--out", tmp_path / "x.csv"), ".parquet")
    assert not (tmp_path / "x.csv").exists()
    assert runs_in(store) == 2  # still a store, still whole
    other = tmp_path / "notes.parquet"
    other.write_text("mine")
    refused(cli("export", "--store", store, "--out", other), "exists", "--force")
    assert other.read_text() == "mine"
    refused(cli("export", "--store", store, "--out", tmp_path), "is a folder")
    refused(cli("export", "--store", store, "--out", ""), "must not be empty")
    ok = cli("export", "--store", store, "--out", other, "--force")
    assert ok.returncode == 0, ok.stderr
    assert other.read_bytes()[:4] == b"PAR1"


@pytest.mark.slow  # report processes, round after round: ~12 s (make test-slow; CI runs both)
def test_report_replaces_its_own_page_only(cli, store, tmp_path):
    refused(cli("report", "--store", store, "--out", store), "that is the results store")
    assert runs_in(store) == 2
    page = tmp_path / "r.html"
    assert cli("report", "--store", store, "--out", page).returncode == 0
    again = cli("report", "--store", store, "--out", page)
    assert again.returncode == 0, again.stderr  # this run's earlier report is replaced
    other_run = cli("report", "--store", store, "--out", page, "--run", "previous")
    refused(other_run, "exists", "--force")  # another run's page is kept unless --force
    forced = cli("report", "--store", store, "--out", page, "--run", "previous", "--force")
    assert forced.returncode == 0, forced.stderr
    data = tmp_path / "data.csv"
    data.write_text("a,b\n")
    # not a page's name: refused for that first (--force could not make it one)
    refused(cli("report", "--store", store, "--out", data), "name it FILE.html")
    refused(cli("report", "--store", store, "--out", data, "--force"), "name it FILE.html")
    assert data.read_text() == "a,b\n"
    refused(cli("report", "--store", store, "--out", tmp_path), "is a folder")
    refused(cli("report", "--store", store, "--out", "/proc/nope/r.html"), "/proc/nope")


def test_chart_out_must_be_a_folder(cli, store, tmp_path):
    f = tmp_path / "afile"
    f.write_text("x")
    refused(cli("chart", "latency", "--store", store, "--out", f), "is a file")
    refused(cli("chart", "latency", "--store", store, "--out", ""), "must not be empty")
    assert f.read_text() == "x"


def test_chart_replaces_its_own_files_and_nothing_else(cli, store, tmp_path):
    """A user's latency.html in --out was silently replaced by the chart."""
    mine = tmp_path / "mine"
    mine.mkdir()
    notes = mine / "latency.html"
    notes.write_text("my notes")
    refused(cli("chart", "latency", "--store", store, "--out", mine), "latency.html exists")
    assert notes.read_text() == "my notes" and sorted(p.name for p in mine.iterdir()) == [
        "latency.html"
    ]
    (mine / "latency.png").write_bytes(b"x")  # a png alone, beside no chart page
    notes.unlink()
    refused(cli("chart", "latency", "--store", store, "--out", mine), "latency.png exists")
    assert cli("chart", "latency", "--store", store, "--out", mine, "--force").returncode == 0
    assert (mine / "latency.png").read_bytes().startswith(b"\x89PNG")
    again = cli("chart", "latency", "--store", store, "--out", mine)  # its own: replaced
    assert again.returncode == 0, again.stderr
    # a user's PNG beside our page is not ours: written at another time, or beside a
    # page of another kind renamed
    import os

    (mine / "latency.png").write_bytes(b"mine")
    old = (mine / "latency.html").stat().st_mtime - 3600
    os.utime(mine / "latency.png", (old, old))
    refused(cli("chart", "latency", "--store", store, "--out", mine), "latency.png exists")
    other = tmp_path / "other"
    other.mkdir()
    (other / "latency.html").write_text((mine / "latency.html").read_text().replace(
        'content="anemll-spec chart latency"', 'content="anemll-spec chart timeline"'))  # fmt: skip
    (other / "latency.png").write_bytes(b"mine")
    refused(cli("chart", "latency", "--store", store, "--out", other), "exists")
    assert (other / "latency.png").read_bytes() == b"mine"


def test_predict_checks_its_paths_and_seed_first(cli, tmp_path):
    from build_util import matmul

    from anemll_spec.build import build

    model = build(matmul(), cache_dir=tmp_path / "cache").path
    (tmp_path / "out.npz").mkdir()
    refused(cli("predict", model, "--out", tmp_path / "out.npz"), "is a folder")
    refused(cli("predict", model, "--seed", "-1"), "must be >= 0")
    npy = tmp_path / "x.npy"
    np.save(npy, np.zeros(3, np.float32))
    refused(cli("predict", model, "--inputs", npy), "one unnamed array (.npy)")
    objects = tmp_path / "objects.npz"  # members are read only when asked for
    np.savez(objects, x=np.array([{"a": 1}], dtype=object))
    refused(cli("predict", model, "--inputs", objects), "cannot read input arrays (ValueError")
    corrupt = tmp_path / "corrupt.npz"
    np.savez(corrupt, x=np.arange(64, dtype=np.float32))
    data = bytearray(corrupt.read_bytes())
    data[data.index(b"\x93NUMPY") + 200] ^= 0xFF  # a byte of the array: its CRC fails
    corrupt.write_bytes(bytes(data))
    refused(cli("predict", model, "--inputs", corrupt), "cannot read input arrays (BadZipFile")
    refused(cli("predict", model, "--function", "foo"), "no function 'foo' (has: main)")
    assert sorted(p.name for p in tmp_path.glob("*.npz")) == [
        "corrupt.npz",
        "objects.npz",
        "out.npz",
    ]


def test_query_refuses_empty_sql_and_mixed_formats_and_keeps_json_valid(cli, tmp_path):
    path = tmp_path / "q.duckdb"
    open_store(path).close()
    refused(cli("query", "", "--store", path), "the query is empty")
    refused(cli("query", "-- only a comment", "--store", path), "the query is empty")
    refused(cli("query", "select 1", "--format", "csv", "--json", "--store", path), "not both")
    r = cli(
        "query", "select [1.0, 'nan'::double] l, {'x': 'inf'::double} s", "--json", "--store", path
    )
    assert r.returncode == 0, r.stderr
    strict = json.loads(r.stdout, parse_constant=lambda c: pytest.fail(f"bare {c} in JSON"))
    assert strict == [{"l": [1.0, None], "s": {"x": None}}]
    r = cli("query", "select now() as t", "--json", "--store", path)  # TIMESTAMPTZ (pytz)
    assert r.returncode == 0, r.stderr
    r = cli("query", "select chr(27) || '[31mred' || chr(9) as x", "--store", path)
    assert r.returncode == 0 and "\x1b" not in r.stdout and "\\x1b[31mred\\t" in r.stdout


def test_compare_refuses_nothing_to_compare(cli, store):
    refused(cli("compare", "latest", "latest", "--store", store), "the same run")
    refused(cli("compare", "previous", "latest", "--store", store, "--seed", "-1"), "must be >= 0")
    refused(
        cli("compare", "previous", "latest", "--store", store, "--n-boot", "1000000000"),
        "--n-boot must be",
    )


def test_compare_with_no_variant_in_common_is_an_error(cli, tmp_path):
    path = tmp_path / "s.duckdb"
    first = syn.lm_head_run(path, seed=1)
    second = syn.sweep_run(path)
    r = cli("compare", first, second, "--store", path, "--fail-on-regression", "5")
    refused(r, "no measured variant in common")


def test_bench_stops_before_writing_on_a_model_it_cannot_build(cli, tmp_path):
    spec = tmp_path / "huge.yaml"
    spec.write_text(
        "name: huge\nmodel: {family: lm_head, hidden_size: 1048576, vocab_size: 1048576, "
        "chunks: 1024}\nrun: {backends: [numpy], iterations: 5}\n"
    )
    store = tmp_path / "s.duckdb"
    refused(cli("bench", spec, "--store", store), "building needs about")
    assert not store.exists()
    afile = tmp_path / "cachefile"
    afile.write_text("x")
    small = tmp_path / "small.yaml"
    small.write_text(spec.read_text().replace("1048576", "1024"))
    r = cli("bench", small, "--store", store, env={"ANEMLL_SPEC_CACHE": str(afile)})
    refused(r, "is a file, not a folder")
    assert not store.exists() and afile.read_text() == "x"
    refused(cli("build", small, "--cache-dir", afile), "is a file, not a folder")


def test_bench_stops_before_writing_on_unknown_external_inputs(cli, tmp_path):
    import shutil

    from build_util import matmul

    from anemll_spec.build import build

    shutil.copytree(build(matmul(), cache_dir=tmp_path / "cache").path, tmp_path / "m.mlpackage")
    spec = tmp_path / "ext.yaml"
    spec.write_text(
        "name: ext\nmodel: {family: external, path: m.mlpackage, input_ranges: {nope: [0, 5]}}\n"
        "run: {backends: [numpy], iterations: 5}\n"
    )
    store = tmp_path / "s.duckdb"
    refused(cli("bench", spec, "--store", store), "model.input_ranges.nope", "no input 'nope'")
    assert not store.exists()
    # validate already knows: the names are the model's inputs, read from the package
    err = refused(cli("validate", spec), "ext.yaml:2:67: model.input_ranges.nope")
    assert "the model has no input 'nope'; allowed: x" in err


def test_input_ranges_must_fit_an_integer_input(cli, tmp_path):
    """A range beyond the input's dtype wrapped silently when the inputs were cast (ids
    [4294967296, 4294967299] became 0..3), and a range on a float input was ignored:
    validate refuses both, at the range."""
    import coremltools as ct
    from coremltools.converters.mil.mil import types
    from fixtures.executor.mil_models import mb, save_program

    @mb.program(
        input_specs=[mb.TensorSpec((1, 4), dtype=types.fp16), mb.TensorSpec((4,), types.int32)],
        opset_version=ct.target.iOS18,
    )
    def prog(x, ids):
        return mb.gather(x=x, indices=ids, axis=1, name="picked")

    save_program(prog, tmp_path / "m.mlpackage", precision="fp16")
    spec = tmp_path / "ext.yaml"
    head = "name: ext\nmodel:\n  family: external\n  path: m.mlpackage\n  input_ranges:\n"
    run = "run: {backends: [numpy], iterations: 5}\n"
    spec.write_text(head + "    ids: [4294967296, 4294967299]\n    x: [0, 5]\n" + run)
    out = cli("validate", spec)
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert out.stderr.splitlines() == [
        f"error: {spec}:6:10: model.input_ranges.ids: must lie within "
        "int32 [-2147483648, 2147483647], got [4294967296, 4294967299]",
        f"error: {spec}:7:8: model.input_ranges.x: input 'x' is "
        "float16: ranges apply to integer inputs (a float input is drawn from N(0, 1))",
    ]
    spec.write_text(head + "    ids: [-2147483648, 2147483647]\n" + run)  # the whole range
    assert cli("validate", spec).returncode == 0


def test_export_knows_the_store_however_it_is_named(cli, store, tmp_path):
    """The store given as ~/... (here through $ANEMLL_SPEC_STORE and HOME) is the store,
    even with --force."""
    home = store.parent
    r = cli("export", "--out", store, "--force",
            env={"HOME": str(home), "ANEMLL_SPEC_STORE": "~/" + store.name})  # fmt: skip
    refused(r, "that is the results store")
    assert runs_in(store) == 2


def test_every_json_output_is_strict(capsys):
    """print_json (every command's --json) writes null for NaN/inf at any depth."""
    from anemll_spec.cli._common import print_json

    print_json({"ci_reach_pct": float("nan"), "x": [1.0, float("inf")], "s": {"y": float("-inf")}})
    out = capsys.readouterr().out
    doc = json.loads(out, parse_constant=lambda c: pytest.fail(f"bare {c} in JSON"))
    assert doc == {"ci_reach_pct": None, "x": [1.0, None], "s": {"y": None}}


def test_unknown_arguments_are_named_by_their_command(cli):
    """The command's own parser answers, so its usage shows the flags it does have."""
    r = cli("info", "--bogus")
    refused(
        r, "usage: anemll-spec info", "anemll-spec info: error: unrecognized arguments: --bogus"
    )
    refused(cli("--bogus"), "anemll-spec: error: unrecognized arguments: --bogus")


def test_share_json_and_an_unknown_baseline(cli, store):
    text = cli("share", "--store", store)
    r = cli("share", "--store", store, "--json")
    assert text.returncode == 0 and r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    assert doc["markdown"] == text.stdout and doc["baseline"] == "M1 Max"
    assert doc["export_command"] in text.stdout and doc["run_id"] in doc["export_command"]
    refused(
        cli("share", "--store", store, "--baseline", "M9"),
        "--baseline 'M9': no chip of that name in the store; chips: ",
        "'M1 Max'",
    )


def test_empty_charts_say_why(cli, store, tmp_path):
    r = cli("chart", "sweep", "--store", store, "--out", tmp_path / "s")
    refused(r, "no run with a sweep has ok cases in the store", "`sweep:`")
    for kind in ("latency", "timeline", "sweep"):
        r = cli("chart", kind, "--store", store, "--model", "nope", "--out", tmp_path / kind)
        refused(r, "no model of that name; models: 'llama_lm_head', 'llama_lm_head_lut6'")
    assert not any(tmp_path.glob("*/*.html"))


def test_report_out_must_be_a_page(cli, store, tmp_path):
    refused(cli("report", "--store", store, "--out", tmp_path / "r.txt"), "name it FILE.html")
    assert not (tmp_path / "r.txt").exists()


def test_query_help_names_every_table_view_and_macro(tmp_path):
    """--help's list of what a query may read is the store's own, kept in step here."""
    from anemll_spec.cli import query

    con = open_store(tmp_path / "s.duckdb")
    try:
        tables = {r[0] for r in con.execute("SELECT table_name FROM duckdb_tables()").fetchall()}
        views = {r[0] for r in con.execute(
            "SELECT view_name FROM duckdb_views() WHERE NOT internal").fetchall()}  # fmt: skip
        macros = {r[0] for r in con.execute(
            "SELECT function_name FROM duckdb_functions() WHERE function_type = 'table_macro' "
            "AND NOT internal").fetchall()}  # fmt: skip
    finally:
        con.close()
    assert set(query.TABLES) == tables - {"meta"}
    assert set(query.VIEWS) == views
    assert set(query.MACROS) == macros - {"factors_of", "energy_factors_of"}  # internal steps


def test_a_dispatch_floor_above_the_median_claims_no_share():
    """The floor is a 64 -> 64 model timed after the case: at or above the case's median,
    it is no part of its latency, and the line says only what is known (it said 'this
    model is smaller' of models far bigger than the floor model)."""
    from types import SimpleNamespace as NS

    from anemll_spec.cli.bench import _lines

    def floor_line(median_ms: float, after: int = 0) -> str:
        v = NS(case=NS(index=0, model_name="m"), label="numpy")
        m = NS(variant=v, status="ok", verdict=None, runtime_median_ms=None, energy=None,
               notes=[], dispatch_floor_ms=0.015, dispatch_floor_after=after,
               summary=NS(median_ms=median_ms))  # fmt: skip
        (line,) = [ln for ln in _lines(m) if ln.startswith("dispatch floor")]
        return line

    assert floor_line(0.03).endswith(
        "0.015 ms for a tiny 64->64 model (timed after this case) = 50% of this median"
    )
    above = floor_line(0.01)
    assert above.endswith(
        "0.015 ms for a tiny 64->64 model, timed after this case, is at or above its median "
        "(0.010 ms): a model as fast as the tiny one, or conditions that changed between "
        "the two; no overhead share"
    )
    assert "smaller" not in above and "%" not in above
    # timed once per run: a floor reused from an earlier case says which
    assert "(timed after case #3, reused) = 50% of this median" in floor_line(0.03, after=3)
    assert ", timed after case #3, reused, is at or above its median" in floor_line(0.01, 3)
    assert "at or above its median (0.015 ms)" in floor_line(0.015)  # equal: no share either


def test_compare_refuses_numbers_that_are_not_finite(cli, store):
    """nan makes every comparison false: --fail-on-regression nan would pass anything."""
    for flag in ("--fail-on-regression", "--noise-floor", "--level"):
        for value in ("nan", "inf"):
            r = cli("compare", "previous", "latest", "--store", store, flag, value)
            refused(r, f"argument {flag}: must be a finite number, got '{value}'")


def test_compare_gives_no_verdict_on_too_few_samples(tmp_path):
    """One sample a side: a bootstrap 'CI' of zero width must not make a regression."""
    from fixtures.store.synth import case, new_run

    from anemll_spec.compare import compare_runs
    from anemll_spec.store import append_case, finish_run

    store = tmp_path / "s.duckdb"
    for wall in ([1_000_000], [2_000_000]):
        run_id = new_run(store)
        append_case(store, run_id, case(wall=np.array(wall)), wall)
        finish_run(store, run_id, "finished")
    out = compare_runs(store, "previous", "latest", fail_on_regression_pct=5)
    (row,) = out["comparisons"]
    assert row["ratio"] == 2.0 and row["verdict"] == "too few samples"
    assert out["regressions"] == 0


def test_chart_options_that_would_be_ignored_are_refused(cli, store, tmp_path):
    """--metric on a latency chart used to be dropped without a word."""
    for kind, flag, value, applies in (
        ("latency", "--metric", "tflops", "sweep only"),
        ("factors", "--param", "model.n", "sweep only"),
        ("timeline", "--baseline", "M4 Max", "factors and energy only"),
        ("latency", "--baseline", "M1 Max", "factors and energy only"),  # the default, given
    ):
        r = cli("chart", kind, "--store", store, "--out", tmp_path / kind, flag, value)
        refused(r, f"chart {kind}: {flag} applies to {applies}")
        assert not (tmp_path / kind).exists()
    r = cli("chart", "latency", "--store", store, "--out", tmp_path / "l", "--runs", "a", "b")
    refused(r, "chart latency: --runs A B applies to chart compare; give one --run")


def test_a_run_interrupted_before_any_case_says_so_not_an_empty_table(tmp_path):
    from anemll_spec.cli.bench import summary
    from anemll_spec.runner.bench import BenchResult

    store = tmp_path / "s.duckdb"
    text = summary(BenchResult("r1", "interrupted", str(store), "s.yaml", {}, [], []))
    assert text.splitlines()[0] == "no case finished: nothing to summarise"
    assert "median ms" not in text and f"run r1 (interrupted) stored in {store}" in text
    assert "GB/s" not in text  # no legend for the table not printed (stop 27)


def test_tables_escape_control_characters_from_outside():
    """inspect, predict, cache list and bench print names read from a model or a store
    through one table: an escape sequence in a tensor name never reaches the terminal."""
    from anemll_spec.cli._common import table

    text = table([["logits\x1b[2J", 3], ["ok", 12]], ["name", "n"])
    assert "\x1b" not in text and "logits\\x1b[2J" in text
    assert text.splitlines()[2].endswith(" 3")  # numbers still right-aligned


def test_both_text_tables_share_one_layout():
    """info/ops/inspect ('-' for None) and query (NULL, a row count) lay out alike: widest
    cell per column, two spaces between, numbers right-aligned under a left-aligned header."""
    from anemll_spec.cli._common import table
    from anemll_spec.cli.query import render_table

    want = ["name    n", "------  --", "a       12", "longer   3"]
    assert table([["a", 12], ["longer", 3]], ["name", "n"]).splitlines() == want
    assert render_table(["name", "n"], [("a", 12), ("longer", 3)]).splitlines() == [
        *want,
        "(2 rows)",
    ]
    assert table([["a", None]], ["name", "n"]).splitlines()[2] == "a     -"
    assert render_table(["name", "n"], [("a", None)]).splitlines()[2] == "a     NULL"


def test_build_takes_several_specs_and_bench_the_same_cache_dir(cli, tmp_path):
    """build took one SPEC and bench had no --cache-dir, so `build --cache-dir X` filled
    a cache bench could never use; an empty --cache-dir meant the default cache, and a
    file given as one was listed as an empty cache."""
    one, two = tmp_path / "one.yaml", tmp_path / "two.yaml"
    one.write_text("name: one\nmodel: {family: matmul, m: 4, k: 8, n: 8}\n")
    two.write_text("name: two\nmodel: {family: matmul, m: 4, k: 8, n: 16}\n")
    cache = tmp_path / "mine"
    r = cli("build", one, two, "--cache-dir", cache, "--json")
    assert r.returncode == 0, r.stderr
    built = json.loads(r.stdout)
    assert [b["spec"] for b in built] == ["one", "two"] and not any(b["cached"] for b in built)
    assert all(Path(b["path"]).is_relative_to(cache) for b in built)
    store = tmp_path / "s.duckdb"
    r = cli("bench", one, "--cache-dir", cache, "--store", store, "--backend", "numpy", "--json")
    assert r.returncode == 0, r.stderr
    assert "no store at" in r.stderr and str(store) in r.stderr  # a new store is said
    assert json.loads(r.stdout)["store"] == str(store.absolute())
    con = duckdb.connect(str(store), read_only=True)
    try:  # the model build made, found where bench looked
        assert con.execute("SELECT build_cached FROM cases").fetchall() == [(True,)]
    finally:
        con.close()
    r = cli("bench", one, "--cache-dir", cache, "--store", "s.duckdb", "--json", cwd=tmp_path)
    assert json.loads(r.stdout)["store"] == str(store.absolute())  # relative: made absolute
    refused(cli("build", one, "--cache-dir", ""), "must not be empty")
    refused(cli("cache", "list", "--cache-dir", one), "is a file, not a folder")
    refused(cli("build", one, tmp_path / "missing.yaml", "--cache-dir", tmp_path / "c2"))
    assert not (tmp_path / "c2").exists()  # every spec checked before the first build


def test_a_spec_given_to_inspect_says_how_to_get_its_models(cli, tmp_path):
    r = refused(cli("inspect", "specs/smoke.yaml"), "a spec, not a model")
    assert "`anemll-spec build specs/smoke.yaml`" in r and "which inspect takes" in r


def test_import_says_it_makes_a_new_store_and_push_knows_one_store_spelt_twice(cli, tmp_path):
    from fixtures.store.synth import case, new_run

    from anemll_spec.store import append_case, finish_run

    src = tmp_path / "a.duckdb"
    run_id = new_run(src)
    wall = [5_000_000, 5_100_000]  # its statistics stored with it: an import checks them
    append_case(src, run_id, case(wall=wall), wall)
    finish_run(src, run_id, "finished")
    bundle = tmp_path / "a.parquet"
    assert cli("export", "--store", src, "--out", bundle).returncode == 0
    new = tmp_path / "sub" / "new.duckdb"
    r = cli("import", tmp_path / "missing.parquet", "--store", new)
    assert r.returncode == 2 and "note:" not in r.stderr and not new.exists()
    r = cli("import", bundle, "--store", new)
    assert r.returncode == 0 and f"note: this import created the store {new}" in r.stderr
    r = cli("import", bundle, "--store", new)
    assert "created the store" not in r.stderr
    pushed = tmp_path / "pushed.duckdb"
    r = cli("push", "--store", src, "--to", pushed)
    assert r.returncode == 0 and f"note: this push created the store {pushed}" in r.stderr
    for spelt in (f"./{src.name}", str(src)):
        r = cli("push", "--store", src, "--to", spelt, cwd=tmp_path)
        refused(r, "the source and destination are the same store")


def test_bench_figures_keep_their_meaning_when_small_or_tight():
    """Fixed decimals turned 0.000359 GB/s into '0.00' and a CI of +-0.2 % into
    '0.011 [0.010, 0.011]' (median on the CI's edge, the CI ten times as wide)."""
    from anemll_spec.text import sig, with_ci

    assert sig(0.000359) == "0.000359" and sig(2877.3) == "2877" and sig(12.34) == "12.3"
    assert with_ci(0.01051, 0.01049, 0.01053) == "0.01051 [0.01049, 0.01053]"
    assert with_ci(450.1, 449.8, 450.5) == "450.1 [449.8, 450.5]"
    for m, lo, hi in ((0.010512, 0.010498, 0.010531), (7.6103, 7.6101, 7.6107)):
        text = with_ci(m, lo, hi)
        shown = [float(t) for t in text.replace("[", "").replace("]", "").replace(",", "").split()]
        assert shown[1] < shown[0] < shown[2]  # the median strictly inside, as stored
        assert all(abs(s - v) / v < 1e-3 for s, v in zip(shown, (m, lo, hi), strict=True))


def test_bench_factor_prefers_the_published_figure_over_a_derived_baseline(tmp_path):
    """A LUT6 head's published figure is its ms; its GB/s baseline is derived from it, so
    bench's factor column gives the ms factor (review: it gave '0.059x (derived baseline)
    (GB/s)'). Rows from the store's own for_run over a synthetic run."""
    import sys
    from types import SimpleNamespace

    import duckdb

    sys.path.insert(0, str(Path(__file__).parent / "fixtures" / "chart"))
    import chart_synthetic as syn

    from anemll_spec.cli.bench import _factor
    from anemll_spec.store.factors import for_run

    path = tmp_path / "s.duckdb"
    run_id = syn.lm_head_run(path, seed=5)
    with duckdb.connect(str(path), read_only=True) as con:
        rows = {r["model"]: r for r in for_run(con, run_id)}
    lut6, head = rows["llama_lm_head_lut6"], rows["llama_lm_head"]
    assert lut6["bandwidth_factor_label"].endswith("(derived baseline)")  # the case at hand
    assert not lut6["inference_factor_label"].endswith("(derived baseline)")
    got = _factor(SimpleNamespace(factors=lut6))
    assert got == f"{lut6['inference_factor_label']} (ms) vs {lut6['baseline_label']}"
    # the fp16 head's published figure is its GB/s: that one stays first
    assert _factor(SimpleNamespace(factors=head)).startswith(
        f"{head['bandwidth_factor_label']} (GB/s)"
    )


def test_a_closed_stdout_is_refused_before_any_work(tmp_path):
    """Started with fd 1 closed (`>&-`), Python's sys.stdout is None: printing the JSON
    crashed with a traceback after the bench had run; now it is refused up front."""
    import subprocess
    import sys

    store = tmp_path / "s.duckdb"
    cmd = f"{sys.executable} -m anemll_spec bench specs/smoke.yaml --backend numpy --json "
    out = subprocess.run(
        ["sh", "-c", f"{cmd} --store {store} >&-"], capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 2 and not store.exists()
    assert out.stderr == (
        "anemll-spec bench: error: stdout is closed; redirect it to a file or /dev/null\n"
    )


def test_a_closed_stderr_is_refused_before_any_work(tmp_path):
    """Started with fd 2 closed (`2>&-`), Python's sys.stderr is None: bench crashed (exit
    1, no word) in its progress display, after fd 1 had been pointed at fd 2, which a file
    opened meanwhile may hold. Refused up front: exit 2 (no line can be printed), no
    store, no cache, nothing on stdout."""
    import subprocess
    import sys

    store, cache, out = tmp_path / "s.duckdb", tmp_path / "cache", tmp_path / "out.json"
    cmd = f"{sys.executable} -m anemll_spec bench specs/smoke.yaml --backend numpy --json "
    res = subprocess.run(
        ["sh", "-c", f"{cmd} --store {store} --cache-dir {cache} 2>&- >{out}"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert res.returncode == 2 and (res.stdout, res.stderr) == ("", "")
    assert out.read_text() == "" and not store.exists() and not cache.exists()


def test_stdout_under_python_u_goes_out_at_each_write():
    """cli/_stdout gathers small writes; under `python -u` (write_through) a pipe's reader
    must see each write at once, as without the wrapper; a block-buffered pipe's later."""
    import io
    import os

    from anemll_spec.cli._stdout import Stdout

    for through in (True, False):
        r, w = os.pipe()
        os.set_blocking(r, False)
        raw = io.FileIO(w, "w")
        stream = io.TextIOWrapper(io.BufferedWriter(raw), encoding="utf-8", write_through=through)
        out = Stdout(stream)
        out.write("one line\n")
        try:
            got = os.read(r, 100)
        except BlockingIOError:
            got = b""
        assert got == (b"one line\n" if through else b""), through
        out.flush()
        stream.close()
        os.close(r)
