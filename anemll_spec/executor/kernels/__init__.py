"""Op kernels, registered by MIL op type in `KERNELS` (see `base` for the contract), one
module per family of ops."""

from anemll_spec.executor.kernels import (  # noqa: F401  (importing registers the kernels)
    conv,
    elementwise,
    gather,
    image,
    layout,
    linear,
    misc,
    normalization,
    recurrent,
    reduction,
    sample,
    shape,
    slicing,
    sort,
    state,
)
from anemll_spec.executor.kernels.base import (
    HOST_OPS,
    KERNELS,
    REFUSED,
    STATE_KEY,
    Prep,
    Run,
    kernel,
)

__all__ = ["HOST_OPS", "KERNELS", "REFUSED", "STATE_KEY", "Prep", "Run", "kernel"]
