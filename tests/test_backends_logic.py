"""Backend registry and the Core ML backend's logic that needs no Core ML (runs on Linux)."""

from __future__ import annotations

import sys
from pathlib import Path

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


def test_rosetta_is_said_not_refused():
    """Apple documents no rule about the Neural Engine under Rosetta: no refusal, a note."""
    assert coreml.rosetta_note(False, "CPU_AND_NE") is None
    assert coreml.rosetta_note(None, "CPU_AND_NE") is None
    note = coreml.rosetta_note(True, "CPU_AND_NE")
    assert "translated by Rosetta" in note and "undocumented" in note
    assert "CPU_AND_NE" in note and "placements" in note


def test_feed_casts_once_to_what_core_ml_takes():
    from anemll_spec.model_io import ModelIO, TensorSpec, synth_inputs

    io = ModelIO(
        inputs=[
            TensorSpec("hidden_states", (1, 1, 64), "float16"),
            TensorSpec("position_ids", (1,), "int32"),
            TensorSpec("causal_mask", (1, 1, 1, 8), "float16"),
        ],
        outputs=[TensorSpec("y", (1, 1, 64), "float16")],
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


def test_feed_follows_the_declared_type_before_the_arrays():
    """Issue 19.8: a float array for a declared int32 input goes in as int32 (it used to
    become float32, which Core ML then refuses or misreads)."""
    pos = np.array([[0.0, 3.0, 7.0]], np.float32)  # the old code made this float32
    feed = coreml.coreml_feed(
        {"ids": pos, "x": np.array([1, 2], np.int64)}, {"ids": "int32", "x": "float16"}
    )
    assert feed["ids"].dtype == np.int32 and feed["ids"].tolist() == [[0, 3, 7]]
    assert feed["x"].dtype == np.float32 and feed["x"].tolist() == [1.0, 2.0]
    f32 = coreml.coreml_feed({"m": np.ones(3, np.float16)}, {"m": "float32"})["m"]
    assert f32.dtype == np.float32
    f64 = coreml.coreml_feed({"d": np.ones(2, np.float32)}, {"d": "float64"})["d"]
    assert f64.dtype == np.float64  # Core ML's Double
    # undeclared inputs fall back to their array: small floats -> float32, ints -> int32
    und = coreml.coreml_feed({"a": np.ones(2, np.float16), "b": np.ones(2, np.int64)}, {})
    assert und["a"].dtype == np.float32 and und["b"].dtype == np.int32
    with pytest.raises(BackendError, match="cannot pass int8"):
        coreml.coreml_feed({"q": np.zeros(2, np.int8)}, {"q": "int8"})


def test_int8_io_refused_by_name():
    with pytest.raises(BackendError, match=r"output logits \(int8\).*compiled out"):
        coreml.check_dtypes({"logits": "int8", "y": "float16"}, "output", "9.0")
    coreml.check_dtypes({"x": "float16", "ids": "int32"}, "input", "9.0")


class _Proxy:
    """Stands in for coremltools' native _MLModelProxy (which needs macOS)."""

    def get_last_predict_duration_in_nano_seconds(self) -> int:
        return 1


class _Model:
    def __init__(self) -> None:
        self._proxy = _Proxy()


def test_close_releases_the_model_and_its_proxy():
    """Issue 19.4: runtime_probe is a bound method of the proxy (the native MLModel): it
    kept the model alive after close(). Both must be collectable once closed."""
    import gc
    import weakref

    from anemll_spec.backends.base import Prepared

    model = _Model()
    model_ref, proxy_ref = weakref.ref(model), weakref.ref(model._proxy)
    prepared = Prepared(path=Path("m.mlmodelc"), source=Path("m.mlpackage"), compile_s=None)
    sess = coreml.CoreMLSession(model, prepared, "ALL")
    assert sess.runtime_probe() == 1
    del model
    gc.collect()
    assert model_ref() is not None  # the open session holds it
    sess.close()
    gc.collect()
    assert model_ref() is None and proxy_ref() is None
    assert sess.runtime_probe is None
    with pytest.raises(BackendError, match="closed"):
        sess.bind({})


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
    # what was divided is said: costs, op counts, or costs with some ops left out
    assert coreml.placement_basis(rows) == "estimated cost"
    assert coreml.placement_basis(nocost) == "op count (4 ops; Core ML estimated no costs)"
    mixed = [rows[0], *nocost[1:]]
    assert coreml.placement_shares(mixed) == {rows[0]["preferred_device"]: 1.0}
    assert coreml.placement_basis(mixed) == "estimated cost (3 of 4 ops had none: left out)"


def test_placement_rows_fit_the_store_schema():
    from anemll_spec.store import schema
    from anemll_spec.store.rows import check_row

    rows = coreml.placement_rows(_plan(), "ALL")
    assert len(rows) == sum(op.op_type != "const" for op in _plan()) == 4
    for i, r in enumerate(rows):
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
