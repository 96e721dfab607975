"""A store, bundle or --out name that is not UTF-8 (a byte like 0xff, which Linux allows in
a file name) is refused in one line, exit 2, nothing written: DuckDB takes names only as
UTF-8 and raised UnicodeEncodeError or pybind11's 'Unable to cast' (tracebacks)."""

from __future__ import annotations

import hashlib
import shutil

import pytest
from fixtures.store.synth import one_case_run

TAIL = "the name is not UTF-8 text, which DuckDB cannot take; give it a UTF-8 name\n"


@pytest.fixture(scope="module")
def source(tmp_path_factory):
    path = tmp_path_factory.mktemp("u8") / "results.duckdb"
    one_case_run(path, seed=4)
    return path


def _digest(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_a_store_name_that_is_not_utf8_is_refused(cli, source, tmp_path):
    store = tmp_path / "\udcff.duckdb"  # the bytes \xff.duckdb
    shutil.copy(source, store)
    before = _digest(store)
    r = cli("query", "SELECT count(*) FROM runs", "--store", store)
    assert (r.returncode, r.stdout) == (2, ""), r.stderr
    assert r.stderr == f"anemll-spec query: error: store {str(store)!r}: {TAIL}"
    r = cli("export", "--store", store, "--out", tmp_path / "b.parquet")
    assert r.returncode == 2 and r.stderr.endswith(TAIL), r.stderr
    # $ANEMLL_SPEC_STORE the same
    r = cli("query", "SELECT 1", env={"ANEMLL_SPEC_STORE": str(store)})
    assert r.returncode == 2 and r.stderr.endswith(TAIL), r.stderr
    assert _digest(store) == before and sorted(p.name for p in tmp_path.iterdir()) == [
        "\udcff.duckdb"
    ]  # no .wal, no bundle
    # a shared store's target (its catalog file or data path) reaches DuckDB as text too
    lake = f"ducklake:{tmp_path / 'cat.ducklake'} data_path={tmp_path / chr(0xDCFE)}"
    r = cli("query", "SELECT 1", "--store", lake)
    assert r.returncode == 2 and r.stderr.endswith(TAIL), r.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["\udcff.duckdb"]


def test_bench_into_a_store_named_not_utf8_writes_nothing(cli, tmp_path):
    store = tmp_path / "\udcfd.duckdb"
    r = cli("bench", "specs/smoke.yaml", "--backend", "numpy", "--store", store)
    assert (r.returncode, r.stdout) == (2, ""), r.stderr
    assert r.stderr == f"anemll-spec bench: error: store {str(store)!r}: {TAIL}"
    assert [p.name for p in tmp_path.iterdir() if p.name != "cache"] == []  # no store, no .wal


def test_a_bundle_name_that_is_not_utf8_is_refused(cli, source, tmp_path):
    from anemll_spec.store.exporting import export_bundle

    bundle = tmp_path / "b.parquet"
    export_bundle(source, bundle, [])
    odd = bundle.rename(tmp_path / "\udcfe.parquet")
    into = tmp_path / "x.duckdb"
    r = cli("import", odd, "--store", into)
    assert (r.returncode, r.stdout) == (2, ""), r.stderr
    assert r.stderr == f"anemll-spec import: error: bundle {str(odd)!r}: {TAIL}"
    assert not into.exists()
    # the same bundle under a UTF-8 name imports, its run read back
    r = cli("import", odd.rename(tmp_path / "ok.parquet"), "--store", into, "--json")
    assert r.returncode == 0 and '"runs_added": 1' in r.stdout, r.stderr


def test_an_out_name_that_is_not_utf8_is_refused(cli, source, tmp_path):
    """Its folder reached DuckDB's COPY (the temp file beside it): UnicodeEncodeError; a
    file name alone was written, a bundle import then could not read by name."""
    folder = tmp_path / "\udcfa"
    folder.mkdir()
    for out in (folder / "o.parquet", tmp_path / "\udcf9.parquet"):
        r = cli("export", "--store", source, "--out", out)
        assert (r.returncode, r.stdout) == (2, ""), r.stderr
        assert r.stderr == f"anemll-spec export: error: --out {str(out)!r}: {TAIL}"
        assert not out.exists()
    assert list(folder.iterdir()) == []
