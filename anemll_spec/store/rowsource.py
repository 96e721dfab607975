"""A table's row made from the objects that hold its figures, by the schema's own column
names: the runner never spells out a column, the store never reaches into the runner.

    row = row_from(schema.CASES, variant, measurement, Prefixed("verify_", verdict))

Each column takes its value from the first source that has an attribute (or a mapping
key) of that name; `Prefixed` serves `verify_<field>` from a Verdict's `<field>`. Columns
that no source knows are left out (NULL), as are the ones the writer manages itself.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from anemll_spec.store.schema import Table

_MISSING = object()


@dataclass(frozen=True)
class Prefixed:
    """A source whose names appear in the table with a prefix (verify_max_abs_error)."""

    prefix: str
    source: Any

    def get(self, name: str) -> Any:
        if self.source is None or not name.startswith(self.prefix):
            return _MISSING
        return _value(self.source, name.removeprefix(self.prefix))


def _value(source: Any, name: str) -> Any:
    if source is None:
        return _MISSING
    if isinstance(source, Prefixed):
        return source.get(name)
    if isinstance(source, Mapping):
        return source.get(name, _MISSING)
    return getattr(source, name, _MISSING)


def row_from(table: Table, *sources: Any, managed: Iterable[str] = ()) -> dict[str, Any]:
    """The row of `table` the sources describe (see the module docstring)."""
    skip = set(managed)
    row: dict[str, Any] = {}
    for column in table.columns:
        if column.name in skip:
            continue
        for source in sources:
            value = _value(source, column.name)
            if value is not _MISSING:
                row[column.name] = value
                break
    return row
