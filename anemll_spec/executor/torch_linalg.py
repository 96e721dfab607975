"""Linear algebra of the torch array seam: matmul (GEMV on CUDA through Triton or cuBLAS),
einsum, conv and conv_transpose. Mixed into `TorchOps`."""

from __future__ import annotations

import torch
import torch.nn.functional as F  # noqa: N812

from anemll_spec.errors import InputError


class TorchLinalg:
    """Needs `gemv_impl` (set by `TorchOps.__init__`)."""

    gemv_impl: str

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

    @staticmethod
    def conv_transpose(x, w, strides, dilations, groups) -> torch.Tensor:
        nd = w.dim() - 2
        fn = {1: F.conv_transpose1d, 2: F.conv_transpose2d, 3: F.conv_transpose3d}.get(nd)
        if fn is None:
            raise InputError(f"conv_transpose with {nd} spatial dimensions is not supported")
        return fn(x, w, None, list(strides), 0, 0, int(groups), list(dilations))
