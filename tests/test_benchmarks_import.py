"""Every benchmark script still imports against the package (benchmarks are run by hand,
so a renamed or moved name would otherwise be found only at the next measurement, as
store_import's `bundle.export_bundle` was). Importing runs only their module level:
imports and definitions; nothing is measured here."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parent.parent / "benchmarks"
SCRIPTS = sorted(p for p in BENCH.glob("*.py") if not p.name.startswith("_"))


@pytest.mark.parametrize("path", SCRIPTS, ids=[p.stem for p in SCRIPTS])
def test_the_benchmark_imports(path: Path, monkeypatch):
    monkeypatch.syspath_prepend(str(BENCH))  # their shared helpers (_worktree, _gpu, ...)
    spec = importlib.util.spec_from_file_location(f"bench_{path.stem}", path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, spec.name, module)
    spec.loader.exec_module(module)
    assert callable(getattr(module, "main", None)), f"{path.name} has no main()"
