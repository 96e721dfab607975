"""Torch host facts: which devices this torch can use, and the versions and GPU of a run.

Each fact is collected once per process (`nvidia-smi` runs at most once: host.nvidia_gpus).
torch is imported inside the functions.
"""

from __future__ import annotations

import contextlib
import functools
from typing import TYPE_CHECKING, Any

from anemll_spec.errors import InputError

if TYPE_CHECKING:
    import torch

DEVICES = ("auto", "cuda", "mps", "cpu")


def resolve_device(requested: str | None = "auto") -> torch.device:
    """auto: cuda if available, else mps, else cpu; an unavailable explicit device is an
    InputError naming what this torch has."""
    import torch

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


def synchronize(device: torch.device) -> None:
    """Wait for the device's queued work (a no-op on CPU)."""
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize(device)
    elif device.type == "mps":
        torch.mps.synchronize()


def torch_info(device: str | torch.device | None = "auto") -> dict[str, Any]:
    """Versions and the GPU, for the run's host record (keys as the store's `hosts`).

    Collected once per process and device; each call returns a fresh dict, its texts
    store lines (host.store_lines), as host.capture's."""
    import torch

    try:
        dev = device if isinstance(device, torch.device) else resolve_device(device)
    except InputError:
        dev = torch.device("cpu")
    from anemll_spec.host import store_lines  # the driver's GPU name: a store line too

    return store_lines(_torch_info(dev.type, dev.index or 0))


@functools.cache
def _torch_info(kind: str, index: int) -> dict[str, Any]:
    import importlib.metadata
    import importlib.util

    import torch

    info: dict[str, Any] = {
        "torch_version": torch.__version__,
        "cuda_version": torch.version.cuda,
        "triton_version": None,
    }
    if importlib.util.find_spec("triton") is not None:
        with contextlib.suppress(importlib.metadata.PackageNotFoundError):
            info["triton_version"] = importlib.metadata.version("triton")
    info["torch_device"] = kind
    if kind == "cuda":
        props = torch.cuda.get_device_properties(index)
        from anemll_spec.host import nvidia_gpus  # the host capture's one nvidia-smi answer

        gpus = nvidia_gpus()
        info.update(
            gpu=props.name,
            gpu_memory_bytes=int(props.total_memory),
            gpu_sm_count=int(props.multi_processor_count),
            gpu_capability=f"{props.major}.{props.minor}",
            cudnn_version=torch.backends.cudnn.version(),
            gpu_driver=gpus[index]["driver"] if index < len(gpus) else None,
        )
    elif kind == "mps":
        info["gpu"] = "Apple GPU (MPS)"
    return info
