"""Core ML (macOS only): compile once, load per compute unit, predict, compute plan.

Kept thin on purpose, and read against coremltools 9.0's own source (the Python side in
coremltools/models/, the native binding coremlpython/CoreMLPython.mm and
CoreMLPythonUtils.mm at tag 9.0). What needs no Core ML (compute-unit names, input
casting, refusals, compute-plan shaping, deployment targets, the compile cache) is plain
code tested on Linux; the rest calls coremltools 9's real API:
- `coremltools.models.utils.compile_model(src, dst) -> str` (coreml_compile: once per
  package and macOS build, kept in the build cache);
- `coremltools.models.CompiledMLModel(path, compute_units)`, `.predict(data, state=None)`,
  `.make_state()`; no function name: Core ML runs the model's default function;
- Core ML's own predict duration: `CompiledMLModel` has no public property for it, but
  its `_proxy` (`_MLModelProxy`) has `get_last_predict_duration_in_nano_seconds()`: the
  mach_absolute_time() difference around `[MLModel predictionFromFeatures:error:]` only
  (docs/coreml.md says what the wall time adds around it);
- the compute plan (coreml_plan): macOS 14.4+.

The binding's `predict` holds the GIL for the whole call (no gil_scoped_release anywhere
in coremlpython/): instances timed at once must be processes (anemll_spec.concurrency).
"""

from __future__ import annotations

import contextlib
import importlib.util
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from anemll_spec.backends import coreml_compile
from anemll_spec.backends.base import Backend, BackendError, Options, Prepared, Session
from anemll_spec.backends.coreml_plan import (  # noqa: F401 - re-exported (run.py, tests)
    DEVICE_NAMES,
    OpPlan,
    device_name,
    placement_basis,
    placement_rows,
    placement_shares,
)
from anemll_spec.backends.coreml_target import (  # noqa: F401
    UNSUPPORTED_DTYPES,
    ct_version,
    macos_version,
    parse_macos_version,
    unsupported_io,
)
from anemll_spec.vocab import COMPUTE_UNITS

NAME = "coreml"

MIN_MACOS = (13, 0)  # CPU_AND_NE and ML Programs with iOS16+ targets
COMPUTE_PLAN_MACOS = (14, 4)


# -- pure logic (tested on Linux) ------------------------------------------------------
def to_compute_unit(name: str, ct_compute_unit: Any = None) -> Any:
    """Spec name ('CPU_AND_NE') -> coremltools.ComputeUnit member."""
    if name not in COMPUTE_UNITS:
        raise BackendError(f"unknown compute unit {name!r} (one of {', '.join(COMPUTE_UNITS)})")
    if ct_compute_unit is None:
        from coremltools import ComputeUnit

        return ComputeUnit[name]
    return ct_compute_unit[name]


def rosetta_note(translated: bool | None, compute_units: str) -> str | None:
    """What a run under Rosetta must say. Whether Core ML gives a translated (x86_64)
    process the Neural Engine is not documented by Apple (docs/coreml.md): not refused,
    but said, with the compute plan's placements as the evidence."""
    if not translated:
        return None
    return (
        f"this Python runs translated by Rosetta (x86_64): whether Core ML uses the Neural "
        f"Engine for a translated process is undocumented, so {compute_units} here may not "
        "measure what a native arm64 Python would (see the placements); prefer an arm64 "
        "Python (`arch -arm64 python3 -m venv .venv`)"
    )


def check_dtypes(io_dtypes: Mapping[str, str], what: str, ct_version: str | None) -> None:
    """Refuse inputs/outputs the binding cannot convert, before anything is loaded."""
    why = unsupported_io(io_dtypes, what, ct_version)
    if why:
        raise BackendError(why)


def availability_of(
    sys_platform: str, has_lib: bool, macos: tuple[int, ...], ct_version: str | None
) -> tuple[bool, str]:
    if sys_platform != "darwin":
        return False, "not macOS (Core ML runs only on macOS)"
    if ct_version is None:
        return False, "coremltools not installed"
    if not has_lib:
        return False, (
            f"coremltools {ct_version} has no libcoremlpython (installed from source or for "
            "another platform): reinstall it from a macOS wheel"
        )
    if macos and macos < MIN_MACOS:
        return False, f"macOS {'.'.join(map(str, macos))} is older than 13"
    return True, f"Core ML via coremltools {ct_version} on macOS {'.'.join(map(str, macos))}"


def coreml_feed(inputs: Mapping[str, Any], dtypes: Mapping[str, str]) -> dict[str, np.ndarray]:
    """Inputs as Core ML takes them, converted once, by the DECLARED type first.

    coremltools casts every float16 array to float32 inside `predict` (on each call, see
    `MLModel._update_float16_multiarray_input_to_float32`); doing it here keeps that copy
    out of the timed loop. The binding maps int32 arrays to MLMultiArray Int32, float32 to
    Float32 and float64 to Double (CoreMLPythonArray.mm): a declared integer input goes in
    as int32 whatever array it is given, a declared float16/float32 one as float32. Only
    an undeclared input falls back to its array's own dtype.
    """
    out: dict[str, np.ndarray] = {}
    for name, value in inputs.items():
        arr = np.asarray(value)
        declared = dtypes.get(name) or _by_array(arr)
        if declared in UNSUPPORTED_DTYPES:
            check_dtypes({name: declared}, "input", ct_version())
        if declared in ("float16", "float32"):
            arr = arr.astype(np.float32, copy=False)
        elif declared == "float64":
            arr = arr.astype(np.float64, copy=False)
        elif declared.startswith(("int", "uint")):
            arr = arr.astype(np.int32, copy=False)
        out[name] = np.ascontiguousarray(arr)
    return out


def _by_array(arr: np.ndarray) -> str:
    """The type of an undeclared input, from its array: floats up to 32 bits -> float32."""
    if arr.dtype.kind == "f":
        return "float32" if arr.itemsize <= 4 else "float64"
    if arr.dtype.kind in "iu":
        return "int32"
    return arr.dtype.name


# -- environment -----------------------------------------------------------------------
def _has_libcoremlpython() -> bool:
    """Look for the native module without importing coremltools (it is slow to import)."""
    spec = importlib.util.find_spec("coremltools")
    if spec is None or not spec.submodule_search_locations:
        return False
    return any(any(Path(loc).glob("libcoremlpython*")) for loc in spec.submodule_search_locations)


def translated() -> bool:
    """This process runs under Rosetta (asked in-process: anemll_spec.host)."""
    from anemll_spec.host import proc_translated

    return bool(proc_translated())


def available() -> tuple[bool, str]:
    return availability_of(sys.platform, _has_libcoremlpython(), macos_version(), ct_version())


def why_not(model: Any) -> str | None:
    """Why Core ML on this Mac cannot run a case with these model fields (None: it can)."""
    from anemll_spec.backends.coreml_target import why_not as _why_not

    return _why_not(model)


# -- Core ML (macOS only) ----------------------------------------------------------------
class CoreMLSession(Session):
    def __init__(
        self,
        model: Any,
        prepared: Prepared,
        compute_units: str,
        notes: list[str] | None = None,
    ):
        self.model = model
        self.prepared = prepared
        self.compute_units = compute_units
        self.notes = list(notes or [])
        proxy = getattr(model, "_proxy", None)
        # a bound method of the native proxy: it keeps the native MLModel alive until
        # close() drops it
        self.runtime_probe: Callable[[], int | None] | None = getattr(
            proxy, "get_last_predict_duration_in_nano_seconds", None
        )

    def _model(self) -> Any:
        if self.model is None:
            raise BackendError("this Core ML session is closed")
        return self.model

    def feed(self, inputs: dict[str, Any]) -> dict[str, Any]:
        return coreml_feed(inputs, self.prepared.input_dtypes)

    def new_state(self) -> Any:
        return self._model().make_state() if self.prepared.states else None

    def predict(self, feed: dict[str, Any], state: Any = None) -> dict[str, Any]:
        m = self._model()
        out = m.predict(feed, state) if state is not None else m.predict(feed)
        return {k: np.asarray(v) for k, v in out.items()}

    def bind(self, feed: dict[str, Any], state: Any = None) -> Callable[[], object]:
        import functools

        m = self._model()
        if state is None:
            return functools.partial(m.predict, feed)
        return functools.partial(m.predict, feed, state)

    def placements(self) -> list[dict]:
        if macos_version() < COMPUTE_PLAN_MACOS:  # said in the case's note, not an empty plan
            have = ".".join(map(str, macos_version())) or "none"
            raise BackendError(f"MLComputePlan needs macOS 14.4 or later (this Mac: {have})")
        from anemll_spec.backends.coreml_plan import default_function, read_compute_plan

        ops = read_compute_plan(
            self.prepared.path,
            to_compute_unit(self.compute_units),
            default_function(self.prepared.source),
        )
        return placement_rows(ops, self.compute_units)

    def close(self) -> None:
        """Drop every reference this session holds to the native model: the model and
        the probe (a bound method of its proxy). Bound calls (bind) and states made from
        it are the caller's to drop."""
        self.model = None
        self.runtime_probe = None


@dataclass(frozen=True)
class CoremlOptions(Options):
    compute_units: str = "ALL"  # the variant's Core ML compute units


class CoreMLBackend(Backend):
    name = NAME
    compiles = True
    decodes_weights = False  # Core ML keeps palettized/quantized weights as stored

    def __init__(self) -> None:
        # Imported here, before anything is timed: the import takes seconds, and inside
        # prepare or load it would be counted as the first variant's compile or load.
        from anemll_spec.interrupts import import_module

        utils = import_module("coremltools.models.utils")  # and a Ctrl-C during it is kept
        # CompiledMLModel asks _macos_version(), which runs `sw_vers` once per process and
        # keeps the answer: asked now, so the first variant's load_ms holds no process spawn
        with contextlib.suppress(Exception):  # no sw_vers: each load says why
            utils._macos_version()
        self._ct = ct_version()  # read once: a package scan would be timed in every load
        self._translated = translated()
        self._compiled: dict[Path, str] = {}  # compiled path -> how it was got

    def prepare(self, model_path: Path, workdir: Path) -> Prepared:
        """Refuse I/O the binding cannot pass (before compiling), then compile
        .mlpackage -> .mlmodelc once (coreml_compile); a .mlmodelc is used as is."""
        from anemll_spec.model_io import describe

        src = Path(model_path)
        io = describe(src)
        check_dtypes({t.name: t.dtype for t in io.inputs}, "input", self._ct)
        check_dtypes({t.name: t.dtype for t in io.outputs}, "output", self._ct)
        if src.suffix == ".mlmodelc":
            return Prepared(path=src, source=src, compile_s=None)
        path, spent, how = coreml_compile.compiled(src, Path(workdir))
        self._compiled[path] = how
        return Prepared(path=path, source=src, compile_s=spent)

    def options(self, run, compute_units=None) -> CoremlOptions:
        return CoremlOptions(compute_units or "ALL")

    def load(self, prepared: Prepared, options: Options) -> Session:
        from coremltools.models import CompiledMLModel

        assert isinstance(options, CoremlOptions)
        cu = options.compute_units
        to_compute_unit(cu, ct_compute_unit={n: n for n in COMPUTE_UNITS})
        check_dtypes(prepared.input_dtypes, "input", self._ct)
        notes = [n for n in (rosetta_note(self._translated, cu),) if n]
        how = self._compiled.get(Path(prepared.path))
        if how:
            notes.append(coreml_compile.NOTES[how].format(path=prepared.path))
        model = CompiledMLModel(str(prepared.path), to_compute_unit(cu))
        return CoreMLSession(model, prepared, cu, notes)


def backend() -> Backend:
    return CoreMLBackend()
