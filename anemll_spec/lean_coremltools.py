"""Import coremltools without torch, in the CLI's own processes.

coremltools' package __init__ imports torch whenever torch is installed (its `_deps` probe,
then `coremltools.optimize.torch`): 2-4 s of every build's start-up here, for nothing, since
anemll-spec builds with the MIL builder, converts no torch model, and its torch backend
imports torch itself. While coremltools' package runs, `torch` reads as not installed (which
coremltools handles: `_HAS_TORCH = False`, no torch frontend), and the name is given back as
soon as it returns, so a later `import torch` works as ever. Where torch is already imported
nothing is hidden. Installed by the CLI only: a program that imports anemll_spec as a library
keeps coremltools as coremltools makes it (its torch conversion needs `_HAS_TORCH`).
"""

from __future__ import annotations

import importlib.machinery
import sys
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Sequence
    from types import ModuleType


class _Loader:
    """coremltools' own loader, run with `torch` hidden (a loader by protocol, as the import
    system asks: importlib.abc alone costs the CLI's start-up some milliseconds)."""

    def __init__(self, loader: Any) -> None:
        self._loader = loader

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType | None:
        return self._loader.create_module(spec)

    def exec_module(self, module: ModuleType) -> None:
        module.__loader__ = self._loader  # the package keeps its own loader
        if module.__spec__ is not None:
            module.__spec__.loader = self._loader
        hide = "torch" not in sys.modules
        if hide:
            sys.modules["torch"] = None  # type: ignore[assignment]  # import torch: ImportError
        try:
            self._loader.exec_module(module)
        finally:
            if hide and "torch" in sys.modules and sys.modules["torch"] is None:
                del sys.modules["torch"]


class _Finder:
    """Finds coremltools as the path finder does, with a loader that hides torch."""

    def find_spec(
        self, name: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        if name != "coremltools" or "torch" in sys.modules:
            return None
        uninstall()  # once: the package runs once a process
        spec = importlib.machinery.PathFinder.find_spec(name, path)
        if spec is None or spec.loader is None:
            return spec
        spec.loader = _Loader(spec.loader)  # type: ignore[assignment]  # a loader by protocol
        return spec


_wanted = False  # install() was called: processes this one spawns want it too


def install() -> None:
    """Hide torch from coremltools' first import in this process (no-op if done)."""
    global _wanted
    _wanted = True
    if "coremltools" in sys.modules or any(isinstance(f, _Finder) for f in sys.meta_path):
        return
    sys.meta_path.insert(0, _Finder())


def wanted() -> bool:
    """Whether this process asked for the lean import: a spawned child (bench's instance
    processes) runs no CLI main, so the parent hands this on and the child installs it."""
    return _wanted


def uninstall() -> None:
    sys.meta_path[:] = [f for f in sys.meta_path if not isinstance(f, _Finder)]
