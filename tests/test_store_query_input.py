"""`anemll-spec query`: SQL that is not UTF-8 text, and values printed exactly."""

from __future__ import annotations

import pytest
from fixtures.store.synth import one_case_run


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    path = tmp_path_factory.mktemp("qi") / "results.duckdb"
    one_case_run(path, seed=3)
    return path


def test_sql_that_is_not_utf8_is_refused_in_one_line(cli, store, tmp_path):
    """A .sql file with a byte like 0xff raised UnicodeDecodeError (a traceback, exit 1);
    inline SQL with such bytes (they arrive as surrogates) raised UnicodeEncodeError."""
    bad = tmp_path / "bad.sql"
    bad.write_bytes(b"SELECT \xff\xfe 1")
    r = cli("query", bad, "--store", store)
    assert (r.returncode, r.stdout) == (2, ""), r.stderr
    assert r.stderr == (
        f"anemll-spec query: error: cannot read {bad}: not UTF-8 text (byte 7); save it as UTF-8\n"
    )
    r = cli("query", "SELECT '\udcff' AS x", "--store", store)  # the bytes SELECT '\xff' AS x
    assert (r.returncode, r.stdout) == (2, ""), r.stderr
    assert r.stderr == "anemll-spec query: error: the SQL is not UTF-8 text (byte 8)\n"
    # a .sql name that is not UTF-8 is a name like any other; the file is read
    named = tmp_path / "\udcfe.sql"
    named.write_text("SELECT 41 + 1 AS n\n")
    r = cli("query", named, "--store", store, "--format", "csv")
    assert (r.returncode, r.stdout) == (0, "n\n42\n"), r.stderr
