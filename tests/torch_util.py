"""The torch devices a test runs the executor on: the CPU always, CUDA where this host
has it (CI has none; the device machine runs the same tests on its GPU)."""

from __future__ import annotations


def torch_devices() -> list[str]:
    try:
        import torch
    except ImportError:
        return []
    return ["cpu", "cuda"] if torch.cuda.is_available() else ["cpu"]
