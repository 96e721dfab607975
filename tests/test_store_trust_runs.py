"""What names a run and its cases, and how they ran, is their spec's: a real bench (numpy,
a sweep of two points, two distinct instances at once) exported, then rewritten. Names,
params, concurrency and instances that are not the spec's are refused, and so is an
aggregate throughput that the instances' calls cannot give (store/derive.py,
stat_checks.concurrent_most)."""

from __future__ import annotations

import io
from pathlib import Path

import duckdb
import pytest
from fixtures.store.bundles import assert_refused, content, rewrite, sub

from anemll_spec.errors import InputError
from anemll_spec.store.exporting import export_bundle
from anemll_spec.store.importing import import_bundles

SPEC = (
    "name: conc\nmodel: {family: matmul, m: 4, k: 64, n: 64}\n"
    # timed for 0.2 s: 40 calls of microseconds ended before a late instance began
    "run: {backends: [numpy], warmup: 1, iterations: 1000000, max_time_s: 0.2, concurrency: 2, "
    "instances: distinct, dispatch_floor: false}\n"
    "sweep: {model.n: [32, 64]}\n"
)


@pytest.fixture(scope="module")
def good(tmp_path_factory) -> Path:
    from anemll_spec.progress import Progress
    from anemll_spec.runner import Runner

    d = tmp_path_factory.mktemp("conc")
    spec = d / "conc.yaml"
    spec.write_text(SPEC)
    store = d / "s.duckdb"
    Runner(spec, store=str(store), cache_dir=d / "cache", progress=Progress(io.StringIO())).run()
    out = d / "good.parquet"
    export_bundle(store, out)
    return out


def _cases(store: Path) -> list[tuple]:
    con = duckdb.connect(str(store), read_only=True)
    try:
        return con.execute(
            "SELECT c.model_name, c.concurrency, c.instances, c.throughput_ips, k.n, k.span "
            "FROM cases c JOIN (SELECT case_id, count(*) AS n, "
            "(max(start_ns + wall_ns) - min(start_ns)) / 1e9 AS span FROM samples "
            "GROUP BY case_id) k USING (case_id) ORDER BY c.case_index"
        ).fetchall()
    finally:
        con.close()


def test_a_real_concurrent_sweep_imports_as_measured(good, tmp_path):
    dest = tmp_path / "d.duckdb"
    import_bundles(dest, [good])
    rows = _cases(dest)
    assert [r[:3] for r in rows] == [("conc[n=32]", 2, "distinct"), ("conc[n=64]", 2, "distinct")]
    for *_, ips, n, span in rows:  # calls over the timed phase, which holds every call
        assert 0 < ips <= n / span * (1 + 1e-9)


SWAP = (
    "SELECT * REPLACE (CASE WHEN \"table\" = 'cases' THEN CASE model_name "
    "WHEN 'conc[n=32]' THEN 'conc[n=64]' ELSE 'conc[n=32]' END END AS model_name, "
    "CASE WHEN \"table\" = 'cases' THEN CASE json_extract(params, '$.\"model.n\"')::INT "
    "WHEN 32 THEN '{\"model.n\": 64}' ELSE '{\"model.n\": 32}' END::JSON END AS params) FROM b"
)
ATTACKS = {
    "names and params swapped between the sweep's cases": (
        SWAP,
        "calls itself 'conc\\[n=(32|64)\\]', but its spec names it 'conc\\[n=(64|32)\\]'",
    ),
    "a made-up model name": (
        sub("model_name", "cases", "'llama3_8b_ane_fastest'"),
        "calls itself 'llama3_8b_ane_fastest'",
    ),
    "params of the other point": (
        sub("params", "cases", "'{\"model.n\": 128}'::JSON"),
        "are not its sweep point's",
    ),
    "a matmul called attention": (
        sub("model_family", "cases", "'attention'"),
        "model_family 'attention', but its spec builds 'matmul'",
    ),
    "the spec's name changed": (
        sub("spec_name", "runs", "'lm_head'"),
        "spec_name 'lm_head', but its spec is named 'conc'",
    ),
    "concurrency 4": (sub("concurrency", "cases", "4"), "concurrency 4, but its spec runs 2"),
    "concurrency 1": (sub("concurrency", "cases", "1"), "concurrency 1, but its spec runs 2"),
    "distinct instances called shared": (
        sub("instances", "cases", "'shared'"),
        "instances 'shared', but its spec runs 'distinct' instances",
    ),
    "distinct instances without instances": (
        sub("instances", "cases", "NULL::VARCHAR"),
        "instances NULL, but its spec runs 'distinct' instances",
    ),
    "3x the aggregate throughput": (
        sub("throughput_ips", "cases", "3 * throughput_ips"),
        "throughput_ips = .* but its [0-9]+ samples allow at most",
    ),
    "a million inferences/s": (
        sub("throughput_ips", "cases", "1e6"),
        "throughput_ips = 1000000.0 but its",
    ),
}


@pytest.mark.parametrize("attack", list(ATTACKS))
def test_a_claim_its_spec_does_not_make_is_refused(good, tmp_path, attack):
    select, match = ATTACKS[attack]
    bad = rewrite(good, tmp_path / "bad.parquet", select)
    with pytest.raises(InputError, match=match):  # into a new store: none is made
        import_bundles(tmp_path / "new.duckdb", [bad])
    assert not (tmp_path / "new.duckdb").exists()
    dest = tmp_path / "d.duckdb"  # into a store with the run: refused, nothing changed
    import_bundles(dest, [good])
    assert_refused(dest, content(dest), [bad], match)


def test_names_the_older_code_wrote_are_accepted_and_no_others():
    """Before f30637f a swept compression was named by its JSON (canonical, as _short
    wrote it), not lut6/g8: such rows are in stores and bundles, and still import."""
    from anemll_spec.store.derive import SpecChecker

    text = (
        "name: mm\nmodel: {family: matmul, m: 4, k: 64, n: 64}\nrun: {backends: [numpy]}\n"
        "sweep:\n  model.compression: [none, {palettize: {nbits: 6, "
        "granularity: per_grouped_channel, group_size: 8, mode: kmeans}}]\n"
    )
    checker = SpecChecker()
    case = checker.cases(text)[1]
    params = '{"model.compression": {"palettize": {"granularity": "per_grouped_channel", '
    params += '"group_size": 8, "mode": "kmeans", "nbits": 6}}}'
    row = {
        "case_id": "c", "case_index": 1, "case_key": case.key, "variant_key": None,
        "build_key": None, "params": params, "model_family": "matmul", "concurrency": 1,
        "instances": None, "backend": "numpy", "compute_units": None, "device": None,
        "weight_bytes": None,
    }  # fmt: skip
    old = 'mm[compression={"palettize":{"granularity":"per_grouped_channel","group_size":8,'
    old += '"mode":"kmeans","nbits":6}}]'
    for name in ("mm[compression=lut6/g8]", old):
        assert checker.check_run(text, [{**row, "model_name": name}]) is None
    # every writer filled the names where the run carries its spec: NULL hides them
    for key in ("model_name", "params", "model_family"):
        got = checker.check_run(text, [{**row, "model_name": "mm[compression=lut6/g8]", key: None}])
        assert got == f"case c: {key} is NULL, but the run's spec gives it", key
    for name in ("mm[compression=none]", 'mm[compression={"palettize":{}}]', "mm"):
        assert "calls itself" in checker.check_run(text, [{**row, "model_name": name}])
    assert checker.check_spec_name(text, "mm") is None
    assert checker.check_spec_name(text, None) is None
    assert (
        checker.check_spec_name(text, "lm_head")
        == "spec_name 'lm_head', but its spec is named 'mm'"
    )
