"""Can this Mac run a case on Core ML? Deployment target -> minimum macOS.

A package's deployment target is the oldest OS whose Core ML can load it: ML Program
specification version 7 is iOS16 / macOS 13, 8 is iOS17 / macOS 14, 9 is iOS18 / macOS 15
(coremltools/__init__.py, `_SPECIFICATION_VERSION_IOS_*`), and state (a KV cache) needs
macOS 15 on its own: `MLModel.make_state` checks the OS, `CompiledMLModel.make_state`
does not, so without this check a stateful case on macOS 14 fails deep in the binding
("Stateful predictions using MLState are only supported on macOS >= 15.0"). Since the
default target is iOS18, macOS 13-14 would report coreml available and then fail every
default case: `why_not(model)` says so before anything is built.
"""

from __future__ import annotations

import functools
import platform
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

MacOS = tuple[int, ...]

# deployment target -> the first macOS whose Core ML loads it
TARGET_MACOS: dict[str, MacOS] = {
    "iOS15": (12, 0),
    "iOS16": (13, 0),
    "iOS17": (14, 0),
    "iOS18": (15, 0),
    "iOS26": (26, 0),
}
# Model proto specificationVersion -> deployment target (coremltools' own constants)
SPEC_VERSION_TARGET = {6: "iOS15", 7: "iOS16", 8: "iOS17", 9: "iOS18", 10: "iOS26"}
STATE_MACOS: MacOS = (15, 0)


def fmt(v: MacOS) -> str:
    return ".".join(map(str, v)) if v else "unknown"


def parse_macos_version(text: str) -> MacOS:
    """'14.4.1' -> (14, 4, 1); '' (not macOS) -> ()."""
    parts = []
    for p in text.strip().split("."):
        if not p.isdigit():
            break
        parts.append(int(p))
    return tuple(parts)


def compat_answer(v: MacOS) -> bool:
    """A version macOS answers to a program built against an older SDK (its
    SYSTEM_VERSION_COMPAT): 10.16 for macOS 11+, 16.x for macOS 26+ (CPython gh-135675);
    or no answer at all."""
    return not v or v[:2] == (10, 16) or v[0] == 16


def real_macos(mac_ver: str, *asks: Callable[[], str | None]) -> MacOS:
    """The macOS version from platform.mac_ver()'s text, unless that is a compatibility
    answer: then the first of `asks` that is not one. 16.x that nothing corrects is 26.x
    (the compatibility scheme maps 26.x to 16.x; no macOS 16 exists)."""
    v = parse_macos_version(mac_ver)
    for ask in asks:
        if not compat_answer(v):
            break
        v = parse_macos_version(ask() or "") or v
    return (26, *v[1:]) if v[:1] == (16,) else v


def macos_version() -> MacOS:
    """This Mac's macOS version; () elsewhere.

    platform.mac_ver() reads SystemVersion.plist, which answers 10.16 (macOS 11+) or 16.x
    (macOS 26+) to a Python built against an older SDK: then kern.osproductversion, read
    in-process, and `sw_vers -productVersion` (what coremltools and the host row ask, a
    program built with the current SDK) are asked in turn."""
    if sys.platform != "darwin":
        return ()
    from anemll_spec import host

    return real_macos(
        platform.mac_ver()[0], lambda: host.sysctl_str("kern.osproductversion"), _sw_vers
    )


@functools.cache
def _sw_vers() -> str | None:
    """`sw_vers -productVersion`, run once per process (only where it is asked)."""
    from anemll_spec.host import _cmd

    return _cmd("sw_vers", "-productVersion")


def required(target: str | None, has_state: bool) -> tuple[MacOS, str]:
    """(minimum macOS, why) for a model of this target, with or without state."""
    need: tuple[int, ...] = (0,)
    why = "no deployment target known"
    if target in TARGET_MACOS:
        need, why = TARGET_MACOS[target], f"deployment target {target}"
    if has_state and need < STATE_MACOS:
        need, why = STATE_MACOS, "state (MLState)"
    return need, why


def why_not_on(target: str | None, has_state: bool, macos: MacOS) -> str | None:
    """One line why this macOS cannot run such a model on Core ML; None if it can.

    An unknown macOS (empty tuple) is not refused here: availability() covers it."""
    if target is not None and target not in TARGET_MACOS:
        return f"deployment target {target} is not one Core ML knows ({', '.join(TARGET_MACOS)})"
    need, why = required(target, has_state)
    if macos and macos < need:
        return f"{why} needs macOS {fmt(need)} or later; this Mac runs macOS {fmt(macos)}"
    return None


def model_target(model: Mapping[str, Any]) -> tuple[str | None, bool]:
    """(deployment target, has state) of a case's resolved model fields.

    Built families: the spec's `deployment_target` (attention is stateful). External
    models: read from the model itself (the proto's specificationVersion, or a compiled
    model's metadata.json), since their spec field does not describe the file."""
    if model.get("family") != "external":
        return model.get("deployment_target"), model.get("family") == "attention"
    from anemll_spec.mlmodel import open_model

    saved = open_model(Path(model["path"]))
    version = saved.spec_version  # the proto's, or a compiled model's metadata.json
    target = SPEC_VERSION_TARGET.get(version) if version is not None else None
    return target, bool(saved.io().states)


def why_not(model: Mapping[str, Any] | Any, macos: MacOS | None = None) -> str | None:
    """One line why Core ML on this Mac (or on `macos`) cannot run the case; None if it can.

    `model`: the case's resolved model fields (a dict, or a model object with to_json()).
    An external model's int8 inputs/outputs too: known before the run, so auto picks
    another backend and a named coreml is refused (exit 2), not a FAILED case."""
    from anemll_spec.errors import InputError

    fields = model.to_json() if hasattr(model, "to_json") else model
    try:
        target, has_state = model_target(fields)
        why = why_not_on(target, has_state, macos_version() if macos is None else macos)
        if why is None and fields.get("family") == "external":
            from anemll_spec.mlmodel import open_model

            io = open_model(Path(fields["path"])).io()
            ct = ct_version()
            why = unsupported_io({t.name: t.dtype for t in io.inputs}, "input", ct) or (
                unsupported_io({t.name: t.dtype for t in io.outputs}, "output", ct)
            )
    except InputError:  # a damaged external model: cannot tell here; the build's
        return None  # preflight refuses it, at model.path's line and column
    return why


# dtypes coremltools 9.0's binding cannot pass: MLMultiArrayDataTypeInt8 is compiled out
# (BUILT_WITH_MACOS26_SDK is defined only in CoreMLPython.mm, and tested in
# CoreMLPythonArray.mm / CoreMLPythonUtils.mm, where it is undefined, so 0).
UNSUPPORTED_DTYPES = {"int8": "int8"}


def unsupported_io(io_dtypes: Mapping[str, str], what: str, ct_version: str | None) -> str | None:
    """Why the binding cannot pass these inputs/outputs (`what`), or None."""
    bad = {n: d for n, d in io_dtypes.items() if d in UNSUPPORTED_DTYPES}
    if not bad:
        return None
    names = ", ".join(f"{n} ({d})" for n, d in bad.items())
    return (
        f"{what} {names}: coremltools {ct_version or '?'}'s Python binding cannot pass "
        "int8 arrays (its int8 support is compiled out: an int8 input fails with 'value "
        "type not convertible', an int8 output hits assert(false)); use an int32 or "
        "float16 model I/O, or another backend"
    )


def ct_version() -> str | None:
    import importlib.metadata

    try:
        return importlib.metadata.version("coremltools")
    except importlib.metadata.PackageNotFoundError:
        return None
