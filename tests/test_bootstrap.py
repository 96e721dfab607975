"""The bootstrap's draw of a resample's median follows the law of real resampling, and CIs
stored by the old draw (every version up to b03f3c6) are still accepted by the store."""

from __future__ import annotations

import itertools
import math
from collections import Counter
from fractions import Fraction

import duckdb
import numpy as np
import pytest
from db_util import rows as q
from fixtures.store.bundles import rewrite, sub
from fixtures.store.energy import synthetic_sustained
from fixtures.store.synth import case, new_run, samples_ns

from anemll_spec import bootstrap
from anemll_spec.errors import InputError
from anemll_spec.store import append_case, finish_run
from anemll_spec.store.energy import sustained_rows
from anemll_spec.store.exporting import export_bundle
from anemll_spec.store.importing import import_bundles
from anemll_spec.sustained import judge

DRAWS = 400_000


def _pair_law(n: int) -> dict[tuple[int, int], float]:
    """P(the two middle order statistics of n indices drawn from range(n) are (lo, hi)),
    by counting all n**n draws."""
    lo, hi = (n - 1) // 2, n // 2
    counts = Counter()
    for draw in itertools.product(range(n), repeat=n):
        s = sorted(draw)
        counts[(s[lo], s[hi])] += 1
    return {k: v / n**n for k, v in counts.items()}


@pytest.mark.parametrize("n", [1, 2, 3, 4, 5, 6])
def test_each_pair_of_middle_ranks_is_drawn_as_often_as_resampling_draws_it(n):
    law = _pair_law(n)
    x = (n + 1.0) ** np.arange(n)  # (x[i] + x[j]) / 2 tells every pair i <= j apart
    code = {(x[i] + x[j]) / 2: (i, j) for i in range(n) for j in range(i, n)}
    got = Counter(code[v] for v in bootstrap.bootstrap_medians(x, DRAWS).tolist())
    assert set(got) <= set(law)
    for pair, p in law.items():
        sigma = math.sqrt(p * (1 - p) / DRAWS)
        assert abs(got[pair] / DRAWS - p) <= 5 * sigma + 1e-9, (pair, got[pair] / DRAWS, p)


@pytest.mark.parametrize("n", [1000, 1001])
def test_the_lower_middle_rank_has_the_binomial_law(n):
    """P(rank <= j) = P(at least lo + 1 of n draws fall at or below j) = P(Bin(n, (j+1)/n)
    > lo), summed exactly; the sample CDF is within the DKW bound (p < 1e-6) of it."""
    lo = (n - 1) // 2
    r = np.arange(n, dtype=np.float64)
    a = bootstrap.bootstrap_medians(r, DRAWS, np.random.default_rng(5))  # (lo + hi) / 2
    b = bootstrap.bootstrap_medians(r * r, DRAWS, np.random.default_rng(5))  # (lo² + hi²) / 2
    ranks = np.rint(a - np.sqrt(np.maximum(b - a * a, 0.0)))  # lo (the same draw twice)
    eps = math.sqrt(math.log(2 / 1e-6) / (2 * DRAWS))
    for j in range(lo - 60, lo + 61, 6):
        p = Fraction(j + 1, n)
        tail = sum(math.comb(n, k) * p**k * (1 - p) ** (n - k) for k in range(lo + 1, n + 1))
        assert abs(float(np.mean(ranks <= j)) - float(tail)) <= eps, j


def test_a_million_samples_ci_lies_within_the_order_statistic_bounds():
    """The CI of 10**6 samples is where the median's rank says (its cost, two Beta draws a
    replicate instead of 10**6 indices, is benchmarks/bootstrap_ci.py's)."""
    x = np.random.default_rng(1).lognormal(0, 0.2, 10**6)
    ci = bootstrap.median_ci(x, n_boot=2000)
    half = 1.96 * math.sqrt(0.25 / x.size) / 1.0  # +-1.96 sd of the median's rank fraction
    lo_q, hi_q = np.quantile(x, [0.5 - half, 0.5 + half])
    assert lo_q * 0.999 < ci.low < ci.estimate < ci.high < hi_q * 1.001


def test_a_bundle_with_the_old_draws_median_ci_imports_and_a_changed_one_does_not(tmp_path):
    store, bundle = tmp_path / "s.duckdb", tmp_path / "b.parquet"
    run_id = new_run(store)
    wall = samples_ns(np.random.default_rng(3), 300, 0.5)
    old = bootstrap.median_ci(wall / 1e6, seed=0, resampled=True)
    new = bootstrap.median_ci(wall / 1e6, seed=0)
    assert old.low != new.low and old.high != new.high
    row = {**case(wall=wall), "ci_low_ms": old.low, "ci_high_ms": old.high}
    append_case(store, run_id, row, wall)
    finish_run(store, run_id, "finished")
    export_bundle(store, bundle)
    (summary,) = import_bundles(tmp_path / "d.duckdb", [bundle])
    assert summary["runs_added"] == 1
    con = duckdb.connect(str(tmp_path / "d.duckdb"), read_only=True)
    assert con.execute("SELECT ci_low_ms, ci_high_ms FROM cases").fetchall() == [
        (old.low, old.high)
    ]
    con.close()
    bad = rewrite(bundle, tmp_path / "bad.parquet", sub("ci_low_ms", "cases", "ci_low_ms * 0.99"))
    with pytest.raises(InputError, match="ci_low_ms = .* but its 300 samples give"):
        import_bundles(tmp_path / "e.duckdb", [bad])
    # one end of each draw: a CI no version computed (narrower than both) is refused
    mixed = rewrite(bundle, tmp_path / "mix.parquet", sub("ci_low_ms", "cases", repr(new.low)))
    with pytest.raises(InputError, match="ci_high_ms = .* but its 300 samples give"):
        import_bundles(tmp_path / "f.duckdb", [mixed])


def test_a_sustained_case_with_the_old_draws_ci_is_written_and_a_changed_one_is_not(tmp_path):
    store = tmp_path / "s.duckdb"
    run_id = new_run(store)
    kw = sustained_rows(synthetic_sustained())
    wall, row = kw.pop("samples"), kw.pop("case")
    first, last = (wall[kw["sample_windows"] == i] for i in (0, 2))
    was = judge(first, last, resampled=True)
    assert (was.ci_low, was.ci_high) != (row["sustained_ci_low"], row["sustained_ci_high"])

    def written(key: str, **ci) -> None:
        base = case(key=key, wall=wall, backend="torch", device="cuda", compute_units=None)
        append_case(store, run_id, {**base, **row, **ci}, wall, **kw)

    written("old", sustained_ci_low=was.ci_low, sustained_ci_high=was.ci_high)
    with pytest.raises(InputError, match="sustained_ci_high = .* but the windows' samples give"):
        written("mixed", sustained_ci_high=was.ci_high * 1.01)
    assert sorted(q(store, "SELECT sustained_ci_low FROM cases")) == [(was.ci_low,)]
