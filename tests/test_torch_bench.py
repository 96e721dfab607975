"""bench on the torch backend end to end (CPU here; the same path runs CUDA/MPS)."""

from __future__ import annotations

import duckdb
import pytest

pytestmark = pytest.mark.torch

SPEC = """\
name: torch_tiny
model: {family: lm_head, hidden_size: 64, vocab_size: 256, chunks: 2}
run:
  backends: [torch]
  device: cpu
  warmup: 2
  iterations: 15
  max_time_s: 5
  dispatch_floor: false
"""


def test_bench_on_torch_records_device_versions_and_verify(cli, tmp_path):
    import torch

    spec = tmp_path / "t.yaml"
    spec.write_text(SPEC)
    store = tmp_path / "r.duckdb"
    r = cli("bench", spec, "--store", store)
    assert r.returncode == 0, r.stderr
    con = duckdb.connect(str(store), read_only=True)
    (backend, device, status, verify, n) = con.execute(
        "SELECT backend, device, status, verify_status, n_samples FROM cases"
    ).fetchone()
    (torch_version,) = con.execute("SELECT torch_version FROM hosts").fetchone()
    con.close()
    assert (backend, device, status) == ("torch", "cpu", "ok")
    # torch fp16 outputs checked against the numpy fp32 reference of the same package
    assert verify == "pass" and n == 15
    assert torch_version == torch.__version__
