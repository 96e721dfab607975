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


def test_a_size_the_granularity_does_not_use_gives_no_new_key(tmp_path):
    """group_size with per_tensor (block_size with per_channel) builds the same package:
    it is held at its default, so the keys are the default's (and a granularity sweep
    over a spec that sets the size still works)."""
    from anemll_spec.spec import load_cases

    base = "name: t\nmodel: {family: matmul, m: 8, k: 64, n: 64, compression: %s}\n"
    keys = {}
    for name, comp in {
        "lut": "{palettize: {nbits: 4}}",
        "lut_g16": "{palettize: {nbits: 4, group_size: 16}}",
        "int8": "{quantize: {dtype: int8}}",
        "int8_b16": "{quantize: {dtype: int8, block_size: 16}}",
        "grouped": "{palettize: {nbits: 4, granularity: per_grouped_channel, group_size: 16}}",
    }.items():
        path = tmp_path / f"{name}.yaml"
        path.write_text(base % comp)
        (case,) = load_cases(path)[1]
        keys[name] = (case.key, case.build_key)
    assert keys["lut"] == keys["lut_g16"] and keys["int8"] == keys["int8_b16"]
    assert keys["grouped"] != keys["lut"]  # where the size is used, it is in the key
