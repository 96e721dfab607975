"""The torch backend: the reference executor's program on PyTorch (CUDA, MPS or CPU).

The saved .mlpackage runs through `executor.torch_runner`: the same parsed program and
kernels as the numpy executor, lowered at load (1x1 convs as matmuls, parallel matmuls
merged into one, weights decoded once) and computed in the model's dtype (fp16). On CUDA
the forward pass is replayed as a CUDA graph where it can be captured (otherwise eager,
and `notes` says why).

What the harness times (`bind`): copy the (already device-resident) inputs into the
graph's input buffers, replay (or run eagerly), and wait for that work (on CUDA, on the
session's own stream, up to an event after the call; on MPS `torch.mps.synchronize()`),
so wall time covers the whole device work, never an asynchronous launch alone, and
instances timed at once do not wait for each other. Outputs stay on the device (a consumer
of logits on the GPU reads them there); `predict` copies them to the host for verify.
On CUDA, `runtime_probe` reports the CUDA-event time of the same region.

torch is imported only when a session is loaded; `available()` is cheap.
"""

from __future__ import annotations

import importlib.util
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from anemll_spec.backends.base import Backend, BackendError, Options, Prepared, Session

NAME = "torch"


def available() -> tuple[bool, str]:
    if importlib.util.find_spec("torch") is None:
        return False, "torch not installed (pip install 'anemll-spec[torch]')"
    return True, "PyTorch installed; device from run.device (auto: cuda > mps > cpu)"


def torch_info(device: str | None = "auto") -> dict[str, Any]:
    """GPU name, driver, torch/CUDA/triton versions, for the run's host record."""
    from anemll_spec.executor.torch_host import torch_info as info

    return info(device)


class TorchSession(Session):
    def __init__(self, runner: Any):
        import torch

        self._torch = torch
        self.runner = runner
        self.device = runner.device.type  # store column `device`: cuda | mps | cpu
        self.notes: list[str] = []
        self._events = None
        self._stream = None
        if runner.device.type == "cuda":
            start = torch.cuda.Event(enable_timing=True)
            end = torch.cuda.Event(enable_timing=True)
            self._events = (start, end)
            self.runtime_probe = self._event_ns
            # The session's own stream: instances timed at once (threads of one process)
            # queue their kernels apart, and each call waits for its own work only; on the
            # shared default stream, with a device-wide sync, each waited for all of them.
            self._stream = torch.cuda.Stream(runner.device)
        # threads whose current stream a timed call set, and what it was before (close
        # gives the closing thread its own back: later work must not queue on this one)
        self._replaced: dict[int, Any] = {}

    @property
    def device_name(self) -> str:
        dev = self.runner.device
        if dev.type == "cuda":
            return self._torch.cuda.get_device_name(dev)
        return dev.type

    def describe(self) -> dict[str, Any]:
        return {
            "device": self.device,
            "device_name": self.device_name,
            "dtype": self.runner.float_dtype,
            "gemv": self.runner.ops.gemv_impl,
            "execution": self.runner.graph_note,
            "op_counts": dict(self.runner.program.op_counts),
        }

    def feed(self, inputs: dict[str, Any]) -> dict[str, Any]:
        """Host arrays -> checked device tensors, once (outside any timed loop)."""
        return self.runner.convert(inputs)

    def new_state(self) -> Any:
        return self.runner.make_state()

    def predict(self, feed: dict[str, Any], state: Any = None) -> dict[str, Any]:
        outs = self.runner.predict(feed, state)
        self._note_execution()
        return outs

    def bind(self, feed: dict[str, Any], state: Any = None) -> Callable[[], object]:
        runner, sync = self.runner, self.runner.synchronize
        if self.runner.states and state is None:
            state = runner.make_state()
        if self._stream is None:  # CPU, MPS
            runner.run(feed, state)
            sync()
            runner.check()
            self._note_execution()

            def call() -> None:
                runner.run(feed, state)
                sync()

            return call
        assert self._events is not None  # made with the stream
        cuda, stream, (start, end) = self._torch.cuda, self._stream, self._events
        stream.wait_stream(cuda.current_stream(runner.device))  # the feed is made
        with cuda.stream(stream):
            runner.run(feed, state)  # capture (or learn that it cannot) before timing
        stream.synchronize()
        runner.check()  # device-side index checks: the timed calls repeat this feed
        self._note_execution()

        made_current = threading.local()

        def timed_call() -> None:
            # The stream is made the calling thread's current stream once, at its first
            # call: `with torch.cuda.stream(...)` cost ~10 us a call on an H100.
            if getattr(made_current, "stream", None) is not stream:
                self._replaced.setdefault(threading.get_ident(), cuda.current_stream())
                cuda.set_stream(stream)
                made_current.stream = stream
            start.record()
            runner.run(feed, state)
            end.record()
            end.synchronize()  # this call's work, all of it; not other instances'

        return timed_call

    def _event_ns(self) -> int | None:
        start, end = self._events  # type: ignore[misc]
        try:
            return int(start.elapsed_time(end) * 1e6)
        except RuntimeError:  # no call recorded yet
            return None

    def _note_execution(self) -> None:
        dtype = self.runner.float_dtype
        if dtype == "float32" and self.device == "cuda":  # torch_runner.no_tf32 (since 12-06)
            dtype += " (TF32 off)"
        if self.runner.program.fp16:  # run.fp16_reference: part of what is timed
            dtype += ", every op rounded to fp16"
        note = f"torch {self.device} {dtype}: {self.runner.graph_note}"
        if note not in self.notes:
            self.notes.append(note)

    def close(self) -> None:
        self.runner = None
        if self.device == "cuda":
            cuda = self._torch.cuda
            previous = self._replaced.pop(threading.get_ident(), None)
            if previous is not None and cuda.current_stream() == self._stream:
                cuda.set_stream(previous)
            self._torch.cuda.empty_cache()


@dataclass(frozen=True)
class TorchOptions(Options):
    fp16: bool = False  # round every op's result to fp16 (run.fp16_reference)
    device: str = "auto"  # run.device: auto | cuda | mps | cpu


class TorchBackend(Backend):
    name = NAME

    def __init__(self, device: str = "auto", *, graphs: bool = True, gemv: str = "auto"):
        import torch  # noqa: F401 - here, untimed: inside load it would count as load time

        self.device = device
        self.graphs = graphs
        self.gemv = gemv

    def options(self, run, compute_units=None) -> TorchOptions:
        if compute_units is not None:
            raise BackendError("compute units do not apply to the torch backend")
        return TorchOptions(fp16=run.fp16_reference, device=run.device)

    def load(self, prepared: Prepared, options: Options) -> Session:
        from anemll_spec.executor.torch_runner import load_torch

        assert isinstance(options, TorchOptions)
        device = self.device if options.device == "auto" else options.device
        runner = load_torch(
            prepared.path, device=device, graphs=self.graphs, gemv=self.gemv, fp16=options.fp16
        )
        return TorchSession(runner)


def backend(device: str = "auto", **options: Any) -> Backend:
    return TorchBackend(device, **options)
