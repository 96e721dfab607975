"""Compression modes: constexpr ops, bit widths and exact weight.bin sizes, read back."""

from __future__ import annotations

import math
import zlib

import numpy as np
import pytest
from build_util import (
    attention,
    attention_fields,
    blob_records,
    expected_weight_bin_size,
    lm_head,
    lm_head_fields,
    main_ops,
    matmul,
    matmul_fields,
    model,
    proto,
    weight_bin,
)
from pydantic import ValidationError

from anemll_spec.build import build_package, estimate
from anemll_spec.mlmodel.inspect import inspect_model

H, ROWS = 256, 256  # each lm_head chunk weight: (256, 256, 1, 1)


def _pal(nbits, granularity="per_grouped_channel", group_size=8, mode="kmeans"):
    body = {"nbits": nbits, "granularity": granularity, "mode": mode}
    if granularity == "per_grouped_channel":
        body["group_size"] = group_size
    return {"palettize": body}


def _constexpr(spec):
    return [op for op in main_ops(spec) if op.type.startswith("constexpr_")]


@pytest.mark.parametrize(
    "nbits, granularity, mode, target",
    [
        (6, "per_grouped_channel", "kmeans", "iOS18"),
        (4, "per_grouped_channel", "uniform", "iOS18"),
        (3, "per_tensor", "kmeans", "iOS18"),
        (2, "per_grouped_channel", "kmeans", "iOS18"),
        (1, "per_tensor", "uniform", "iOS18"),
        (8, "per_tensor", "kmeans", "iOS18"),
        (4, "per_tensor", "kmeans", "iOS16"),
        (6, "per_tensor", "uniform", "iOS17"),
    ],
)
def test_palettize_layout(tmp_path, nbits, granularity, mode, target):
    m = lm_head(compression=_pal(nbits, granularity, 8, mode), deployment_target=target)
    pkg = tmp_path / "p.mlpackage"
    build_package(m, pkg)
    spec = proto(pkg)
    ops = _constexpr(spec)
    assert [op.type for op in ops] == ["constexpr_lut_to_dense"] * 2
    n = ROWS * H
    groups = ROWS // 8 if granularity == "per_grouped_channel" else 1
    lut = groups * (1 << nbits)
    # a LUT of fewer than 10 entries is stored inline in the proto, not in weight.bin
    sizes = ([math.ceil(n * nbits / 8)] + ([lut * 2] if lut >= 10 else [])) * 2
    wb = weight_bin(pkg)
    assert wb.stat().st_size == expected_weight_bin_size(sizes)
    assert sorted(r[1] for r in blob_records(wb)) == sorted(sizes)
    assert estimate(m).weight_bytes == wb.stat().st_size
    comp = inspect_model(pkg, sha=False)["compression"]
    assert {(c["nbits"], c["granularity"]) for c in comp} == {(nbits, granularity)}
    if granularity == "per_grouped_channel":
        assert {c["group_size"] for c in comp} == {8}


def _regen(name: str, shape, seed=0, std=0.02):
    ss = np.random.SeedSequence(seed, spawn_key=(zlib.crc32(name.encode()),))
    x = np.random.Generator(np.random.PCG64(ss)).standard_normal(
        int(np.prod(shape)), dtype=np.float32
    )
    return (x * np.float32(std)).astype(np.float16).reshape(shape)


def test_palettized_weights_decode_close_to_the_originals(tmp_path):
    """Decode the saved 6-bit LUT + indices and compare with the regenerated fp16 weights."""
    from coremltools.libmilstoragepython import _BlobStorageReader

    pkg = tmp_path / "p.mlpackage"
    build_package(lm_head(compression=_pal(6)), pkg)
    reader = _BlobStorageReader(str(weight_bin(pkg)))
    recs = blob_records(weight_bin(pkg))
    # blob order: indices (uint6) then lut (fp16) for each chunk; record offset = data offset - 64
    idx = np.asarray(reader.read_uint6_data(recs[0][2] - 64)).astype(np.int64).reshape(ROWS, H)
    lut = np.asarray(reader.read_fp16_data(recs[1][2] - 64)).view(np.float16).reshape(ROWS // 8, 64)
    decoded = lut[np.arange(ROWS)[:, None] // 8, idx].astype(np.float32)
    orig = _regen("lm_head2_1.weight", (ROWS, H)).astype(np.float32)
    rel = np.linalg.norm(decoded - orig) / np.linalg.norm(orig)
    # Optimal 6-bit quantization of a Gaussian: SQNR ~31.8 dB, i.e. ~2.6% relative error;
    # a LUT per 8 rows does a little better.
    assert 0.01 < rel < 0.026
    assert idx.max() <= 63
    # k-means assignments: each weight maps to its nearest LUT entry
    luts = lut[np.arange(ROWS) // 8].astype(np.float32)  # (rows, 64)
    nearest = np.abs(orig[:, :, None] - luts[:, None, :]).min(axis=2)
    assert np.mean(np.abs(decoded - orig) <= nearest + 1e-7) > 0.999


@pytest.mark.parametrize(
    "dtype, granularity, target, op",
    [
        ("int8", "per_channel", "iOS16", "constexpr_affine_dequantize"),
        ("int8", "per_channel", "iOS18", "constexpr_blockwise_shift_scale"),
        ("int4", "per_block", "iOS18", "constexpr_blockwise_shift_scale"),
        ("int8", "per_block", "iOS18", "constexpr_blockwise_shift_scale"),
    ],
)
def test_quantize_layout(tmp_path, dtype, granularity, target, op):
    q = {"dtype": dtype, "granularity": granularity}
    if granularity == "per_block":
        q["block_size"] = 32
    pkg = tmp_path / "q.mlpackage"
    build_package(matmul(compression={"quantize": q}, deployment_target=target), pkg)
    ops = _constexpr(proto(pkg))
    assert [o.type for o in ops] == [op]
    bits = 8 if dtype == "int8" else 4
    # matmul weight (k=128, n=96): output channels are the 96 columns
    scales = 96 if granularity == "per_channel" else 96 * (128 // 32)
    sizes = [128 * 96 * bits // 8, scales * 2]
    if op == "constexpr_affine_dequantize":
        sizes.append(96)  # iOS16 form stores a zero point per channel
    wb = weight_bin(pkg)
    assert sorted(r[1] for r in blob_records(wb)) == sorted(sizes)
    assert estimate(matmul(compression={"quantize": q}, deployment_target=target)).weight_bytes == (
        wb.stat().st_size
    )
    comp = inspect_model(pkg, sha=False)["compression"][0]
    assert comp["nbits"] == bits and comp["granularity"] == granularity
    if granularity == "per_block":
        assert comp["block_size"] == 32


def test_projections_only_are_compressed(tmp_path):
    pkg = tmp_path / "a.mlpackage"
    build_package(attention(compression=_pal(4, "per_tensor")), pkg)
    names = [c["name"] for c in inspect_model(pkg, sha=False)["compression"]]
    assert len(names) == 4 and all("proj" in n for n in names)  # RoPE tables stay fp16


@pytest.mark.parametrize(
    "fields, match",
    [
        (lm_head_fields(compression=_pal(6), deployment_target="iOS17"), "per_grouped_channel"),
        (lm_head_fields(compression=_pal(3, "per_tensor"), deployment_target="iOS16"), "3-bit"),
        (
            lm_head_fields(
                compression={"quantize": {"dtype": "int4", "granularity": "per_channel"}},
                deployment_target="iOS17",
            ),
            "int4",
        ),
        (attention_fields(deployment_target="iOS17"), "iOS18"),
        (lm_head_fields(deployment_target="iOS15"), "iOS15"),
        (
            lm_head_fields(vocab_size=2 * 252, compression=_pal(6)),
            r"output channels of every weight \(252\)",
        ),
        (
            matmul_fields(
                compression={
                    "quantize": {"dtype": "int4", "granularity": "per_block", "block_size": 48}
                }
            ),
            "block_size 48",
        ),
    ],
)
def test_impossible_combinations_are_refused_by_the_spec(fields, match):
    """What Core ML cannot express never reaches the builder: the typed model refuses it."""
    with pytest.raises(ValidationError, match=match):
        model(fields)


def test_kmeans_and_uniform_luts_share_one_layout(tmp_path):
    """What lets the full-size LUT6 size test palettize uniformly (test_build_full.py)."""
    sizes = {}
    for mode in ("kmeans", "uniform"):
        pkg = tmp_path / f"{mode}.mlpackage"
        build_package(lm_head(compression=_pal(6, mode=mode)), pkg)
        sizes[mode] = [r[1] for r in blob_records(weight_bin(pkg))]
    assert sizes["kmeans"] == sizes["uniform"]


@pytest.mark.parametrize("granularity", ["per_channel", "per_block"])
def test_int4_stays_int4_when_a_weight_is_compressed_in_slices(tmp_path, monkeypatch, granularity):
    """A weight over SLICE_ELEMENTS is drawn and quantized in slices; joining them dropped
    coremltools' int4 marker, so every LLaMA-sized int4 weight was stored as int8 (twice
    the bytes, under an int4 label). Slices made small here, as a big weight's are."""
    from anemll_spec.build import graph

    q = {"dtype": "int4", "granularity": granularity}
    if granularity == "per_block":
        q["block_size"] = 32
    spec = lm_head(compression={"quantize": q})  # two (256, 256, 1, 1) conv heads
    whole, sliced = tmp_path / "whole.mlpackage", tmp_path / "sliced.mlpackage"
    build_package(spec, whole)
    monkeypatch.setattr(graph, "SLICE_ELEMENTS", 256 * 32)  # 32 rows a slice: 8 a head
    build_package(spec, sliced)
    size = weight_bin(sliced).stat().st_size
    assert size == weight_bin(whole).stat().st_size == estimate(spec).weight_bytes
    comp = inspect_model(sliced, sha=False)["compression"][0]
    assert (comp["dtype"], comp["nbits"]) == ("int4", 4)
    assert weight_bin(sliced).read_bytes() == weight_bin(whole).read_bytes()  # same data
