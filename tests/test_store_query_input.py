"""`anemll-spec query`: SQL that is not UTF-8 text, and values printed exactly."""

from __future__ import annotations

import csv
import decimal
import io
import json

import pytest
from db_util import rows as db_rows
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


def test_decimals_are_exact_and_nested_values_are_json_in_every_format(cli, store):
    """--json turned a DECIMAL into a float (12345678901234567.5 became
    1.2345678901234568e+16); CSV, the table and Markdown wrote a list or struct as
    Python's repr ([datetime.datetime(2026, ...)], {'m': Decimal('0.3')})."""
    sql = "SELECT 12345678901234567.5 AS big, 123456789.123456789::DECIMAL(18,9) AS dc"
    r = cli("query", sql, "--store", store, "--json")
    assert r.returncode == 0, r.stderr
    assert '"big": 12345678901234567.5,' in r.stdout and '"dc": 123456789.123456789' in r.stdout
    got = json.loads(r.stdout, parse_float=decimal.Decimal)
    assert got == [{"big": decimal.Decimal("12345678901234567.5"),
                    "dc": decimal.Decimal("123456789.123456789")}]  # fmt: skip

    # a small DECIMAL with its digits, as DuckDB shows it: str(Decimal) wrote 0E-9, 1.00E-7
    sql = "SELECT 0::DECIMAL(18,9) AS z, 0.0000001::DECIMAL(18,9) AS s, [1e-9::DECIMAL(18,9)] AS l"
    digits = ["0.000000000", "0.000000100", "[0.000000001]"]
    r = cli("query", sql, "--store", store, "--format", "csv")
    assert r.stdout.splitlines()[1].split(",") == digits, r.stdout
    assert cli("query", sql, "--store", store).stdout.splitlines()[2].split() == digits
    md = cli("query", sql, "--store", store, "--format", "markdown").stdout.splitlines()
    assert md[2] == r"| 0.000000000 | 0.000000100 | \[0.000000001\] |"
    r = cli("query", sql, "--store", store, "--json")
    assert '"z": 0.000000000,' in r.stdout and '"s": 0.000000100,' in r.stdout, r.stdout

    ((started,),) = db_rows(store, "SELECT started_at FROM runs")
    sql = "SELECT list(started_at) AS ts, {'n': NULL, 'm': 0.1 + 0.2} AS st, [1.50] AS d FROM runs"
    want = {"ts": [started.isoformat()], "st": {"n": None, "m": decimal.Decimal("0.3")},
            "d": [decimal.Decimal("1.50")]}  # fmt: skip
    r = cli("query", sql, "--store", store, "--json")
    assert json.loads(r.stdout, parse_float=decimal.Decimal) == [want], r.stderr
    r = cli("query", sql, "--store", store, "--format", "csv")
    assert r.returncode == 0, r.stderr
    (row,) = csv.DictReader(io.StringIO(r.stdout))
    assert {k: json.loads(v, parse_float=decimal.Decimal) for k, v in row.items()} == want
    assert row["st"] == '{"n": null, "m": 0.3}' and row["d"] == "[1.50]"
    table = cli("query", sql, "--store", store).stdout.splitlines()
    assert table[2].split() == [json.dumps([started.isoformat()]), '{"n":', "null,", '"m":',
                                "0.3}", "[1.50]"]  # fmt: skip
    md = cli("query", sql, "--store", store, "--format", "markdown").stdout.splitlines()
    assert md[2] == (
        rf'| \["{started.isoformat()}"\] | {{"n": null, "m": 0.3}} | \[1.50\] |'
    )  # Markdown's escapes, each read back as the character itself


def test_nested_text_stays_json_a_terminal_can_show(cli, store):
    """Inside a list, a character JSON keeps raw but a terminal should not get (DEL,
    U+2028) is a JSON escape, so the cell still reads back with json.loads."""
    text = "a\x7f\u2028\U000e0001\u00e9\n\x1b"
    sql = "SELECT [" + " || ".join(f"chr({ord(c)})" for c in text) + "] AS t, '\\xff'::BLOB AS b"
    r = cli("query", sql, "--store", store, "--format", "csv")
    assert r.returncode == 0, r.stderr
    assert not {"\x1b", "\x7f", "\u2028", "\U000e0001"} & set(r.stdout), r.stdout
    (row,) = csv.DictReader(io.StringIO(r.stdout))
    assert json.loads(row["t"]) == [text] and "é" in row["t"]
    assert row["b"] == "ff"  # hex, as --json writes a BLOB (not b'\\xff')
