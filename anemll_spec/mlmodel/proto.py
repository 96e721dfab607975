"""coremltools' generated protobuf classes, loaded without importing coremltools.

`import coremltools` runs its package __init__, which loads the converters (and torch,
when installed): seconds, for a reader that only needs the message classes of
`coremltools/proto/*_pb2.py`. We load those files from the installed coremltools under a
private package name, so `coremltools/__init__.py` never runs. The descriptors land in
protobuf's default pool under their .proto file names, and protobuf hands out one class per
descriptor, so a later `import coremltools` in the same process gets the very same classes.
When coremltools is already imported, its own modules are used.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
import types
from pathlib import Path
from typing import Any

from anemll_spec.errors import InputError

_ALIAS = "anemll_spec._coremltools_proto"


def _package() -> str:
    """Name of a package whose submodules are coremltools' *_pb2 modules."""
    if "coremltools.proto" in sys.modules:
        return "coremltools.proto"
    if _ALIAS not in sys.modules:
        spec = importlib.util.find_spec("coremltools")  # locates; does not execute __init__
        if spec is None or spec.origin is None:
            raise InputError("coremltools is not installed: it is needed to read Core ML models")
        folder = Path(spec.origin).parent / "proto"
        pkg = types.ModuleType(_ALIAS)
        pkg.__path__ = [str(folder)]  # the generated modules import their siblings relatively
        pkg.__package__ = _ALIAS
        sys.modules[_ALIAS] = pkg
    return _ALIAS


def module(name: str) -> Any:
    """A generated module by its file name, e.g. module("Model_pb2")."""
    return importlib.import_module(f"{_package()}.{name}")


def parse_model(data: bytes, where: Path | str) -> Any:
    """A `Model` message from the bytes of model.mlmodel (InputError if it is not one)."""
    from google.protobuf.message import DecodeError

    spec = module("Model_pb2").Model()
    try:
        spec.ParseFromString(data)
    except (DecodeError, RuntimeError, ValueError) as exc:
        raise InputError(f"{where}: the model proto is corrupt ({exc})") from None
    if not spec.specificationVersion or not spec.HasField("description"):
        raise InputError(f"{where}: the model proto is empty or not a Core ML model")
    return spec
