"""`anemll-spec query` (read-only, formats) and the stock duckdb CLI on the store."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from db_util import rows as db_rows
from fixtures.store.synth import case, new_run, samples_ns

from anemll_spec.store import append_case, finish_run

ROOT = Path(__file__).resolve().parents[1]
QUERIES = sorted((ROOT / "store" / "queries").glob("*.sql"))
DUCKDB_CLI = Path(sys.executable).parent / "duckdb"


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """Two chips, both published models, two compute units, dispatch floors and drift."""
    path = tmp_path_factory.mktemp("q") / "results.duckdb"
    rng = np.random.default_rng(5)
    for chip, scale in (("Apple M1 Max", 2.0), ("Apple M4 Max", 1.0)):
        run_id = new_run(path, chip=chip)
        for model, ms in (("llama_lm_head", 8.8), ("llama_lm_head_lut6", 3.9)):
            for cu, f in (("CPU_AND_NE", 1.0), ("CPU_ONLY", 4.0)):
                wall = samples_ns(rng, 100, ms * scale * f)
                append_case(
                    path,
                    run_id,
                    case(
                        model,
                        model,
                        wall=wall,
                        compute_units=cu,
                        dispatch_floor_ms=0.25,
                        drift_ratio=1.2 if cu == "CPU_ONLY" else 1.0,
                        throttled=cu == "CPU_ONLY",
                    ),
                    wall,
                )
        finish_run(path, run_id, "finished")
    return path


def digest(path: Path) -> str:
    h = hashlib.sha256(path.read_bytes())
    wal = Path(str(path) + ".wal")
    if wal.exists():
        h.update(wal.read_bytes())
    return h.hexdigest()


def test_table_csv_json_formats(cli, store):
    sql = "SELECT chip, model_name, compute_units, median_ms FROM results ORDER BY 1, 2, 3"
    table = cli("query", sql, "--store", store)
    assert table.returncode == 0, table.stderr
    lines = table.stdout.splitlines()
    assert lines[0].split() == ["chip", "model_name", "compute_units", "median_ms"]
    assert set(lines[1]) <= {"-", " "} and lines[-1] == "(8 rows)"
    # numbers right-aligned in their column
    ends = {len(line) for line in lines[2:-1]}
    assert len(ends) == 1

    as_json = json.loads(cli("query", sql, "--store", store, "--json").stdout)
    as_csv = list(
        csv.DictReader(io.StringIO(cli("query", sql, "--store", store, "--format", "csv").stdout))
    )
    assert len(as_json) == len(as_csv) == 8
    assert [r["chip"] for r in as_json][:4] == ["M1 Max"] * 4
    for j, c in zip(as_json, as_csv, strict=True):
        assert float(c["median_ms"]) == j["median_ms"]


def test_several_statements_are_refused_not_all_but_the_last_dropped(cli, store, tmp_path):
    """`SELECT 1; SELECT 2` printed 2 alone: the first result vanished without a word."""
    f = tmp_path / "two.sql"
    f.write_text("SELECT 1 AS a;\n-- and then\nSELECT 2 AS b;\n")
    for sql in ("SELECT 1 AS a; SELECT 2 AS b", f):
        out = cli("query", sql, "--store", store)
        assert out.returncode == 2 and not out.stdout, out.stderr
        assert "give one statement that returns rows: this text has 2" in out.stderr
    one = cli("query", "SELECT 1 AS a;  -- a trailing semicolon is one statement", "--store", store)
    assert one.returncode == 0 and one.stdout.split()[0] == "a", one.stderr


def test_every_statement_that_returns_rows_is_counted_and_none_dropped(cli, store):
    """DuckDB gives CALL and EXECUTE types of their own: `SELECT 42; CALL duckdb_tables()`
    printed the tables alone (exit 0), and `SELECT 42; SET VARIABLE ...` printed DuckDB's
    'Success' for the SET, the 42 gone. One statement that returns rows, last."""
    for sql in (
        "SELECT 42 AS answer; CALL duckdb_tables()",
        "SELECT 42 AS answer; PREPARE p AS SELECT 1 AS one; EXECUTE p",
        "CREATE TEMP TABLE t (a INT); INSERT INTO t VALUES (7) RETURNING a; SELECT 42 AS answer",
    ):
        out = cli("query", sql, "--store", store)
        assert out.returncode == 2 and not out.stdout, (sql, out.stdout, out.stderr)
        assert "give one statement that returns rows: this text has 2" in out.stderr
    last = cli("query", "SELECT 42 AS answer; SET VARIABLE y = 1", "--store", store)
    assert last.returncode == 2 and not last.stdout, last.stdout
    assert "put the statement that returns rows last" in last.stderr and "SET's" in last.stderr
    tables = sorted(r[0] for r in db_rows(store, "SELECT table_name FROM duckdb_tables()"))
    for sql, want in (
        ("SET VARIABLE x = 42; SELECT getvariable('x') AS answer;", [{"answer": 42}]),
        ("PREPARE p AS SELECT 42 AS answer; EXECUTE p", [{"answer": 42}]),
        ("CREATE TEMP TABLE t (a INT); INSERT INTO t VALUES (42) RETURNING a", [{"a": 42}]),
        ("CALL duckdb_tables()", None),
    ):
        out = cli("query", sql, "--store", store, "--json")
        assert out.returncode == 0, (sql, out.stderr)
        got = json.loads(out.stdout)
        if want is None:  # the store's own tables, as DuckDB lists them to a reader
            assert sorted(r["table_name"] for r in got) == tables and "cases" in tables
        else:
            assert got == want, sql


def test_json_refuses_two_columns_of_one_name(cli, store):
    """A JSON row keeps a name once: the case's status was replaced by the run's, silently."""
    sql = "SELECT c.status, r.status FROM cases c JOIN runs r USING (run_id) LIMIT 1"
    table = cli("query", sql, "--store", store)
    assert table.returncode == 0 and table.stdout.splitlines()[0].split() == ["status"] * 2
    for fmt in (["--json"], ["--format", "json"]):
        out = cli("query", sql, "--store", store, *fmt)
        assert out.returncode == 2 and not out.stdout, out.stderr
        assert "two columns named 'status'" in out.stderr and "(AS)" in out.stderr


def test_query_files_and_names(cli, store, tmp_path):
    f = tmp_path / "mine.sql"
    f.write_text("-- count\nSELECT count(*) AS n FROM cases;\n")
    out = cli("query", f, "--store", store, "--json")
    assert json.loads(out.stdout) == [{"n": 8}]
    named = cli("query", "dispatch_floor_share", "--store", store, "--json")
    rows = json.loads(named.stdout)
    assert len(rows) == 8
    for r in rows:
        assert r["floor_share"] == pytest.approx(0.25 / r["median_ms"], abs=1e-3)
    missing = cli("query", "no_such_query", "--store", store)
    assert missing.returncode == 2 and "chip_factors" in missing.stderr


def test_dispatch_floor_share_claims_no_share_where_the_floor_is_not_below(tmp_path):
    """The floor is timed after the case: at or above its median, floor_share came out
    1.333 and above_floor_ms negative. There both are NULL and the row is flagged (and
    listed first); below it, the share is the floor over the median read back."""
    import duckdb

    path = tmp_path / "s.duckdb"
    run_id = new_run(path)
    # medians of 0.3 ms, exactly 0.4 ms and 8.8 ms against a floor of 0.4 ms
    walls = {
        "fast": np.full(21, 300_000, dtype=np.int64),
        "equal": np.full(21, 400_000, dtype=np.int64),
        "slow": samples_ns(np.random.default_rng(1), 50, 8.8),
    }
    for i, (name, wall) in enumerate(walls.items()):
        append_case(path, run_id, case(name, name, wall=wall, case_index=i,
                                       dispatch_floor_ms=0.4), wall)  # fmt: skip
    finish_run(path, run_id, "finished")
    sql = (ROOT / "store" / "queries" / "dispatch_floor_share.sql").read_text()
    con = duckdb.connect(str(path), read_only=True)
    try:
        cur = con.execute(sql)
        names = [d[0] for d in cur.description]
        rows = [dict(zip(names, r, strict=True)) for r in cur.fetchall()]
    finally:
        con.close()
    got = {r["model_name"]: r for r in rows}
    assert [r["model_name"] for r in rows][2] == "slow"  # the flagged ones first
    for name in ("fast", "equal"):
        assert got[name]["floor_at_or_above_median"] is True
        assert got[name]["floor_share"] is None and got[name]["above_floor_ms"] is None
    median = float(np.median(walls["slow"])) / 1e6
    assert got["slow"]["floor_at_or_above_median"] is False
    assert got["slow"]["floor_share"] == pytest.approx(round(0.4 / median, 3))
    assert got["slow"]["above_floor_ms"] == pytest.approx(round(median - 0.4, 3))


@pytest.mark.parametrize(
    "sql",
    [
        "INSERT INTO runs (run_id, started_at, status) VALUES ('x', now(), 'running')",
        "DELETE FROM samples",
        "DROP TABLE cases",
        "UPDATE cases SET median_ms = 0",
        "CREATE TABLE t AS SELECT 1",
        "CREATE OR REPLACE VIEW results AS SELECT 1",
        "ATTACH '{other}' AS o; CREATE TABLE o.t AS SELECT * FROM cases",
        "ATTACH '{store}' AS w; DROP TABLE w.cases",
        "COPY cases TO '{out}'",
        "COPY (SELECT 1) TO '{store}'",
        "SET enable_external_access = true; COPY cases TO '{out}'",
        "INSTALL httpfs",
        "SELECT * FROM read_csv('/etc/passwd')",
    ],
)
def test_query_cannot_change_the_store(cli, store, tmp_path, sql):
    before = digest(store)
    out = tmp_path / "leak.csv"
    other = tmp_path / "other.duckdb"
    result = cli("query", sql.format(store=store, out=out, other=other), "--store", store)
    assert result.returncode == 2
    assert "query failed" in result.stderr and "Traceback" not in result.stderr
    assert digest(store) == before
    assert not out.exists() and not other.exists()


def test_missing_store_is_a_clear_error(cli, tmp_path):
    result = cli("query", "SELECT 1", "--store", tmp_path / "none.duckdb")
    assert result.returncode == 2
    assert "no results store at" in result.stderr
    assert not (tmp_path / "none.duckdb").exists()


@pytest.mark.parametrize("query_file", QUERIES, ids=[q.stem for q in QUERIES])
def test_the_duckdb_cli_runs_every_query_file(store, query_file):
    text = query_file.read_text()
    assert text.startswith("--"), "each query starts with a comment saying what it measures"
    result = subprocess.run(
        [str(DUCKDB_CLI), "-readonly", "-bail", "-csv", str(store)],
        input=text,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0 and result.stderr == "", result.stderr
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    assert rows, f"{query_file.name} returned no rows"


def test_latest_per_chip_model_keeps_an_imported_run_apart(cli, store, tmp_path):
    """A newer run of the same chip from a bundle is the latest 'imported' row; the own
    rows stay the latest measured here."""
    from anemll_spec.store.exporting import export_bundle
    from anemll_spec.store.importing import import_bundles

    other = tmp_path / "other.duckdb"
    rng = np.random.default_rng(9)
    run_id = new_run(other, chip="Apple M4 Max")
    wall = samples_ns(rng, 100, 7.0)
    append_case(other, run_id, case(wall=wall), wall)
    finish_run(other, run_id, "finished")
    export_bundle(other, tmp_path / "b.parquet")
    mine = tmp_path / "mine.duckdb"
    mine.write_bytes(store.read_bytes())
    import_bundles(mine, [tmp_path / "b.parquet"])
    res = cli("query", "latest_per_chip_model", "--json", "--store", mine)
    assert res.returncode == 0, res.stderr
    rows = [r for r in json.loads(res.stdout)
            if (r["chip"], r["model_name"], r["compute_units"])
            == ("M4 Max", "llama_lm_head", "CPU_AND_NE")]  # fmt: skip
    by_source = {r["source"]: r for r in rows}
    assert sorted(by_source) == ["imported", "own"]
    assert by_source["imported"]["run_id"] == run_id
    assert by_source["imported"]["median_ms"] == pytest.approx(np.median(wall) / 1e6, abs=1e-3)
    assert by_source["own"]["run_id"] != run_id


def test_the_duckdb_cli_runs_the_factor_macro(store):
    result = subprocess.run(
        [
            str(DUCKDB_CLI),
            "-readonly",
            "-bail",
            "-json",
            str(store),
            "-c",
            "SELECT chip, model, bandwidth_factor FROM chip_factors_vs('M4 Max') "
            "WHERE source = 'own' AND compute_units = 'CPU_AND_NE' ORDER BY chip, model",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    rows = json.loads(result.stdout)
    assert [(r["chip"], r["model"]) for r in rows] == [
        ("M1 Max", "llama_lm_head"),
        ("M1 Max", "llama_lm_head_lut6"),
        ("M4 Max", "llama_lm_head"),
        ("M4 Max", "llama_lm_head_lut6"),
    ]
    by = {(r["chip"], r["model"]): r["bandwidth_factor"] for r in rows}
    assert by[("M4 Max", "llama_lm_head")] == pytest.approx(1.0)
    assert by[("M1 Max", "llama_lm_head")] == pytest.approx(0.5, rel=0.05)


def test_compute_unit_query_speedups(cli, store):
    rows = json.loads(cli("query", "compute_units", "--store", store, "--json").stdout)
    ne = [r for r in rows if r["compute_units"] == "CPU_AND_NE"]
    assert len(ne) == 4
    for r in ne:
        assert r["speedup_vs_cpu_only"] == pytest.approx(4.0, rel=0.02)
        assert r["relative_to_fastest"] == 1.0
    cpu = [r for r in rows if r["compute_units"] == "CPU_ONLY"]
    assert len(cpu) == 4
    for r in cpu:  # 4x slower than the case's fastest unit
        assert r["speedup_vs_cpu_only"] == 1.0
        assert r["relative_to_fastest"] == pytest.approx(0.25, rel=0.02)


def test_throttling_query_puts_drifting_cases_first(cli, store):
    rows = json.loads(cli("query", "throttling", "--store", store, "--json").stdout)
    flags = [r["throttled"] for r in rows]
    assert flags == [True] * 4 + [False] * 4


def cells(md_line: str) -> list[str]:
    """The cells of a Markdown table row, split on the pipes that are not escaped."""
    import re

    return [c.strip() for c in re.split(r"(?<!\\)\|", md_line.strip())[1:-1]]


def test_markdown_format_is_a_table_a_hostile_name_cannot_break(cli, store):
    hostile = "a|b' || chr(10) || '[x](http://e) <b>@you</b> `c` *d*"
    sql = (
        f"SELECT '{hostile}' AS name, 1.5::DOUBLE AS v, NULL::INT AS n UNION ALL "
        "SELECT 'llama_lm_head', 22.25::DOUBLE, 3"
    )
    r = cli("query", sql, "--store", store, "--format", "markdown")
    assert r.returncode == 0, r.stderr
    header, sep, row1, row2 = r.stdout.splitlines()
    assert cells(header) == ["name", "v", "n"] and sep == "|---|---:|---:|"
    name, v, n = cells(row1)
    assert (v, n) == ("1.5", "NULL")
    assert name == (
        r"a\|b\\n\[x\](http\://e) &lt;b&gt;&#64;you&lt;/b&gt; \`c\` \*d\*"
    )  # no link, HTML, mention, code or emphasis; the newline renders as the text \n
    assert cells(row2) == [r"llama\_lm\_head", "22.25", "3"]
    # 6 significant digits; what rounds to 10^6 is written whole ('1e+06' was one digit)
    r = cli("query", "SELECT 999999.7::DOUBLE, 999999.4::DOUBLE, 1234567.8::DOUBLE", "--store",
            store, "--format", "markdown")  # fmt: skip
    assert cells(r.stdout.splitlines()[2]) == [f"{round(999999.7):,}", "999999", "1,234,568"]


def test_markdown_cells_give_githubs_autolinker_no_url(cli, store):
    """GitHub links a bare `https://...` or `www.x.y` in text: a model named www.evil.com
    became a link in a pasted table. The ':' of '://' and the '.' after 'www' are
    backslash-escaped: the text GitHub's autolinker reads (cmark-gfm's url_match and
    www_match, on the raw line) has neither, and CommonMark renders each escape as the
    character itself."""
    from anemll_spec.store.markdown import escape

    names = ["www.evil.com", "https://evil.com/x", "see WWW.Evil.com or ftp://e.org", "a:b"]
    sql = " UNION ALL ".join(f"SELECT {i} AS i, '{n}' AS name" for i, n in enumerate(names))
    r = cli("query", sql + " ORDER BY i", "--store", store, "--format", "markdown")
    assert r.returncode == 0, r.stderr
    shown = [cells(line)[1] for line in r.stdout.splitlines()[2:]]
    assert shown == [escape(n) for n in names]
    for name, md in zip(names, shown, strict=True):
        # url_match starts at an unescaped ':' before '//'; www_match needs 'www.' raw
        assert re.search(r"(?<!\\):(?=//)", md) is None and "www." not in md.lower(), md
        # CommonMark: a backslash before ASCII punctuation shows that character alone
        assert re.sub(r"\\([!-/:-@\[-`{-~])", r"\1", md) == name
    assert shown[0] == r"www\.evil.com" and shown[1] == r"https\://evil.com/x"


def test_markdown_cells_open_no_math(cli, store):
    r"""GitHub renders `$...$` as math: a path like /Users/me/$HOME/x/$\mathbf{10x}$ in a
    shared error read as a formula. Each `$` is backslash-escaped (CommonMark shows `\$`
    as `$`; GitHub's math never opens at an escaped one)."""
    name = r"/Users/me/$HOME/m/$\mathbf{FAKE}$.mlpackage"
    r = cli("query", f"SELECT '{name}' AS name", "--store", store, "--format", "markdown")
    assert r.returncode == 0, r.stderr
    (md,) = cells(r.stdout.splitlines()[2])
    assert re.search(r"(?<!\\)\$", md) is None, md  # every $ escaped
    assert re.sub(r"\\([!-/:-@\[-`{-~])", r"\1", md) == name


def test_long_inline_sql_and_single_words(cli, store):
    """Issue 15.10: SQL over 255 characters is SQL, not a file name; a single word is a
    query name when one has it, else SQL (SHOW), else an unknown query name. CHECKPOINT
    is refused: it said Success on the read-only connection and folded nothing in."""
    long_sql = "SELECT 42 AS answer -- " + "x" * 400
    r = cli("query", long_sql, "--store", store, "--json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout) == [{"answer": 42}]
    before = digest(store)
    r = cli("query", "SHOW", "--store", store, "--json")
    assert r.returncode == 0, r.stderr  # run as SQL: the store's tables and views
    assert {"runs", "results"} <= {t["name"] for t in json.loads(r.stdout)}
    for sql in ("CHECKPOINT", "force checkpoint", "SELECT 1; CHECKPOINT",
                "-- fold the log first\nCHECKPOINT;\n", "/* x */ CHECKPOINT",
                "CALL checkpoint()", "call force_checkpoint()"):  # fmt: skip
        r = cli("query", sql, "--store", store)
        assert r.returncode == 2 and "duckdb STORE -c CHECKPOINT" in r.stderr, r.stderr
    assert digest(store) == before  # read-only: nothing changed
    r = cli("query", "chip_factor", "--store", store)
    assert r.returncode == 2 and "no query named 'chip_factor'" in r.stderr


def test_csv_and_errors_never_send_control_characters(cli, store):
    r = cli(
        "query",
        "SELECT chr(27) || '[2J' || chr(10) || 'x' AS \"h" + "\x1b" + '[31m"',
        "--store",
        store,
        "--format",
        "csv",
    )
    assert r.returncode == 0, r.stderr
    assert "\x1b" not in r.stdout
    assert r.stdout.splitlines() == ["h\\x1b[31m", "\\x1b[2J\\nx"]
    r = cli("query", 'SELECT * FROM "evil' + "\x1b" + '[2Jtable"', "--store", store)
    assert r.returncode == 2 and "\x1b" not in r.stderr and "evil\\x1b[2Jtable" in r.stderr


def test_a_reader_gone_mid_output_ends_the_query_with_141(cli, store):
    """Over 64 KB written at once into a pipe whose reader left: the OS took part and
    said so, no error, and Python dropped the rest: `| head -1` exited 0, not 141 (as
    SIGPIPE would, README's exit statuses). Read whole, not one line is lost."""
    sql = "SELECT * FROM range(200000)"
    for fmt in ("csv", "table"):
        script = f'"$0" -m anemll_spec query "{sql}" --format {fmt} --store "$1" | head -1; '
        script += 'echo "${PIPESTATUS[0]}"'
        r = subprocess.run(["bash", "-c", script, sys.executable, str(store)], cwd=ROOT,
                           capture_output=True, text=True, timeout=60)  # fmt: skip
        assert r.stdout.split("\n") == ["range", "141", ""] and r.stderr == "", (fmt, r)
    whole = cli("query", sql, "--format", "csv", "--store", store)
    assert whole.returncode == 0
    assert whole.stdout == "\n".join(["range", *map(str, range(200000))]) + "\n"


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="no /dev/full (Linux has one)")
def test_stdout_on_a_full_disk_is_the_outputs_failure_not_bad_input(store):
    """`> /dev/full` said 'error: No space left on device', exit 2 (bad input). Now it
    names the output, exit 1, one line (and no second error from Python's exit flush)."""
    for sql in ("SELECT 1 AS a", "SELECT * FROM range(200000)"):  # buffered, and written at once
        with open("/dev/full", "w") as full:
            r = subprocess.run([sys.executable, "-m", "anemll_spec", "query", sql, "--store",
                                str(store)], stdout=full, stderr=subprocess.PIPE, text=True,
                               cwd=ROOT, timeout=60)  # fmt: skip
        assert (r.returncode, r.stderr) == (1, "anemll-spec query: error: could not write the "
                                            "output (stdout): No space left on device\n")  # fmt: skip


def test_chip_factors_query_keeps_os_versions_and_gpus_apart(cli, tmp_path):
    """One chip on two macOS versions was joined 2 x 2 (one OS's GB/s beside the other's
    ms); a CUDA run was named after its host's CPU. Each (chip, OS, device) is one row,
    its figures from its own cases, and a CUDA case's chip is its GPU."""
    from fixtures.store.synth import host, run

    from anemll_spec.store import begin_run

    store = tmp_path / "s.duckdb"
    rng = np.random.default_rng(9)
    want = {}
    for os_version, scale in (("14.6", 1.0), ("15.3", 0.8)):
        for model, ms in (("llama_lm_head", 20.0), ("llama_lm_head_lut6", 9.0)):
            run_id = begin_run(store, run(model), host(chip="Apple M4 Max", os_version=os_version))
            wall = samples_ns(rng, 30, ms * scale)
            append_case(store, run_id, case(model=model, wall=wall), wall)
            finish_run(store, run_id, "finished")
            want[(os_version, model)] = np.median(wall) / 1e6
    gpu = host(
        chip=None, cpu_model="Intel(R) Xeon(R)", gpu="NVIDIA H100 80GB HBM3", os_name="Linux"
    )
    run_id = begin_run(store, run("llama_lm_head"), gpu)
    wall = samples_ns(rng, 30, 0.4)
    cuda = case(
        model="llama_lm_head", wall=wall, backend="torch", device="cuda", compute_units=None
    )
    append_case(store, run_id, cuda, wall)
    finish_run(store, run_id, "finished")

    r = cli("query", "chip_factors", "--store", store, "--json")
    assert r.returncode == 0, r.stderr
    own = [row for row in json.loads(r.stdout) if row["source"] == "own"]
    m4 = sorted((row for row in own if row["chip"] == "M4 Max"), key=lambda x: x["os_version"])
    assert [row["os_version"] for row in m4] == ["14.6", "15.3"]
    weight = 1_050_673_728
    for row in m4:
        v = row["os_version"]
        assert row["lut6_inference_ms"] == pytest.approx(want[(v, "llama_lm_head_lut6")], abs=0.01)
        gbps = weight / (want[(v, "llama_lm_head")] * 1e6)
        assert row["fp16_bandwidth_gbps"] == pytest.approx(gbps, abs=0.01)
    (h100,) = [row for row in own if row["device"] == "cuda"]
    assert h100["chip"] == "H100 80GB HBM3" and h100["backend"] == "torch"
    assert len(own) == 3
    share = cli("share", run_id, "--store", store)
    assert share.stdout.startswith("### anemll-spec: lm\\_head on H100 80GB HBM3"), share.stdout[
        :80
    ]


@pytest.mark.parametrize(
    ("sql", "hint"),
    [
        ("select medianms from results", "median_ms"),  # Candidate bindings kept
        ("selec * from results", 'syntax error at or near "selec"'),
        ("select * from resuls", 'Did you mean "results"'),
        ("select 'a' + 1", "+(INTEGER, INTEGER) -> INTEGER"),  # tab-indented candidates
    ],
)
def test_a_failed_query_is_one_line(cli, store, sql, hint):
    """Stop 27: DuckDB's message printed with literal \\n and its caret line; the LINE
    echo and the caret are dropped, the rest joined with '; '."""
    r = cli("query", sql, "--store", store)
    assert r.returncode == 2
    lines = r.stderr.splitlines()
    assert len(lines) == 1, r.stderr
    assert lines[0].startswith("anemll-spec query: error: query failed: ")
    assert hint in lines[0] and "\\n" not in lines[0] and "^" not in lines[0]
    assert "\\t" not in lines[0]
    assert "LINE 1" not in lines[0]
