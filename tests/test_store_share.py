"""`anemll-spec share`: a run as Markdown for a GitHub issue (issue 14.10)."""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import duckdb
import numpy as np
import pytest
from fixtures.store.synth import case, new_run, samples_ns

from anemll_spec.store import append_case, finish_run, lake_target
from anemll_spec.store.markdown import escape
from anemll_spec.store.published import CAVEAT as PUBLISHED_CAVEAT

ROOT = Path(__file__).resolve().parents[1]


def cells(line: str) -> list[str]:
    return [c.strip() for c in re.split(r"(?<!\\)\|", line.strip())[1:-1]]


@pytest.fixture
def store(tmp_path):
    path = tmp_path / "s.duckdb"
    rng = np.random.default_rng(8)
    run_id = new_run(path, chip="Apple M4 Max")
    wall = samples_ns(rng, 100, 9.0)
    append_case(path, run_id, case(wall=wall), wall)
    wall = samples_ns(rng, 100, 450.0)
    append_case(path, run_id, case(wall=wall, backend="numpy", compute_units=None), wall)
    hostile = "evil | name [x](http://e) <img src=x> @you"
    append_case(path, run_id, case("h", hostile, wall=wall, model_family="matmul"), wall)
    finish_run(path, run_id, "finished")
    return path, run_id


def test_share_prints_a_pasteable_block(cli, store, tmp_path):
    path, run_id = store
    r = cli("share", "--store", path)
    assert r.returncode == 0, r.stderr
    text = r.stdout
    lines = text.splitlines()
    assert lines[0] == r"### anemll-spec: lm\_head on M4 Max"
    tables = [ln for ln in lines if ln.startswith("|")]
    # every row of a table has its header's number of cells: no name breaks one
    summary = [ln for ln in tables if len(cells(ln)) == 13]
    assert len(summary) == 2 + 3  # header, separator, three cases
    assert cells(summary[2])[:4] == [r"llama\_lm\_head", "coreml", "-", r"CPU\_AND\_NE"]
    evil = cells(summary[4])[0]
    assert evil == r"evil \| name \[x\](http\://e) &lt;img src=x&gt; &#64;you"
    # the comparison: the store's one factor rule, labelled with its baseline
    factors = [ln for ln in tables if len(cells(ln)) == 8]
    assert len(factors) == 2 + 3
    evil_row = next(cells(ln) for ln in factors if ln.startswith("| evil"))
    assert evil_row[-3:] == ["no baseline"] * 3  # no published figure for its model
    numpy_row = next(cells(ln) for ln in factors if "numpy" in ln)
    assert numpy_row[-1] == "M1 Max (published, Core ML ANE)"
    assert re.fullmatch(r"0\.0\d+x", numpy_row[5])
    assert "**Host**: chip Apple M4 Max; OS macOS 15.3;" in text
    # memory in GB (10^9), as report and info give it, not raw bytes (stop 27)
    host = next(ln for ln in lines if ln.startswith("**Host**"))
    assert f"; memory {64 * 2**30 / 1e9:.1f} GB;" in host and "bytes" not in host
    # under the comparison, what the published figures are (stop 27): a mean, not a median;
    # GB/s of the fp16 head, ms of the LUT6 head
    after = text[text.index("**Compared with published results**") :].split("\n\n")
    caveat = after[2]  # the heading, the table, then the caveat
    assert caveat == escape(PUBLISHED_CAVEAT)
    assert "mean of time.time() samples; ours is a median" in caveat
    assert r"GB/s belong to llama\_lm\_head (fp16) and their ms to llama\_lm\_head\_lut6" in caveat
    assert f"id {run_id}; status finished" in text
    # the exact export command, and it works
    block = text[text.index("```sh\n") + 6 : text.rindex("\n```")]
    words = shlex.split(block)
    assert words == ["anemll-spec", "export", "--run", run_id, "--out", f"{run_id}.parquet",
                     "--store", str(path)]  # fmt: skip
    out = cli(*words[1:], cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert (tmp_path / f"{run_id}.parquet").is_file()


def test_the_export_command_names_a_path_with_a_newline_or_tab_as_it_is(cli, tmp_path):
    """The command was escaped after shlex.join: a newline inside the quoted path became
    the two characters \\n, and bash exported from another (missing) store. A word with
    a control character is now quoted as $'...': run in bash, it names the same path."""
    path = tmp_path / "odd\nname\tit's ü\x1b.duckdb"
    run_id = new_run(path)
    wall = samples_ns(np.random.default_rng(3), 20, 2.0)
    append_case(path, run_id, case(wall=wall), wall)
    finish_run(path, run_id, "finished")
    text = cli("share", "--store", path)
    doc = cli("share", "--store", path, "--json")
    assert text.returncode == doc.returncode == 0, text.stderr + doc.stderr
    block = text.stdout[text.stdout.index("```sh\n") + 6 : text.stdout.rindex("\n```")]
    assert block.isprintable() and json.loads(doc.stdout)["export_command"] == block
    words = subprocess.run(["bash", "-c", f'anemll-spec() {{ printf "%s\\0" "$@"; }}; {block}'],
                           capture_output=True, text=True, check=True).stdout  # fmt: skip
    assert words.split("\0")[:-1] == ["export", "--run", run_id, "--out", f"{run_id}.parquet",
                                       "--store", str(path)]  # fmt: skip
    # and run as printed, it exports the run from that store
    shim = f'anemll-spec() {{ {shlex.quote(sys.executable)} -m anemll_spec "$@"; }}; '
    out = subprocess.run(["bash", "-c", shim + block], cwd=tmp_path, capture_output=True,
                         text=True, env={**os.environ, "PYTHONPATH": str(ROOT)})  # fmt: skip
    assert out.returncode == 0, out.stderr
    bundle = tmp_path / f"{run_id}.parquet"
    got = duckdb.connect().execute(
        """SELECT "table", run_id, count(*) FROM read_parquet(?) WHERE "table" IN ('runs',
           'samples') GROUP BY ALL ORDER BY 1""", [str(bundle)]
    ).fetchall()  # fmt: skip
    assert got == [("runs", run_id, 1), ("samples", None, 20)]  # the run, and its 20 samples


def test_share_names_a_run_and_refuses_an_unknown_one(cli, store):
    path, run_id = store
    r = cli("share", run_id[:-2], "--store", path, "--baseline", "M4 Pro")
    assert r.returncode == 0 and "baseline M4 Pro" in r.stdout
    assert "M4 Pro (published, Core ML ANE)" in r.stdout
    bad = cli("share", "nope", "--store", path)
    assert bad.returncode == 2 and "no run 'nope'" in bad.stderr


def test_a_comparison_with_no_published_figure_is_not_headed_published(cli, tmp_path):
    """A model no one published, compared with a measured run of the baseline chip: the
    block is headed by the baseline chip, and the published figures' caveat is left out
    (no figure in it is a published one)."""
    path = tmp_path / "s.duckdb"
    rng = np.random.default_rng(3)
    for chip, ms in (("Apple M1 Max", 20.0), ("Apple M4 Max", 9.0)):
        run_id = new_run(path, chip=chip)
        wall = samples_ns(rng, 100, ms)
        append_case(path, run_id, case("tiny", "tiny_head", wall=wall), wall)
        finish_run(path, run_id, "finished")
    r = cli("share", "--store", path)
    assert r.returncode == 0, r.stderr
    assert "**Compared with the baseline chip**" in r.stdout, r.stdout
    assert "Compared with published results" not in r.stdout
    assert escape(PUBLISHED_CAVEAT) not in r.stdout
    rows = [cells(ln) for ln in r.stdout.splitlines() if ln.startswith(r"| tiny\_head")]
    (row,) = [c for c in rows if len(c) == 8]  # the comparison's row
    assert row[-1].startswith("M1 Max (own")  # against the measured M1 Max run


def test_a_run_with_nothing_to_compare_says_why(cli, tmp_path):
    """Cases that ran several instances at once are never compared: said so, not blamed
    on the published models."""
    path = tmp_path / "s.duckdb"
    run_id = new_run(path)
    wall = samples_ns(np.random.default_rng(2), 100, 9.0)
    append_case(path, run_id, case(wall=wall, concurrency=2), wall)
    finish_run(path, run_id, "finished")
    r = cli("share", "--store", path)
    assert r.returncode == 0, r.stderr
    line = next(ln for ln in r.stdout.splitlines() if ln.startswith("**Compared with"))
    assert line.startswith("**Compared with the baseline chip**: no case of this run can be")
    assert "1 of its 1 ok case(s) ran several instances at once" in line
    assert "published models" not in line


def test_share_gives_energy_and_the_sustained_verdict(tmp_path):
    """A run with energy readings and sustained cases shares both (bench and report show
    them); figures recomputed here from the raw `cases` columns. A run without either
    gets neither section."""
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).parent / "fixtures" / "chart"))
    import chart_energy as ce
    import chart_sustained as cs
    from db_util import dict_rows

    from anemll_spec.store.connection import open_store
    from anemll_spec.store.share import share_markdown

    path = tmp_path / "e.duckdb"
    gpu, _ = ce.gpu_run(path)
    sus, _ = cs.sustained_run(path)
    plain, _ = ce.no_energy_run(path, "RAPL: /sys/class/powercap does not exist")
    con = open_store(path, read_only=True)
    try:
        text = {r: share_markdown(con, r, baseline="M1 Max") for r in (gpu, sus, plain)}
    finally:
        con.close()
    (raw,) = dict_rows(path, "SELECT * FROM cases WHERE run_id = ?", [gpu])
    mj = raw["energy_total_mj"] / raw["energy_calls"]
    lines = text[gpu].splitlines()
    head = lines.index(next(line for line in lines if line.startswith("**Energy**")))
    # 'n' there was the concurrency while the summary's 'n' counts samples
    assert cells(lines[head + 2])[:4] == ["model", "backend", "units", "instances"]
    row = cells(lines[head + 4])
    assert row[:4] == ["llama\\_lm\\_head", "torch cuda", "-", "1"]
    assert float(row[4]) == pytest.approx(mj, rel=5e-4)
    assert float(row[5]) == pytest.approx(1000 / mj, rel=5e-4)
    assert float(row[6]) == pytest.approx(
        raw["energy_total_mj"] / 1e3 / raw["energy_interval_s"], rel=5e-4
    )
    assert row[7] == "nvml" and "NVML: the GPU board" in text[gpu]
    assert "**Sustained**" not in text[gpu]
    stored = dict_rows(path, "SELECT * FROM cases WHERE run_id = ? ORDER BY case_index", [sus])
    section = text[sus].split("**Sustained**", 1)[1].split("To attach", 1)[0]
    body = [line for line in section.splitlines() if line.startswith("|")][2:]
    assert len(stored) == len(body) == 2
    for c, line in zip(stored, body, strict=True):
        got = cells(line)
        assert got[3] == c["sustained_verdict"]
        assert float(got[4]) == pytest.approx(c["sustained_throughput_ratio"], abs=1e-3)
        assert got[6] == f"{c['sustained_windows']} x {c['sustained_window_s']:g} s"
    assert "**Energy**" not in text[plain] and "**Sustained**" not in text[plain]


def test_a_sustained_ratio_is_printed_apart_from_its_ci_ends(tmp_path):
    """A ratio of 1.00551 with its CI [1.00484, 1.00610] (two windows of 25,000 calls)
    read '1.006 | 1.005 to 1.006', the ratio on its CI's edge: each figure now gets the
    decimals that keep it apart from the other two."""
    import sys

    sys.path.insert(0, str(Path(__file__).parent / "fixtures" / "chart"))
    import chart_sustained as cs
    from db_util import dict_rows

    from anemll_spec.store.connection import open_store
    from anemll_spec.store.share import share_markdown

    path = tmp_path / "s.duckdb"
    plan = cs.Plan(medians_ms=(0.1, 0.0995), thermal=(None, None), rails_w=None,
                   window_s=3.0, backend="numpy", compute_units=None, model="smoke")  # fmt: skip
    run_id, _ = cs.sustained_run(path, (plan,), seed=2)
    con = open_store(path, read_only=True)
    try:
        text = share_markdown(con, run_id, baseline="M1 Max")
    finally:
        con.close()
    (c,) = dict_rows(path, "SELECT * FROM cases WHERE run_id = ?", [run_id])
    ratio, lo, hi = (c[f"sustained_{k}"] for k in ("throughput_ratio", "ci_low", "ci_high"))
    assert lo < ratio < hi and f"{ratio:.3f}" in (f"{lo:.3f}", f"{hi:.3f}")  # the case
    section = text.split("**Sustained**", 1)[1]
    (row,) = [cells(line) for line in section.splitlines() if line.startswith("| smoke")]
    low, high = row[5].split(" to ")
    assert len({row[4], low, high}) == 3
    digits = len(row[4].split(".")[1])
    assert (row[4], low, high) == tuple(f"{v:.{digits}f}" for v in (ratio, lo, hi))


def test_factor_rows_come_in_the_specs_order_not_the_case_ids(tmp_path):
    """The case id ends in a hash: in its order the share block's comparison listed the
    cases in another order than the summary above it (which follows the spec)."""
    import duckdb

    from anemll_spec.store.factors import for_run

    store = tmp_path / "s.duckdb"
    run_id = new_run(store)
    rng = np.random.default_rng(3)
    ids = []
    for index in range(8):  # ids already in order by chance: 1 in 40,320
        wall = samples_ns(rng, 20, 8.0 + index)
        row = case(model="llama_lm_head", wall=wall, case_index=index)
        ids.append(append_case(store, run_id, row, wall))
    finish_run(store, run_id, "finished")
    assert ids != sorted(ids)  # the hashes' order is not the spec's (checked, not assumed)
    con = duckdb.connect(str(store), read_only=True)
    try:
        assert [r["case_id"] for r in for_run(con, run_id)] == ids
    finally:
        con.close()


def test_html_text_shows_control_characters_escaped():
    from anemll_spec.chart.style import esc

    assert esc("m\x1b[31m<b>\r") == "m\\x1b[31m&lt;b&gt;\\r"


def test_a_run_without_cases_says_so_in_the_comparison(tmp_path):
    """Its comparison said 'none finished ok' of a run that stored no case at all."""
    import duckdb

    from anemll_spec.store.share import share_markdown

    store = tmp_path / "s.duckdb"
    run_id = new_run(store)
    finish_run(store, run_id, "failed")
    con = duckdb.connect(str(store), read_only=True)
    try:
        text = share_markdown(con, run_id, baseline="M1 Max")
    finally:
        con.close()
    assert "(it stored no cases; factors compare" in text


def test_a_concurrent_run_says_so_in_share_and_report(tmp_path):
    """Two instances at once: share and the report showed per-call latency and GB/s as if
    one stream, and the aggregate inferences/s (the point of the run) nowhere."""
    import io

    from db_util import dict_rows

    from anemll_spec.chart.report import write_report
    from anemll_spec.progress import Progress
    from anemll_spec.runner import Runner
    from anemll_spec.store.connection import open_store
    from anemll_spec.store.share import share_markdown

    spec = tmp_path / "c.yaml"
    spec.write_text(
        "name: conc\nmodel: {family: matmul, m: 4, k: 64, n: 64}\n"
        # timed for 0.2 s: 50 calls of microseconds ended before a late instance began
        "run: {backends: [numpy], warmup: 1, iterations: 1000000, max_time_s: 0.2, "
        "concurrency: 2, "
        "dispatch_floor: false}\n"
    )
    store = tmp_path / "s.duckdb"
    res = Runner(spec, store=str(store), cache_dir=tmp_path / "cache",
                 progress=Progress(io.StringIO())).run()  # fmt: skip
    (row,) = dict_rows(store, "SELECT throughput_ips, bandwidth_gbps FROM cases", ())
    con = open_store(store, read_only=True)
    try:
        md = share_markdown(con, res.run_id, baseline="M1 Max")
    finally:
        con.close()
    (line,) = [ln for ln in md.splitlines() if ln.startswith("| conc")]
    head = next(ln for ln in md.splitlines() if "| instances |" in ln)
    got = dict(zip(cells(head), cells(line), strict=True))
    assert got["instances"] == "2 shared"
    # 10,000 and more: whole, with separators (the report's rule)
    ips = float(got["inferences/s"].replace(",", ""))
    assert ips == pytest.approx(row["throughput_ips"], rel=1e-3, abs=0.5)
    assert "latency and GB/s are per call under that load" in md
    write_report(store, res.run_id, tmp_path / "r.html")
    page = (tmp_path / "r.html").read_text()
    assert "2 shared instances at once: " in page and "inferences/s in all" in page


def test_share_never_shows_the_shared_stores_password(postgres, cli, tmp_path, monkeypatch):
    """`share --store ducklake:postgres:... password=...` put the password in the export
    command of the block (pasted into a public issue) and in --json; it is *** there, as
    in every other output (docs/store.md, Credentials), and the command otherwise works."""
    import uuid

    import pg
    from fixtures.store.synth import host, run

    from anemll_spec.store import begin_run
    from anemll_spec.store.connection import open_store

    monkeypatch.delenv("PGPASSWORD", raising=False)
    db = postgres.new_db("t_" + uuid.uuid4().hex[:12])
    target = postgres.target(db, tmp_path / "lake-data", password=True)
    run_id = begin_run(target, run(), host())
    wall = samples_ns(np.random.default_rng(5), 50, 9.0)
    append_case(target, run_id, case(wall=wall), wall)
    finish_run(target, run_id, "finished")
    con = open_store(target, read_only=True)
    try:  # the run is there, in the shared store (read back with SQL)
        assert con.execute("SELECT run_id FROM runs").fetchall() == [(run_id,)]
    finally:
        con.close()
    env = {"PGPASSWORD": ""}
    text = cli("share", "--store", target, env=env)
    doc = cli("share", "--store", target, "--json", env=env)
    for r in (text, doc):
        assert r.returncode == 0, r.stderr
        assert pg.PASSWORD not in r.stdout + r.stderr
    block = text.stdout[text.stdout.index("```sh\n") + 6 : text.stdout.rindex("\n```")]
    words = shlex.split(block)
    assert words[-2:] == ["--store", lake_target.redact(target)] and "password=***" in words[-1]
    assert "The store's password is shown as `***`" in text.stdout
    got = json.loads(doc.stdout)
    assert got["markdown"] == text.stdout and shlex.split(got["export_command"]) == words
    # with the password put back, the command exports the run
    words[-1] = words[-1].replace("password=***", f"password={pg.PASSWORD}")
    out = cli(*words[1:], cwd=tmp_path, env=env)
    assert out.returncode == 0, out.stderr
    assert (tmp_path / f"{run_id}.parquet").is_file()
    # a file store's path is given as it is, and no password note
    plain = tmp_path / "s.duckdb"
    other = new_run(plain)
    append_case(plain, other, case(wall=wall), wall)
    finish_run(plain, other, "finished")
    r = cli("share", "--store", plain)
    assert r.returncode == 0 and "password" not in r.stdout
    assert f"--store {shlex.quote(str(plain))}" in r.stdout


def test_share_says_why_a_case_failed(tmp_path):
    """A failed row read '| failed | 0 | - |' and its stored error appeared nowhere (the
    report and bench show it): a line under the table now gives it, on one line, cut,
    escaped as the rest of the block."""
    from db_util import dict_rows

    from anemll_spec.store.connection import open_store
    from anemll_spec.store.share import ERROR_LIMIT, share_markdown

    path = tmp_path / "s.duckdb"
    run_id = new_run(path)
    wall = samples_ns(np.random.default_rng(3), 50, 9.0)
    append_case(path, run_id, case(wall=wall), wall)
    hostile = "predict failed: | <img src=x> [x](http://e)\n### forged\n" + "y" * 1000
    append_case(path, run_id, case("b", "broken", status="failed", error=hostile), [])
    append_case(path, run_id, case("c", "boom", status="failed", error="boom"), [])
    finish_run(path, run_id, "finished")
    con = open_store(path, read_only=True)
    try:
        text = share_markdown(con, run_id, baseline="M1 Max")
    finally:
        con.close()
    stored = dict_rows(path, "SELECT model_name, error FROM cases WHERE status = 'failed'")
    assert {r["model_name"]: r["error"] for r in stored} == {"broken": hostile, "boom": "boom"}
    lines = text.splitlines()
    rows = [cells(ln)[0] for ln in lines if ln.startswith("|") and len(cells(ln)) == 13][2:]
    assert rows == [r"llama\_lm\_head", "broken", "boom"]
    why = [ln for ln in lines if ln.startswith("case ")]
    assert why[1] == "case 3 (boom, coreml) failed: boom"
    assert why[0].startswith(
        r"case 2 (broken, coreml) failed: predict failed: \| &lt;img src=x&gt; "
        r"\[x\](http\://e)\\n### forged\\nyyy"  # one line: '\n' shows as written
    )
    one_line = hostile.replace("\n", "\\n")  # as text.printable writes a newline
    assert why[0].split(" failed: ", 1)[1] == escape(one_line[: ERROR_LIMIT - 1] + "…")
    assert [ln for ln in lines if ln.startswith("#")] == [lines[0]] and "<img" not in text


def test_printed_commands_name_a_store_path_starting_with_a_dash(cli, tmp_path, v4_store):
    """`share --store=-dash.duckdb` printed `--store -dash.duckdb`, which argparse refuses
    (an option, not a value): each printed command now names such a path as ./-dash.duckdb,
    and run as printed, it works (export; import of a bundle given as --store; upgrade)."""
    from anemll_spec.store.fallback import BenchStore

    run_id = new_run(tmp_path / "-dash.duckdb")
    wall = samples_ns(np.random.default_rng(3), 20, 2.0)
    append_case(tmp_path / "-dash.duckdb", run_id, case(wall=wall), wall)
    finish_run(tmp_path / "-dash.duckdb", run_id, "finished")
    text = cli("share", "--store=-dash.duckdb", cwd=tmp_path)
    assert text.returncode == 0, text.stderr
    block = text.stdout[text.stdout.index("```sh\n") + 6 : text.stdout.rindex("\n```")]
    words = shlex.split(block)
    assert words[-2:] == ["--store", "./-dash.duckdb"]
    out = cli(*words[1:], cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    (tmp_path / f"{run_id}.parquet").rename(tmp_path / "-b.parquet")
    refused = cli("query", "--store=-b.parquet", "SELECT 1", cwd=tmp_path)
    assert refused.returncode == 2 and "`anemll-spec import ./-b.parquet`" in refused.stderr
    done = cli("import", "./-b.parquet", "--store", tmp_path / "new.duckdb", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    v4_store.rename(tmp_path / "-old.duckdb")
    refused = cli("query", "--store=-old.duckdb", "SELECT 1", cwd=tmp_path)
    hint = refused.stderr.split("`anemll-spec upgrade ", 1)[1].split("`")[0]
    assert hint == "--store ./-old.duckdb"
    assert cli("upgrade", *shlex.split(hint), cwd=tmp_path).returncode == 0
    store = BenchStore(str(tmp_path / "s.duckdb"))
    store.local, store.fell_back, store._moved = "-own.duckdb", "locked", {run_id}
    assert store.message is not None
    assert store.message.endswith(f"--store ./-own.duckdb --to {tmp_path / 's.duckdb'}")
