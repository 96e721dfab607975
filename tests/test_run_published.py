"""The factor against published anemll-bench results, read from a real store's reference table."""

from __future__ import annotations

import csv
from types import SimpleNamespace

import numpy as np
import pytest
from conftest import ROOT, SPECS

from anemll_spec import stats
from anemll_spec.run import VariantResult, add_published, chip_name, resolve_variants
from anemll_spec.spec import expand, load_spec

CSV = ROOT / "store" / "reference" / "anemll_bench_published.csv"


def _published(model: str, metric: str) -> list[dict]:
    with open(CSV, newline="") as f:
        rows = [r for r in csv.DictReader(f) if r["model"] == model and r["metric"] == metric]
    return sorted(rows, key=lambda r: (r["source"], r["chip"]))


def _result(spec: str, median_ms: float) -> VariantResult:
    (case,) = expand(load_spec(SPECS / spec))
    r = VariantResult(case, "coreml", "CPU_AND_NE")
    # a summary of samples all at median_ms: the factor is plain arithmetic on the median
    r.summary = stats.summarize(np.full(50, int(median_ms * 1e6)))
    r.build = SimpleNamespace(
        weight_bytes=1_050_673_728 if "lut6" not in spec else 396_055_616, flops=2 * 4096 * 128256
    )
    return r


@pytest.fixture
def store(tmp_path):
    from anemll_spec.store import open_store

    target = str(tmp_path / "s.duckdb")
    open_store(target).close()  # a fresh store loads the published reference rows
    return target


def test_same_chip_fp16_head_compares_bandwidth(store):
    r = _result("lm_head.yaml", 9.0)
    assert r.case.model_name == "llama_lm_head"
    add_published(store, [r], {"chip": "Apple M4 Max"})
    ref = next(p for p in _published("llama_lm_head", "bandwidth_gbps") if p["chip"] == "M4 Max")
    ours = 1_050_673_728 / 9e-3 / 1e9
    assert r.published["factor"] == pytest.approx(ours / float(ref["value"]))
    assert r.published["text"] == f"{ours / float(ref['value']):.2f}x M4 Max, published"
    assert r.published["source"] == ref["source"]


def test_lut6_head_compares_latency(store):
    r = _result("lm_head_lut6.yaml", 4.5)
    assert r.case.model_name == "llama_lm_head_lut6"
    add_published(store, [r], {"chip": "Apple M1"})
    ref = next(p for p in _published("llama_lm_head_lut6", "latency_ms") if p["chip"] == "M1")
    assert r.published["factor"] == pytest.approx(float(ref["value"]) / 4.5)  # > 1: faster


def test_unknown_chip_compares_with_the_fastest_published(store):
    r = _result("lm_head.yaml", 40.0)
    add_published(store, [r], {"chip": "AMD EPYC"})
    best = max(_published("llama_lm_head", "bandwidth_gbps"), key=lambda p: float(p["value"]))
    assert r.published["chip"] == best["chip"]
    assert r.published["text"].endswith(f"x {best['chip']}, fastest published")


def test_other_models_get_no_factor(store, tmp_path):
    spec = tmp_path / "s.yaml"
    spec.write_text(
        "name: small\nmodel: {family: lm_head, hidden_size: 64, vocab_size: 64, chunks: 1}\n"
    )
    (case,) = expand(load_spec(spec))
    r = VariantResult(case, "numpy", None)
    r.summary = stats.summarize(np.full(5, 1_000_000))
    add_published(store, [r], {"chip": "Apple M4 Max"})
    assert r.published is None


def test_chip_names_and_variant_resolution():
    assert chip_name("Apple M4 Max") == "M4 Max" and chip_name(None) is None
    (case,) = expand(load_spec(SPECS / "compute_units.yaml"))
    on_mac, notes = resolve_variants(case, "coreml")
    assert on_mac == [("coreml", cu) for cu in ("CPU_ONLY", "CPU_AND_GPU", "CPU_AND_NE", "ALL")]
    assert notes == []
    on_linux, notes = resolve_variants(case, "numpy")
    assert on_linux == [("numpy", None)] and "4 compute-unit variants" in notes[0]
