"""`State`: the mutable state tensors of a stateful program (like Core ML's MLState)."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

import numpy as np

from anemll_spec.errors import InputError
from anemll_spec.mlmodel.features import TensorSpec


class State(Mapping):
    """State tensors, zero-initialised, stored in their declared dtypes and updated in place
    by `Program.predict`. `read(name)` / `write(name, array)` (or `state[name]`) go through
    numpy copies; the program itself reads and writes backend tensors."""

    def __init__(self, specs: dict[str, TensorSpec], xp: Any, owner: object):
        self.specs = specs
        self._xp = xp
        self._owner = owner  # the Program that made it
        self._data = {name: xp.full(list(s.shape), 0, s.dtype) for name, s in specs.items()}

    # -- user side (numpy) -------------------------------------------------------------
    def read(self, name: str) -> np.ndarray:
        self._spec(name)
        return np.array(self._xp.to_numpy(self._data[name]), copy=True)

    def write(self, name: str, value: Any) -> None:
        spec = self._spec(name)
        arr = np.asarray(value)
        if tuple(arr.shape) != tuple(spec.shape):
            raise InputError(f"state '{name}': shape {tuple(arr.shape)} != {tuple(spec.shape)}")
        kind = np.dtype(spec.dtype).kind
        if kind == "f" and arr.dtype.kind not in "fiu":
            raise InputError(f"state '{name}': dtype {arr.dtype} for a {spec.dtype} state")
        if kind in "iu" and arr.dtype.kind not in "iu":
            raise InputError(f"state '{name}': dtype {arr.dtype} for a {spec.dtype} state")
        self._data[name] = self._xp.asarray(arr.astype(spec.dtype))

    def __getitem__(self, name: str) -> np.ndarray:
        return self.read(name)

    def __setitem__(self, name: str, value: Any) -> None:
        self.write(name, value)

    def __iter__(self) -> Iterator[str]:
        return iter(self.specs)

    def __len__(self) -> int:
        return len(self.specs)

    def reset(self) -> None:
        for name, s in self.specs.items():
            self._data[name] = self._xp.full(list(s.shape), 0, s.dtype)

    def _spec(self, name: str) -> TensorSpec:
        if name not in self.specs:
            raise InputError(f"no state named '{name}' (states: {', '.join(self.specs) or 'none'})")
        return self.specs[name]

    # -- program side (backend tensors) ------------------------------------------------
    def get_compute(self, name: str) -> Any:
        v = self._data[name]
        if np.dtype(self.specs[name].dtype).kind == "f":
            return self._xp.astype(v, self._xp.float_dtype)
        return v

    def set_compute(self, name: str, value: Any) -> None:
        spec = self.specs[name]
        if tuple(self._xp.shape(value)) != tuple(spec.shape):
            raise InputError(
                f"state '{name}': update of shape {tuple(self._xp.shape(value))} != {spec.shape}"
            )
        self._data[name] = self._xp.astype(value, spec.dtype)  # rounds to the state's dtype
