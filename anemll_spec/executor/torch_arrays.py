"""The torch implementation of the array seam (`arrays.py`): `TorchOps`, on CUDA, MPS or CPU.

The same prepared program runs on it as on `NumpyOps`; floats are computed in `float_dtype`
(the model's compute precision unless told otherwise). Runtime indices and slice bounds are
checked on the device on CUDA, so a forward pass can be captured as a CUDA graph
(`torch_runner.py`). This module imports torch at module level: import it only where torch
is wanted.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F  # noqa: N812

from anemll_spec.errors import InputError
from anemll_spec.executor.arrays import check_fits, integer_power
from anemll_spec.executor.decompress import is_compile_time
from anemll_spec.executor.torch_checks import DeviceChecks
from anemll_spec.executor.torch_linalg import TorchLinalg
from anemll_spec.mlmodel.dtypes import FLOAT_NAMES
from anemll_spec.mlmodel.ir import Function

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
# torch's CPU kernels for flip, gather and index_put lack the newer unsigned types (2.13:
# '"flip_cpu" not implemented for UInt16'): those ops run on a lossless wider copy
_WIDER = {torch.uint16: torch.int32, torch.uint32: torch.int64}


def _wide(x: torch.Tensor) -> torch.Tensor:
    wider = _WIDER.get(x.dtype)
    return x if wider is None else x.to(wider)


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


class TorchOps(DeviceChecks, TorchLinalg):
    """torch implementation of the kernel primitives (see `arrays.py` for the contract).

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
        self.float_dtype = float_dtype
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

    @staticmethod
    def power(a: Any, b: Any) -> torch.Tensor:
        if a.is_floating_point() or not isinstance(b, torch.Tensor) or b.is_floating_point():
            return torch.pow(a, b)
        return integer_power(a, b, torch.pow, torch.where).to(torch.result_type(a, b))

    maximum = staticmethod(lambda a, b: torch.maximum(*TorchOps._pair(a, b)))
    minimum = staticmethod(lambda a, b: torch.minimum(*TorchOps._pair(a, b)))

    @staticmethod
    def _int_by_zero(op: Any, a: Any, b: Any) -> torch.Tensor:
        """An integer op(a, b) with numpy's answer where b is 0: 0 (torch raises), so both
        executors finish the same programs with the same values."""
        a, b = TorchOps._pair(a, b)
        if a.is_floating_point() or b.is_floating_point():
            return op(a, b)
        zero = b == 0
        return torch.where(zero, 0, op(a, torch.where(zero, 1, b))).to(torch.result_type(a, b))

    floor_divide = staticmethod(
        lambda a, b: TorchOps._int_by_zero(
            lambda x, y: torch.div(x, y, rounding_mode="floor"), a, b
        )
    )
    mod = staticmethod(lambda a, b: TorchOps._int_by_zero(torch.remainder, a, b))
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
    sign = staticmethod(lambda x: torch.where(torch.isnan(x), x, torch.sign(x)))  # NaN: NaN
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
    log1p = staticmethod(torch.log1p)
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

    def _reduce(self, fn, x: torch.Tensor, axis, keepdims: bool) -> torch.Tensor:
        """numpy's reading of axis: None is every axis, () is none (torch's dim=() is
        every axis: axes=[] summed the whole tensor)."""
        dims = self._dims(x, axis)
        return fn(x, dim=dims, keepdim=keepdims) if x.dim() and dims else x

    def sum(self, x, axis, keepdims):
        return self._reduce(torch.sum, x, axis, keepdims)

    def mean(self, x, axis, keepdims):
        if not x.is_floating_point():  # as numpy: in float64 (float32 in the compute
            # dtype lost integers above 2**24; MPS has no float64)
            x = x.to(torch.float32 if self.device.type == "mps" else torch.float64)
        return self._reduce(torch.mean, x, axis, keepdims)

    def max(self, x, axis, keepdims):
        return self._reduce(torch.amax, x, axis, keepdims)

    def min(self, x, axis, keepdims):
        return self._reduce(torch.amin, x, axis, keepdims)

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
        return flat.reshape((*x.shape[:axis], *idx.shape, *x.shape[axis + 1 :]))  # () too

    @staticmethod
    def take_along_axis(x: torch.Tensor, idx: torch.Tensor, axis: int) -> torch.Tensor:
        wide = _wide(x)
        return torch.take_along_dim(wide, idx.to(torch.long), dim=axis).to(x.dtype)

    @staticmethod
    def _index(x: torch.Tensor, slices) -> tuple[list[int], tuple]:
        """numpy index -> (dims to flip first, torch index): torch has no negative steps;
        on the flipped dimension the same elements come out in the same order."""
        if not isinstance(slices, tuple):
            slices = (slices,)
        flips: list[int] = []
        out: list[Any] = []
        dim = 0
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
        return (_wide(x).flip(flips).to(x.dtype) if flips else x)[index]

    def setitem(self, x: torch.Tensor, slices, value: Any) -> torch.Tensor:
        flips, index = self._index(x, slices)
        wide = _wide(x)  # index_put lacks the newer unsigned types too
        out = wide.flip(flips) if flips else wide.clone()
        if isinstance(value, torch.Tensor):
            check_fits(tuple(value.shape), tuple(out[index].shape))
        out[index] = value
        return (out.flip(flips) if flips else out).to(x.dtype)

    @staticmethod
    def argsort(x: torch.Tensor, axis: int, descending: bool) -> torch.Tensor:
        return torch.sort(x, dim=int(axis), descending=descending, stable=True).indices

    def scatter_rows(self, data: torch.Tensor, rows, updates, mode: str) -> torch.Tensor:
        rows = self.asarray(rows).to(torch.long)
        upd = self.asarray(updates).to(data.dtype)
        out = data.clone()
        if mode == "update":
            return out.index_copy_(0, rows, upd)
        if mode in ("add", "sub"):
            return out.index_add_(0, rows, upd if mode == "add" else -upd)
        if mode == "div" and not data.is_floating_point():  # floor division, one at a time
            from anemll_spec.executor.arrays import NumpyOps

            d, r, u = (self.to_numpy(t) for t in (data, rows, upd))
            host = NumpyOps.scatter_rows(d, r, u, mode)
            return self.asarray(host)
        if mode == "div":  # x / u1 / u2 as x * (1/u1) * (1/u2)
            upd, mode = torch.reciprocal(upd), "mul"
        reduce = {"mul": "prod", "max": "amax", "min": "amin"}[mode]
        if out.dtype == torch.float16 and out.device.type == "cpu":  # no fp16 kernel there
            work = out.float().index_reduce_(0, rows, upd.float(), reduce, include_self=True)
            return work.to(torch.float16)
        return out.index_reduce_(0, rows, upd, reduce, include_self=True)

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
