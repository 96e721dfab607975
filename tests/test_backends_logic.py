"""Backend registry and the Core ML backend's logic that needs no Core ML (runs on Linux)."""

from __future__ import annotations

import sys

import numpy as np
import pytest

from anemll_spec import backends
from anemll_spec.backends import coreml
from anemll_spec.backends.base import BackendError


def test_compute_unit_mapping_to_coremltools():
    import coremltools as ct

    for name in coreml.COMPUTE_UNITS:
        assert coreml.to_compute_unit(name) is getattr(ct.ComputeUnit, name)
    with pytest.raises(BackendError, match="unknown compute unit 'NE_ONLY'"):
        coreml.to_compute_unit("NE_ONLY")


@pytest.mark.parametrize(
    ("out", "expect"), [("1\n", True), ("0\n", False), ("", False), (None, False)]
)
def test_rosetta_detection(out, expect):
    assert coreml.is_translated(out) is expect


def test_cpu_and_ne_refused_under_rosetta():
    with pytest.raises(BackendError, match="CPU_AND_NE under Rosetta"):
        coreml.check_compute_unit("CPU_AND_NE", translated=True)
    for cu in ("CPU_ONLY", "CPU_AND_GPU", "ALL"):
        coreml.check_compute_unit(cu, translated=True)
    coreml.check_compute_unit("CPU_AND_NE", translated=False)


def test_feed_casts_once_to_what_core_ml_takes():
    from anemll_spec.model_io import ModelIO, TensorInfo, synth_inputs

    io = ModelIO(
        inputs=[
            TensorInfo("hidden_states", (1, 1, 64), "float16"),
            TensorInfo("position_ids", (1,), "int32"),
            TensorInfo("causal_mask", (1, 1, 1, 8), "float16"),
        ],
        outputs=[TensorInfo("y", (1, 1, 64), "float16")],
    )
    inputs = synth_inputs(io, seed=3, int_ranges={"position_ids": [0, 7]})
    feed = coreml.coreml_feed(inputs, {t.name: t.dtype for t in io.inputs})
    hs = feed["hidden_states"]
    assert hs.dtype == np.float32 and hs.flags.c_contiguous
    # the fp16 values survive the cast exactly (fp16 -> fp32 is lossless)
    assert np.array_equal(hs.astype(np.float16), inputs["hidden_states"])
    assert feed["position_ids"].dtype == np.int32
    assert np.array_equal(feed["position_ids"], inputs["position_ids"])
    assert feed["causal_mask"].dtype == np.float32 and not feed["causal_mask"].any()
    # int64 arrays given for an int32 input become int32
    feed = coreml.coreml_feed({"ids": np.array([[1, 2]], np.int64)}, {"ids": "int32"})
    assert feed["ids"].dtype == np.int32
    # a non-contiguous view becomes contiguous
    view = np.arange(12, dtype=np.float32).reshape(3, 4)[:, ::2]
    out = coreml.coreml_feed({"x": view}, {"x": "float32"})["x"]
    assert out.flags.c_contiguous and np.array_equal(out, view)


def _plan():
    P = coreml.OpPlan
    return [
        P("const", ("w",), None, (), None),
        P("transpose", ("x_t",), "NeuralEngine", ("CPU", "GPU", "NeuralEngine"), 0.02),
        P("conv", ("y1",), "NeuralEngine", ("CPU", "GPU", "NeuralEngine"), 0.48),
        P("conv", ("y2",), "GPU", ("CPU", "GPU"), 0.40),
        P("squeeze", ("logits1",), "CPU", ("CPU",), 0.10),
    ]


def test_placement_rows_from_plain_compute_plan():
    rows = coreml.placement_rows(_plan(), "CPU_AND_NE")
    assert [r["op_type"] for r in rows] == ["transpose", "conv", "conv", "squeeze"]
    assert [r["op_index"] for r in rows] == [0, 1, 2, 3]
    assert rows[1] == {
        "op_index": 1,
        "op_name": "y1",
        "op_type": "conv",
        "preferred_device": "NeuralEngine",
        "estimated_cost": 0.48,
        "compute_units": "CPU_AND_NE",
    }
    shares = coreml.placement_shares(rows)
    assert shares == pytest.approx({"CPU": 0.10, "GPU": 0.40, "NeuralEngine": 0.50})
    # no costs (Intel Macs): shares by op count
    nocost = [{**r, "estimated_cost": None} for r in rows]
    assert coreml.placement_shares(nocost) == pytest.approx(
        {"CPU": 0.25, "GPU": 0.25, "NeuralEngine": 0.5}
    )


def test_placement_rows_fit_the_store_schema():
    from anemll_spec.store import schema
    from anemll_spec.store.rows import check_row

    for i, r in enumerate(coreml.placement_rows(_plan(), "ALL")):
        check_row(schema.PLACEMENTS, r, managed=("case_id",), what=f"placement {i}")


def test_device_names_from_coremltools_classes():
    from coremltools.models.compute_device import (
        MLCPUComputeDevice,
        MLGPUComputeDevice,
        MLNeuralEngineComputeDevice,
    )

    for cls, name in [
        (MLCPUComputeDevice, "CPU"),
        (MLGPUComputeDevice, "GPU"),
        (MLNeuralEngineComputeDevice, "NeuralEngine"),
    ]:
        obj = cls.__new__(cls)  # no proxy needed: only the class is looked at
        assert coreml.device_name(obj) == name
    assert coreml.device_name(None) is None


def test_availability_reasons():
    assert coreml.availability_of("linux", False, (), "9.0") == (
        False,
        "not macOS (Core ML runs only on macOS)",
    )
    ok, why = coreml.availability_of("darwin", False, (15, 1), "9.0")
    assert not ok and "has no libcoremlpython" in why
    assert coreml.availability_of("darwin", True, (15, 1), None) == (
        False,
        "coremltools not installed",
    )
    ok, why = coreml.availability_of("darwin", True, (12, 6), "9.0")
    assert not ok and "older than 13" in why
    ok, why = coreml.availability_of("darwin", True, (15, 1), "9.0")
    assert ok and "coremltools 9.0" in why


def test_macos_version_parsing():
    assert coreml.parse_macos_version("14.4.1") == (14, 4, 1)
    assert coreml.parse_macos_version("") == ()
    assert coreml.parse_macos_version("15.0") >= coreml.COMPUTE_PLAN_MACOS


def test_registry_reports_every_backend_with_a_reason():
    got = {a.name: a for a in backends.all_availability()}
    assert set(got) == {"coreml", "numpy", "torch"}
    assert got["numpy"].available
    for a in got.values():
        assert a.reason
    if sys.platform != "darwin":
        assert not got["coreml"].available and got["coreml"].reason.startswith("not macOS")
        assert backends.resolve_auto()[0] == "numpy"
        with pytest.raises(Exception, match="backend coreml is not available here: not macOS"):
            backends.get("coreml")
    import importlib.util

    if importlib.util.find_spec("torch") is None:
        assert got["torch"].reason.startswith("torch not installed")


def test_registry_import_is_light():
    import subprocess

    code = (
        "import sys; from anemll_spec import backends; backends.all_availability(); "
        "print([m for m in ('coremltools', 'torch', 'duckdb') if m in sys.modules])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
