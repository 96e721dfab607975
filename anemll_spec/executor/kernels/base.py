"""Kernel registry and the prepare-time view of one op.

A kernel is a factory `make(p: Prep) -> Run`: called once per op when a program is prepared,
it reads the op's compile-time constants through `p.const(...)` (axes, perm, weights...),
precomputes what it can (re-laid-out weights, slices), and returns `run(env)`, which reads
runtime tensors from `env` by the keys `p.ref(...)` handed out and returns the op's output
(a tuple for several outputs). Runtime tensors are only touched through `p.xp`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from anemll_spec.errors import InputError
from anemll_spec.executor.graph import Op, VarType, materialize

Env = dict[str, Any]
Run = Callable[[Env], Any]
Factory = Callable[["Prep"], Run]

KERNELS: dict[str, Factory] = {}
STATE_KEY = "@state"  # env key of the State object during a predict call

_MISSING = object()


def kernel(*op_types: str) -> Callable[[Factory], Factory]:
    def register(fn: Factory) -> Factory:
        for t in op_types:
            KERNELS[t] = fn
        return fn

    return register


class Prep:
    """What a kernel factory may ask about its op while the program is being prepared."""

    def __init__(
        self,
        op: Op,
        xp: Any,
        consts: dict[str, Any],
        pool: dict[str, Any],
        to_backend: Callable[[Any, str | None], Any],
        fp16: bool,
        types: dict[str, VarType],
    ):
        self.op = op
        self._types = types  # var name -> declared VarType, for every variable
        self.xp = xp
        self.fp16 = fp16
        self._consts = consts  # var name -> decoded numpy value, for const / constexpr outputs
        self._pool = pool  # env key -> backend tensor for constants read at runtime
        self._to_backend = to_backend

    def tensor(self, value: Any) -> Any:
        """A load-time constant as a backend tensor, made the way every constant is: float
        values in the compute dtype, rounded to fp16 in fp16 mode, fp16 weights without an
        fp32 round trip."""
        return self._to_backend(value)

    # -- errors -----------------------------------------------------------------------
    def fail(self, message: str) -> InputError:
        return InputError(f"{self.op.where()}: {message}")

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

    def ints(self, param: str, default: Any = _MISSING) -> list[int] | None:
        v = self.const(param, default)
        return None if v is None else [int(i) for i in np.asarray(v).reshape(-1)]

    def int(self, param: str, default: Any = _MISSING) -> int:
        return int(np.asarray(self.const(param, default)).reshape(()))

    def float(self, param: str, default: Any = _MISSING) -> float:
        return float(np.asarray(self.const(param, default), dtype=np.float64).reshape(()))

    def bool(self, param: str, default: Any = _MISSING) -> bool:
        return bool(np.asarray(self.const(param, default)).reshape(()))

    def bools(self, param: str) -> list[bool] | None:
        v = self.const(param, None)
        return None if v is None else [bool(b) for b in np.asarray(v).reshape(-1)]

    def str(self, param: str, default: Any = _MISSING) -> str:
        return str(self.const(param, default))

    def ref(self, param: str) -> str:
        """Env key of the single tensor bound to `param` (constants go into the pool)."""
        refs = self.refs(param)
        if len(refs) != 1:
            raise self.fail(f"input '{param}' expects one value, got {len(refs)}")
        return refs[0]

    def refs(self, param: str) -> list[str]:
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

    def opt_ref(self, param: str) -> str | None:
        return self.ref(param) if self.has(param) else None

    def input_type(self, param: str) -> VarType | None:
        """Declared type of a referenced variable (None for inline values)."""
        return self._types.get(self._args(param)[0].ref or "")

    def out(self, i: int = 0) -> VarType:
        return self.op.outputs[i]
