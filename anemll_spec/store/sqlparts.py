"""SQL snippets the views share (one definition each): where a run came from, what a
factor is against in words, and how a factor is printed."""

from __future__ import annotations

from anemll_spec.vocab import DEFAULT_BASELINE  # noqa: F401 - the views' baseline, re-exported

# Where a run came from: `source` for filters, `provenance` in words (one definition,
# used by `results` and by the factor rows).
SOURCE = "CASE WHEN coalesce({r}origin, 'measured') = 'measured' THEN 'own' ELSE {r}origin END"
PROVENANCE = """CASE {r}origin
        WHEN 'measured' THEN 'measured here'
        WHEN 'imported' THEN 'imported from ' || coalesce({r}origin_ref, 'a bundle')
            || coalesce(' (sha256 ' || left({r}origin_sha256, 12) || ')', '')
        WHEN 'pushed' THEN 'pushed by ' || coalesce({r}origin_ref, 'another host')
        ELSE 'stored before v3 (measured here or imported: not recorded)'
    END"""

# The order of a run's cases in every table of it (share's summary, its factor, energy and
# sustained tables, the report's): the spec's, then as bench measured them (a case's
# backends share its index, and the case id ends in a hash: alone it shuffled them per run).
CASE_ORDER = "case_index NULLS LAST, finished_at NULLS LAST, case_id"

# What a factor is against, in words: 'M1 Max (published, Core ML ANE)'.
WHAT = r"""
CASE WHEN {p}backend = 'coreml' THEN 'Core ML ' || CASE {p}compute_units
        WHEN 'CPU_AND_NE' THEN 'ANE' WHEN 'CPU_ONLY' THEN 'CPU' WHEN 'CPU_AND_GPU' THEN 'GPU'
        WHEN 'ALL' THEN 'all units' ELSE coalesce({p}compute_units, '') END
    ELSE {p}backend || coalesce(' ' || {p}device, '') END
"""


# What a factor label says when its baseline figure is derived, not published (M1 Max's
# fp16-head ms is its GB/s turned into time): the views append it, charts and pages read it.
DERIVED_BASELINE = " (derived baseline)"


def derived_suffix(flag: str) -> str:
    """SQL: DERIVED_BASELINE where the boolean `flag` holds, else ''."""
    return f"CASE WHEN {flag} THEN '{DERIVED_BASELINE}' ELSE '' END"


def factor_label(expr: str) -> str:
    """'2.3x' as published from 1x up; two significant digits below ('0.88x', '0.023x',
    where one decimal would print '0.0x'), more where two would round up to '1' (0.996:
    '0.996x', never '1x'), as the charts' fmt_factor."""
    below = " ".join(
        f"WHEN printf('%.{d}g', {expr}) <> '1' THEN printf('%.{d}gx', {expr})" for d in range(2, 7)
    )
    last = f"WHEN {expr} < 1 THEN '0.999999x'"  # NULL stays NULL (no baseline)
    return f"CASE WHEN {expr} >= 1 THEN printf('%.1fx', {expr}) {below} {last} END"
