"""Build progress of k-means palettization: groups done / total at a bounded rate.

The totals are computed here from the model's dimensions (output channels / group size
per compressible weight), not read from the builder; the builds are real and small."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from build_util import ffn, lm_head, matmul, updated

from anemll_spec.build import build, kmeans_groups
from anemll_spec.build.palettize import GroupsDone, GroupTally, workers


def _lut(nbits: int = 4, group_size: int | None = 8, mode: str = "kmeans") -> dict:
    if group_size is None:
        return {"palettize": {"nbits": nbits, "granularity": "per_tensor", "mode": mode}}
    return {
        "palettize": {
            "nbits": nbits,
            "granularity": "per_grouped_channel",
            "group_size": group_size,
            "mode": mode,
        }
    }


def _build(tmp_path, model) -> tuple[list[str], list[GroupsDone]]:
    messages: list[str] = []
    build(model, cache_dir=tmp_path, progress=messages.append)
    return messages, [m for m in messages if isinstance(m, GroupsDone)]


class FakeClock:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


def test_tally_reports_at_most_once_per_interval_and_always_the_last_group():
    clock = FakeClock()
    seen: list[tuple[int, int]] = []
    tally = GroupTally(10, lambda d, t: seen.append((d, t)), every_s=1.0, clock=clock)
    for _ in range(4):  # 4 groups within 0.3 s: only the first is reported
        tally.add()
        clock.t += 0.1
    clock.t += 1.0
    for _ in range(5):  # 1 s later: one more report, then silence again
        tally.add()
    tally.add()  # the last group is always reported, however soon
    assert seen == [(1, 10), (5, 10), (10, 10)]


def test_tally_total_grows_if_more_groups_arrive_than_declared():
    seen: list[tuple[int, int]] = []
    tally = GroupTally(2, lambda d, t: seen.append((d, t)), every_s=0.0)
    for _ in range(3):
        tally.add()
    assert seen == [(1, 2), (2, 2), (3, 3)]


def test_groups_done_is_a_message_with_its_numbers():
    g = GroupsDone(4008, 16032, 40.0)
    assert isinstance(g, str)
    assert (g.done, g.total, g.elapsed_s) == (4008, 16032, 40.0)
    assert g.eta_s == pytest.approx(40.0 / 4008 * (16032 - 4008))  # 120 s at the rate so far
    assert g == "k-means 4,008/16,032 groups  40 s  ETA 2 min"
    assert GroupsDone(0, 10, 0.5).eta_s is None
    assert "ETA" not in GroupsDone(10, 10, 3.0)


@pytest.mark.parametrize(
    "model, total",
    [
        # streamed conv heads: 2 chunks of 512/2 rows, groups of 8 rows
        (lambda: lm_head(hidden_size=256, vocab_size=512, chunks=2, compression=_lut()), 512 // 8),
        # ffn: gate and up (384 rows each) and down (128 rows), groups of 16
        (
            lambda: ffn(hidden_size=128, intermediate_size=384, compression=_lut(group_size=16)),
            2 * 384 // 16 + 128 // 16,
        ),
        # matmul's const weight (k, n) goes the const way; its output axis is n
        (lambda: matmul(m=4, k=64, n=256, compression=_lut(group_size=8)), 256 // 8),
        # per tensor: one group per weight
        (lambda: lm_head(hidden_size=128, vocab_size=256, chunks=4, compression=_lut(4, None)), 4),
    ],
    ids=["lm_head-streamed", "ffn-three-weights", "matmul-const-axis1", "per-tensor"],
)
def test_a_kmeans_build_reports_every_group_against_the_declared_total(tmp_path, model, total):
    m = model()
    _, groups = _build(tmp_path, m)
    assert groups, "no k-means progress reported"
    assert kmeans_groups(m) == total  # what plan warns of, before any build
    assert {g.total for g in groups} == {total}  # declared right: never had to grow
    assert groups[-1].done == total
    dones = [g.done for g in groups]
    assert dones == sorted(dones) and len(set(dones)) == len(dones)
    # bounded rate: one report per second at most, plus the last
    assert len(groups) <= 2 + groups[-1].elapsed_s / 1.0


def test_uniform_and_quantized_builds_report_no_kmeans_groups(tmp_path):
    base = lm_head(hidden_size=256, vocab_size=512, chunks=2)
    q = {"quantize": {"dtype": "int8", "granularity": "per_channel"}}
    for i, comp in enumerate([_lut(mode="uniform"), q, "none"]):
        messages, groups = _build(tmp_path / str(i), updated(base, compression=comp))
        assert messages and groups == []
        assert kmeans_groups(updated(base, compression=comp)) == 0


def test_workers_follow_the_env_then_the_cores_we_may_use(monkeypatch):
    monkeypatch.setenv("ANEMLL_SPEC_KMEANS_WORKERS", "3")
    assert workers() == 3
    monkeypatch.delenv("ANEMLL_SPEC_KMEANS_WORKERS")
    assert workers() == len(os.sched_getaffinity(0))
    # a process pinned to one core (taskset, a container's cpuset) gets one worker
    code = (
        "import os; os.sched_setaffinity(0, {min(os.sched_getaffinity(0))});"
        "from anemll_spec.build.palettize import workers; print(workers(), os.cpu_count())"
    )
    env = {k: v for k, v in os.environ.items() if k != "ANEMLL_SPEC_KMEANS_WORKERS"}
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env
    )
    n, cpus = map(int, out.stdout.split())
    assert n == 1 and cpus == os.cpu_count()


@pytest.mark.parametrize("value", ["two", "0", "-3", "1.5"])
def test_a_bad_worker_count_is_refused_before_anything_is_built(cli, tmp_path, value):
    """It was int()-ed mid-build: a traceback from `build`, and under `bench` every
    palettized case stored as a failed build ('0' and '-3' quietly became 1)."""
    spec = tmp_path / "p.yaml"
    spec.write_text(
        "name: p\nmodel: {family: matmul, m: 1, k: 64, n: 64, "
        "compression: {palettize: {nbits: 4, granularity: per_tensor}}}\n"
        "run: {backends: [numpy], iterations: 3}\n"
    )
    store = tmp_path / "s.duckdb"
    for args in (["build", spec], ["bench", spec, "--store", store]):
        res = cli(*args, env={"ANEMLL_SPEC_KMEANS_WORKERS": value})
        assert res.returncode == 2, res.stderr
        assert res.stderr.strip() == (
            f"anemll-spec {args[0]}: error: "
            f"$ANEMLL_SPEC_KMEANS_WORKERS={value!r} is not a whole number >= 1"
        )
    assert not store.exists() and not (tmp_path / "cache").exists()
