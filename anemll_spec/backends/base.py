"""What every backend provides: prepare a model once, load instances, predict.

The harness times `Session.bind(feed, state)`, a zero-argument callable made once: the
caller's input conversion (`feed`) is outside the timed call; the backend's own per-call
work stays inside it (Core ML: the binding's type checks, input wrapping, the fp16->fp32
output conversion and the copy to numpy; docs/coreml.md section 2). `runtime_probe`
reports the runtime's own part of that call, where the runtime says.

Each backend takes what it needs from the spec's run section as its own options object
(`Backend.options(run, compute_units)`), so `load` has one signature everywhere and
options can be pickled to an instance process.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from anemll_spec.spec.run_section import Run


class BackendError(Exception):
    """A backend cannot do what was asked (unsupported compute unit, not available)."""


@dataclass
class Prepared:
    """A model made ready for loading (Core ML: compiled to .mlmodelc)."""

    path: Path  # what `load` opens
    source: Path  # the built or external model
    compile_s: float | None  # None where the backend compiles nothing
    # from the model's description (model_io), filled in by the caller
    input_dtypes: dict[str, str] = field(default_factory=dict)
    states: tuple[str, ...] = ()


class Session(ABC):
    """One loaded model instance on one compute unit / device."""

    #: `after` hook for the harness: the runtime's own duration of the last predict (ns)
    runtime_probe: Callable[[], int | None] | None = None

    @abstractmethod
    def feed(self, inputs: dict[str, Any]) -> dict[str, Any]:
        """Inputs converted ONCE into what `predict` takes (outside any timed loop)."""

    @abstractmethod
    def new_state(self) -> Any:
        """A fresh state for stateful models; None for stateless ones."""

    @abstractmethod
    def predict(self, feed: dict[str, Any], state: Any = None) -> dict[str, Any]:
        """One prediction; outputs as numpy arrays."""

    def bind(self, feed: dict[str, Any], state: Any = None) -> Callable[[], object]:
        """A zero-argument call of `predict` with fixed inputs (what the harness times)."""
        import functools

        if state is None:
            return functools.partial(self.predict, feed)
        return functools.partial(self.predict, feed, state)

    def placements(self) -> list[dict]:
        """Per-op device placement rows (only Core ML knows them)."""
        return []

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release the instance."""


@dataclass(frozen=True)
class Options:
    """What a backend's `load` takes from the spec (each backend subclasses it)."""


class Backend(ABC):
    name: str
    compiles: bool = False  # prepare() compiles the model (Core ML): a phase of its own
    # Compressed weights decoded to dense once, at load (the executor-based backends):
    # each call then reads dense weights, not the stored bytes GB/s counts.
    decodes_weights: bool = True

    def prepare(self, model_path: Path, workdir: Path) -> Prepared:
        """Once per model: whatever load needs. The executor-based backends load the
        package itself (nothing to compile); Core ML overrides this to compile."""
        return Prepared(path=Path(model_path), source=Path(model_path), compile_s=None)

    @abstractmethod
    def options(self, run: Run, compute_units: str | None = None) -> Options:
        """This backend's load options from the spec's run section (and the variant's
        compute unit, where the backend has compute units)."""

    @abstractmethod
    def load(self, prepared: Prepared, options: Options) -> Session:
        """One instance of the model; the caller times it."""
