"""The builder's output is pinned per (BUILDER_VERSION, coremltools version): cache keys
hash BUILDER_VERSION, so a builder whose output changed without a bump serves entries of
the old builder as hits (e590597 halved sliced int4 weights; entries built before it
kept int8 weights, twice the bytes, under the same key)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent / "fixtures" / "build"))
import record_builder_digests as recorder  # noqa: E402

RECORD = "python tests/fixtures/build/record_builder_digests.py"


def _recorded() -> dict[str, str] | None:
    builder, ct = recorder.versions()
    table = json.loads(recorder.TABLE.read_text())
    if builder not in table:
        pytest.fail(f"no digests recorded for BUILDER_VERSION {builder}: re-record ({RECORD})")
    return table[builder].get(ct)


@pytest.mark.parametrize("name", list(recorder.CASES))
def test_built_package_matches_the_digest_recorded_for_this_builder_version(name):
    recorded = _recorded()
    if recorded is None:
        pytest.skip(f"no digests recorded for {recorder.versions()[1]}")
    assert name in recorded, f"{name} not recorded: re-record ({RECORD})"
    got = recorder.build_digests([name])[name]
    assert got == recorded[name], (
        f"{name}: the builder's output changed; bump BUILDER_VERSION and re-record ({RECORD})"
    )


def test_the_table_covers_every_family_and_compression_kind():
    from anemll_spec.spec.families import BUILT_FAMILIES

    families = {f.split("-")[0] for f in recorder.CASES}
    kinds = {k for _, fields in recorder.CASES.values() for k in fields.get("compression", {})}
    assert families == set(BUILT_FAMILIES) - {"external"}
    assert kinds == {"palettize", "quantize"}
    assert any("compression" not in fields for _, fields in recorder.CASES.values())
