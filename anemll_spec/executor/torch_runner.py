"""The executor's program on PyTorch tensors (CUDA, MPS or CPU), with CUDA-graph replay.

    from anemll_spec.executor.torch_runner import load_torch
    runner = load_torch("model.mlpackage", device="auto")   # cuda > mps > cpu
    feed = runner.convert({"x": x})            # host arrays -> checked device tensors, once
    state = runner.make_state()                # device state, updated in place
    out = runner.run(feed, state)              # device tensors (async); graph replay on CUDA
    runner.synchronize()
    host = runner.predict({"x": x}, state)     # numpy outputs, like Program.predict

The program is the SAME one the numpy executor runs: parsed, lowered by
`simplify.simplify` (1x1 convs as matmuls, parallel matmuls merged, constexpr weights
decoded once), and prepared with the executor's own kernels on `TorchOps`
(`torch_arrays.py`), the torch implementation of the array seam (`arrays.py`). Floats are computed in the
model's compute dtype (fp16 for an fp16 model; `dtype=` overrides).

CUDA graphs: the first `run` for a given state captures the whole forward pass (static
input buffers, in-place state buffers, outputs in the graph's own memory); later calls copy
the inputs in and replay. A program that reads device values on the host while it runs
(runtime shapes, or slice sizes) cannot be captured; it then runs eagerly, and
`graph_note` says why. Runtime indices and slice positions (gather at a runtime position,
a KV-cache write with slice_update) stay on the device: on CUDA they are checked there,
and a bad one raises after the call (`check`, which `predict` runs), never a device assert.

This module imports torch at module level: import it only where torch is wanted.
"""

from __future__ import annotations

import contextlib
import functools
from pathlib import Path
from typing import Any

import numpy as np
import torch

from anemll_spec.errors import InputError
from anemll_spec.executor.program import Pass, Program, load
from anemll_spec.executor.simplify import simplify
from anemll_spec.executor.state import State
from anemll_spec.executor.torch_arrays import TorchOps
from anemll_spec.executor.torch_host import resolve_device, synchronize


class TorchState(State):
    """State whose device buffers never move: updates are copied in place, so a captured
    CUDA graph keeps reading and writing the same memory."""

    def get_compute(self, name: str) -> Any:
        v = self._data[name]
        if v.is_floating_point() and v.dtype != self._xp._dt(self._xp.float_dtype):
            return v.to(self._xp._dt(self._xp.float_dtype))
        return v.clone()  # a value, not an alias of a buffer a later write changes

    def set_compute(self, name: str, value: Any) -> None:
        spec = self.specs[name]
        if tuple(value.shape) != tuple(spec.shape):
            raise InputError(
                f"state '{name}': update of shape {tuple(value.shape)} != {spec.shape}"
            )
        self._data[name].copy_(value)  # rounds to the state's dtype

    def write(self, name: str, value: Any) -> None:
        old = self._data[name]
        super().write(name, value)
        old.copy_(self._data[name])
        self._data[name] = old

    def reset(self) -> None:
        for t in self._data.values():
            t.zero_()

    def snapshot(self) -> dict[str, torch.Tensor]:
        return {k: v.clone() for k, v in self._data.items()}

    def restore(self, snap: dict[str, torch.Tensor]) -> None:
        for k, v in snap.items():
            self._data[k].copy_(v)


class _Graph:
    """One captured forward pass: static inputs, the state it was captured on, outputs."""

    def __init__(self, graph, inputs: dict, outputs: dict, state: Any):
        self.graph, self.inputs, self.outputs, self.state = graph, inputs, outputs, state

    def replay(self, feed: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        for name, buf in self.inputs.items():
            src = feed[name]
            if src is not buf:
                buf.copy_(src, non_blocking=True)
        self.graph.replay()
        return self.outputs


class TorchRunner:
    """A prepared program on one torch device; see the module docstring."""

    def __init__(self, program: Program, ops: TorchOps, *, graphs: bool = True):
        self.program, self.ops, self.device = program, ops, ops.device
        self.inputs, self.outputs, self.states = program.inputs, program.outputs, program.states
        self.use_graphs = graphs and self.device.type == "cuda"
        self.graph_note = "" if self.use_graphs else f"eager ({self.device.type}: no CUDA graphs)"
        self._graphs: dict[int, _Graph] = {}
        self._capturable: bool | None = None

    @property
    def float_dtype(self) -> str:
        dtype = self.ops.float_dtype  # None only before a program fixed it (at load)
        if dtype is None:
            raise RuntimeError("the program's float dtype is not fixed: load it first")
        return dtype

    def convert(self, inputs: dict[str, Any]) -> dict[str, torch.Tensor]:
        """Host inputs -> device tensors, checked against the model (InputError)."""
        return self.program.convert_inputs(inputs)

    def make_state(self) -> TorchState | None:
        return TorchState(dict(self.states), self.ops, self.program) if self.states else None

    def synchronize(self) -> None:
        synchronize(self.device)

    def run(self, feed: dict[str, torch.Tensor], state: Any = None) -> dict[str, Any]:
        """One forward pass on device tensors; returns device outputs without waiting."""
        if self.use_graphs:
            g = self._graph(feed, state)
            if g is not None:
                return g.replay(feed)
        return self.program.run(feed, state)

    def predict(self, inputs: dict[str, Any], state: Any = None) -> dict[str, Any]:
        """Like Program.predict: host inputs, host outputs (float32 for float outputs; a
        classifier's label and probabilities as str or int, dict)."""
        if self.states and state is None:
            state = self.make_state()
        feed = inputs if _on_device(inputs, self.device) else self.convert(inputs)
        outs = self.run(feed, state)
        self.synchronize()
        self.check()
        values = self.program.value_outputs
        return {n: v if n in values else _host(v) for n, v in outs.items()}

    def check(self) -> None:
        """Raise what the device-side checks of earlier calls found (bad runtime indices
        or slice bounds); one device read, so call it outside timed loops."""
        self.ops.raise_device_errors()

    # -- CUDA graphs ----------------------------------------------------------------------
    @property
    def graphed(self) -> bool:
        return bool(self._graphs)

    def _graph(self, feed: dict[str, torch.Tensor], state: Any) -> _Graph | None:
        if self._capturable is False:
            return None
        if state is not None and not isinstance(state, TorchState):
            self.graph_note = "eager: the state was not made by this runner (in-place buffers)"
            return None
        g = self._graphs.get(id(state))
        if g is not None:
            return g
        snap = state.snapshot() if state is not None else None
        try:
            g = self._capture(feed, state)
        except Exception as exc:  # capture refused: report it, run eagerly from now on
            self._capturable = False
            self.graph_note = f"eager: CUDA graph capture failed: {type(exc).__name__}: {exc}"
        finally:  # the warm-up runs must not count as steps of the state
            with contextlib.suppress(RuntimeError):
                torch.cuda.synchronize(self.device)
                if state is not None and snap is not None:
                    state.restore(snap)
                    torch.cuda.synchronize(self.device)
        if g is None:
            return None
        if len(self._graphs) >= 4:  # states come and go (floors, repeats): keep a few
            self._graphs.pop(next(iter(self._graphs)))
        self._graphs[id(state)] = g
        self._capturable = True
        self.graph_note = "CUDA graph: the whole forward pass is captured and replayed"
        return g

    def _capture(self, feed: dict[str, torch.Tensor], state: Any) -> _Graph | None:
        """Warm up on a side stream (kernels chosen, Triton autotuned, once-only device
        constants made), check that a second call never touches the host, then capture;
        None (and the reason noted) if it does."""
        static = {n: t.clone() for n, t in feed.items()}
        current = torch.cuda.current_stream(self.device)
        stream = torch.cuda.Stream(self.device)
        stream.wait_stream(current)
        with torch.cuda.stream(stream):
            self.program.run(static, state)
            reads, writes = self.ops.host_reads, self.ops.host_writes
            self.program.run(static, state)
            reads, writes = self.ops.host_reads - reads, self.ops.host_writes - writes
        current.wait_stream(stream)
        if reads or writes:
            self._capturable = False
            self.graph_note = (
                f"eager: the program moves data between host and device while it runs "
                f"({reads} reads, {writes} uploads per call: runtime shapes, slice bounds or "
                f"indices), so it cannot be captured as a CUDA graph"
            )
            return None
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            outputs = self.program.run(static, state)
        return _Graph(graph, static, outputs, state)


def _on_device(inputs: dict[str, Any], device: torch.device) -> bool:
    return bool(inputs) and all(
        isinstance(v, torch.Tensor) and v.device.type == device.type for v in inputs.values()
    )


def _host(v: Any) -> np.ndarray:
    arr = v.detach().float().cpu().numpy() if v.is_floating_point() else v.detach().cpu().numpy()
    return np.asarray(arr)


def no_tf32() -> None:
    """float32 means float32: cuDNN convolutions run in TF32 (10-bit mantissas) by torch's
    default, unlike matmuls, so an fp32 conv-layout head would be timed and verified at
    TF32. Process-wide switches, set for every program this process runs."""
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cuda.matmul.allow_tf32 = False


def load_torch(
    path: str | Path,
    *,
    device: str | torch.device | None = "auto",
    dtype: str = "auto",
    simplify_graph: bool = True,
    graphs: bool = True,
    gemv: str = "auto",
    fp16: bool = False,
    verbose: bool = False,
    device_checks: bool | None = None,
) -> TorchRunner:
    """Load a saved ML Program onto a torch device (see the module docstring).

    dtype: "auto" (the model's compute precision), "float16" or "float32".
    device_checks: check runtime indices and slice bounds on the device (default: on CUDA).
    """
    dev = device if isinstance(device, torch.device) else resolve_device(device)
    no_tf32()
    if dtype not in ("auto", "float16", "float32"):
        raise InputError(f"torch dtype {dtype!r}: one of auto, float16, float32")
    ops = TorchOps(dev, None if dtype == "auto" else dtype, gemv=gemv, device_checks=device_checks)
    # the weights simplify decodes are decoded in the program's fp16 mode, as its own are
    lowered = functools.partial(simplify, fp16=fp16)
    passes: list[Pass] = [ops.adopt_dtype, *([lowered] if simplify_graph else [])]
    program = load(path, fp16=fp16, verbose=verbose, xp=ops, passes=passes)
    return TorchRunner(program, ops, graphs=graphs)
