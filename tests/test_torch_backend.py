"""The torch backend as the runner uses it (registry, sessions, the bound timed call, verify),
device selection, host info, optional-import hygiene, and the CUDA paths (graph capture
against eager, the Triton GEMV against cuBLAS), which run only where CUDA is."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from build_util import attention, ffn, lm_head

from anemll_spec import backends
from anemll_spec.build import build
from anemll_spec.errors import InputError
from anemll_spec.executor import load
from anemll_spec.model_io import describe, synth_inputs
from anemll_spec.verify import compare

try:
    import torch
except ImportError:  # conftest skips (or, in CI, fails) the torch-marked tests
    torch = None

pytestmark = pytest.mark.torch
HAS_CUDA = torch is not None and torch.cuda.is_available()
cuda_only = pytest.mark.skipif(not HAS_CUDA, reason="needs CUDA")
TOL = {"max_abs_error": 0.05, "rel_l2_error": 0.01, "min_cosine": 0.999, "min_top1_agreement": 1.0}
HEAD = dict(hidden_size=128, vocab_size=384, chunks=3)


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return tmp_path_factory.mktemp("torch-backend")


def open_session(path, tmp_path, device="auto", **options):
    b = backends.get("torch") if not options else backends._module("torch").backend(**options)
    prepared = b.prepare(path, tmp_path)
    return b.load(prepared, None, device=device)


def test_registered_and_available():
    a = backends.availability("torch")
    assert a.available and "torch" in a.reason.lower()
    assert backends.get("torch").name == "torch"
    assert "torch" not in backends.AUTO_ORDER  # opt-in only: never picked by `auto`


def test_session_predicts_verifies_and_times_like_the_runner(cache, tmp_path):
    path = build(lm_head(**HEAD), cache_dir=cache).path
    io = describe(path)
    inputs = synth_inputs(io, seed=0)
    sess = open_session(path, tmp_path)
    assert sess.device in ("cuda", "mps", "cpu")
    feed = sess.feed(inputs)
    assert all(isinstance(v, torch.Tensor) for v in feed.values())
    state = sess.new_state()
    assert state is None
    first = sess.predict(feed, state)
    ref = load(path).predict(inputs)
    verdict = compare(first, ref, TOL, vocab_chunk=128)
    assert verdict.status == "pass", verdict.note
    assert 0 < verdict.rel_l2_error < 3e-3  # fp16 compute against the fp32 reference
    call = sess.bind(feed, state)
    assert call() is None
    again = sess.predict(feed, state)
    for k in ref:
        np.testing.assert_array_equal(again[k], first[k])  # deterministic, same buffers
    info = sess.describe()
    assert info["dtype"] == "float16" and info["op_counts"]["matmul"] == 1
    assert sess.notes and sess.device in sess.notes[0]
    if sess.device == "cuda":
        assert sess.runtime_probe() > 0
    else:
        assert sess.runtime_probe is None
    sess.close()


def test_stateful_session_keeps_state_across_calls(cache, tmp_path):
    m = attention(hidden_size=64, heads=4, kv_heads=2, head_dim=16, context_length=8)
    path = build(m, cache_dir=cache).path
    sess = open_session(path, tmp_path)
    state = sess.new_state()
    inputs = synth_inputs(describe(path), seed=1)
    sess.predict(sess.feed(inputs), state)
    written = state.read("key_cache")
    ref_prog = load(path)
    ref_state = ref_prog.make_state()
    ref_prog.predict(inputs, ref_state)
    scale = np.abs(ref_state.read("key_cache").astype(np.float32)).max()
    np.testing.assert_allclose(
        written.astype(np.float32),
        ref_state.read("key_cache").astype(np.float32),
        atol=4e-3 * scale,
    )
    assert np.any(written)


def test_device_resolution():
    from anemll_spec.executor.torch_backend import resolve_device

    want = "cuda" if HAS_CUDA else ("mps" if torch.backends.mps.is_available() else "cpu")
    assert resolve_device("auto").type == want
    assert resolve_device("cpu").type == "cpu"
    with pytest.raises(InputError, match="one of auto, cuda, mps, cpu"):
        resolve_device("tpu")
    if not HAS_CUDA:
        with pytest.raises(InputError, match="CUDA is not available"):
            resolve_device("cuda")


def test_compute_units_do_not_apply(cache, tmp_path):
    path = build(lm_head(**HEAD), cache_dir=cache).path
    b = backends.get("torch")
    with pytest.raises(backends.base.BackendError, match="compute units"):
        b.load(b.prepare(path, tmp_path), "CPU_AND_NE")


def test_torch_info_names_versions_and_gpu():
    from anemll_spec.backends.torch_ import torch_info

    info = torch_info()
    assert info["torch_version"] == torch.__version__
    assert info["cuda_version"] == torch.version.cuda
    if HAS_CUDA:
        assert info["gpu"] == torch.cuda.get_device_name(0)
        assert info["gpu_driver"] and info["gpu_sm_count"] > 0


def test_nothing_imports_torch_at_module_level():
    code = (
        "import sys\n"
        "import anemll_spec.backends, anemll_spec.backends.torch_, anemll_spec.executor\n"
        "import anemll_spec.executor.simplify, anemll_spec.run, anemll_spec.cli\n"
        "from anemll_spec import backends\n"
        "assert backends.availability('torch').available\n"
        "assert 'torch' not in sys.modules, 'torch imported'\n"
    )
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr


# -- CUDA -----------------------------------------------------------------------------
@cuda_only
@pytest.mark.parametrize("family", ["lm_head", "ffn"])
def test_cuda_graph_replay_equals_eager(cache, family):
    from anemll_spec.executor.torch_backend import load_torch

    m = (
        lm_head(**HEAD)
        if family == "lm_head"
        else ffn(hidden_size=64, intermediate_size=96, seq_len=2)
    )
    path = build(m, cache_dir=cache).path
    runner = load_torch(path, device="cuda")
    eager = load_torch(path, device="cuda", graphs=False)
    rng = np.random.default_rng(3)
    for _ in range(3):  # new inputs each time: the graph must read its input buffers anew
        x = {n: rng.standard_normal(s.shape).astype(np.float32) for n, s in runner.inputs.items()}
        g, e = runner.predict(x), eager.predict(x)
        assert runner.graphed and "CUDA graph" in runner.graph_note
        assert not eager.graphed
        for k in e:
            np.testing.assert_array_equal(g[k], e[k])
        ref = load(path).predict(x)
        assert compare(g, ref, TOL).status == "pass"


@cuda_only
def test_uncapturable_program_falls_back_to_eager_and_says_why(cache):
    from anemll_spec.executor.torch_backend import load_torch

    m = attention(hidden_size=64, heads=4, kv_heads=2, head_dim=16, context_length=8)
    path = build(m, cache_dir=cache).path
    runner = load_torch(path, device="cuda")
    state = runner.make_state()
    inputs = synth_inputs(describe(path), seed=2)
    out = runner.predict(inputs, state)
    assert not runner.graphed and "cannot be captured" in runner.graph_note, runner.graph_note
    ref_prog = load(path)
    assert compare(out, ref_prog.predict(inputs, ref_prog.make_state()), TOL).status == "pass"


@cuda_only
def test_triton_gemv_matches_cublas():
    from anemll_spec.executor import triton_gemv

    if not triton_gemv.available():
        pytest.skip("triton not installed")
    g = torch.Generator(device="cuda").manual_seed(0)
    for rows, width in ((1000, 4096), (384, 128), (77, 300)):
        w = (torch.randn(rows, width, device="cuda", generator=g) * 0.02).half()
        x = torch.randn(width, device="cuda", generator=g).half()
        want = (w.double() @ x.double()).float()
        got = triton_gemv.gemv(w, x).float()
        assert got.shape == (rows,) and got.dtype == torch.float32
        torch.testing.assert_close(got, want, rtol=2e-3, atol=2e-3 * want.abs().max().item())
