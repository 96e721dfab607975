"""Full-size LM heads come out at the published anemll-bench byte sizes (slow).

llama_lm_head: 4096 x 128256 x 2 + 64-byte file header + 8 x 64-byte blob records =
1,050,673,728 bytes. llama_lm_head_lut6: 6-bit indices (8 x 16032 x 4096 x 6 / 8) +
16,032 LUTs of 64 fp16 entries + 64 + 16 x 64 = 396,055,616 bytes.

The LUT6 head is built from specs/lm_head_lut6.yaml itself, with real k-means (the
exact DP over 16,032 groups: about 2.5 minutes on 2 free cores; docs/performance.md has
how it grows on a loaded machine), and reports its k-means progress as it goes.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from build_util import weight_bin

from anemll_spec.build import build
from anemll_spec.build.palettize import GroupsDone
from anemll_spec.mlmodel.inspect import inspect_model
from anemll_spec.spec import expand, load_spec
from anemll_spec.spec.compression import Palettize, config

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow


def _keep_groups(message: str, out: list[GroupsDone]) -> None:
    if isinstance(message, GroupsDone):
        out.append(message)


def _case(spec: str):
    (case,) = expand(load_spec(ROOT / "specs" / spec))
    return case


def test_llama_lm_head_fp16_exact_size(tmp_path):
    case = _case("lm_head.yaml")
    assert case.model_name == "llama_lm_head"
    b = build(case.model, cache_dir=tmp_path)
    assert weight_bin(b.path).stat().st_size == 1_050_673_728 == 4096 * 128256 * 2 + 64 + 8 * 64
    info = inspect_model(b.path, sha=False)
    assert info["ops"]["conv"] == 8 and info["compression"] == []
    assert [o["shape"] for o in info["outputs"]] == [[1, 1, 16032]] * 8
    assert info["inputs"] == [{"name": "hidden_states", "shape": [1, 1, 4096], "dtype": "float16"}]
    assert b.flops == info["flops"] == 2 * 4096 * 128256


def test_llama_lm_head_lut6_exact_size(tmp_path):
    case = _case("lm_head_lut6.yaml")
    assert case.model_name == "llama_lm_head_lut6"
    lut = config(case.model.compression)
    assert isinstance(lut, Palettize) and lut.mode == "kmeans" and lut.nbits == 6
    groups: list[GroupsDone] = []
    b = build(case.model, cache_dir=tmp_path, progress=lambda m: _keep_groups(m, groups))
    indices = 8 * 16032 * 4096 * 6 // 8
    luts = 16032 * 64 * 2
    assert weight_bin(b.path).stat().st_size == 396_055_616 == indices + luts + 64 + 16 * 64
    # progress: every group counted against 128256 rows / 8, at most one report a second
    assert groups[-1].done == groups[-1].total == 128256 // 8
    assert len(groups) <= 2 + groups[-1].elapsed_s
    comp = inspect_model(b.path, sha=False)["compression"]
    assert [(c["op"], c["nbits"], c["granularity"], c["group_size"]) for c in comp] == [
        ("constexpr_lut_to_dense", 6, "per_grouped_channel", 8)
    ] * 8
