"""Loading the shared store's DuckDB extensions: DuckDB's own folder first, the PyPI
package's file next, and never a download for an extension that file provides.

`LOAD name` of an extension DuckDB has not installed autoinstalls it, i.e. downloads it:
on a machine with no route out each try cost ~0.5 s per extension and connection
(benchmarks/lake_connect.py: 1.27 s -> 0.28 s a connection). A local HTTP server stands
in for DuckDB's extension repository and counts the requests it gets.
"""

from __future__ import annotations

import http.server
import threading
from pathlib import Path

import duckdb
import pytest

from anemll_spec.store import lake

pytest.importorskip("duckdb_extension_ducklake")
pytest.importorskip("duckdb_extension_postgres_scanner")

NAMES = ("ducklake", "postgres_scanner")


@pytest.fixture
def repository():
    """An extension repository that has nothing and records every path asked for."""
    asked: list[str] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 (http.server's name)
            asked.append(self.path)
            self.send_error(404)

        def log_message(self, *args):  # quiet
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", asked
    finally:
        server.shutdown()
        server.server_close()


def _connect(ext_dir: Path, url: str):
    con = duckdb.connect()  # autoinstall on, as DuckDB's Python package has it
    con.execute(f"SET extension_directory = '{ext_dir}'")
    con.execute(f"SET custom_extension_repository = '{url}'")
    con.execute(f"SET autoinstall_extension_repository = '{url}'")
    return con


def _loaded_from(con) -> dict[str, str]:
    rows = con.execute(
        "SELECT extension_name, install_path FROM duckdb_extensions() "
        "WHERE loaded AND extension_name IN ?",
        [list(NAMES)],
    ).fetchall()
    return dict(rows)


def test_an_extension_duckdb_lacks_loads_from_its_package_without_a_download(tmp_path, repository):
    url, asked = repository
    con = _connect(tmp_path / "ext", url)
    lake.load_extensions(con, NAMES)
    assert set(_loaded_from(con)) == set(NAMES)
    assert asked == []  # the PyPI file was loaded; the repository was never asked
    assert not (tmp_path / "ext").exists() or not any((tmp_path / "ext").rglob("*.duckdb_*"))


def test_an_extension_in_duckdbs_own_folder_is_loaded_from_there(tmp_path, repository):
    url, asked = repository
    ext_dir = tmp_path / "ext"
    con = _connect(ext_dir, url)
    for name in NAMES:  # installed into DuckDB's folder from the package's file
        path, _ = lake._pypi_file(name, duckdb.__version__)
        con.execute(f"INSTALL '{path}'")
    con.close()
    con = _connect(ext_dir, url)
    assert all(lake._installed(con, n) for n in NAMES)
    lake.load_extensions(con, NAMES)
    where = _loaded_from(con)
    assert set(where) == set(NAMES)
    for name in NAMES:
        assert Path(where[name]).resolve().is_relative_to(ext_dir.resolve()), where[name]
    assert asked == []
