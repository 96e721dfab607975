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
