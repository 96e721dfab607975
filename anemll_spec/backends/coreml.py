"""Core ML (macOS only): compile once, load per compute unit, predict, compute plan.

Kept thin on purpose. What needs no Core ML (compute-unit names, input casting,
shaping compute-plan results, Rosetta detection, availability) is plain functions,
tested on Linux; the rest calls coremltools 9's real API:
- `coremltools.models.utils.compile_model(src, dst) -> str` (.mlpackage -> .mlmodelc);
- `coremltools.models.CompiledMLModel(path, compute_units)`, `.predict(data, state=None)`,
  `.make_state()`;
- Core ML's own predict duration: `CompiledMLModel` has no public property for it (only
  `MLModel.last_predict_duration_in_nano_seconds` does), but its `_proxy` is the same
  `_MLModelProxy`, whose `get_last_predict_duration_in_nano_seconds()` times
  `[MLModel predictionFromFeatures:error:]` natively. We read it when present, else NULL;
- `coremltools.models.compute_plan.MLComputePlan.load_from_path(path, compute_units)`
  (macOS 14.4+): `model_structure.program.functions[name].block.operations`, and per op
  `get_compute_device_usage_for_mlprogram_operation(op).preferred_compute_device` and
  `get_estimated_cost_for_mlprogram_operation(op).weight`.
"""

from __future__ import annotations

import importlib.util
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from anemll_spec.backends.base import Backend, BackendError, Prepared, Session

NAME = "coreml"
COMPUTE_UNITS = ("CPU_ONLY", "CPU_AND_GPU", "CPU_AND_NE", "ALL")
MIN_MACOS = (13, 0)  # CPU_AND_NE and ML Programs with iOS16+ targets
COMPUTE_PLAN_MACOS = (14, 4)

# coremltools' device classes -> the store's names ('NeuralEngine' | 'GPU' | 'CPU')
DEVICE_NAMES = {
    "MLCPUComputeDevice": "CPU",
    "MLGPUComputeDevice": "GPU",
    "MLNeuralEngineComputeDevice": "NeuralEngine",
}


# -- pure logic (tested on Linux) ------------------------------------------------------
def to_compute_unit(name: str, ct_compute_unit: Any = None) -> Any:
    """Spec name ('CPU_AND_NE') -> coremltools.ComputeUnit member."""
    if name not in COMPUTE_UNITS:
        raise BackendError(f"unknown compute unit {name!r} (one of {', '.join(COMPUTE_UNITS)})")
    if ct_compute_unit is None:
        from coremltools import ComputeUnit as ct_compute_unit
    return ct_compute_unit[name]


def parse_macos_version(text: str) -> tuple[int, ...]:
    """'14.4.1' -> (14, 4, 1); '' (not macOS) -> ()."""
    parts = []
    for p in text.strip().split("."):
        if not p.isdigit():
            break
        parts.append(int(p))
    return tuple(parts)


def is_translated(sysctl_output: str | None) -> bool:
    """`sysctl -n sysctl.proc_translated` prints 1 under Rosetta (absent on Intel Macs)."""
    return (sysctl_output or "").strip() == "1"


def check_compute_unit(name: str, translated: bool) -> None:
    """Refuse what cannot work; raise BackendError with the reason."""
    to_compute_unit(name, ct_compute_unit={n: n for n in COMPUTE_UNITS})
    if translated and name == "CPU_AND_NE":
        raise BackendError(
            "CPU_AND_NE under Rosetta: this Python is an x86_64 process translated by "
            "Rosetta, and Core ML gives translated processes no Neural Engine; run an arm64 "
            "Python (e.g. `arch -arm64 python3 -m venv .venv`) to benchmark the ANE"
        )


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
    """Inputs as Core ML takes them, converted once.

    coremltools casts every float16 array to float32 inside `predict` (on each call, see
    `MLModel._update_float16_multiarray_input_to_float32`); doing it here keeps that copy
    out of the timed loop. Integer inputs go in as int32 (Core ML's multi-array int type).
    """
    out: dict[str, np.ndarray] = {}
    for name, value in inputs.items():
        arr = np.asarray(value)
        declared = dtypes.get(name, arr.dtype.name)
        if declared in ("float16", "float32") or (arr.dtype.kind == "f" and arr.itemsize <= 4):
            arr = arr.astype(np.float32, copy=False)
        elif declared.startswith(("int", "uint")) and declared not in ("int8", "uint8"):
            arr = arr.astype(np.int32, copy=False)
        out[name] = np.ascontiguousarray(arr)
    return out


@dataclass(frozen=True)
class OpPlan:
    """One op of a compute plan, as plain data."""

    op_type: str
    outputs: tuple[str, ...]
    preferred: str | None  # 'NeuralEngine' | 'GPU' | 'CPU' | None (unknown)
    supported: tuple[str, ...]
    cost: float | None  # Core ML's estimated share of the model's work, 0..1


def device_name(device: Any) -> str | None:
    if device is None:
        return None
    return DEVICE_NAMES.get(type(device).__name__, type(device).__name__)


def placement_rows(ops: Iterable[OpPlan], compute_units: str) -> list[dict]:
    """Compute-plan ops -> rows of the store's `placements` table.

    Constants are left out: Core ML gives them no device and no cost.
    """
    rows = []
    for op in ops:
        if op.op_type == "const" and op.preferred is None:
            continue
        rows.append(
            {
                "op_index": len(rows),
                "op_name": op.outputs[0] if op.outputs else None,
                "op_type": op.op_type,
                "preferred_device": op.preferred,
                "estimated_cost": op.cost,
                "compute_units": compute_units,
            }
        )
    return rows


def placement_shares(rows: Iterable[Mapping]) -> dict[str, float]:
    """Share of the estimated cost per preferred device (by op count where no costs)."""
    rows = list(rows)
    costed = [r for r in rows if r.get("estimated_cost") is not None]
    use = costed if costed else rows
    weights: dict[str, float] = {}
    for r in use:
        dev = r.get("preferred_device") or "unknown"
        w = r["estimated_cost"] if costed else 1.0
        weights[dev] = weights.get(dev, 0.0) + float(w)
    total = sum(weights.values())
    return {k: v / total for k, v in sorted(weights.items())} if total > 0 else {}


# -- environment -----------------------------------------------------------------------
def _ct_version() -> str | None:
    import importlib.metadata

    try:
        return importlib.metadata.version("coremltools")
    except importlib.metadata.PackageNotFoundError:
        return None


def _has_libcoremlpython() -> bool:
    """Look for the native module without importing coremltools (it is slow to import)."""
    spec = importlib.util.find_spec("coremltools")
    if spec is None or not spec.submodule_search_locations:
        return False
    return any(any(Path(loc).glob("libcoremlpython*")) for loc in spec.submodule_search_locations)


def macos_version() -> tuple[int, ...]:
    return parse_macos_version(platform.mac_ver()[0]) if sys.platform == "darwin" else ()


def translated() -> bool:
    if sys.platform != "darwin" or not shutil.which("sysctl"):
        return False
    try:
        res = subprocess.run(
            ["sysctl", "-n", "sysctl.proc_translated"], capture_output=True, text=True, timeout=5
        )
    except (OSError, subprocess.SubprocessError):
        return False
    return is_translated(res.stdout)


def available() -> tuple[bool, str]:
    return availability_of(sys.platform, _has_libcoremlpython(), macos_version(), _ct_version())


# -- Core ML (macOS only) ----------------------------------------------------------------
def read_compute_plan(mlmodelc: Path, compute_units: str) -> list[OpPlan]:
    """Every op of the main function with its preferred device and estimated cost."""
    from coremltools.models.compute_plan import MLComputePlan

    plan = MLComputePlan.load_from_path(
        path=str(mlmodelc), compute_units=to_compute_unit(compute_units)
    )
    structure = plan.model_structure
    out: list[OpPlan] = []
    if structure.program is not None:
        functions = structure.program.functions
        fn = functions.get("main") or next(iter(functions.values()))

        def walk(operations) -> None:
            for op in operations:
                usage = plan.get_compute_device_usage_for_mlprogram_operation(op)
                cost = plan.get_estimated_cost_for_mlprogram_operation(op)
                out.append(
                    OpPlan(
                        op_type=op.operator_name,
                        outputs=tuple(o.name for o in op.outputs),
                        preferred=device_name(usage.preferred_compute_device) if usage else None,
                        supported=tuple(
                            d for d in map(device_name, usage.supported_compute_devices) if d
                        )
                        if usage
                        else (),
                        cost=float(cost.weight) if cost is not None else None,
                    )
                )
                for block in op.blocks:
                    walk(block.operations)

        walk(fn.block.operations)
    elif structure.neuralnetwork is not None:
        for layer in structure.neuralnetwork.layers:
            usage = plan.get_compute_device_usage_for_neuralnetwork_layer(layer)
            out.append(
                OpPlan(
                    op_type=layer.type,
                    outputs=tuple(layer.output_names),
                    preferred=device_name(usage.preferred_compute_device) if usage else None,
                    supported=tuple(
                        d for d in map(device_name, usage.supported_compute_devices) if d
                    )
                    if usage
                    else (),
                    cost=None,
                )
            )
    return out


class CoreMLSession(Session):
    def __init__(self, model: Any, prepared: Prepared, compute_units: str):
        self.model = model
        self.prepared = prepared
        self.compute_units = compute_units
        proxy = getattr(model, "_proxy", None)
        self.runtime_probe: Callable[[], int | None] | None = getattr(
            proxy, "get_last_predict_duration_in_nano_seconds", None
        )

    def feed(self, inputs: dict[str, Any]) -> dict[str, Any]:
        return coreml_feed(inputs, self.prepared.input_dtypes)

    def new_state(self) -> Any:
        return self.model.make_state() if self.prepared.states else None

    def predict(self, feed: dict[str, Any], state: Any = None) -> dict[str, Any]:
        out = self.model.predict(feed, state) if state is not None else self.model.predict(feed)
        return {k: np.asarray(v) for k, v in out.items()}

    def bind(self, feed: dict[str, Any], state: Any = None) -> Callable[[], object]:
        import functools

        if state is None:
            return functools.partial(self.model.predict, feed)
        return functools.partial(self.model.predict, feed, state)

    def placements(self) -> list[dict]:
        if macos_version() < COMPUTE_PLAN_MACOS:
            return []  # MLComputePlan needs macOS 14.4
        return placement_rows(
            read_compute_plan(self.prepared.path, self.compute_units), self.compute_units
        )

    def close(self) -> None:
        self.model = None


class CoreMLBackend(Backend):
    name = NAME
    uses_compute_units = True
    decodes_weights = False  # Core ML keeps palettized/quantized weights as stored

    def __init__(self) -> None:
        self._translated = translated()

    def prepare(self, model_path: Path, workdir: Path) -> Prepared:
        """Compile .mlpackage -> .mlmodelc once (timed on its own); .mlmodelc as is."""
        src = Path(model_path)
        if src.suffix == ".mlmodelc":
            return Prepared(path=src, source=src, compile_s=None)
        from coremltools.models.utils import compile_model

        Path(workdir).mkdir(parents=True, exist_ok=True)
        dest = Path(tempfile.mkdtemp(dir=workdir)) / (src.stem + ".mlmodelc")
        t0 = time.perf_counter()
        compiled = compile_model(str(src), str(dest))
        return Prepared(path=Path(compiled), source=src, compile_s=time.perf_counter() - t0)

    def load(
        self,
        prepared: Prepared,
        compute_units: str | None,
        *,
        fp16: bool = False,
        device: str | None = None,
    ) -> Session:
        from coremltools.models import CompiledMLModel

        cu = compute_units or "ALL"
        check_compute_unit(cu, self._translated)
        model = CompiledMLModel(str(prepared.path), to_compute_unit(cu))
        return CoreMLSession(model, prepared, cu)


def backend() -> Backend:
    return CoreMLBackend()
