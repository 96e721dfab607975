"""`--opt=--`: Python 3.11's argparse strips the '--' and hands the option [] as its value,
past type= and choices=. `cache clear --cache-dir=--` cleared the default cache, `bench
--store=--` and `push --to=--` wrote to the default store, others ended in tracebacks or
ignored the option. Each is now argparse's own one-line refusal, exit 2."""

from __future__ import annotations

import pytest
from build_util import matmul


@pytest.mark.parametrize(
    "args",
    [
        ["compare", "--level=--"],
        ["compare", "--fail-on-regression=--"],
        ["query", "SELECT 1", "--format=--"],
        ["report", "--run=--"],
        ["share", "--run=--"],
        ["export", "--out=--"],
        ["chart", "factors", "--where=--"],
        ["bench", "specs/smoke.yaml", "--max-cases=--"],
    ],
)
def test_an_option_given_as_dashdash_is_refused(cli, tmp_path, args):
    r = cli(*args, "--store", tmp_path / "s.duckdb")
    assert r.returncode == 2, r.stderr
    assert "Traceback" not in r.stderr
    assert r.stderr.strip().splitlines()[-1].endswith("expected one argument"), r.stderr
    assert not (tmp_path / "s.duckdb").exists()


def test_cache_clear_with_dashdash_clears_nothing(cli, tmp_path):
    from anemll_spec.build import build

    cache = tmp_path / "cache"
    entry = build(matmul(m=4, k=8, n=8), cache_dir=cache).path.parent
    r = cli("cache", "clear", "--cache-dir=--", env={"ANEMLL_SPEC_CACHE": str(cache)})
    assert r.returncode == 2 and "expected one argument" in r.stderr, r.stderr
    assert entry.is_dir()


def test_query_and_predict_refuse_files_that_are_not_regular(cli, tmp_path):
    """A FIFO hung `query q.sql` and `predict --inputs`; /dev/zero as a .sql filled memory
    (a MemoryError traceback); an empty .npz raised EOFError, a traceback."""
    import os

    fifo = tmp_path / "q.sql"
    os.mkfifo(fifo)
    (tmp_path / "z.sql").symlink_to("/dev/zero")
    (tmp_path / "zero.npz").write_bytes(b"")
    model = "tests/fixtures/build/lm_head_tiny.mlmodelc"
    for args, says in (
        (["query", fifo], "not a regular file (a FIFO, socket or device)"),
        (["query", tmp_path / "z.sql"], "not a regular file (a FIFO, socket or device)"),
        (["predict", model, "--inputs", fifo], "not a regular file (a FIFO, socket or device)"),
        (["predict", model, "--inputs", tmp_path / "zero.npz"], "cannot read input arrays"),
    ):
        store = ["--store", tmp_path / "s.duckdb"] if args[0] == "query" else []
        r = cli(*args, *store, timeout=60)
        assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr
        assert says in r.stderr, r.stderr


def test_predict_out_replaces_a_fifo_and_writes_a_whole_npz(cli, tmp_path):
    """`predict --out o.npz` with a FIFO there hung (np.savez opened it for writing);
    now it writes beside the name and renames: the FIFO is replaced by the .npz, whose
    arrays read back as the outputs --json reports."""
    import json
    import os

    import numpy as np

    out = tmp_path / "o.npz"
    os.mkfifo(out)
    model = "tests/fixtures/build/lm_head_tiny.mlmodelc"
    r = cli("predict", model, "--out", out, "--json", timeout=60)
    assert r.returncode == 0, r.stderr
    assert out.is_file() and not [p for p in tmp_path.iterdir() if p.name.startswith(".o.npz")]
    said = json.loads(r.stdout)["outputs"]
    with np.load(out) as got:
        assert sorted(got.files) == sorted(said)
        for name, arr in got.items():
            assert list(arr.shape) == said[name]["shape"]


def test_a_chart_folder_is_never_the_stores_log_and_an_empty_baseline_is_refused(cli, tmp_path):
    """`chart --out store.duckdb.wal` made a folder there: the healthy store then read as
    damaged ('Move it aside ... restore a copy'). `--baseline ''` became M1 Max silently."""
    from fixtures.store.synth import one_case_run

    store = tmp_path / "s.duckdb"
    one_case_run(store, seed=1)
    r = cli("chart", "factors", "--store", store, "--out", f"{store}.wal")
    assert r.returncode == 2 and "that is the results store" in r.stderr, r.stderr
    assert not (tmp_path / "s.duckdb.wal").exists()
    r = cli("chart", "factors", "--store", store, "--baseline", "", "--out", tmp_path / "c")
    assert r.returncode == 2 and "--baseline ''" in r.stderr, r.stderr


def test_chart_filters_given_empty_are_refused(cli, tmp_path):
    """`chart latency --model ''` said "no cases to draw (no filter)" (the SQL read '' as a
    filter, the message as none); `chart sweep --param ''` drew the default field. An
    empty --model, --param, --where, --run or --runs is refused, as --out '' is."""
    from fixtures.store.synth import one_case_run

    store = tmp_path / "s.duckdb"
    one_case_run(store, seed=1)
    for kind, args in (
        ("latency", ["--model", ""]),
        ("sweep", ["--param", ""]),
        ("latency", ["--where", " "]),
        ("latency", ["--run", ""]),
        ("compare", ["--runs", "latest", ""]),
    ):
        r = cli("chart", kind, "--store", store, "--out", tmp_path / "c", *args)
        assert r.returncode == 2 and "Traceback" not in r.stderr, (args, r.stderr)
        assert f"error: argument {args[0]}: must not be empty" in r.stderr, r.stderr
        assert not (tmp_path / "c").exists()


def test_an_empty_spec_model_or_bundle_path_is_refused(cli, tmp_path):
    """`validate ""` and the like said '.: is a directory' (Path('') is the current
    folder): an empty path is refused by name, as --out '' is."""
    for args, name in (
        (["validate", ""], "SPEC"), (["plan", ""], "SPEC"), (["bench", ""], "SPEC"),
        (["build", ""], "SPEC"), (["inspect", ""], "MODEL"), (["predict", ""], "MODEL"),
        (["import", "", "--store", tmp_path / "s.duckdb"], "FILE"),
    ):  # fmt: skip
        r = cli(*args)
        assert r.returncode == 2 and f"error: argument {name}: must not be empty" in r.stderr
    assert not (tmp_path / "s.duckdb").exists()
