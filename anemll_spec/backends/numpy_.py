"""The reference executor (numpy) as a backend: runs anywhere, compute units do not apply."""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from anemll_spec.backends.base import Backend, BackendError, Options, Prepared, Session

NAME = "numpy"


def available() -> tuple[bool, str]:
    return True, "reference executor (numpy), runs everywhere"


class NumpySession(Session):
    def __init__(self, program: Any):
        self.program = program

    def feed(self, inputs: dict[str, Any]) -> dict[str, Any]:
        # The executor checks and converts inputs on every call: that is part of its
        # predict cost, as Core ML's own input handling is part of Core ML's.
        return dict(inputs)

    def new_state(self) -> Any:
        return self.program.make_state() if self.program.states else None

    def predict(self, feed: dict[str, Any], state: Any = None) -> dict[str, Any]:
        return self.program.predict(feed, state)

    def bind(self, feed: dict[str, Any], state: Any = None) -> Callable[[], object]:
        # the executor's own bound method: no wrapper frame inside the timed call
        return functools.partial(self.program.predict, feed, state)


@dataclass(frozen=True)
class ExecutorOptions(Options):
    fp16: bool = False  # round every op's result to fp16 (run.fp16_reference)


class NumpyBackend(Backend):
    name = NAME

    def options(self, run, compute_units=None) -> ExecutorOptions:
        if compute_units is not None:
            raise BackendError("compute units do not apply to the numpy backend")
        return ExecutorOptions(fp16=run.fp16_reference)

    def load(self, prepared: Prepared, options: Options) -> Session:
        from anemll_spec.executor import load

        assert isinstance(options, ExecutorOptions)
        return NumpySession(load(prepared.path, fp16=options.fp16))


def backend() -> Backend:
    return NumpyBackend()
