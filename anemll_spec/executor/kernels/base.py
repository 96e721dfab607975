"""Kernel registry and the prepare-time view of one op.

A kernel is a factory `make(p: Prep) -> Run`: called once per op when a program is prepared,
it reads the op's compile-time constants through `p.const(...)` (axes, perm, weights...),
precomputes what it can (re-laid-out weights, slices), and returns `run(env)`, which reads
runtime tensors from `env` by the keys `p.ref(...)` handed out and returns the op's output
(a tuple for several outputs). Runtime tensors are only touched through `p.xp`.
"""

from __future__ import annotations

import builtins
from collections.abc import Callable, Sequence
from typing import Any, Protocol, overload

import numpy as np

from anemll_spec.errors import InputError
from anemll_spec.mlmodel.ir import Op, VarType, materialize
from anemll_spec.mlmodel.limits import check_size

Env = dict[str, Any]
Run = Callable[[Env], Any]
Factory = Callable[["Prep"], Run]

KERNELS: dict[str, Factory] = {}
# op type -> why it computes on the host (numpy) when the arrays live on a device (torch):
# such an op reads its inputs back, so a program holding it runs eagerly (no CUDA graph)
HOST_OPS: dict[str, str] = {}
# op type -> what it reads on the host only when an input is a runtime value, not a
# constant (a shape, a size, slice bounds): such a program runs eagerly on a device
HOST_READS: dict[str, str] = {}
# op type -> why a program holding it is refused at load (`anemll-spec ops` shows it)
REFUSED: dict[str, str] = {}
# op types whose outputs are host values (classify: a str or int label and a dict), kept
# as the kernel returns them: no dtype, shape or backend conversion
VALUE_OPS: set[str] = set()
STATE_KEY = "@state"  # env key of the State object during a predict call

_MISSING = object()


class ToBackend(Protocol):
    """Makes a load-time constant a backend tensor (dtype: the MIL dtype of an inline value)."""

    def __call__(self, value: Any, dtype: str | None = None) -> Any: ...


def kernel(
    *op_types: str, host: str | None = None, reads: str | None = None, values: bool = False
) -> Callable[[Factory], Factory]:
    """Register `fn` as the kernel factory of `op_types`; `host` says why the kernel
    computes on the host (numpy) on a device array library, `reads` what it reads on the
    host when that input is not a constant; `values`: its outputs are host values."""

    def register(fn: Factory) -> Factory:
        for t in op_types:
            KERNELS[t] = fn
            if values:
                VALUE_OPS.add(t)
            if host:
                HOST_OPS[t] = host
            if reads:
                HOST_READS[t] = reads
        return fn

    return register


def refuse(reason: str, *op_types: str) -> None:
    """Register `op_types` as refused: loading a program that holds one fails, naming the
    op and `reason`."""

    def refused(p: Prep) -> Run:
        raise p.fail(f"not supported: {reason}")

    for t in op_types:
        KERNELS[t] = refused
        REFUSED[t] = reason


def maybe_static(p: Prep, param: str):
    """(static list of ints, None) if `param` is constant, else (None, env key)."""
    if p.is_const(param):
        return p.ints(param), None
    return None, p.ref(param)


def runtime_ints(xp, env, static, key) -> list[int]:
    if static is not None:
        return static
    return [int(v) for v in xp.to_numpy(env[key]).reshape(-1)]


def norm_axis(axis: int, rank: int) -> int:
    """A possibly negative axis as an index into a shape of `rank` dimensions."""
    return axis + rank if axis < 0 else axis


class Prep:
    """What a kernel factory may ask about its op while the program is being prepared."""

    def __init__(
        self,
        op: Op,
        xp: Any,
        consts: dict[str, Any],
        pool: dict[str, Any],
        to_backend: ToBackend,
        fp16: bool,
        types: dict[str, VarType],
        function: str = "",
        ios: int | None = None,
    ):
        self.op = op
        self.function = function  # the function being prepared, named in errors
        self.ios = ios  # the iOS version of the function's opset (None: unknown)
        self._types = types  # var name -> declared VarType, for every variable
        self.xp = xp
        self.fp16 = fp16
        self._consts = consts  # var name -> decoded numpy value, for const / constexpr outputs
        self._pool = pool  # env key -> backend tensor for constants read at runtime
        self._to_backend = to_backend
        self._derived: dict[Any, Any] = {}

    def derived(self, key: Any, make: Callable[[], Any]) -> Any:
        """A constant derived from runtime shapes (index grids, offsets), made as a tensor on
        the first call that needs it and kept: later calls upload nothing."""
        value = self._derived.get(key)
        if value is None:
            value = self._derived[key] = self.xp.asarray(make())
        return value

    def since(self, ios: int) -> bool:
        """The op is defined by opset iOS`ios` or later (an unknown opset: the latest)."""
        return self.ios is None or self.ios >= ios

    def tensor(self, value: Any) -> Any:
        """A load-time constant as a backend tensor, made the way every constant is: float
        values in the compute dtype, rounded to fp16 in fp16 mode, fp16 weights without an
        fp32 round trip."""
        return self._to_backend(value)

    # -- errors -----------------------------------------------------------------------
    def where(self) -> builtins.str:
        """The op (and its function) as errors name it."""
        where = f" in function '{self.function}'" if self.function else ""
        return f"{self.op.where()}{where}"

    def fail(self, message: builtins.str) -> InputError:
        return InputError(f"{self.where()}: {message}")

    def sized(self, shape: Sequence[builtins.int], what: builtins.str) -> list[builtins.int]:
        """`shape`, of a tensor whose size a runtime value decides, checked before it is
        made (limits.check_size: no negative size, at most 2**40 elements, and no more
        than the memory available): an allocation past it would get the process killed."""
        dims = [builtins.int(d) for d in shape]
        check_size(dims, self.where(), what)
        return dims

    def check(self, ok: bool, message: str) -> None:
        """Refuse the op at load unless `ok` (an attribute outside its documented range)."""
        if not ok:
            raise self.fail(message)

    def choice(self, param: str, allowed: tuple[str, ...], default: Any = _MISSING) -> str:
        """A string attribute that must be one of `allowed` (checked at load)."""
        value = self.str(param, default)
        if value not in allowed:
            raise self.fail(f"{param} '{value}' is not one of {', '.join(allowed)}")
        return value

    def round(self, x: Any) -> Any:
        """`x` rounded to fp16 in fp16 mode (where Core ML holds an fp16 intermediate, e.g. a
        recurrent state between steps), unchanged otherwise."""
        return self.xp.round_to_fp16(x) if self.fp16 else x

    def dims(self, param: str) -> tuple[int, ...] | None:
        """Declared shape of the tensor bound to `param` when fully known at load (shape
        checks then fail at load, not at run)."""
        t = self.input_type(param)
        if t is None:
            value = self.const(param) if self.is_const(param) else None
            return None if value is None else tuple(np.shape(value))
        return t.static_shape

    def rank(self, param: str) -> int:
        """Declared rank of the tensor bound to `param` (shapes may be unknown, ranks not)."""
        t = self.input_type(param)
        if t is not None:
            return len(t.shape)
        value = self.const(param)
        return np.ndim(value)

    # -- arguments --------------------------------------------------------------------
    def has(self, param: str) -> bool:
        return bool(self.op.inputs.get(param))

    def _args(self, param: str):
        args = self.op.inputs.get(param)
        if not args:
            raise self.fail(f"missing required input '{param}'")
        return args

    def is_const(self, param: str) -> bool:
        return all(a.ref is None or a.ref in self._consts for a in self.op.inputs.get(param, []))

    def const(self, param: str, default: Any = _MISSING) -> Any:
        """Compile-time value of `param` (numpy array, numpy scalar or str); `default` if absent."""
        args = self.op.inputs.get(param)
        if not args:
            if default is _MISSING:
                raise self.fail(f"missing required input '{param}'")
            return default
        values = [self._const_of(param, a) for a in args]
        return values[0] if len(values) == 1 else values

    def _const_of(self, param: str, arg) -> Any:
        if arg.ref is None:
            return materialize(arg.value)
        if arg.ref in self._consts:
            return self._consts[arg.ref]
        raise self.fail(f"input '{param}' must be a constant, got runtime variable '{arg.ref}'")

    @overload
    def ints(self, param: str) -> list[int]: ...
    @overload
    def ints(self, param: str, default: list[int]) -> list[int]: ...
    @overload
    def ints(self, param: str, default: None) -> list[int] | None: ...

    def ints(self, param: str, default: Any = _MISSING) -> list[int] | None:
        """Integer list attribute; None only where the default given is None."""
        v = self.const(param, default)
        return None if v is None else [int(i) for i in np.asarray(v).reshape(-1)]

    def _one(self, param: builtins.str, default: Any) -> np.ndarray:
        """The single value of a scalar attribute; any other count of values is refused."""
        value = np.asarray(self.const(param, default))
        if value.size != 1:
            raise self.fail(f"input '{param}' must be a scalar, got shape {value.shape}")
        return value.reshape(())

    def int(self, param: builtins.str, default: Any = _MISSING) -> builtins.int:
        return int(self._one(param, default))

    def float(self, param: builtins.str, default: Any = _MISSING) -> builtins.float:
        return float(self._one(param, default).astype(np.float64))

    def scalar(self, param: builtins.str, default: Any = _MISSING) -> builtins.float:
        """A float attribute the op computes with (alpha, epsilon, a padding value): in fp16
        mode rounded to fp16, as every constant tensor is (`tensor`)."""
        value = self.float(param, default)
        return float(np.float16(value)) if self.fp16 else value

    def bool(self, param: builtins.str, default: Any = _MISSING) -> builtins.bool:
        return bool(self._one(param, default))

    def bools(self, param: builtins.str) -> list[builtins.bool] | None:
        v = self.const(param, None)
        return None if v is None else [bool(b) for b in np.asarray(v).reshape(-1)]

    def str(self, param: builtins.str, default: Any = _MISSING) -> builtins.str:
        return str(self.const(param, default))

    def ref(self, param: builtins.str) -> builtins.str:
        """Env key of the single tensor bound to `param` (constants go into the pool)."""
        refs = self.refs(param)
        if len(refs) != 1:
            raise self.fail(f"input '{param}' expects one value, got {len(refs)}")
        return refs[0]

    def refs(self, param: builtins.str) -> list[builtins.str]:
        keys = []
        for i, arg in enumerate(self._args(param)):
            if arg.ref is not None and arg.ref not in self._consts:
                keys.append(arg.ref)
                continue
            key = arg.ref if arg.ref is not None else f"{self.op.name}@{param}.{i}"
            if key not in self._pool:
                self._pool[key] = self._to_backend(self._const_of(param, arg), arg.dtype)
            keys.append(key)
        return keys

    def opt_ref(self, param: builtins.str) -> builtins.str | None:
        return self.ref(param) if self.has(param) else None

    def input_type(self, param: builtins.str) -> VarType | None:
        """Declared type of a referenced variable (None for inline values)."""
        return self._types.get(self._args(param)[0].ref or "")

    def out(self, i: builtins.int = 0) -> VarType:
        return self.op.outputs[i]
