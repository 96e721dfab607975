"""Review 37 of concurrent instances, on real spawned processes and the numpy backend:
the start limit follows the run's warm-up and stops the instances when it passes; the
runtime's own duration is kept in threads mode; Ctrl-C ends instances that ignore
SIGTERM or are stopped, within a bounded time."""

from __future__ import annotations

import multiprocessing
import time

import pytest
from build_util import lm_head

from anemll_spec import concurrency
from anemll_spec.backends.base import Prepared
from anemll_spec.backends.numpy_ import ExecutorOptions
from anemll_spec.harness import Budget

OPTIONS = ExecutorOptions()


@pytest.fixture(scope="module")
def build_cache(tmp_path_factory):
    return tmp_path_factory.mktemp("cache")


@pytest.fixture(scope="module")
def built(build_cache):
    from anemll_spec.build import build

    return build(lm_head(hidden_size=64, vocab_size=256, chunks=2), cache_dir=build_cache)


@pytest.fixture(scope="module")
def prepared(built) -> Prepared:
    from anemll_spec.model_io import describe

    p = Prepared(path=built.path, source=built.path, compile_s=None)
    p.input_dtypes = {t.name: t.dtype for t in describe(built.path).inputs}
    return p


@pytest.fixture(scope="module")
def inputs(built):
    from anemll_spec.model_io import describe, synth_inputs

    return synth_inputs(describe(built.path), seed=0)


def _instances_left() -> list:
    return [p for p in multiprocessing.active_children() if p.name.startswith("instance")]


def test_the_start_limit_is_the_load_allowance_plus_the_warm_up_budget():
    b = Budget(warmup=5, warmup_s=3000.0, iterations=10, min_iterations=5, max_time_s=3600.0)
    assert concurrency.start_limit_s(b) == concurrency.LOAD_ALLOWANCE_S + 3600.0
    assert concurrency.LOAD_ALLOWANCE_S >= 900.0  # a slow Core ML load keeps its 15 minutes


def test_past_the_start_limit_the_instances_stop_warming_up_and_the_error_names_it(
    prepared, inputs
):
    """A start limit shorter than the warm-up: the parent's gate timed out, but the
    instances warmed up their whole warmup_s (30 s here) before the error, which said
    only 'not every instance reached the start barrier in time'. Now they stop at the
    limit (after their call in flight) and the message names it."""
    warm = Budget(warmup=2, warmup_s=30.0, iterations=5, min_iterations=5, max_time_s=60.0)
    t0 = time.monotonic()
    with pytest.raises(concurrency.ConcurrencyError) as err:
        concurrency.time_processes(
            "numpy", prepared, OPTIONS, inputs, warm, n_instances=2, start_timeout_s=2.0
        )
    took = time.monotonic() - t0
    assert str(err.value) == (
        "not every instance was loaded and warm within 2 s (load + warm-up allowance)"
    )
    assert 2.0 <= took < 10, took  # at the limit, not after the 30 s warm-up
    assert not _instances_left()


@pytest.mark.slow  # a 4 s warm-up in real processes: ~7 s
def test_a_warm_up_longer_than_the_load_allowance_is_not_cut_short(prepared, inputs, monkeypatch):
    """The start limit was a fixed 900 s whatever the spec's warmup_s (up to max_time_s,
    a day): a warm-up past it always failed. Here the load allowance is 3 s and the
    warm-up 4 s: the limit derived from the budget (3 + max_time_s) lets it finish."""
    monkeypatch.setattr(concurrency, "LOAD_ALLOWANCE_S", 3.0)
    warm = Budget(warmup=2, warmup_s=4.0, iterations=5, min_iterations=5, max_time_s=5.0)
    res = concurrency.time_processes("numpy", prepared, OPTIONS, inputs, warm, n_instances=2)
    assert [t.warmup_s >= 4.0 for t in res.per_instance] == [True, True]
    assert res.calls >= 5
