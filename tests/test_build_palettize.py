"""The fast palettizer gives stock coremltools' exact result: identical LUTs and indices.

Stock = `coremltools.optimize.coreml.palettize_weights` on the same dense model. Its
k-means is the vendored kmeans1d (exact weighted 1-D DP) for fp16 groups of >= 10,000
weights (scikit-learn otherwise, which is not installed here), so the groups below hold
>= 10,000 weights. The packages' weight.bin files are compared byte for byte.
"""

from __future__ import annotations

import numpy as np
import pytest
from build_util import lm_head, matmul, updated, weight_bin

from anemll_spec.build import build_package
from anemll_spec.build.palettize import _keys_to_fp16, fp16_keys, grouped_kmeans


def _stock(tmp_path, dense_model: dict, op_config) -> bytes:
    import coremltools as ct
    import coremltools.optimize.coreml as cto

    dense = tmp_path / "dense.mlpackage"
    build_package(dense_model, dense)
    model = ct.models.MLModel(str(dense), skip_model_load=True)
    out = cto.palettize_weights(model, cto.OptimizationConfig(global_config=op_config))
    out.save(str(tmp_path / "stock.mlpackage"))
    return weight_bin(tmp_path / "stock.mlpackage").read_bytes()


def test_lut6_grouped_identical_to_stock(tmp_path):
    import coremltools.optimize.coreml as cto

    base = lm_head(hidden_size=2048, vocab_size=64, chunks=2)  # groups of 8 x 2048 = 16,384
    comp = {
        "palettize": {
            "nbits": 6,
            "granularity": "per_grouped_channel",
            "group_size": 8,
            "mode": "kmeans",
        }
    }
    ours = tmp_path / "ours.mlpackage"
    build_package(updated(base, compression=comp), ours)
    stock = _stock(
        tmp_path,
        base,
        cto.OpPalettizerConfig(
            nbits=6, mode="kmeans", granularity="per_grouped_channel", group_size=8
        ),
    )
    assert weight_bin(ours).read_bytes() == stock


def test_per_tensor_matmul_axis_identical_to_stock(tmp_path):
    import coremltools.optimize.coreml as cto

    base = matmul(m=8, k=256, n=128)  # one group of 32,768 weights
    comp = {"palettize": {"nbits": 4, "granularity": "per_tensor", "mode": "kmeans"}}
    ours = tmp_path / "ours.mlpackage"
    build_package(updated(base, compression=comp), ours)
    stock = _stock(
        tmp_path, base, cto.OpPalettizerConfig(nbits=4, mode="kmeans", granularity="per_tensor")
    )
    assert weight_bin(ours).read_bytes() == stock


def test_grouped_kmeans_matches_stock_function_on_channel_axis_1():
    from coremltools.optimize.coreml._quantization_passes import palettize_weights

    rng = np.random.default_rng(3)
    w = (rng.standard_normal((2048, 32)) * 0.02).astype(np.float16)  # groups along axis 1
    ref = palettize_weights.grouped_channelwise_compress(w, "KMEANS", 3, 1, 8)
    idx, lut = grouped_kmeans(w, 3, 1, 8)
    assert np.array_equal(ref.lut.view(np.uint16), lut.view(np.uint16))
    assert np.array_equal(ref.indices.astype(np.uint8), idx)


def test_fp16_keys_preserve_order_and_fold_negative_zero():
    bits = np.arange(1 << 16, dtype=np.uint32).astype(np.uint16)
    vals = bits.view(np.float16)
    finite = vals[np.isfinite(vals)]
    keys = fp16_keys(finite)
    order = np.argsort(keys, kind="stable")
    assert np.all(np.diff(finite[order].astype(np.float64)) >= 0)
    assert fp16_keys(np.array([-0.0], np.float16))[0] == fp16_keys(np.array([0.0], np.float16))[0]
    back = _keys_to_fp16(keys)
    same = finite.view(np.uint16) != 0x8000
    assert np.array_equal(back[same].view(np.uint16), finite[same].view(np.uint16))


@pytest.mark.parametrize("workers", [1, 2])
def test_threads_do_not_change_the_result(workers):
    rng = np.random.default_rng(0)
    w = (rng.standard_normal((32, 512, 1, 1)) * 0.02).astype(np.float16)
    a = grouped_kmeans(w, 4, 0, 8, n_workers=1)
    b = grouped_kmeans(w, 4, 0, 8, n_workers=workers)
    assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])


@pytest.mark.parametrize(
    "compression, target",
    [
        (
            {
                "palettize": {
                    "nbits": 4,
                    "granularity": "per_grouped_channel",
                    "group_size": 16,
                    "mode": "uniform",
                }
            },
            "iOS18",
        ),
        ({"quantize": {"dtype": "int8", "granularity": "per_channel"}}, "iOS18"),
        ({"quantize": {"dtype": "int4", "granularity": "per_block", "block_size": 32}}, "iOS18"),
        ({"quantize": {"dtype": "int8", "granularity": "per_channel"}}, "iOS16"),
    ],
)
def test_streamed_compression_identical_to_stock(tmp_path, compression, target):
    """Row-slice compression (never the whole dense weight) equals stock on the whole."""
    import coremltools.optimize.coreml as cto

    from anemll_spec.build.compress import op_config
    from anemll_spec.spec.compression import config

    base = lm_head(hidden_size=512, vocab_size=512, chunks=2, deployment_target=target)
    ours = tmp_path / "ours.mlpackage"
    build_package(updated(base, compression=compression), ours)
    import coremltools as ct

    dense = tmp_path / "dense.mlpackage"
    build_package(base, dense)
    model = ct.models.MLModel(str(dense), skip_model_load=True)
    cfg = cto.OptimizationConfig(
        global_config=op_config(config(updated(base, compression=compression).compression))
    )
    fn = cto.palettize_weights if "palettize" in compression else cto.linear_quantize_weights
    fn(model, cfg).save(str(tmp_path / "stock.mlpackage"))
    stock = weight_bin(tmp_path / "stock.mlpackage")
    if target == "iOS16":
        # Stock re-converts with the default pass pipeline, whose const_deduplication
        # shares the two chunks' identical all-zero zero points in one blob; we keep two.
        assert _payloads(weight_bin(ours)) == _payloads(stock)
    else:
        assert weight_bin(ours).read_bytes() == stock.read_bytes()


def _payloads(path) -> set[tuple[int, bytes]]:
    from build_util import blob_records

    data = path.read_bytes()
    return {(dtype, data[off : off + size]) for dtype, size, off in blob_records(path)}
