"""The build's estimate of its peak memory (what preflight refuses a build by) against
the peak a real build reaches, measured in its own process (ru_maxrss), as
benchmarks/build_memory.py measures it. A build the estimate undercounts is killed at
the memory limit instead of refused."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from build_util import attention, matmul

from anemll_spec.build import estimate
from anemll_spec.build.attention import rope_tables

ROOT = Path(__file__).resolve().parents[1]

MEASURE = """
import json, resource, sys
sys.path.insert(0, sys.argv[1])
import build_util
from anemll_spec.build import build
fields = json.loads(sys.argv[3])
m = getattr(build_util, fields.pop("family"))(**fields)
b = build(m, cache_dir=sys.argv[2])
print(json.dumps({"peak": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
                  "weight_bytes": b.weight_bytes}))
"""


def measured_peak(tmp_path: Path, family: str, **fields) -> dict:
    """A fresh build of the model in its own process: its peak RSS and weight bytes."""
    r = subprocess.run(
        [sys.executable, "-c", MEASURE, str(ROOT / "tests"), str(tmp_path / "cache"),
         json.dumps({"family": family, **fields})],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout.strip().splitlines()[-1])


def _rope_float64(context: int, head_dim: int, theta: float):
    """The tables as the builder made them before: whole float64 tables."""
    inv_freq = 1.0 / (theta ** (np.arange(0, head_dim, 2, dtype=np.float64) / head_dim))
    freqs = np.outer(np.arange(context, dtype=np.float64), inv_freq)
    emb = np.concatenate([freqs, freqs], axis=-1)
    return np.cos(emb), np.sin(emb)


@pytest.mark.parametrize("dtype", [np.float16, np.float32])
@pytest.mark.parametrize(("context", "head_dim"), [(64, 8), (3000, 1024)])  # 1 and 2 slices
def test_rope_tables_are_the_float64_tables_cast_once(context, head_dim, dtype):
    cos, sin = rope_tables(context, head_dim, 500000.0, dtype)
    cos64, sin64 = _rope_float64(context, head_dim, 500000.0)
    assert cos.dtype == sin.dtype == dtype
    assert cos.tobytes() == cos64.astype(dtype).tobytes()
    assert sin.tobytes() == sin64.astype(dtype).tobytes()


def test_the_estimate_covers_an_attention_builds_peak(tmp_path):
    """RoPE tables of context 16384 x head_dim 1024 (64 MB in fp16): their float64
    working copies peaked at 0.77 GB against an estimate of 0.49 GB."""
    fields = {"hidden_size": 64, "heads": 1, "kv_heads": 1, "head_dim": 1024,
              "context_length": 16384}  # fmt: skip
    got = measured_peak(tmp_path, "attention", **fields)
    est = estimate(attention(**fields))
    assert got["weight_bytes"] == est.weight_bytes
    assert got["peak"] <= est.build_peak_bytes, (got, est)


def test_the_estimate_covers_a_compressed_matmuls_peak(tmp_path):
    """matmul's (k, n) weight is drawn whole and compressed by stock coremltools (only
    output-axis-0 projections are drawn in slices): int8 per channel of 8192 x 8192
    peaked at 0.70 GB against an estimate of 0.48 GB that assumed slices."""
    fields = {"m": 1, "k": 8192, "n": 8192, "compression": {"quantize": {"dtype": "int8"}}}
    got = measured_peak(tmp_path, "matmul", **fields)
    est = estimate(matmul(**fields))
    assert got["weight_bytes"] == est.weight_bytes
    assert got["peak"] <= est.build_peak_bytes, (got, est)
