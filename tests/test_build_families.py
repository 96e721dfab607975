"""Every family builds a real ML Program; checked by reading the saved package back."""

from __future__ import annotations

import zlib
from pathlib import Path

import numpy as np
import pytest
from build_util import (
    attention,
    blob_records,
    expected_weight_bin_size,
    ffn,
    lm_head,
    main_ops,
    matmul,
    op_counts,
    proto,
    weight_bin,
)

from anemll_spec.build import build_package, estimate

FP16 = 2


def _build(tmp_path: Path, model: dict, name: str = "m") -> Path:
    pkg = tmp_path / f"{name}.mlpackage"
    build_package(model, pkg)
    return pkg


def _io(spec):
    d = spec.description
    return (
        [(f.name, tuple(f.type.multiArrayType.shape)) for f in d.input],
        [(f.name, tuple(f.type.multiArrayType.shape)) for f in d.output],
        [(f.name, tuple(f.type.stateType.arrayType.shape)) for f in d.state],
    )


def test_lm_head_conv_mirrors_anemll(tmp_path):
    pkg = _build(tmp_path, lm_head(chunks=4, vocab_size=1024))
    spec = proto(pkg)
    ins, outs, states = _io(spec)
    assert ins == [("hidden_states", (1, 1, 256))]
    assert outs == [(f"logits{i}", (1, 1, 256)) for i in range(1, 5)]
    assert states == []
    counts = op_counts(spec)
    assert counts["conv"] == 4 and "linear" not in counts and "identity" not in counts
    # weight.bin: exactly the 4 fp16 weights, no bias, nothing else
    sizes = [256 * 256 * FP16] * 4
    wb = weight_bin(pkg)
    assert wb.stat().st_size == expected_weight_bin_size(sizes)
    assert [r[1] for r in blob_records(wb)] == sizes
    convs = [op for op in main_ops(spec) if op.type == "conv"]
    assert {
        tuple(d.constant.size for d in op.outputs[0].type.tensorType.dimensions) for op in convs
    } == {(1, 256, 1, 1)}


def test_lm_head_weights_are_the_seeded_normal_stream(tmp_path):
    from coremltools.libmilstoragepython import _BlobStorageReader

    m = lm_head(seed=11, weight_std=0.05)
    pkg = _build(tmp_path, m)
    reader = _BlobStorageReader(str(weight_bin(pkg)))
    first = np.asarray(reader.read_fp16_data(64)).view(np.float16)
    # Independently: PCG64 keyed by (seed, crc32(name)), float32 N(0,1) x std, cast to fp16.
    ss = np.random.SeedSequence(11, spawn_key=(zlib.crc32(b"lm_head2_1.weight"),))
    ref = np.random.Generator(np.random.PCG64(ss)).standard_normal(256 * 256, dtype=np.float32)
    assert np.array_equal(first, (ref * np.float32(0.05)).astype(np.float16))
    assert abs(float(first.astype(np.float32).std()) - 0.05) < 0.002


def test_lm_head_linear_layout(tmp_path):
    pkg = _build(tmp_path, lm_head(layout="linear", seq_len=3))
    spec = proto(pkg)
    ins, outs, _ = _io(spec)
    assert ins == [("hidden_states", (1, 3, 256))]
    assert outs == [("logits1", (1, 3, 256)), ("logits2", (1, 3, 256))]
    assert op_counts(spec).get("linear") == 2 and "conv" not in op_counts(spec)
    # mb.linear always carries a bias (zeros) blob of `out` elements
    sizes = [256 * 256 * FP16, 256 * FP16] * 2
    assert weight_bin(pkg).stat().st_size == expected_weight_bin_size(sizes)


@pytest.mark.parametrize("layout", ["conv", "linear"])
def test_ffn(tmp_path, layout):
    pkg = _build(tmp_path, ffn(layout=layout))
    spec = proto(pkg)
    ins, outs, _ = _io(spec)
    assert ins == [("hidden_states", (1, 4, 128))] and outs == [("output", (1, 4, 128))]
    counts = op_counts(spec)
    proj = "conv" if layout == "conv" else "linear"
    assert counts[proj] == 3 and counts["silu"] == 1 and counts["layer_norm"] == 1
    assert counts["concat"] == 1  # concat([x, -x]) feeding layer_norm
    ln = next(op for op in main_ops(spec) if op.type == "layer_norm")
    dims = [d.constant.size for d in ln.outputs[0].type.tensorType.dimensions]
    assert dims == [1, 4, 256]  # normalised over 2 x hidden
    sizes = [128 * FP16, 384 * 128 * FP16, 384 * 128 * FP16, 128 * 384 * FP16]
    if layout == "linear":
        sizes = [128 * FP16] + [
            s
            for w, b in [
                (384 * 128 * FP16, 384 * FP16),
                (384 * 128 * FP16, 384 * FP16),
                (128 * 384 * FP16, 128 * FP16),
            ]
            for s in (w, b)
        ]
    assert sorted(r[1] for r in blob_records(weight_bin(pkg))) == sorted(sizes)


@pytest.mark.parametrize("impl", ["sdpa", "matmul"])
def test_attention_stateful(tmp_path, impl):
    pkg = _build(tmp_path, attention(impl=impl, seq_len=2))
    spec = proto(pkg)
    assert spec.specificationVersion == 9
    ins, outs, states = _io(spec)
    assert ins == [
        ("hidden_states", (1, 2, 256)),
        ("position", (1,)),
        ("causal_mask", (1, 1, 2, 64)),
    ]
    assert states == [("key_cache", (1, 2, 64, 64)), ("value_cache", (1, 2, 64, 64))]
    assert outs == [("output", (1, 2, 256))]
    counts = op_counts(spec)
    assert counts["read_state"] == 2 and counts["slice_update"] == 2 and counts["write_state"] == 2
    assert counts["conv"] == 4 and counts["gather"] == 2
    if impl == "sdpa":
        assert counts["scaled_dot_product_attention"] == 1 and "softmax" not in counts
    else:
        assert counts["matmul"] == 2 and counts["softmax"] == 1
    # each state write follows its slice_update directly
    ops = main_ops(spec)
    for i, op in enumerate(ops):
        if op.type == "write_state":
            assert ops[i - 1].type == "slice_update"
    # q(4x64), k(2x64), v(2x64), o: 256 in/out; RoPE cos/sin tables (64 x 64)
    sizes = [
        256 * 256 * FP16,
        128 * 256 * FP16,
        128 * 256 * FP16,
        64 * 64 * FP16,
        64 * 64 * FP16,
        256 * 256 * FP16,
    ]
    assert sorted(r[1] for r in blob_records(weight_bin(pkg))) == sorted(sizes)


def test_matmul(tmp_path):
    pkg = _build(tmp_path, matmul())
    spec = proto(pkg)
    ins, outs, _ = _io(spec)
    assert ins == [("x", (64, 128))] and outs == [("y", (64, 96))]
    assert op_counts(spec)["matmul"] == 1 and set(op_counts(spec)) == {"const", "matmul"}
    assert weight_bin(pkg).stat().st_size == expected_weight_bin_size([128 * 96 * FP16])


def test_float32_and_ios16(tmp_path):
    pkg = _build(
        tmp_path, matmul(dtype="float32", compute_precision="float32", deployment_target="iOS16")
    )
    spec = proto(pkg)
    assert spec.specificationVersion == 7
    assert spec.description.input[0].type.multiArrayType.dataType == 65568  # FLOAT32
    assert weight_bin(pkg).stat().st_size == expected_weight_bin_size([128 * 96 * 4])


def test_fp16_io_fp32_compute_casts(tmp_path):
    pkg = _build(tmp_path, lm_head(compute_precision="float32"), "c")
    spec = proto(pkg)
    counts = op_counts(spec)
    assert counts["cast"] == 3  # input in, two outputs back to fp16
    assert spec.description.output[0].type.multiArrayType.dataType == 65552  # FLOAT16
    assert weight_bin(pkg).stat().st_size == expected_weight_bin_size([256 * 256 * 4] * 2)


def test_same_case_gives_identical_weight_bin(tmp_path):
    a = _build(tmp_path / "a", attention())
    b = _build(tmp_path / "b", attention())
    c = _build(tmp_path / "c", attention(seed=1))
    assert weight_bin(a).read_bytes() == weight_bin(b).read_bytes()
    assert weight_bin(a).read_bytes() != weight_bin(c).read_bytes()


@pytest.mark.parametrize("make", [lm_head, ffn, attention, matmul])
def test_estimate_matches_saved_weight_bytes(tmp_path, make):
    m = make()
    pkg = _build(tmp_path, m)
    assert estimate(m).weight_bytes == weight_bin(pkg).stat().st_size


def test_estimate_warns_about_ane_limits():
    big = lm_head(hidden_size=64, vocab_size=32768, chunks=1)
    warnings = estimate(big).warnings
    assert any("32768" in w and "16384" in w for w in warnings)
    assert estimate(lm_head(hidden_size=64, vocab_size=32768, chunks=2)).warnings == []
    assert any("float32" in w for w in estimate(matmul(compute_precision="float32")).warnings)


def test_attention_says_its_rope_tables_stay_dense_under_compression():
    """coremltools' own quantize pass (over 2048 elements) would compress the RoPE
    tables too; ours keeps them dense (declared so, and GB/s counts them): the caveat
    says so where a compression is set."""
    plain = attention(context_length=256)
    int8 = attention(context_length=256, compression={"quantize": {"dtype": "int8"}})
    assert "dense under the compression" not in plain.bandwidth_caveat()
    assert "MB, dense under the compression, of which a call reads" in int8.bandwidth_caveat()
    rope = [w for w in int8.weights() if w.name.startswith("rope.")]
    assert len(rope) == 2 and not any(w.compressible for w in rope)
