"""The results store: one DuckDB file that users query with SQL and charts read.

Schema declared once as data (`schema`), migrations (`migrations`), the write API the
runner calls (`writer`; `energy` turns power readings and sustained runs into its
arguments), export bundles (`bundle`) and import them (`importing`), the checks every
row from elsewhere passes (`trust.check_staged`, with `energy_checks`), the one factor
rule (`factors.for_run`, the `case_factors_vs` macro of `views`; energy:
`energy_factors_vs`, views_energy.py). Open it only through
`open_store` (the one seam between anemll-spec and the storage engine).
"""

from typing import TYPE_CHECKING, Any

from anemll_spec.store.connection import (
    StoreLocked,
    default_target,
    open_store,
    store_path,
)
from anemll_spec.store.schema import SCHEMA_VERSION

if TYPE_CHECKING:
    from anemll_spec.store.writer import (
        StoreWriteFailed,
        append_case,
        begin_run,
        finish_run,
        mark_interrupted,
    )

_WRITER = ("StoreWriteFailed", "append_case", "begin_run", "finish_run", "mark_interrupted")


def __getattr__(name: str) -> Any:
    """The write API loads on first use: it imports numpy, which reading commands
    (query, chart, report, share) never need."""
    if name in _WRITER:
        from anemll_spec.store import writer

        return getattr(writer, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "SCHEMA_VERSION",
    "StoreLocked",
    "StoreWriteFailed",
    "append_case",
    "begin_run",
    "default_target",
    "finish_run",
    "mark_interrupted",
    "open_store",
    "store_path",
]
