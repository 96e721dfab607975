"""Shared test configuration: platform-dependent markers and small fixtures."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SPECS = ROOT / "specs"


def _chromium() -> str | None:
    return (
        os.environ.get("ANEMLL_SPEC_CHROMIUM")
        or shutil.which("chromium")
        or shutil.which("chromium-browser")
    )


def pytest_collection_modifyitems(config, items):
    """macOS-only tests skip elsewhere; browser/torch tests skip when absent, unless CI
    demands them (ANEMLL_SPEC_REQUIRE_BROWSER / ANEMLL_SPEC_REQUIRE_TORCH), where a
    missing browser or torch is a failure rather than a silent skip."""
    has_torch = _has_module("torch")
    for item in items:
        if "macos" in item.keywords and sys.platform != "darwin":
            item.add_marker(pytest.mark.skip(reason="needs Core ML (macOS only)"))
        if "browser" in item.keywords and not _chromium():
            if os.environ.get("ANEMLL_SPEC_REQUIRE_BROWSER"):
                item.add_marker(_MISSING)
            else:
                item.add_marker(pytest.mark.skip(reason="chromium not installed"))
        if "torch" in item.keywords and not has_torch:
            if os.environ.get("ANEMLL_SPEC_REQUIRE_TORCH"):
                item.add_marker(_MISSING)
            else:
                item.add_marker(pytest.mark.skip(reason="torch not installed"))


# a usefixtures marker whose fixture fails: the test errors instead of skipping
_MISSING = pytest.mark.usefixtures("_required_but_missing")


@pytest.fixture
def _required_but_missing():
    pytest.fail("a required test dependency is missing (see ANEMLL_SPEC_REQUIRE_* settings)")


def _has_module(name: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(name) is not None


@pytest.fixture(scope="session", autouse=True)
def _private_cache(tmp_path_factory):
    """Every test's built models and cached Vega bundle go to a cache of the session's
    own, never the user's ~/.cache/anemll-spec: nothing written outside the tests' temp
    folders, and no result that depends on what an earlier run left there."""
    before = os.environ.get("ANEMLL_SPEC_CACHE")
    os.environ["ANEMLL_SPEC_CACHE"] = str(tmp_path_factory.mktemp("anemll-cache"))
    yield
    if before is None:
        os.environ.pop("ANEMLL_SPEC_CACHE", None)
    else:
        os.environ["ANEMLL_SPEC_CACHE"] = before


@pytest.fixture(scope="session")
def chromium() -> str:
    path = _chromium()
    if not path:
        pytest.skip("chromium not installed")
    return path


@pytest.fixture
def cli(tmp_path):
    """Run the real CLI in a subprocess; returns CompletedProcess (text)."""

    def run(*args: str, cwd: Path | None = None, env: dict | None = None, timeout: float = 600):
        full_env = {**os.environ, "ANEMLL_SPEC_CACHE": str(tmp_path / "cache"), **(env or {})}
        return subprocess.run(
            [sys.executable, "-m", "anemll_spec", *map(str, args)],
            capture_output=True,
            text=True,
            cwd=cwd or ROOT,
            env=full_env,
            timeout=timeout,
        )

    return run


@pytest.fixture(scope="session")
def postgres():
    """A private PostgreSQL cluster for the shared-store tests (tests/pg.py), stopped at the
    end. Missing PostgreSQL: skip, or fail where CI demands it (ANEMLL_SPEC_REQUIRE_POSTGRES)."""
    import pg

    if pg.bindir() is None:
        if os.environ.get("ANEMLL_SPEC_REQUIRE_POSTGRES"):
            pytest.fail("PostgreSQL (initdb) is required here but not installed")
        pytest.skip("PostgreSQL (initdb) not installed")
    cluster = pg.start_cluster()
    try:
        yield cluster
    finally:
        pg.remove(cluster)


@pytest.fixture
def v4_store(tmp_path) -> Path:
    """A copy of the store the v4 code itself wrote, views and all (tests/fixtures/store/
    make_v4.py): what an upgrade to this version starts from."""
    import gzip

    path = tmp_path / "v4.duckdb"
    with gzip.open(ROOT / "tests" / "fixtures" / "store" / "v4.duckdb.gz") as src:
        path.write_bytes(src.read())
    return path
