"""Runtime indices and slice bounds checked on the device (torch on CUDA).

A check ORs its verdict into a persistent device flag instead of reading it on the host,
so a forward pass with runtime positions (a KV-cache write, a gather at a runtime index)
can be captured as a CUDA graph; `raise_device_errors` reads the flags once, after the
call, and raises for the op that saw a bad value. Mixed into `TorchOps`.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from anemll_spec.executor.arrays import host_checked_indices, host_slice_where, index_range


class DeviceChecks:
    """The checked-index primitives of the seam; needs `device`, `device_checks`,
    `_pending` and `_consts` (set by `TorchOps.__init__`)."""

    device: torch.device
    device_checks: bool
    _pending: dict[tuple[int, str], tuple[torch.Tensor, Any]]
    _consts: dict[tuple, torch.Tensor]

    # -- runtime indices and bounds, checked on the device ----------------------------
    # Few kernels on purpose: in a captured decode step these small launches are a good
    # share of the time.
    def checked_indices(
        self, indices: torch.Tensor, dim: int, fail, wrap: bool = True
    ) -> torch.Tensor:
        if not self.device_checks:
            return host_checked_indices(self, indices, dim, fail, wrap)
        low = -dim if wrap else 0
        self._defer((indices < low) | (indices >= dim), index_range(dim, wrap), fail)
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
            f"update of shape {size} does not match the slice begin:end of x {shape}",
            fail,
        )
        # a bad slice still writes in bounds (then raises)
        b = torch.minimum(b, self._const(tuple(d - k for d, k in zip(shape, size, strict=True))))
        return self._offsets(shape, size) + (b * self._const(_strides(shape))).sum()

    def setitem(self, x: torch.Tensor, slices: Any, value: Any) -> torch.Tensor:
        """numpy-style index assignment: TorchOps' own (declared here for write_slice)."""
        raise NotImplementedError

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


def _strides(shape: tuple[int, ...]) -> tuple[int, ...]:
    """Element strides of a contiguous tensor of `shape`."""
    out, acc = [], 1
    for d in reversed(shape):
        out.append(acc)
        acc *= d
    return tuple(reversed(out))
