"""The torch backend as the runner uses it (registry, sessions, the bound timed call, verify),
device selection, host info, optional-import hygiene, and the CUDA paths (graph capture
against eager, the Triton GEMV against cuBLAS), which run only where CUDA is."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from build_util import attention, ffn, lm_head
from coremltools.converters.mil.mil import types

from anemll_spec import backends
from anemll_spec.backends.torch_ import TorchOptions
from anemll_spec.build import build
from anemll_spec.errors import InputError
from anemll_spec.executor import load
from anemll_spec.model_io import describe, synth_inputs
from anemll_spec.spec.run_section import Run, Tolerance
from anemll_spec.verify import check_outputs

try:
    import torch
except ImportError:  # conftest skips (or, in CI, fails) the torch-marked tests
    torch = None

pytestmark = pytest.mark.torch
HAS_CUDA = torch is not None and torch.cuda.is_available()
cuda_only = pytest.mark.skipif(not HAS_CUDA, reason="needs CUDA")
TOL = Tolerance()  # the spec's fp16 defaults
HEAD = dict(hidden_size=128, vocab_size=384, chunks=3)


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return tmp_path_factory.mktemp("torch-backend")


def open_session(path, tmp_path, device="auto", **options):
    b = backends.get("torch") if not options else backends._module("torch").backend(**options)
    prepared = b.prepare(path, tmp_path)
    return b.load(prepared, TorchOptions(device=device))


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
    verdict = check_outputs(first, ref, TOL, vocab_chunk=128)
    assert verdict.status == "pass", verdict.note
    assert 0 < verdict.rel_l2_error < 3e-3  # fp16 compute against the fp32 reference
    call = sess.bind(feed, state)
    call()  # the timed call: runs, syncs, returns nothing the harness would keep
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


def test_fp16_reference_is_part_of_what_the_torch_run_times_and_says_so(cache, tmp_path):
    """run.fp16_reference makes the executor round every op (torch runs the reference
    executor): that is timed too, so the session's note says it."""
    path = build(lm_head(**HEAD), cache_dir=cache).path
    backend = backends._module("torch").backend("cpu")
    prepared = backend.prepare(path, tmp_path)
    for fp16, said in ((False, False), (True, True)):
        sess = backend.load(prepared, backend.options(Run(fp16_reference=fp16, device="cpu")))
        sess.bind(sess.feed(synth_inputs(describe(path), seed=0)), None)()
        assert ("every op rounded to fp16" in sess.notes[0]) is said, sess.notes
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
    from anemll_spec.executor.torch_host import resolve_device

    want = "cuda" if HAS_CUDA else ("mps" if torch.backends.mps.is_available() else "cpu")
    assert resolve_device("auto").type == want
    assert resolve_device("cpu").type == "cpu"
    with pytest.raises(InputError, match="one of auto, cuda, mps, cpu"):
        resolve_device("tpu")
    if not HAS_CUDA:
        with pytest.raises(InputError, match="CUDA is not available"):
            resolve_device("cuda")


def test_compute_units_do_not_apply():
    b = backends.get("torch")
    with pytest.raises(backends.base.BackendError, match="compute units"):
        b.options(Run(), "CPU_AND_NE")


def test_torch_info_names_versions_and_gpu():
    from anemll_spec.backends.torch_ import torch_info

    info = torch_info()
    assert info["torch_version"] == torch.__version__
    assert info["cuda_version"] == torch.version.cuda
    if HAS_CUDA:
        assert info["gpu"] == torch.cuda.get_device_name(0)
        assert info["gpu_driver"] and info["gpu_sm_count"] > 0


def test_nvidia_smi_runs_once_per_process(tmp_path, monkeypatch):
    """GPU facts are collected once: host.nvidia_gpus caches its one nvidia-smi answer,
    which the host capture and torch_info (torch_host) both read (a stand-in nvidia-smi
    on PATH counts its runs)."""
    from anemll_spec import host

    calls = tmp_path / "calls"
    tool = tmp_path / "nvidia-smi"
    tool.write_text(f"#!/bin/sh\necho run >> {calls}\necho 'NVIDIA H100 80GB HBM3, 550.54.15'\n")
    tool.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path}:/usr/bin:/bin")
    host.nvidia_gpus.cache_clear()
    try:
        gpu = host.capture_linux()["gpu"]
        first, second = host.nvidia_gpus(), host.nvidia_gpus()
    finally:
        host.nvidia_gpus.cache_clear()
    assert first == second == ({"name": "NVIDIA H100 80GB HBM3", "driver": "550.54.15"},)
    assert gpu == "NVIDIA H100 80GB HBM3"
    assert calls.read_text().splitlines() == ["run"]  # the host capture's answer, shared


def test_torch_info_is_collected_once_per_device():
    from anemll_spec.executor.torch_host import torch_info

    first = torch_info("cpu")
    first["torch_version"] = "changed by the caller"
    assert torch_info("cpu")["torch_version"] == torch.__version__  # a fresh copy each call
    assert torch_info("cpu") == torch_info(torch.device("cpu"))


def test_nothing_imports_torch_at_module_level():
    code = (
        "import sys\n"
        "import anemll_spec.backends, anemll_spec.backends.torch_, anemll_spec.executor\n"
        "import anemll_spec.executor.simplify, anemll_spec.runner, anemll_spec.cli\n"
        "from anemll_spec import backends\n"
        "assert backends.availability('torch').available\n"
        "assert 'torch' not in sys.modules, 'torch imported'\n"
    )
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr


# -- runtime positions checked on the device (what lets CUDA capture an attention step) -
ATT = dict(hidden_size=32, heads=4, kv_heads=2, head_dim=8, context_length=6, seq_len=2)


def attention_feed(pos: int, seed: int) -> dict:
    ctx, s = ATT["context_length"], ATT["seq_len"]
    cols, rows = np.arange(ctx)[None, :], pos + np.arange(s)[:, None]
    mask = np.where(cols <= rows, 0.0, -1e4).astype(np.float16).reshape(1, 1, s, ctx)
    rng = np.random.default_rng(seed)
    return {
        "hidden_states": rng.standard_normal((1, s, ATT["hidden_size"])).astype(np.float32),
        "position": np.array([pos], np.int32),
        "causal_mask": mask,
    }


def test_device_checks_keep_attention_positions_on_the_device(cache):
    """The KV write and the RoPE gather at a runtime position: with device checks, a call
    reads nothing back to the host, and gives what the host-checked path gives."""
    from anemll_spec.executor.torch_runner import load_torch

    path = build(attention(**ATT), cache_dir=cache).path
    host = load_torch(path, device="cpu", dtype="float32", device_checks=False)
    dev = load_torch(path, device="cpu", dtype="float32", device_checks=True)
    ref_prog = load(path)
    states = {"host": host.make_state(), "dev": dev.make_state(), "ref": ref_prog.make_state()}
    for step, pos in enumerate((0, 2, 4)):
        feed = attention_feed(pos, seed=step)
        for name, runner in (("host", host), ("dev", dev)):
            converted = runner.convert(feed)
            before = runner.ops.host_reads
            runner.run(converted, runner.make_state())  # a scratch state: counts only
            reads = runner.ops.host_reads - before
            assert (reads == 0) if name == "dev" else (reads > 0), (name, reads)
        want = ref_prog.predict(feed, states["ref"])
        a, b = host.predict(feed, states["host"]), dev.predict(feed, states["dev"])
        for k in a:
            np.testing.assert_array_equal(b[k], a[k])
        assert check_outputs(b, want, TOL).status == "pass"
        for cache_name in ("key_cache", "value_cache"):
            got = states["dev"].read(cache_name)
            np.testing.assert_array_equal(got, states["host"].read(cache_name))
            assert np.any(got[:, :, pos : pos + 2]) and not np.any(got[:, :, pos + 2 :])


@pytest.mark.parametrize("pos", [5, 6])  # the 2-token write runs past the 6-slot cache
def test_bad_runtime_position_is_an_error_on_either_path(cache, pos):
    from anemll_spec.executor.torch_runner import load_torch

    path = build(attention(**ATT), cache_dir=cache).path
    where = set()
    for checks in (False, True):
        runner = load_torch(path, device="cpu", dtype="float32", device_checks=checks)
        state = runner.make_state()
        with pytest.raises(InputError, match="out of range") as err:
            runner.predict(attention_feed(pos, seed=1), state)
        assert ("checked on the device" in str(err.value)) == checks
        where.add(str(err.value).split(":", 1)[0])  # the op that saw it
        # the flags were cleared: a good call afterwards succeeds
        out = runner.predict(attention_feed(0, seed=1), runner.make_state())
        assert all(np.isfinite(v).all() for v in out.values())
    assert len(where) == 1 and "gather" in where.pop()  # both paths name the same op


# -- CUDA -----------------------------------------------------------------------------
@cuda_only
@pytest.mark.parametrize("family", ["lm_head", "ffn"])
def test_cuda_graph_replay_equals_eager(cache, family):
    from anemll_spec.executor.torch_runner import load_torch

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
        assert check_outputs(g, ref, TOL).status == "pass"


@cuda_only
def test_attention_step_is_captured_and_matches_eager(cache):
    """A KV-cache write at a runtime position replays as a CUDA graph: each step lands at
    its position, like the eager path and the numpy reference; a bad position still
    raises (after the replay), and the graph goes on working."""
    from anemll_spec.executor.torch_runner import load_torch

    path = build(attention(**ATT), cache_dir=cache).path
    runner = load_torch(path, device="cuda")
    eager = load_torch(path, device="cuda", graphs=False)
    ref_prog = load(path)
    states = (runner.make_state(), eager.make_state(), ref_prog.make_state())
    for step, pos in enumerate((0, 2, 4)):
        feed = attention_feed(pos, seed=step)
        g = runner.predict(feed, states[0])
        e = eager.predict(feed, states[1])
        want = ref_prog.predict(feed, states[2])
        assert runner.graphed and "CUDA graph" in runner.graph_note, runner.graph_note
        for k in e:
            np.testing.assert_array_equal(g[k], e[k])
        assert check_outputs(g, want, TOL).status == "pass"
        for name in ("key_cache", "value_cache"):
            np.testing.assert_array_equal(states[0].read(name), states[1].read(name))
    with pytest.raises(InputError, match="checked on the device"):
        runner.predict(attention_feed(5, seed=9), states[0])
    fresh = runner.make_state()
    out = runner.predict(attention_feed(0, seed=0), fresh)
    want = ref_prog.predict(attention_feed(0, seed=0), ref_prog.make_state())
    assert check_outputs(out, want, TOL).status == "pass"


@cuda_only
def test_uncapturable_program_falls_back_to_eager_and_says_why(tmp_path):
    """A slice whose bounds come from an input is read on the host: no graph, and why."""
    from fixtures.executor.mil_models import mb, save_program

    from anemll_spec.executor.torch_runner import load_torch

    @mb.program(
        input_specs=[mb.TensorSpec(shape=(4, 8)), mb.TensorSpec(shape=(2,), dtype=types.int32)]
    )
    def prog(x, bounds):
        begin = mb.concat(values=[mb.slice_by_size(x=bounds, begin=[0], size=[1]), [0]], axis=0)
        end = mb.concat(values=[mb.slice_by_size(x=bounds, begin=[1], size=[1]), [8]], axis=0)
        return mb.slice_by_index(x=x, begin=begin, end=end)

    path = save_program(prog, tmp_path / "dyn.mlpackage")
    runner = load_torch(path, device="cuda")
    x = np.arange(32, dtype=np.float32).reshape(4, 8)
    out = runner.predict({"x": x, "bounds": np.array([1, 3], np.int32)})
    assert not runner.graphed and "cannot be captured" in runner.graph_note, runner.graph_note
    np.testing.assert_array_equal(next(iter(out.values())), x[1:3])


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


@cuda_only
def test_python_number_operands_can_be_captured():
    """relu, threshold, elu... pass Python numbers to maximum/divide: a number must not
    become a host->device copy, which a CUDA graph cannot capture."""
    from anemll_spec.executor.torch_arrays import TorchOps

    ops = TorchOps("cuda", "float32")
    x = torch.randn(64, device="cuda")
    ops.maximum(x, 0.0)  # warm up outside the capture
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        out = ops.divide(ops.maximum(x, 0.0), 2.0)
    graph.replay()
    torch.cuda.synchronize()
    torch.testing.assert_close(out, torch.clamp(x, min=0.0) / 2.0)


@cuda_only
def test_closing_a_cuda_session_gives_the_thread_its_stream_back(cache, tmp_path):
    """A timed call makes the session's stream the thread's current one (once: cheaper
    than a `with` per call); after close, later work must not queue on it."""
    path = build(lm_head(**HEAD), cache_dir=cache).path
    before = torch.cuda.current_stream()
    sess = open_session(path, tmp_path, device="cuda")
    call = sess.bind(sess.feed(synth_inputs(describe(path), seed=0)))
    call()
    assert torch.cuda.current_stream() != before  # the session's own stream, while timing
    sess.close()
    assert torch.cuda.current_stream() == before


def test_float32_is_not_run_in_tf32(cache):
    """cuDNN's convolutions default to TF32 (10-bit mantissas) in torch, matmuls do not:
    an fp32 conv-layout head on CUDA was timed and verified at TF32, saying nothing. A
    fresh process, so the switches are torch's defaults until a program loads."""
    import subprocess
    import sys

    path = build(lm_head(**HEAD, dtype="float32"), cache_dir=cache).path
    code = (
        "import sys, torch\n"
        "from anemll_spec.executor.torch_runner import load_torch\n"
        "before = torch.backends.cudnn.allow_tf32\n"
        "load_torch(sys.argv[1], device='cpu')\n"
        "print(before, torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, str(path)], capture_output=True, text=True, check=True
    )
    assert out.stdout.split() == ["True", "False", "False"], out.stdout + out.stderr
