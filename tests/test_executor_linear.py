"""Executor vs numpy: conv (1x1 fast path and general), linear, matmul, einsum, SDPA."""

from __future__ import annotations

import itertools
import math

import coremltools as ct
import numpy as np
import pytest
from coremltools.converters.mil.mil import types
from fixtures.executor.mil_models import mb, save_program, saved_op_types

from anemll_spec.executor import load

RNG = np.random.default_rng(2)


def conv_ref(x, w, b=None, stride=(1, 1), pads=((0, 0), (0, 0)), dil=(1, 1), groups=1):
    """Direct-loop 2-D convolution (cross-correlation), float64."""
    x = np.pad(x.astype(np.float64), ((0, 0), (0, 0), *pads))
    n, c, h, wd = x.shape
    o, cg, kh, kw = w.shape
    oh = (h - (kh - 1) * dil[0] - 1) // stride[0] + 1
    ow = (wd - (kw - 1) * dil[1] - 1) // stride[1] + 1
    out = np.zeros((n, o, oh, ow))
    og = o // groups
    for oc, i, j in itertools.product(range(o), range(oh), range(ow)):
        g = oc // og
        patch = x[
            :,
            g * cg : (g + 1) * cg,
            i * stride[0] : i * stride[0] + (kh - 1) * dil[0] + 1 : dil[0],
            j * stride[1] : j * stride[1] + (kw - 1) * dil[1] + 1 : dil[1],
        ]
        out[:, oc, i, j] = (patch * w[oc]).sum(axis=(1, 2, 3))
    if b is not None:
        out += b.reshape(1, -1, 1, 1)
    return out


def same_pads(size, k, s, d, lower=False):
    eff = (k - 1) * d + 1
    total = max(0, (math.ceil(size / s) - 1) * s + eff - size)
    small, big = total // 2, total - total // 2
    return (big, small) if lower else (small, big)


X = RNG.standard_normal((2, 4, 7, 6)).astype(np.float32)
W1 = RNG.standard_normal((5, 4, 1, 1)).astype(np.float32)
B1 = RNG.standard_normal((5,)).astype(np.float32)
W3 = RNG.standard_normal((6, 2, 3, 2)).astype(np.float32)  # groups=2
B3 = RNG.standard_normal((6,)).astype(np.float32)

CONVS = {
    "conv1x1": (dict(weight=W1), lambda x: conv_ref(x, W1)),
    "conv1x1_bias": (dict(weight=W1, bias=B1), lambda x: conv_ref(x, W1, B1)),
    "conv_valid_strided": (
        dict(weight=W3, bias=B3, strides=[2, 1], groups=2),
        lambda x: conv_ref(x, W3, B3, stride=(2, 1), groups=2),
    ),
    "conv_same_dilated": (
        dict(weight=W3, pad_type="same", strides=[2, 2], dilations=[2, 1], groups=2),
        lambda x: conv_ref(
            x,
            W3,
            stride=(2, 2),
            dil=(2, 1),
            groups=2,
            pads=(same_pads(7, 3, 2, 2), same_pads(6, 2, 2, 1)),
        ),
    ),
    "conv_same_lower": (
        dict(weight=W3, pad_type="same_lower", groups=2),
        lambda x: conv_ref(
            x, W3, groups=2, pads=(same_pads(7, 3, 1, 1, True), same_pads(6, 2, 1, 1, True))
        ),
    ),
    "conv_custom_pad": (
        dict(weight=W3, pad_type="custom", pad=[1, 0, 2, 1], groups=2),
        lambda x: conv_ref(x, W3, groups=2, pads=((1, 0), (2, 1))),
    ),
    "conv1x1_strided": (dict(weight=W1, strides=[2, 3]), lambda x: conv_ref(x, W1, stride=(2, 3))),
}

LW = RNG.standard_normal((3, 6)).astype(np.float32)
LB = RNG.standard_normal((3,)).astype(np.float32)


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    @mb.program(
        input_specs=[
            mb.TensorSpec((2, 4, 7, 6), dtype=types.fp32),  # x (conv input)
            mb.TensorSpec((2, 5, 6), dtype=types.fp32),  # a
            mb.TensorSpec((3, 1, 4, 6), dtype=types.fp32),  # b
            mb.TensorSpec((6,), dtype=types.fp32),  # v
        ],
        opset_version=ct.target.iOS18,
    )
    def prog(x, a, b, v):
        outs = [mb.conv(x=x, name=n, **kw) for n, (kw, _) in CONVS.items()]
        outs += [
            mb.linear(x=a, weight=LW, bias=LB, name="linear"),
            mb.linear(x=v, weight=LW, name="linear_vec"),
            mb.matmul(x=a, y=b, transpose_y=True, name="matmul_bcast_ty"),  # (3,2,5,4)
            mb.matmul(x=b, y=b, transpose_x=True, name="matmul_tx"),  # (3,1,6,6)
            mb.matmul(x=v, y=np.ascontiguousarray(LW.T), name="matmul_vec_left"),
            mb.einsum(
                values=(
                    mb.reshape(x=a, shape=[2, 5, 1, 6]),
                    mb.reshape(
                        x=mb.slice_by_size(x=b, begin=[0, 0, 0, 0], size=[1, 1, 4, 6]),
                        shape=[1, 6, 1, 4],
                    ),
                ),
                equation="nchw,nwhu->nchu",
                name="einsum",
            ),
        ]
        return tuple(outs)

    return save_program(prog, tmp_path_factory.mktemp("lin") / "linear.mlpackage")


def test_ops_are_in_the_saved_program(model):
    saved = saved_op_types(model)
    assert saved.count("conv") == len(CONVS)
    assert {"linear", "matmul", "einsum"} <= set(saved)


def test_linear_ops_match_numpy(model):
    a = RNG.standard_normal((2, 5, 6)).astype(np.float32)
    b = RNG.standard_normal((3, 1, 4, 6)).astype(np.float32)
    v = RNG.standard_normal((6,)).astype(np.float32)
    out = load(model).predict({"x": X, "a": a, "b": b, "v": v})
    for n, (_, f) in CONVS.items():
        np.testing.assert_allclose(out[n], f(X), rtol=1e-5, atol=1e-5, err_msg=n)
    tol = dict(rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(out["linear"], a @ LW.T + LB, **tol)
    np.testing.assert_allclose(out["linear_vec"], v @ LW.T, **tol)
    np.testing.assert_allclose(out["matmul_bcast_ty"], a @ np.swapaxes(b, -1, -2), **tol)
    np.testing.assert_allclose(out["matmul_tx"], np.swapaxes(b, -1, -2) @ b, **tol)
    np.testing.assert_allclose(out["matmul_vec_left"], v @ LW.T, **tol)
    x4 = a.reshape(2, 5, 1, 6)
    y4 = b[:1, :1].reshape(1, 6, 1, 4)
    expected = np.einsum("nchw,nwhu->nchu", x4, np.broadcast_to(y4, (2, 6, 1, 4)))
    np.testing.assert_allclose(out["einsum"], expected, **tol)


def _softmax(s):
    e = np.exp(s - s.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def test_sdpa_bool_and_float_masks(tmp_path):
    q = RNG.standard_normal((1, 2, 3, 4)).astype(np.float32)
    k = RNG.standard_normal((1, 2, 5, 4)).astype(np.float32)
    v = RNG.standard_normal((1, 2, 5, 3)).astype(np.float32)
    bool_mask = np.tril(np.ones((3, 5), bool), k=2)
    float_mask = RNG.standard_normal((1, 1, 3, 5)).astype(np.float32)

    @mb.program(
        input_specs=[
            mb.TensorSpec(q.shape),
            mb.TensorSpec(k.shape),
            mb.TensorSpec(v.shape),
            mb.TensorSpec(float_mask.shape),
        ],
        opset_version=ct.target.iOS18,
    )
    def prog(q, k, v, m):
        return (
            mb.scaled_dot_product_attention(query=q, key=k, value=v, name="plain"),
            mb.scaled_dot_product_attention(
                query=q, key=k, value=v, attn_mask=bool_mask, name="bool_mask"
            ),
            mb.scaled_dot_product_attention(
                query=q, key=k, value=v, attn_mask=m, name="float_mask"
            ),
        )

    path = save_program(prog, tmp_path / "sdpa.mlpackage")
    assert saved_op_types(path).count("scaled_dot_product_attention") == 3
    out = load(path).predict({"q": q, "k": k, "v": v, "m": float_mask})
    scores = q.astype(np.float64) @ np.swapaxes(k, -1, -2) / 2.0  # sqrt(E=4)
    np.testing.assert_allclose(out["plain"], _softmax(scores) @ v, rtol=1e-5, atol=1e-6)
    masked = np.where(bool_mask, scores, -np.inf)
    np.testing.assert_allclose(out["bool_mask"], _softmax(masked) @ v, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(
        out["float_mask"], _softmax(scores + float_mask) @ v, rtol=1e-5, atol=1e-6
    )


def test_fp16_weights_lm_head_chunks(tmp_path):
    """The lm_head shape family in miniature: fp16 conv 1x1 chunks from one input."""
    ws = [(RNG.standard_normal((8, 16, 1, 1)) * 0.02).astype(np.float16) for _ in range(3)]

    @mb.program(
        input_specs=[mb.TensorSpec((1, 16, 1, 1), dtype=types.fp16)], opset_version=ct.target.iOS18
    )
    def prog(x):
        return tuple(mb.conv(x=x, weight=w, name=f"logits{i + 1}") for i, w in enumerate(ws))

    path = save_program(prog, tmp_path / "head.mlpackage", precision="fp16", passes="default")
    prog = load(path)
    assert list(prog.outputs) == ["logits1", "logits2", "logits3"]
    assert prog.inputs["x"].dtype == "float16"
    x = RNG.standard_normal((1, 16, 1, 1)).astype(np.float32)
    out = prog.predict({"x": x})
    x16 = x.astype(np.float16).astype(np.float64).reshape(16)  # fp16 input: rounded first
    for i, w in enumerate(ws):
        expected = w.reshape(8, 16).astype(np.float64) @ x16
        np.testing.assert_allclose(out[f"logits{i + 1}"].reshape(8), expected, rtol=1e-6, atol=1e-7)
