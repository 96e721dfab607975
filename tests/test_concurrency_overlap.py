"""Concurrent instances that did not run at once: one released after another had met its
stop rule made a call anyway (the stop flag was read only after each call), and that
lone call's tail counted in the aggregate throughput (5,276/s stored against 15,392/s
for the other instance's 20 calls alone). The flag is now read before every call, each
instance's span is its own calls', and a case whose instances did not overlap stores no
aggregate and says why."""

from __future__ import annotations

import io
import os
import signal
import threading
import time

import duckdb
import pytest
from build_util import lm_head
from test_concurrency import OPTIONS, _prepared

from anemll_spec import concurrency, harness
from anemll_spec.gate import Gate
from anemll_spec.harness import Budget

TWENTY = Budget(warmup=1, warmup_s=0.0, iterations=20, min_iterations=1, max_time_s=60.0)
HELD_S = 0.5  # how long the late instance is held after the start gate opened


@pytest.fixture(scope="module")
def head(tmp_path_factory):
    from anemll_spec.build import build
    from anemll_spec.model_io import describe, synth_inputs

    built = build(
        lm_head(hidden_size=64, vocab_size=128, chunks=1), cache_dir=tmp_path_factory.mktemp("c")
    )
    return built, synth_inputs(describe(built.path), seed=0)


def test_a_process_released_after_the_others_stopped_makes_no_call(head, monkeypatch):
    """Instance 1, asleep at the start gate, is SIGSTOPped before the gate opens and
    SIGCONTinued HELD_S later: instance 0's 20 calls are long done by then. It made one
    call then, and the wall time ran to that call's end."""
    built, inputs = head
    gates: list = []

    def recorded(*args):  # real Gates (pickled to the instances), kept to be watched
        gates.append(gate := Gate(*args))
        return gate

    class HoldInstance1:  # the parent starts the reader between the gates: both warm
        method = "none: holds instance 1 back"

        def start(self) -> None:
            while gates[1]._count.value < 2:  # both instances asleep at the `go` gate
                time.sleep(0.001)
            (late,) = [p for p in concurrency.multiprocessing.active_children()
                       if p.name == "instance-1"]  # fmt: skip
            os.kill(late.pid, signal.SIGSTOP)
            threading.Timer(HELD_S, os.kill, (late.pid, signal.SIGCONT)).start()

        def stop(self, *, timed_only: bool = True):
            return None

        def close(self) -> None:
            pass

    monkeypatch.setattr(concurrency, "Gate", recorded)
    res = concurrency.time_processes(
        "numpy", _prepared(built), OPTIONS, inputs, TWENTY, n_instances=2,
        reader=HoldInstance1(), threads=1,
    )  # fmt: skip
    first, late = res.per_instance
    assert (first.n, first.stop) == (20, "iterations")
    assert (late.n, late.stop) == (0, "peer")
    span = int(first.starts_ns[-1] + first.samples_ns[-1] - first.starts_ns[0])
    assert res.calls == 20 and res.wall_s * 1e9 == pytest.approx(span, abs=1)  # its calls'
    assert res.wall_s < HELD_S / 5
    assert res.apart() == "instance 1 made no call: released after another had met its rule"
    assert res.throughput_per_s != res.throughput_per_s  # NaN: no aggregate of two


def test_a_bench_whose_instance_came_late_stores_no_aggregate(head, tmp_path, monkeypatch):
    """Through the Runner into the store (threads mode, instance 1 held HELD_S after the
    barrier): the case keeps instance 0's 20 calls, stores no throughput_ips, and its
    note says why. Before, 21 samples and 21 calls over the held time were stored."""
    import json

    from build_util import lm_head_fields

    from anemll_spec.progress import Progress
    from anemll_spec.runner import Runner

    step = harness.Timer.step

    def late_step(self, k=None):
        if threading.current_thread().name == "instance-1":
            time.sleep(HELD_S)
        return step(self, k)

    monkeypatch.setattr(harness.Timer, "step", late_step)
    monkeypatch.setitem(concurrency.THREADS_RUN_AT_ONCE, ("numpy", None), True)
    spec = tmp_path / "c.yaml"
    model = lm_head_fields(hidden_size=64, vocab_size=128, chunks=1)
    spec.write_text(
        f"name: late\nmodel: {json.dumps(model)}\nrun: {{backends: [numpy], concurrency: 2, "
        "warmup: 1, iterations: 20, energy_s: 0, dispatch_floor: false}\n"
    )
    store = tmp_path / "s.duckdb"
    Runner(spec, store=str(store), cache_dir=tmp_path / "c",
           progress=Progress(io.StringIO(), live=False)).run()  # fmt: skip
    with duckdb.connect(str(store), read_only=True) as con:
        status, n, ips, notes = con.execute(
            "SELECT status, n_samples, throughput_ips, notes FROM cases"
        ).fetchone()
        (samples,) = con.execute("SELECT count(*) FROM samples").fetchone()
    assert (status, n, samples, ips) == ("ok", 20, 20, None)
    [note] = [x for x in json.loads(notes) if x.startswith("concurrency 2")]
    assert note.startswith(
        "concurrency 2 (threads, 2 instances of one model): the instances did not all run at "
        "once (instance 1 made no call: released after another had met its rule), so no "
        "aggregate throughput is stored"
    ), note
    assert "per-instance median ms: " in note and ", - (no call);" in note
