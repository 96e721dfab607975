"""Op kernels, registered by MIL op type in `KERNELS` (see `base` for the contract)."""

from anemll_spec.executor.kernels import elementwise, linear, reduction, shape, state  # noqa: F401
from anemll_spec.executor.kernels.base import KERNELS, STATE_KEY, Prep, Run, kernel

__all__ = ["KERNELS", "STATE_KEY", "Prep", "Run", "kernel"]
