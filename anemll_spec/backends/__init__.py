"""Backends: where a model runs. A registry with availability and its reason.

Each backend is one module exposing `NAME`, `available() -> (bool, reason)` (cheap: no
heavy import) and `backend() -> Backend`, and optionally `why_not(model) -> str | None`:
why it cannot run a case with these resolved model fields on this host (Core ML: the
deployment target needs a newer macOS). Adding one (the torch backend) is one file,
`anemll_spec/backends/torch_.py`, and its line below.
"""

from __future__ import annotations

import importlib
import importlib.util
from dataclasses import dataclass
from typing import Any

from anemll_spec.errors import InputError

# name -> module; order = preference of `auto` (first available wins, torch excluded)
REGISTRY: dict[str, str] = {
    "coreml": "anemll_spec.backends.coreml",
    "numpy": "anemll_spec.backends.numpy_",
    "torch": "anemll_spec.backends.torch_",
}
AUTO_ORDER = ("coreml", "numpy")


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


def why_not(name: str, model: Any) -> str | None:
    """Why an AVAILABLE backend cannot run a case with these resolved model fields (a
    dict, or a model object with to_json()) here; None if it can (or cannot tell)."""
    check = getattr(_module(name), "why_not", None)
    return check(model) if check is not None else None


def why_refused(name: str, model: Any, what: str = "this case") -> tuple[str, str] | None:
    """(what is refused, why) if backend `name` cannot run `what` here, else None: the
    one check behind bench's refusal and plan's note. For explicitly named backends;
    auto resolves around it."""
    a = availability(name)
    if not a.available:
        return f"backend {name} is not available here", a.reason
    reason = why_not(name, model)
    return (f"backend {name} cannot run {what} here", reason) if reason else None


def check_runs(name: str, model: Any, what: str = "this case") -> None:
    """InputError (one line, before anything is built) if backend `name` cannot run
    `what` here."""
    refused = why_refused(name, model, what)
    if refused:
        raise InputError(": ".join(refused))


def resolve_auto(model: Any = None) -> tuple[str, str]:
    """`auto` -> (backend, why): coreml where available and able to run the case,
    otherwise numpy. model: the case's resolved model fields (None: availability only)."""
    skipped: list[str] = []
    for name in AUTO_ORDER:
        a = availability(name)
        reason = a.reason if not a.available else None
        if reason is None and model is not None:
            reason = why_not(name, model)
        if reason is None:
            why = f"auto -> {name}"
            if skipped:
                why += " (" + "; ".join(skipped) + ")"
            return name, why
        skipped.append(f"{name}: {reason}")
    raise InputError("no backend available: " + "; ".join(skipped))


def get(name: str):
    """The Backend object of an available backend (InputError with the reason otherwise)."""
    a = availability(name)
    if not a.available:
        raise InputError(f"backend {name} is not available here: {a.reason}")
    return _module(name).backend()
