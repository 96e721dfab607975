"""Keys stay stable: the typed spec gives every case the keys the dict-based spec gave.

tests/fixtures/spec/keys.json was recorded by record_keys.py with the spec code of before
the typed models (commit e1839a6); stored runs keep pairing with new runs only if these
never change."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent / "fixtures" / "spec"
sys.path.insert(0, str(HERE))
from record_keys import VARIANTS, keys_of, spec_texts  # noqa: E402

RECORDED = json.loads((HERE / "keys.json").read_text())


@pytest.mark.parametrize("name", sorted(RECORDED))
def test_keys_are_the_recorded_ones(name):
    got = keys_of(spec_texts()[name])
    want = RECORDED[name]
    assert len(got) == len(want)
    for g, w in zip(got, want, strict=True):
        assert (g["index"], g["key"], g["build_key"]) == (w["index"], w["key"], w["build_key"])
        assert g["variant_keys"] == w["variant_keys"]
        assert len(g["variant_keys"]) == len(VARIANTS)
        if "compression=" not in w["model_name"]:
            assert g["model_name"] == w["model_name"]


def test_compression_sweep_points_get_short_names():
    """Issue 14: a compression sweep's case names were the whole JSON; now a short label."""
    names = [c["model_name"] for c in keys_of(spec_texts()["extra:compression_sweep"])]
    assert names == [
        "compression_sweep[compression=none,layout=conv]",
        "compression_sweep[compression=none,layout=linear]",
        "compression_sweep[compression=lut4,layout=conv]",
        "compression_sweep[compression=lut4,layout=linear]",
        "compression_sweep[compression=int8,layout=conv]",
        "compression_sweep[compression=int8,layout=linear]",
    ]


def test_every_shipped_spec_is_recorded():
    shipped = {p.name for p in (HERE.parents[2] / "specs").glob("*.yaml")}
    assert shipped <= set(RECORDED)
