"""Naming stored runs is one rule in every command: `--run` everywhere (the positional
forms kept), 'latest' the last run that stored a case, 'previous' the run of the same
spec before it. Checked through the real CLI on a real store, by the run ids each
command's --json says it used."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from fixtures.store.synth import case, new_run, samples_ns

from anemll_spec.store import append_case, finish_run

T0 = datetime(2026, 12, 1, tzinfo=UTC)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """lm_head, lut6, lm_head, then an lm_head run stopped before its first case."""
    store = tmp_path_factory.mktemp("runs") / "s.duckdb"
    rng = np.random.default_rng(0)
    ids = {}
    for i, (name, model) in enumerate(
        [("a", "llama_lm_head"), ("b", "llama_lm_head_lut6"), ("c", "llama_lm_head")]
    ):
        ids[name] = new_run(store, model=model, started_at=T0 + timedelta(minutes=i))
        wall = samples_ns(rng, 30, 20.0 + i)
        append_case(store, ids[name], case(model=model, wall=wall), wall)
        finish_run(store, ids[name], "finished")
    ids["empty"] = new_run(store, started_at=T0 + timedelta(minutes=9))
    finish_run(store, ids["empty"], "interrupted")
    return store, ids


def _json(cli, *args):
    r = cli(*map(str, args), "--json")
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


@pytest.mark.slow  # some 20 command processes: ~14 s (make test-slow; CI runs both)
def test_latest_and_previous_mean_the_same_run_in_every_command(cli, runs, tmp_path):
    store, ids = runs
    for forms in (["latest"], ["--run", "latest"]):
        assert _json(cli, "share", *forms, "--store", store)["run_id"] == ids["c"]
        out = tmp_path / f"r{len(forms)}.html"
        assert _json(cli, "report", *forms, "--store", store, "--out", out)["run_id"] == ids["c"]
        bundle = tmp_path / f"e{len(forms)}.parquet"
        assert _json(cli, "export", *forms, "--store", store, "--out", bundle)["runs"] == [ids["c"]]
        pushed = _json(cli, "push", *forms, "--store", store, "--to", tmp_path / "p.duckdb")
        assert pushed["runs"] == [ids["c"]]
    for forms in ([], ["--run", "latest"]):  # a chart says the run it drew
        drew = _json(cli, "chart", "latency", *forms, "--store", store, "--out", tmp_path / "c")
        assert drew["runs"] == [ids["c"]]
    drew = _json(cli, "chart", "compare", "--runs", "previous", "latest", "--store", store,
                 "--out", tmp_path / "c")  # fmt: skip
    assert drew["runs"] == [ids["a"], ids["c"]]
    assert _json(cli, "chart", "factors", "--store", store, "--out", tmp_path / "c")["runs"] == []
    # 'previous': the run of latest's spec before it (not the lut6 run between them)
    assert _json(cli, "share", "previous", "--store", store)["run_id"] == ids["a"]
    assert _json(cli, "share", "--run", "previous", "--store", store)["run_id"] == ids["a"]
    for forms in (["previous", "latest"], ["--run", "previous", "--run", "latest"]):
        got = _json(cli, "compare", *forms, "--store", store)
        assert (got["run_a"], got["run_b"]) == (ids["a"], ids["c"])


@pytest.mark.parametrize(
    "args, message",
    [
        (["report", "--run", ""], "must not be empty"),
        (["report", "--run", "latest", "--run", "previous"], "give at most 1 run"),
        (["report", "latest", "--run", "previous"], "give at most 1 run"),
        (["share", "latest", "--run", "latest"], "give at most 1 run"),
        (["share", ""], "an empty run id"),
        (["compare", "latest"], "give 2 runs"),
        (["compare", "latest", "previous", "--run", "latest"], "give 2 runs"),
    ],
)
def test_runs_given_wrongly_are_one_line_and_exit_2(cli, runs, tmp_path, args, message):
    store, _ = runs
    out = tmp_path / "never.html"
    extra = ["--out", out] if args[0] == "report" else []
    r = cli(*args, *extra, "--store", store)
    assert r.returncode == 2 and message in r.stderr, r.stderr
    assert "Traceback" not in r.stderr and not out.exists()
    assert r.stderr.splitlines()[-1].startswith(f"anemll-spec {args[0]}: error: "), r.stderr


def test_latest_of_a_store_whose_runs_stored_nothing_says_so(cli, tmp_path):
    store = tmp_path / "s.duckdb"
    finish_run(store, new_run(store), "interrupted")
    r = cli("share", "--store", store)
    assert r.returncode == 2
    assert "run 'latest': its 1 run(s) stored no case" in r.stderr, r.stderr


def test_run_flag_help_says_repeatable_only_where_it_is():
    """share and report take one run (a second is refused); the help must not invite it."""
    from anemll_spec.cli import build_parser

    sub = next(a for a in build_parser()._actions if a.dest == "command").choices
    for name in ("share", "report", "export", "compare", "push", "pull"):
        (flag,) = [a for a in sub[name]._actions if "--run" in a.option_strings]
        assert ("(repeatable)" in (flag.help or "")) == (name not in ("share", "report")), name
