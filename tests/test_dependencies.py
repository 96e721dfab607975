"""Every third-party module the package, its tests and benchmarks import is declared in
pyproject.toml: by the package itself, by one of its extras, or by a declared package
that requires it (pydantic brings pydantic_core). A module installed only by accident in
the developer's venv once passed every local check and failed on a fresh clone (pydantic
itself was missing from the dependencies)."""

from __future__ import annotations

import ast
import contextlib
import importlib.metadata as md
import re
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# optional modules a venv may lack (CI installs torch alone, without the torch extra's
# NVML package), and the declared package that brings each
OPTIONAL = {"pynvml": "nvidia-ml-py", "triton": "torch"}  # triton: torch's CUDA builds
# the repository's own modules: the package, and the tests' and benchmarks' helpers
# (imported through sys.path entries the tests add, not installed)
LOCAL = {"anemll_spec"} | {
    p.stem if p.suffix == ".py" else p.name
    for folder in ("tests", "benchmarks")
    for p in (ROOT / folder).rglob("*")
    if p.suffix == ".py" or p.is_dir()
}


def _name(requirement: str) -> str:
    return re.split(r"[\s<>=!~;\[]", requirement, maxsplit=1)[0].lower().replace("_", "-")


def _declared() -> set[str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    reqs = list(project["dependencies"])
    for extra in project.get("optional-dependencies", {}).values():
        reqs += extra
    return {_name(r) for r in reqs}


def _with_requirements(names: set[str]) -> set[str]:
    """The declared packages and, where installed, everything they require (transitively)."""
    seen, todo = set(), list(names)
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        with contextlib.suppress(md.PackageNotFoundError):
            todo += [_name(r) for r in md.requires(name) or [] if "extra ==" not in r]
    return seen


def _imports() -> dict[str, str]:
    """Top-level module -> a file that imports it, over the package, tests and benchmarks."""
    found: dict[str, str] = {}
    for folder in ("anemll_spec", "tests", "benchmarks"):
        for path in sorted((ROOT / folder).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text(), str(path))):
                names = []
                if isinstance(node, ast.Import):
                    names = [a.name for a in node.names]
                elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                    names = [node.module]
                for name in names:
                    top = name.split(".")[0]
                    if top not in sys.stdlib_module_names and top not in LOCAL:
                        found.setdefault(top, str(path.relative_to(ROOT)))
    return found


def test_every_imported_module_is_declared():
    allowed = _with_requirements(_declared())
    dists = md.packages_distributions()
    missing = []
    for module, where in sorted(_imports().items()):
        owners = {OPTIONAL[module]} if module in OPTIONAL else set()
        owners = owners or {_name(d) for d in dists.get(module, [])}
        if not owners:
            missing.append(f"{module} (imported by {where}) is not installed")
        elif not owners & allowed:
            missing.append(f"{module} (imported by {where}) comes from {sorted(owners)}")
    assert not missing, "undeclared dependencies:\n" + "\n".join(missing)
