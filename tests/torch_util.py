"""The torch devices a test runs the executor on: the CPU always, CUDA where this host
has it (CI has none; the device machine runs the same tests on its GPU)."""

from __future__ import annotations


def torch_devices() -> list[str]:
    try:
        import torch
    except ImportError:
        return []
    return ["cpu", "cuda"] if torch.cuda.is_available() else ["cpu"]


def refused_at_load(path, pattern: str) -> None:
    """The numpy executor, and the torch one on each of torch_devices(), refuse the saved
    program at `path` at load with an InputError matching `pattern`."""
    import pytest

    from anemll_spec.errors import InputError
    from anemll_spec.executor import load

    with pytest.raises(InputError, match=pattern):
        load(path)
    from anemll_spec.executor.torch_runner import load_torch

    for device in torch_devices():
        with pytest.raises(InputError, match=pattern):
            load_torch(path, device=device)
