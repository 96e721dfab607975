"""Compare two runs: per measured variant, the ratio of medians B/A with a bootstrap CI.

A variant is (variant_key, backend, device, compute_units, concurrency): the same
model measured the same way, whatever else the spec listed (the variant key hashes the
model and the resolved backend, compute unit, device and concurrency; rows written
before variant keys existed fall back to their case key). Samples of repeated cases of one variant in a run are pooled.
Verdict:
- 'no change' when the CI contains 1.0, or |ratio - 1| is below the noise floor;
- 'slower' when the whole CI is above 1.0 (B takes longer), 'faster' when below.
A regression (for --fail-on-regression PCT) is a variant whose CI low end is above
1 + PCT/100: B is slower by more than PCT percent even at the optimistic end of the CI.
A variant measured in A whose every case failed in B is listed apart (`failed_in_b`):
the gate fails on it too. One with a median of 0 ns has no ratio (`no_ratio`).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from anemll_spec.bootstrap import DEFAULT_N_BOOT, ratio_of_medians_ci
from anemll_spec.errors import InputError
from anemll_spec.store.connection import open_store
from anemll_spec.store.lookup import resolve_pair
from anemll_spec.vocab import MIN_SAMPLES

VARIANT = ("coalesce(variant_key, case_key)", "backend", "device", "compute_units", "concurrency")
# the variants with no ratio, by why: compare prints them under its table, its chart and
# the report's comparison say them beside what they draw
UNMATCHED = (
    ("failed_in_b", "failed in B (every case)"),
    ("failed_in_a", "failed in A (every case)"),
    ("only_in_a", "only in A"),
    ("only_in_b", "only in B"),
    ("no_ratio", "no ratio (a median of 0 ns)"),
)


@dataclass
class Comparison:
    variant_key: str  # what was measured (the case key for rows stored before v2)
    model_name: str | None
    backend: str | None
    device: str | None
    compute_units: str | None
    concurrency: int | None
    n_a: int
    n_b: int
    median_a_ms: float
    median_b_ms: float
    cases_a: int  # stored cases of the variant pooled on each side (repeats in one run)
    cases_b: int
    pooled_names: list[str]  # the names of the pooled cases, both sides, in case order
    ratio: float  # median B / median A
    ci_low: float
    ci_high: float
    verdict: str  # 'faster' | 'slower' | 'no change' | 'too few samples'
    regression: bool


def verdict(
    ratio: float, low: float, high: float, noise_floor_pct: float, n: int = MIN_SAMPLES
) -> str:
    if n < MIN_SAMPLES:
        return "too few samples"
    if low <= 1.0 <= high or abs(ratio - 1.0) * 100 < noise_floor_pct:
        return "no change"
    return "slower" if low > 1.0 else "faster"


def compare_runs(
    target,
    run_a: str,
    run_b: str,
    *,
    level: float = 0.95,
    n_boot: int = DEFAULT_N_BOOT,
    seed: int = 0,
    noise_floor_pct: float = 1.0,
    fail_on_regression_pct: float | None = None,
) -> dict:
    """Everything `anemll-spec compare` reports, as plain data."""
    con = open_store(target, read_only=True)
    try:
        a, b = resolve_pair(con, run_a, run_b)
        if a == b:
            raise InputError(f"run A and run B are the same run ({a})")
        va, vb = _variants(con, a), _variants(con, b)
        fa, fb = _variants(con, a, "failed"), _variants(con, b, "failed")
        rows: list[Comparison] = []
        no_ratio: list[str] = []
        for key in sorted(set(va) & set(vb), key=lambda k: (va[k][2], _sort_key(k))):
            sa, sb = _samples(con, va[key][1]), _samples(con, vb[key][1])
            if len(sa) == 0 or len(sb) == 0:
                continue
            if np.median(sa) <= 0 or np.median(sb) <= 0:  # a ratio of medians needs both > 0
                no_ratio.append(_label(key, va[key][0]))
                continue
            ci = ratio_of_medians_ci(sa, sb, level=level, n_boot=n_boot, seed=seed)
            n = min(len(sa), len(sb))
            variant_key, backend, device, compute_units, concurrency = key
            rows.append(
                Comparison(
                    variant_key=variant_key,
                    model_name=va[key][0],
                    backend=backend,
                    device=device,
                    compute_units=compute_units,
                    concurrency=concurrency,
                    n_a=len(sa),
                    n_b=len(sb),
                    cases_a=len(va[key][1]),
                    cases_b=len(vb[key][1]),
                    pooled_names=list(dict.fromkeys(va[key][3] + vb[key][3])),
                    median_a_ms=_median_ms(sa),
                    median_b_ms=_median_ms(sb),
                    ratio=ci.estimate,
                    ci_low=ci.low,
                    ci_high=ci.high,
                    verdict=(judged := verdict(ci.estimate, ci.low, ci.high, noise_floor_pct, n)),
                    # a regression is a 'slower' verdict past the threshold: never one
                    # that the noise floor calls 'no change'
                    regression=fail_on_regression_pct is not None
                    and judged == "slower"
                    and ci.low > 1.0 + fail_on_regression_pct / 100.0,
                )
            )
        hosts = {side: _host(con, run) for side, run in (("a", a), ("b", b))}
    finally:
        con.close()
    differ = [k for k in HOST_FIELDS if hosts["a"].get(k) != hosts["b"].get(k)]
    return {
        "run_a": a,
        "run_b": b,
        "host_a": hosts["a"],
        "host_b": hosts["b"],
        # another machine or OS: the ratio then measures that too, not only the change
        "hosts_differ": differ,
        "level": level,
        "noise_floor_pct": noise_floor_pct,
        "fail_on_regression_pct": fail_on_regression_pct,
        "comparisons": [asdict(r) for r in rows],
        # measured in one run, every case of it failed in the other: not merely absent
        "failed_in_a": sorted(_label(k, vb[k][0]) for k in (set(vb) - set(va)) & set(fa)),
        "failed_in_b": sorted(_label(k, va[k][0]) for k in (set(va) - set(vb)) & set(fb)),
        "only_in_a": sorted(_label(k, va[k][0]) for k in set(va) - set(vb) - set(fb)),
        "only_in_b": sorted(_label(k, vb[k][0]) for k in set(vb) - set(va) - set(fa)),
        "no_ratio": no_ratio,
        "regressions": sum(r.regression for r in rows),
    }


HOST_FIELDS = ("hostname", "chip", "os_name", "os_version")


def hosts_note(result: dict) -> str | None:
    """The one sentence that says two runs ran on different machines or systems (compare,
    its chart), or None when their hosts agree."""
    if not result["hosts_differ"]:
        return None
    return (
        f"A and B differ in {', '.join(result['hosts_differ'])}: each ratio compares the "
        "machines too, not only what changed between the runs"
    )


def hosts_where(result: dict) -> str:
    """How the two runs' hosts differ, field by field ('hostname: mac-a then mac-b'): the
    detail under hosts_note's sentence."""
    a, b = result["host_a"], result["host_b"]
    return "; ".join(
        f"{k}: {a.get(k) or '?'} then {b.get(k) or '?'}" for k in result["hosts_differ"]
    )


def _host(con, run_id: str) -> dict[str, str | None]:
    """Where a run was measured; its chip as the results view names its cases' (a CUDA
    case's GPU, not the host's CPU)."""
    row = con.execute(
        "SELECT any_value(hostname), string_agg(DISTINCT chip, ' + ' ORDER BY chip), "
        "any_value(os_name), any_value(os_version) FROM results WHERE run_id = ?",
        [run_id],
    ).fetchone()
    return dict(zip(HOST_FIELDS, row or (None,) * len(HOST_FIELDS), strict=True))


def _variants(
    con, run_id: str, status: str = "ok"
) -> dict[tuple, tuple[str | None, list[str], int, list[str]]]:
    """variant -> (model_name, case_ids, case_index, every case's name) of the run's cases
    of `status`, named and ordered by the variant's first case in the spec's expansion."""
    out: dict[tuple, tuple[str | None, list[str], int, list[str]]] = {}
    for row in con.execute(
        f"SELECT {', '.join(VARIANT)}, model_name, case_id, coalesce(case_index, 0) "
        "FROM cases WHERE run_id = ? AND status = ? ORDER BY case_index, case_id",
        [run_id, status],
    ).fetchall():
        key, (model, case_id, index) = tuple(row[: len(VARIANT)]), row[len(VARIANT) :]
        entry = out.setdefault(key, (model, [], index, []))
        entry[1].append(case_id)
        if model is not None and model not in entry[3]:
            entry[3].append(model)
    return out


def _samples(con, case_ids: list[str]) -> np.ndarray:
    res = con.execute(
        "SELECT wall_ns FROM samples WHERE case_id IN (SELECT unnest(?::VARCHAR[]))",
        [case_ids],
    ).fetchnumpy()
    return np.asarray(res["wall_ns"], dtype=np.float64)


def _sort_key(key: tuple) -> tuple:
    return tuple("" if v is None else str(v) for v in key)


def _label(key: tuple, model: str | None) -> str:
    extras = "/".join(str(v) for v in key[1:] if v is not None)
    return f"{model or key[0]} ({extras})" if extras else str(model or key[0])


def pooled_name(c: dict, width: int | None = None) -> str:
    """The variant's name; where a run measured it more than once (a sweep over a field
    it does not use), the medians are of its cases pooled, and the name says so. With
    `width` (a table's cell), a longer name is cut in the middle, control characters
    escaped first, and the '(N cases pooled)' marker always kept: cut at the end, a
    pooled row read as one case."""
    from anemll_spec.text import middle_cut, printable

    name = c["model_name"] or c["variant_key"]
    n = max(c["cases_a"], c["cases_b"])
    names = (c.get("pooled_names") or [name]) if n > 1 else [name]
    base = names[0].split("[", 1)[0]
    if len(names) > 1 and all(x.startswith(base + "[") and x.endswith("]") for x in names):
        name = base + "[" + " | ".join(x[len(base) + 1 : -1] for x in names) + "]"
    elif len(names) > 1:
        name = " | ".join(names)
    marker = f" ({n} cases pooled)" if n > 1 else ""
    if width is not None:
        name = middle_cut(printable(name), max(width - len(marker), 0))
    return name + marker


def _median_ms(samples_ns) -> float:
    """The median in ms as `stats.summarize` stores it (ms first, then numpy's 50th
    percentile), so a one-case variant shows its stored median_ms to the last digit."""
    return float(np.percentile(np.asarray(samples_ns, dtype=np.float64) / 1e6, 50))
