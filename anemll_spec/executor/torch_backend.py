"""The executor's program on PyTorch tensors (CUDA, MPS or CPU), with CUDA-graph replay.

    from anemll_spec.executor.torch_backend import load_torch
    runner = load_torch("model.mlpackage", device="auto")   # cuda > mps > cpu
    feed = runner.convert({"x": x})            # host arrays -> checked device tensors, once
    state = runner.make_state()                # device state, updated in place
    out = runner.run(feed, state)              # device tensors (async); graph replay on CUDA
    runner.synchronize()
    host = runner.predict({"x": x}, state)     # numpy outputs, like Program.predict

The program is the SAME one the numpy executor runs: parsed, lowered by
`simplify.simplify` (1x1 convs as matmuls, parallel matmuls merged, constexpr weights
decoded once), and prepared with the executor's own kernels on `TorchOps`, the torch
implementation of the array-library seam (`backend.py`). Floats are computed in the
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
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F  # noqa: N812

from anemll_spec.errors import InputError
from anemll_spec.executor.backend import host_checked_indices, host_slice_where
from anemll_spec.executor.decompress import is_compile_time
from anemll_spec.executor.dtypes import FLOAT_NAMES
from anemll_spec.executor.graph import Function
from anemll_spec.executor.program import Program, load
from anemll_spec.executor.simplify import simplify
from anemll_spec.executor.state import State

DEVICES = ("auto", "cuda", "mps", "cpu")

_DTYPES: dict[str, torch.dtype] = {
    "float16": torch.float16,
    "float32": torch.float32,
    "float64": torch.float64,
    "int8": torch.int8,
    "uint8": torch.uint8,
    "int16": torch.int16,
    "uint16": torch.uint16,
    "int32": torch.int32,
    "int64": torch.int64,
    "uint32": torch.uint32,
    "bool": torch.bool,
}
_NAMES = {v: k for k, v in _DTYPES.items()}


def resolve_device(requested: str | None = "auto") -> torch.device:
    """auto: cuda if available, else mps, else cpu; an unavailable explicit device is an
    InputError naming what this torch has."""
    req = (requested or "auto").lower()
    if req not in DEVICES and not req.startswith("cuda:"):
        raise InputError(f"torch device {requested!r}: one of {', '.join(DEVICES)}")
    has_cuda = torch.cuda.is_available()
    has_mps = bool(getattr(torch.backends, "mps", None) and torch.backends.mps.is_available())
    if req == "auto":
        return torch.device("cuda" if has_cuda else "mps" if has_mps else "cpu")
    if req.startswith("cuda") and not has_cuda:
        raise InputError(f"torch device {req}: CUDA is not available (torch {torch.__version__})")
    if req == "mps" and not has_mps:
        raise InputError("torch device mps: MPS is not available on this machine")
    return torch.device(req)


def compute_dtype(fn: Function) -> str:
    """The model's compute precision: float16 when every float op output is fp16 (casts
    at the I/O boundary aside), else float32."""
    seen = {
        o.dtype
        for op in fn.ops
        if not is_compile_time(op.type) and op.type != "cast"
        for o in op.outputs
        if o.dtype in FLOAT_NAMES
    }
    return "float16" if seen == {"fp16"} else "float32"


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    elif device.type == "mps":
        torch.mps.synchronize()


class TorchOps:
    """torch implementation of the kernel primitives (see `backend.py` for the contract).

    `float_dtype`: "float32" or "float16"; None means "adopt the model's": then the
    `adopt_dtype` pass (which `load_torch` runs first) sets it from the parsed function
    before kernels are prepared. `host_reads` / `host_writes` count
    device->host and host->device transfers (a program that makes them while it runs
    cannot be captured as a CUDA graph). `gemv`: how a matrix-vector product runs on
    CUDA: "triton" (our kernel), "cublas" (torch.mv) or "auto" (triton where importable).
    `device_checks` (default: on CUDA): check runtime indices and slice bounds on the
    device, deferring the error to `raise_device_errors`, so no call reads the host.
    """

    name = "torch"

    def __init__(
        self,
        device: torch.device | str = "cpu",
        float_dtype: str | None = "float32",
        gemv: str = "auto",
        device_checks: bool | None = None,
    ):
        self.device = torch.device(device)
        self.float_dtype = float_dtype  # type: ignore[assignment]
        self.host_reads = 0
        self.host_writes = 0
        self.gemv_impl = self._pick_gemv(gemv)
        self.device_checks = self.device.type == "cuda" if device_checks is None else device_checks
        # (op, message) -> (device flag, exception factory); flags persist, so a
        # captured graph sets the same ones
        self._pending: dict[tuple[int, str], tuple[torch.Tensor, Any]] = {}
        self._consts: dict[tuple, torch.Tensor] = {}

    def _pick_gemv(self, gemv: str) -> str:
        if gemv not in ("auto", "triton", "cublas"):
            raise InputError(f"gemv {gemv!r}: one of auto, triton, cublas")
        if self.device.type != "cuda":
            return "torch"
        if gemv == "cublas":
            return "cublas"
        from anemll_spec.executor import triton_gemv

        if triton_gemv.available():
            return "triton"
        if gemv == "triton":
            raise InputError("gemv triton: triton is not importable here")
        return "cublas"

    def adopt_dtype(self, fn: Function) -> Function:
        """A lowering 'pass' that only reads: fixes float_dtype to the model's precision."""
        if self.float_dtype is None:
            self.float_dtype = compute_dtype(fn)
        return fn

    def _dt(self, name: str) -> torch.dtype:
        dt = _DTYPES.get(name)
        if dt is None:
            raise InputError(f"data type {name} is not supported by the torch backend")
        if dt == torch.float64 and self.device.type == "mps":
            return torch.float32
        return dt

    # -- creation / conversion -------------------------------------------------------
    def asarray(self, a: Any, dtype: str | None = None) -> torch.Tensor:
        if isinstance(a, torch.Tensor):
            t = a if a.device == self.device else a.to(self.device)
            return t if dtype is None else t.to(self._dt(dtype))
        self.host_writes += 1
        arr = np.asarray(a)
        if dtype is not None and np.dtype(dtype) != arr.dtype:
            with np.errstate(over="ignore", invalid="ignore"):  # fp16 overflow gives inf
                arr = arr.astype(dtype)
        if arr.dtype.kind not in "biuf":
            raise InputError(f"values of dtype {arr.dtype} cannot become torch tensors")
        if not arr.flags.writeable or not arr.flags.c_contiguous:
            arr = np.array(arr, copy=True, order="C")  # torch wants its own, writable copy
        if arr.dtype == np.float64 and self.device.type == "mps":
            arr = arr.astype(np.float32)
        return torch.from_numpy(arr).to(self.device)

    def to_numpy(self, x: Any) -> np.ndarray:
        if isinstance(x, torch.Tensor):
            self.host_reads += 1
            return x.detach().cpu().numpy()
        return np.asarray(x)

    def astype(self, x: torch.Tensor, dtype: str) -> torch.Tensor:
        return x.to(self._dt(dtype))

    @staticmethod
    def dtype_name(x: Any) -> str:
        if isinstance(x, torch.Tensor):
            return _NAMES[x.dtype]
        return np.asarray(x).dtype.name

    @staticmethod
    def shape(x: Any) -> tuple[int, ...]:
        return tuple(x.shape) if isinstance(x, torch.Tensor) else tuple(np.shape(x))

    @staticmethod
    def round_to_fp16(x: torch.Tensor) -> torch.Tensor:
        return x if x.dtype == torch.float16 else x.to(torch.float16).to(x.dtype)

    def full(self, shape, value, dtype: str) -> torch.Tensor:
        return torch.full(
            tuple(int(s) for s in shape), value, dtype=self._dt(dtype), device=self.device
        )

    def arange(self, start, stop, step, dtype: str) -> torch.Tensor:
        return torch.arange(start, stop, step, dtype=self._dt(dtype), device=self.device)

    # -- elementwise ------------------------------------------------------------------
    @staticmethod
    def _pair(a: Any, b: Any) -> tuple[torch.Tensor, torch.Tensor]:
        """Both operands as tensors (a Python scalar takes the other operand's dtype)."""
        # torch.full fills on the device; as_tensor would copy from the host each call,
        # which a CUDA graph cannot capture
        if not isinstance(a, torch.Tensor):
            a = torch.full((), a, dtype=b.dtype, device=b.device)
        if not isinstance(b, torch.Tensor):
            b = torch.full((), b, dtype=a.dtype, device=a.device)
        return a, b

    add = staticmethod(lambda a, b: a + b)
    subtract = staticmethod(lambda a, b: a - b)
    multiply = staticmethod(lambda a, b: a * b)
    divide = staticmethod(lambda a, b: torch.true_divide(*TorchOps._pair(a, b)))
    power = staticmethod(lambda a, b: torch.pow(a, b))
    maximum = staticmethod(lambda a, b: torch.maximum(*TorchOps._pair(a, b)))
    minimum = staticmethod(lambda a, b: torch.minimum(*TorchOps._pair(a, b)))
    floor_divide = staticmethod(
        lambda a, b: torch.div(*TorchOps._pair(a, b), rounding_mode="floor")
    )
    mod = staticmethod(lambda a, b: torch.remainder(*TorchOps._pair(a, b)))
    equal = staticmethod(lambda a, b: torch.eq(*TorchOps._pair(a, b)))
    not_equal = staticmethod(lambda a, b: torch.ne(*TorchOps._pair(a, b)))
    less = staticmethod(lambda a, b: torch.lt(*TorchOps._pair(a, b)))
    less_equal = staticmethod(lambda a, b: torch.le(*TorchOps._pair(a, b)))
    greater = staticmethod(lambda a, b: torch.gt(*TorchOps._pair(a, b)))
    greater_equal = staticmethod(lambda a, b: torch.ge(*TorchOps._pair(a, b)))
    logical_and = staticmethod(lambda a, b: torch.logical_and(*TorchOps._pair(a, b)))
    logical_or = staticmethod(lambda a, b: torch.logical_or(*TorchOps._pair(a, b)))
    logical_xor = staticmethod(lambda a, b: torch.logical_xor(*TorchOps._pair(a, b)))
    logical_not = staticmethod(torch.logical_not)
    clip = staticmethod(lambda x, lo, hi: torch.clamp(x, lo, hi))

    @staticmethod
    def where(cond: Any, a: Any, b: Any) -> torch.Tensor:
        if not isinstance(cond, torch.Tensor):
            ref = a if isinstance(a, torch.Tensor) else b
            cond = torch.as_tensor(cond, device=ref.device)
        return torch.where(cond.to(torch.bool), a, b)

    abs = staticmethod(torch.abs)
    negative = staticmethod(torch.neg)
    sign = staticmethod(torch.sign)
    floor = staticmethod(torch.floor)
    ceil = staticmethod(torch.ceil)
    round = staticmethod(torch.round)
    sin = staticmethod(torch.sin)
    cos = staticmethod(torch.cos)
    tan = staticmethod(torch.tan)
    asin = staticmethod(torch.asin)
    acos = staticmethod(torch.acos)
    atan = staticmethod(torch.atan)
    atanh = staticmethod(torch.atanh)
    sinh = staticmethod(torch.sinh)
    cosh = staticmethod(torch.cosh)
    tanh = staticmethod(torch.tanh)
    exp = staticmethod(torch.exp)
    exp2 = staticmethod(torch.exp2)
    log = staticmethod(torch.log)
    sqrt = staticmethod(torch.sqrt)
    reciprocal = staticmethod(torch.reciprocal)
    square = staticmethod(torch.square)
    sigmoid = staticmethod(torch.sigmoid)
    erf = staticmethod(torch.erf)

    # -- reductions -------------------------------------------------------------------
    @staticmethod
    def _dims(x: torch.Tensor, axis) -> tuple[int, ...]:
        if axis is None:
            return tuple(range(x.dim()))
        return tuple(int(a) for a in (axis if isinstance(axis, tuple | list) else (axis,)))

    def sum(self, x, axis, keepdims):
        return torch.sum(x, dim=self._dims(x, axis), keepdim=keepdims) if x.dim() else x

    def mean(self, x, axis, keepdims):
        if not x.is_floating_point():
            x = x.to(self._dt(self.float_dtype))
        return torch.mean(x, dim=self._dims(x, axis), keepdim=keepdims) if x.dim() else x

    def max(self, x, axis, keepdims):
        return torch.amax(x, dim=self._dims(x, axis), keepdim=keepdims) if x.dim() else x

    def min(self, x, axis, keepdims):
        return torch.amin(x, dim=self._dims(x, axis), keepdim=keepdims) if x.dim() else x

    def prod(self, x, axis, keepdims):
        dims = sorted((d % x.dim() for d in self._dims(x, axis)), reverse=True)
        for d in dims:
            x = torch.prod(x, dim=d, keepdim=True)
        return x if keepdims or not dims else x.squeeze(tuple(dims))

    @staticmethod
    def _arg(fn, x, axis, keepdims):
        """argmax/argmin with numpy's axis=None (flat index, kept as all-ones dims)."""
        if axis is None:
            out = fn(x)
            return out.reshape([1] * x.dim()) if keepdims else out
        return fn(x, dim=int(axis), keepdim=keepdims)

    argmax = staticmethod(lambda x, axis, keepdims: TorchOps._arg(torch.argmax, x, axis, keepdims))
    argmin = staticmethod(lambda x, axis, keepdims: TorchOps._arg(torch.argmin, x, axis, keepdims))

    cumsum = staticmethod(lambda x, axis: torch.cumsum(x, dim=int(axis)))

    # -- shape / indexing -------------------------------------------------------------
    reshape = staticmethod(lambda x, shape: x.reshape(tuple(int(s) for s in shape)))
    permute_dims = staticmethod(lambda x, perm: x.permute(tuple(int(p) for p in perm)))
    concat = staticmethod(lambda xs, axis: torch.cat(list(xs), dim=int(axis)))
    stack = staticmethod(lambda xs, axis: torch.stack(list(xs), dim=int(axis)))
    broadcast_to = staticmethod(lambda x, shape: torch.broadcast_to(x, tuple(shape)))
    tile = staticmethod(lambda x, reps: torch.tile(x, tuple(int(r) for r in reps)))

    @staticmethod
    def expand_dims(x: torch.Tensor, axes) -> torch.Tensor:
        rank = x.dim() + len(axes)
        for a in sorted(a + rank if a < 0 else a for a in axes):
            x = x.unsqueeze(a)
        return x

    @staticmethod
    def squeeze(x: torch.Tensor, axes) -> torch.Tensor:
        axes = tuple(int(a) for a in axes)
        return torch.squeeze(x, dim=axes) if axes else x

    @staticmethod
    def take(x: torch.Tensor, indices: torch.Tensor, axis: int) -> torch.Tensor:
        idx = indices.to(torch.long)
        axis = axis % x.dim()
        flat = torch.index_select(x, axis, idx.reshape(-1))
        return flat.reshape(*x.shape[:axis], *idx.shape, *x.shape[axis + 1 :])

    @staticmethod
    def take_along_axis(x: torch.Tensor, idx: torch.Tensor, axis: int) -> torch.Tensor:
        return torch.take_along_dim(x, idx.to(torch.long), dim=axis)

    @staticmethod
    def _index(x: torch.Tensor, slices) -> tuple[list[int], tuple]:
        """numpy index -> (dims to flip first, torch index): torch has no negative steps;
        on the flipped dimension the same elements come out in the same order."""
        if not isinstance(slices, tuple):
            slices = (slices,)
        flips, out, dim = [], [], 0
        for s in slices:
            if s is Ellipsis:
                dim = x.dim() - (len(slices) - 1 - len(out))
                out.append(s)
                continue
            if isinstance(s, slice) and s.step is not None and s.step < 0:
                n = x.shape[dim]
                start, stop, step = s.indices(n)
                out.append(slice(n - 1 - start, n - 1 - stop, -step))
                flips.append(dim)
            elif isinstance(s, torch.Tensor) and s.dtype != torch.bool:
                out.append(s.to(torch.long))
            else:
                out.append(s)
            dim += 1
        return flips, tuple(out)

    def getitem(self, x: torch.Tensor, slices) -> torch.Tensor:
        flips, index = self._index(x, slices)
        return (x.flip(flips) if flips else x)[index]

    def setitem(self, x: torch.Tensor, slices, value: Any) -> torch.Tensor:
        flips, index = self._index(x, slices)
        out = x.flip(flips) if flips else x.clone()
        target = out[index]
        if isinstance(value, torch.Tensor):
            value = value.reshape(target.shape)
        out[index] = value
        return out.flip(flips) if flips else out

    # -- runtime indices and bounds, checked on the device ----------------------------
    # Few kernels on purpose: in a captured decode step these small launches are a good
    # share of the time.
    def checked_indices(self, indices: torch.Tensor, dim: int, fail) -> torch.Tensor:
        if not self.device_checks:
            return host_checked_indices(self, indices, dim, fail)
        self._defer(
            (indices < -dim) | (indices >= dim), f"index out of range [{-dim}, {dim})", fail
        )
        # floor-mod wraps a negative index; a bad one lands in range too (then raises)
        return torch.remainder(indices, dim)

    def slice_where(self, begin, end, shape: tuple, size: tuple, fail):
        """Where slice_update with unit strides at runtime bounds writes, on the device:
        the flat offsets base + sum(begin * strides), `base` a per-shape constant."""
        shape, size = tuple(shape), tuple(size)
        if not self.device_checks or len(size) != len(shape):
            return host_slice_where(self, begin, end, shape, size, fail)
        dims = self._const(shape)
        be = torch.stack((begin.reshape(-1), end.reshape(-1))).to(torch.long)
        # numpy's slice bounds: negative counts from the end, then clamped to [0, dim]
        be = torch.clamp(torch.where(be < 0, be + dims, be), self._const((0,) * len(shape)), dims)
        b, e = be[0], be[1]
        self._defer(
            e - b != self._const(size),
            f"update of shape {size} does not fill the slice begin:end of x {shape}",
            fail,
        )
        # a bad slice still writes in bounds (then raises)
        b = torch.minimum(b, self._const(tuple(d - k for d, k in zip(shape, size, strict=True))))
        return self._offsets(shape, size) + (b * self._const(_strides(shape))).sum()

    def write_slice(self, x: torch.Tensor, where, update: torch.Tensor) -> torch.Tensor:
        if isinstance(where, tuple):  # slices, from the host path
            return self.setitem(x, where, update)
        out = x.clone(memory_format=torch.contiguous_format)  # `where` is for this layout
        out.view(-1).index_copy_(0, where, update.reshape(-1).to(x.dtype))
        return out

    def _const(self, values: tuple[int, ...]) -> torch.Tensor:
        """A small int64 device constant, uploaded once (not per call)."""
        key = ("ints", values)
        if key not in self._consts:
            self._consts[key] = torch.tensor(values, dtype=torch.long, device=self.device)
        return self._consts[key]

    def _offsets(self, shape: tuple[int, ...], size: tuple[int, ...]) -> torch.Tensor:
        """Flat offsets of a block of `size` at the origin of a contiguous `shape`."""
        key = ("block", shape, size)
        if key not in self._consts:
            strides = _strides(shape)
            grids = np.meshgrid(
                *[np.arange(k) * st for k, st in zip(size, strides, strict=True)], indexing="ij"
            )
            flat = np.sum(grids, axis=0).reshape(-1) if grids else np.zeros(1, np.int64)
            self._consts[key] = torch.as_tensor(flat, dtype=torch.long).to(self.device)
        return self._consts[key]

    def _defer(self, bad: torch.Tensor, message: str, fail) -> None:
        """OR `bad.any()` into a persistent device flag of this check (no host read).

        A check is its op (the `fail` of its Prep) and its message, so an error names
        the op that saw it."""
        key = (id(getattr(fail, "__self__", fail)), message)
        entry = self._pending.get(key)
        if entry is None:
            flag = torch.zeros((), dtype=torch.bool, device=self.device)
            entry = self._pending[key] = (flag, fail)
        entry[0].logical_or_(bad.any())

    def raise_device_errors(self) -> None:
        """Raise the first failed device-side check since the last call (one sync), and
        clear the flags; a no-op for a program without such checks."""
        if not self._pending:
            return
        hits = torch.stack([flag for flag, _ in self._pending.values()]).cpu().tolist()
        if not any(hits):
            return
        for flag, _ in self._pending.values():
            flag.zero_()
        (_, message), (_, fail) = next(
            item for item, hit in zip(self._pending.items(), hits, strict=True) if hit
        )
        raise fail(message + " (checked on the device)")

    def pad(self, x: torch.Tensor, pads, mode: str, value: float) -> torch.Tensor:
        if mode == "constant":
            flat = [int(v) for b, a in reversed(pads) for v in (b, a)]
            return F.pad(x, flat, mode="constant", value=value)
        for axis, (before, after) in enumerate(pads):
            if not before and not after:
                continue
            n = x.shape[axis]
            idx = np.arange(-before, n + after)
            if mode == "replicate":
                idx = np.clip(idx, 0, n - 1)
            else:  # reflect (numpy 'reflect': the edge is not repeated)
                period = 2 * (n - 1) if n > 1 else 1
                idx = np.abs(idx) % period
                idx = np.where(idx > n - 1, period - idx, idx)
            x = torch.index_select(x, axis, self.asarray(idx.astype(np.int64)))
        return x

    # -- linear algebra ---------------------------------------------------------------
    def matmul(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        """numpy matmul; a matrix-vector product goes to the GEMV kernel on CUDA."""
        if self.gemv_impl != "torch" and a.dim() >= 1 and b.dim() >= 2:
            # weight on the left: W (O, C) @ y (..., C, 1), one vector in all
            if (
                a.dim() == 2
                and b.shape[-1] == 1
                and b.numel() == b.shape[-2] == a.shape[1]
                and a.is_contiguous()
            ):
                y = self._gemv(a, b.reshape(-1))
                return y.reshape(*b.shape[:-2], a.shape[0], 1)
            # weight on the right, transposed: x (..., C) @ W.T (C, O), one vector in all
            if b.dim() == 2 and a.numel() == a.shape[-1] == b.shape[0] and b.t().is_contiguous():
                y = self._gemv(b.t(), a.reshape(-1))
                return y.reshape(*a.shape[:-1], b.shape[1])
        return torch.matmul(a, b)

    def _gemv(self, w: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        if x.dtype != w.dtype:
            x = x.to(w.dtype)
        if self.gemv_impl == "triton":
            from anemll_spec.executor.triton_gemv import gemv

            return gemv(w, x)
        return torch.mv(w, x)

    einsum = staticmethod(lambda eq, *xs: torch.einsum(eq, *xs))

    @staticmethod
    def conv(x, w, strides, pads, dilations, groups) -> torch.Tensor:
        nd = w.dim() - 2
        fn = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}.get(nd)
        if fn is None:
            raise InputError(f"conv with {nd} spatial dimensions is not supported by torch")
        if all(b == a for b, a in pads):
            padding = [int(b) for b, _ in pads]
        else:
            x = F.pad(x, [int(v) for b, a in reversed(pads) for v in (b, a)])
            padding = [0] * nd
        return fn(x, w, None, list(strides), padding, list(dilations), int(groups))


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
        return self.ops.float_dtype

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

    def predict(self, inputs: dict[str, Any], state: Any = None) -> dict[str, np.ndarray]:
        """Like Program.predict: host inputs, host outputs (float32 for float outputs)."""
        if self.states and state is None:
            state = self.make_state()
        feed = inputs if _on_device(inputs, self.device) else self.convert(inputs)
        outs = self.run(feed, state)
        self.synchronize()
        self.check()
        return {n: _host(v) for n, v in outs.items()}

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
                if snap is not None:
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


def _strides(shape: tuple[int, ...]) -> tuple[int, ...]:
    """Element strides of a contiguous tensor of `shape`."""
    out, acc = [], 1
    for d in reversed(shape):
        out.append(acc)
        acc *= d
    return tuple(reversed(out))


def _on_device(inputs: dict[str, Any], device: torch.device) -> bool:
    return bool(inputs) and all(
        isinstance(v, torch.Tensor) and v.device.type == device.type for v in inputs.values()
    )


def _host(v: Any) -> np.ndarray:
    arr = v.detach().float().cpu().numpy() if v.is_floating_point() else v.detach().cpu().numpy()
    return np.asarray(arr)


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
    if dtype not in ("auto", "float16", "float32"):
        raise InputError(f"torch dtype {dtype!r}: one of auto, float16, float32")
    ops = TorchOps(dev, None if dtype == "auto" else dtype, gemv=gemv, device_checks=device_checks)
    passes = [ops.adopt_dtype, *([simplify] if simplify_graph else [])]
    program = load(path, fp16=fp16, verbose=verbose, xp=ops, passes=passes)
    return TorchRunner(program, ops, graphs=graphs)


def torch_info(device: str | torch.device | None = "auto") -> dict[str, Any]:
    """Versions and the GPU, for the run's host record (keys as the store's `hosts`)."""
    import importlib.util
    import subprocess

    info: dict[str, Any] = {
        "torch_version": torch.__version__,
        "cuda_version": torch.version.cuda,
        "triton_version": None,
    }
    if importlib.util.find_spec("triton") is not None:
        import importlib.metadata

        with contextlib.suppress(importlib.metadata.PackageNotFoundError):
            info["triton_version"] = importlib.metadata.version("triton")
    try:
        dev = device if isinstance(device, torch.device) else resolve_device(device)
    except InputError:
        dev = torch.device("cpu")
    info["torch_device"] = dev.type
    if dev.type == "cuda":
        props = torch.cuda.get_device_properties(dev)
        info.update(
            gpu=props.name,
            gpu_memory_bytes=int(props.total_memory),
            gpu_sm_count=int(props.multi_processor_count),
            gpu_capability=f"{props.major}.{props.minor}",
            cudnn_version=torch.backends.cudnn.version(),
        )
        try:
            res = subprocess.run(
                ["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
                capture_output=True,
                text=True,
                timeout=5,
            )
            lines = res.stdout.split()
            info["gpu_driver"] = lines[dev.index or 0] if lines else None
        except (OSError, subprocess.SubprocessError, IndexError):
            info["gpu_driver"] = None
    elif dev.type == "mps":
        info["gpu"] = "Apple GPU (MPS)"
    return info


__all__ = [
    "DEVICES",
    "TorchOps",
    "TorchRunner",
    "TorchState",
    "compute_dtype",
    "load_torch",
    "resolve_device",
    "synchronize",
    "torch_info",
]
