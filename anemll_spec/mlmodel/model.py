"""`open_model(path)`: one saved Core ML model, whatever its form, read on demand.

    m = open_model("head.mlpackage")     # or .mlmodelc, .mlmodel
    m.io()                               # ModelIO: inputs, outputs, states
    m.program()                          # ir.Program (functions of ops), weights left mapped
    m.spec_version, m.deployment_target

Nothing here imports coremltools itself: the protobuf classes come from `proto.py`.
"""

from __future__ import annotations

import re
from functools import cached_property
from pathlib import Path
from typing import Any

from anemll_spec.errors import InputError
from anemll_spec.mlmodel import features, files, ir
from anemll_spec.mlmodel.features import ModelIO

TARGET_OF_SPEC = {
    4: "iOS13",
    5: "iOS14",
    6: "iOS15",
    7: "iOS16",
    8: "iOS17",
    9: "iOS18",
    10: "iOS26",
}
_OPSET_TARGET = {"CoreML5": "iOS15", "CoreML6": "iOS16", "CoreML7": "iOS17", "CoreML8": "iOS18"}


def opset_target(opset: str) -> str | None:
    """A function's opset as the target it needs: 'CoreML7' or 'ios17' -> 'iOS17'."""
    if opset in _OPSET_TARGET:
        return _OPSET_TARGET[opset]
    m = re.fullmatch(r"ios(\d+)", opset or "")
    return f"iOS{m.group(1)}" if m else None


class SavedModel:
    def __init__(self, located: files.ModelFiles):
        self.files = located
        self.path = located.path
        self.kind = located.kind
        self._weights = None

    # -- the raw parts -----------------------------------------------------------------
    @cached_property
    def spec(self) -> Any:
        """The Model protobuf message (.mlpackage, .mlmodel); None for a compiled model."""
        if self.files.spec_file is None:
            return None
        from anemll_spec.mlmodel.proto import parse_model

        return parse_model(self.files.spec_file.read_bytes(), self.path)

    @cached_property
    def metadata(self) -> dict | None:
        """metadata.json of a compiled model (None when absent or not compiled)."""
        if self.kind != "mlmodelc":
            return None
        return files.read_compiled_metadata(self.path)

    @property
    def weights(self):
        """The program's weight files (mapped on first use)."""
        if self._weights is None:
            from anemll_spec.mlmodel.protoread import WeightFiles

            self._weights = WeightFiles(self.files.model_dir)
        return self._weights

    # -- what it says ------------------------------------------------------------------
    @property
    def spec_version(self) -> int | None:
        if self.spec is not None:
            return int(self.spec.specificationVersion)
        v = (self.metadata or {}).get("specificationVersion")
        try:
            return int(v) if v is not None else None
        except (TypeError, ValueError):
            raise InputError(f"{self.path}: metadata.json specificationVersion {v!r}") from None

    def io(self, function: str | None = None) -> ModelIO:
        """Inputs, outputs and states, from the model's own description (of `function`,
        else the default function, for a multi-function model)."""
        if self.spec is not None:
            return features.from_description(self.spec, self.kind, self.path, function)
        if features.has_schema(self.metadata):
            return features.from_metadata(self.metadata, self.path)  # type: ignore[arg-type]
        if self.files.mil_file is None:
            raise InputError(
                f"{self.path}: not a compiled Core ML model "
                "(neither metadata.json with inputSchema nor model.mil)"
            )
        prog = self.program()
        fn = prog.function(None, str(self.path))
        return features.from_function(fn, self.kind, self.path)

    def program(self, function: str | None = None) -> ir.Program:
        """The ML Program (every function, or only `function`) as the IR, its ops in an
        order they can run in (checked here, for every reader of it)."""
        prog = self._read_program(function)
        for fn in prog.functions.values():
            for op, name in ir.undefined_reads(fn):
                raise InputError(
                    f"{self.path}: function '{fn.name}': {op.where()} reads '{name}', which "
                    "nothing defines before it (a cycle, or ops out of order)"
                )
        return prog

    def _read_program(self, function: str | None) -> ir.Program:
        if self.spec is not None:
            from anemll_spec.mlmodel.protoread import read_program

            return read_program(self.spec, self.weights, self.path, only=function)
        mil = self.files.mil_file
        if mil is None:
            if self.metadata is not None:
                raise InputError(
                    f"{self.path}: compiled model has no model.mil (not an ML Program?)"
                )
            raise InputError(
                f"{self.path}: not a compiled Core ML model "
                "(neither metadata.json with inputSchema nor model.mil)"
            )
        from anemll_spec.mlmodel.miltext import read_program as read_text

        order = None
        if features.has_schema(self.metadata):
            order = [t.name for t in features.from_metadata(self.metadata, self.path).inputs]  # type: ignore[arg-type]
        text = mil.read_text(errors="replace")
        return read_text(text, mil, self.weights, self.spec_version, order)

    def deployment_target(self, opset: str = "") -> str | None:
        if self.spec_version in TARGET_OF_SPEC:
            return TARGET_OF_SPEC[self.spec_version]
        return opset_target(opset)

    def weight_files(self) -> list[Path]:
        return files.weight_files(self.files)


def open_model(path: str | Path) -> SavedModel:
    """The saved model at `path` (InputError naming the path if it is not one)."""
    return SavedModel(files.locate(path))
