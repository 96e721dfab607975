"""Backends: where a model runs. A registry with availability and its reason.

Each backend is one module exposing `NAME`, `available() -> (bool, reason)` (cheap: no
heavy import) and `backend() -> Backend`. Adding one (the torch backend) is one file,
`anemll_spec/backends/torch_.py`, and its line below.
"""

from __future__ import annotations

import importlib
import importlib.util
from dataclasses import dataclass

from anemll_spec.errors import InputError

# name -> module; order = preference of `auto` (first available wins, torch excluded)
REGISTRY: dict[str, str] = {
    "coreml": "anemll_spec.backends.coreml",
    "numpy": "anemll_spec.backends.numpy_",
    "torch": "anemll_spec.backends.torch_",
}
AUTO_ORDER = ("coreml", "numpy")
USES_COMPUTE_UNITS = frozenset({"coreml"})


@dataclass(frozen=True)
class Availability:
    name: str
    available: bool
    reason: str

    def to_dict(self) -> dict:
        return {"name": self.name, "available": self.available, "reason": self.reason}


def _module(name: str):
    try:
        return importlib.import_module(REGISTRY[name])
    except ModuleNotFoundError as exc:
        if exc.name != REGISTRY[name]:
            raise
        return None


def availability(name: str) -> Availability:
    if name not in REGISTRY:
        raise InputError(f"unknown backend {name!r} (one of {', '.join(REGISTRY)}, auto)")
    mod = _module(name)
    if mod is None:
        if name == "torch" and importlib.util.find_spec("torch") is None:
            return Availability(name, False, "torch not installed (pip install '.[torch]')")
        return Availability(name, False, f"not implemented yet ({REGISTRY[name]})")
    ok, reason = mod.available()
    return Availability(name, ok, reason)


def all_availability() -> list[Availability]:
    return [availability(n) for n in REGISTRY]


def resolve_auto() -> tuple[str, str]:
    """`auto` -> (backend, why): coreml where available, otherwise numpy."""
    skipped = []
    for name in AUTO_ORDER:
        a = availability(name)
        if a.available:
            why = f"auto -> {name}"
            if skipped:
                why += " (" + "; ".join(skipped) + ")"
            return name, why
        skipped.append(f"{name}: {a.reason}")
    raise InputError("no backend available: " + "; ".join(skipped))


def get(name: str):
    """The Backend object of an available backend (InputError with the reason otherwise)."""
    a = availability(name)
    if not a.available:
        raise InputError(f"backend {name} is not available here: {a.reason}")
    return _module(name).backend()
