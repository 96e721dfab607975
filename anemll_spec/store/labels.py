"""How a stored case is shown: its label as plan and bench print it (spec.case.Case.label),
rebuilt from the stored model_name and params.

model_name is what the views pair on: a published model's name alone, whatever the sweep
set (four sweep points of llama_lm_head are each `llama_lm_head`). Shown that way, the
points of a sweep look alike in share and the report; the label adds the sweep's values
(`llama_lm_head[iterations=20]`). Any other case's model_name already holds them.
"""

from __future__ import annotations

import json
from functools import cache
from typing import Any


def case_label(model_name: str | None, params: Any) -> str | None:
    """The case's label: `model_name` with its sweep's values where it is a published
    model swept over something, else `model_name` itself. `params`: the stored JSON (text
    or a dict; NULL or {} for a case of no sweep)."""
    if isinstance(params, str):
        try:
            params = json.loads(params)
        except ValueError:
            return model_name
    if not params or not isinstance(params, dict) or model_name is None:
        return model_name
    model = _published(model_name)
    if model is None:
        return model_name
    from anemll_spec.spec.case import Case
    from anemll_spec.spec.run_section import Run

    # the published model's own fields, so the label is Case.label's, compression and all
    return Case(spec_name=model_name, index=0, model=model, run=Run(), params=params).label


def labels_of(con, run_id: str) -> dict[str, str | None]:
    """case_id -> label of every case of `run_id`."""
    rows = con.execute(
        "SELECT case_id, model_name, params FROM cases WHERE run_id = ?", [run_id]
    ).fetchall()
    return {case_id: case_label(model, params) for case_id, model, params in rows}


@cache
def _published(name: str):
    """The model of a published name (spec.case.PUBLISHED_MODELS), or None."""
    from anemll_spec.spec.case import PUBLISHED_MODELS
    from anemll_spec.spec.families import FAMILIES

    fields = PUBLISHED_MODELS.get(name)
    return None if fields is None else FAMILIES[str(fields["family"])].model_validate(fields)
