"""Concurrent instances in real spawned processes, on the numpy backend (issue 19.1).

Each test starts real processes that load a real package built here; the results are
checked against what the processes must have done (sample counts, overlapping timed
windows, throughput = calls / wall), never against fixed numbers.
"""

from __future__ import annotations

import multiprocessing
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from build_util import lm_head
from db_util import rows
from power_util import ClockReader

from anemll_spec import concurrency
from anemll_spec.backends.base import Prepared
from anemll_spec.backends.numpy_ import ExecutorOptions
from anemll_spec.harness import Budget
from anemll_spec.runner.plan import plan_instances
from anemll_spec.spec.families import External

ITER = 30
OPTIONS = ExecutorOptions()
BUDGET = Budget(warmup=2, warmup_s=0.0, iterations=ITER, min_iterations=5, max_time_s=300.0)
# long enough (1 s each) that the instances' timed phases must overlap if they start together
TIMED = Budget(warmup=2, warmup_s=0.0, iterations=10**7, min_iterations=5, max_time_s=1.0)


def _prepared(built) -> Prepared:
    from anemll_spec.model_io import describe

    io = describe(built.path)
    p = Prepared(path=built.path, source=built.path, compile_s=None)
    p.input_dtypes = {t.name: t.dtype for t in io.inputs}
    return p


@pytest.fixture(scope="module")
def build_cache(tmp_path_factory):
    return tmp_path_factory.mktemp("cache")


@pytest.fixture(scope="module")
def models(build_cache):
    """The case's model and a distinct-weights twin (plan_instances), both built."""
    from anemll_spec.build import build

    cache = build_cache
    plan = plan_instances(lm_head(hidden_size=64, vocab_size=256, chunks=2), 2, "distinct")
    return plan, [build(m, cache_dir=cache) for m in plan.models]


@pytest.fixture(scope="module")
def inputs(models):
    from anemll_spec.model_io import describe, synth_inputs

    return synth_inputs(describe(models[1][0].path), seed=0)


@pytest.fixture(scope="module")
def shared_run(models, inputs):
    progress: list[tuple[int, float]] = []
    res = concurrency.time_processes(
        "numpy",
        _prepared(models[1][0]),
        OPTIONS,
        inputs,
        TIMED,
        n_instances=2,
        on_progress=lambda n, med, s: progress.append((n, med)),
    )
    return res, progress


def test_processes_time_every_instance_and_start_them_together(shared_run):
    res, _ = shared_run
    assert isinstance(res, concurrency.InstancesResult) and res.mode == "processes"
    n = [t.n for t in res.per_instance]
    # the first to reach max_time stops the other after its call in flight
    assert res.stop == "max_time" and {t.stop for t in res.per_instance} <= {"max_time", "peer"}
    assert all(t.warmup_n == 2 for t in res.per_instance)
    assert all(0.9 < t.timed_s < 5 and t.n >= 5 for t in res.per_instance)
    assert res.calls == sum(n)
    assert res.throughput_per_s == pytest.approx(res.calls / res.wall_s)
    # the shared barrier: each instance's first timed call starts before the other's
    # last one ends (the timed phases overlap), and the wall spans both
    first = [int(t.starts_ns[0]) for t in res.per_instance]
    last_end = [int(t.starts_ns[-1] + t.samples_ns[-1]) for t in res.per_instance]
    assert first[0] < last_end[1] and first[1] < last_end[0]
    assert res.wall_s * 1e9 == pytest.approx(max(last_end) - min(first), abs=1)  # calls
    # pooled samples are every instance's, in start order
    wall, starts = res.pooled()
    assert len(wall) == sum(n) and (starts[1:] >= starts[:-1]).all()
    assert len(res.load_s) == 2 and all(s > 0 for s in res.load_s)
    assert all(t.runtime_ns is None for t in res.per_instance)  # numpy has no probe


def test_progress_comes_back_from_instance_zero(shared_run):
    res, progress = shared_run
    assert progress and progress[-1][0] == res.per_instance[0].n
    assert all(0 < n <= res.per_instance[0].n and med > 0 for n, med in progress)


def test_distinct_instances_load_distinct_weights(models, inputs):
    plan, built = models
    assert plan.distinct_weights and [m.seed for m in plan.models] == [0, 1]
    assert built[0].weights_sha256 != built[1].weights_sha256
    assert built[0].path != built[1].path
    res = concurrency.time_processes(
        "numpy", [_prepared(b) for b in built], OPTIONS, inputs, BUDGET
    )
    n = [t.n for t in res.per_instance]
    # one released after the other met its rule makes no call (test_concurrency_overlap)
    assert max(n) == ITER and res.stop == "iterations"
    assert all(t.stop == "peer" for t in res.per_instance if t.n < ITER)


def test_instances_stop_together_when_the_first_meets_its_rule(models, inputs, tmp_path):
    """A fast and a slow instance (vocab 256 and 64 * 1024, the same input): the fast one
    meets `iterations` first and the slow one stops after its call in flight, so the
    aggregate throughput counts no tail in which only the slow one ran (each ran to its
    own rule before: a 4-21% low aggregate, docs/power.md)."""
    from anemll_spec.build import build

    slow = build(lm_head(hidden_size=64, vocab_size=64 * 1024, chunks=2), cache_dir=tmp_path)
    budget = Budget(warmup=2, warmup_s=0.0, iterations=400, min_iterations=5, max_time_s=300.0)
    res = concurrency.time_processes(
        "numpy", [_prepared(models[1][0]), _prepared(slow)], OPTIONS, inputs, budget
    )
    fast_t, slow_t = res.per_instance
    assert (fast_t.n, fast_t.stop) == (400, "iterations") and res.stop == "iterations"
    assert slow_t.stop == "peer" and 1 <= slow_t.n < 400
    ends = [int(t.starts_ns[-1] + t.samples_ns[-1]) for t in res.per_instance]
    # the slow one's last call started before the fast one ended (one call of tail at most)
    assert int(slow_t.starts_ns[-1]) <= ends[0] + 50_000_000  # + the flag's read, a call
    assert ends[1] - ends[0] <= 2 * int(slow_t.samples_ns.max()) + 50_000_000


def test_plan_instances():
    m = lm_head(seed=7)
    shared = plan_instances(m, 3, "shared")
    assert shared.models == [m, m, m] and not shared.distinct_weights
    distinct = plan_instances(m, 3, "distinct")
    assert [x.seed for x in distinct.models] == [7, 8, 9]
    assert distinct.models[0] == m  # instance 0 is the case itself
    # only the seed differs: every other field, and so the shapes, stay the case's
    assert all(x.model_copy(update={"seed": 7}) == m for x in distinct.models)
    external = External.model_construct(family="external", path="x.mlpackage")
    with pytest.raises(ValueError, match="external model can only run shared"):
        plan_instances(external, 2, "distinct")
    with pytest.raises(ValueError, match="'shared' or 'distinct'"):
        plan_instances(m, 2, "both")  # type: ignore[arg-type]


def test_a_failing_instance_fails_the_run_without_hanging(models, inputs, tmp_path):
    good = _prepared(models[1][0])
    bad = Prepared(path=tmp_path / "missing.mlpackage", source=tmp_path, compile_s=None)
    t0 = time.monotonic()
    with pytest.raises(concurrency.ConcurrencyError, match=r"^instance 1: .*missing"):
        concurrency.time_processes("numpy", [good, bad], OPTIONS, inputs, BUDGET)
    assert time.monotonic() - t0 < 120  # the good instance was released from the barrier


def test_an_instance_that_dies_silently_is_reported():
    """A process that exits without a word (a crash in native code) is named."""
    ctx = multiprocessing.get_context("spawn")
    gates = (ctx.Barrier(2), ctx.Barrier(2))
    recv, send = ctx.Pipe(duplex=False)
    proc = ctx.Process(target=os._exit, args=(3,))
    proc.start()
    send.close()
    with pytest.raises(concurrency.ConcurrencyError, match=r"instance 0 exited \(code 3\)"):
        concurrency._collect([recv], [proc], gates, None)
    proc.join()
    assert all(g.broken for g in gates)  # the others waiting at either gate are released


def test_threads_mode_and_defaults(models, inputs):
    assert concurrency.default_mode("coreml") == "processes"  # the binding holds the GIL
    assert concurrency.default_mode("numpy") == "processes"
    assert concurrency.default_mode("torch", "cpu") == "processes"
    assert concurrency.default_mode("torch", "cuda:0") == "threads"
    assert concurrency.default_threads("numpy", 4, cpus=16) == 4
    assert concurrency.default_threads("numpy", 3, cpus=2) == 1
    assert concurrency.default_threads("coreml", 2, cpus=16) is None
    res = concurrency.time_instances(
        "numpy", _prepared(models[1][0]), OPTIONS, inputs, BUDGET, n_instances=2, mode="threads"
    )
    n = [t.n for t in res.per_instance]
    assert res.mode == "threads" and max(n) == ITER and res.calls == sum(n)
    with pytest.raises(ValueError, match="'threads' or 'processes'"):
        concurrency.time_instances(
            "numpy", _prepared(models[1][0]), OPTIONS, inputs, BUDGET, mode="x"
        )


def test_ctrl_c_in_threads_mode_stops_every_timing_thread(models, inputs):
    """Ctrl-C while instances time in threads (torch on CUDA): the KeyboardInterrupt left
    the joins, but the threads kept calling predict on sessions already closed (alive
    6 s later). Now they stop after their call in flight, before it is raised."""
    import signal
    import threading

    long = Budget(warmup=2, warmup_s=0.0, iterations=10**7, min_iterations=5, max_time_s=60.0)
    ctrl_c = threading.Timer(1.0, os.kill, (os.getpid(), signal.SIGINT))
    before = set(threading.enumerate()) | {ctrl_c}
    ctrl_c.start()
    t0 = time.monotonic()
    with pytest.raises(KeyboardInterrupt):
        concurrency.time_instances(
            "numpy", _prepared(models[1][0]), OPTIONS, inputs, long, n_instances=2,
            mode="threads",
        )  # fmt: skip
    assert time.monotonic() - t0 < 5
    # the timing threads still running: named instance-k now, 'Thread-N (work)' before (a
    # thread that has just ended can still be listed, 'stopped', for a moment)
    timing = [t for t in threading.enumerate() if t not in before and t.is_alive()]
    assert not [t for t in timing if t.name.startswith("instance") or "work" in t.name], timing


def test_children_get_split_math_thread_pools_and_the_parent_keeps_its_own(monkeypatch):
    """N processes each with a machine-sized BLAS/OpenMP pool spin against each other
    (2-45x less throughput than one instance, measured): children get the pool size."""
    import subprocess
    import sys

    monkeypatch.setenv("OMP_NUM_THREADS", "7")
    monkeypatch.delenv("OPENBLAS_NUM_THREADS", raising=False)
    code = "import os; print(os.environ['OMP_NUM_THREADS'], os.environ['OPENBLAS_NUM_THREADS'])"
    with concurrency._child_env(3):
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.stdout.split() == ["3", "3"]
    assert os.environ["OMP_NUM_THREADS"] == "7" and "OPENBLAS_NUM_THREADS" not in os.environ
    with concurrency._child_env(None):
        assert os.environ["OMP_NUM_THREADS"] == "7"


def test_the_reader_covers_the_timed_phase_not_the_loads_and_warm_ups(models, inputs):
    """The reading is stored as timed-only and divided by the timed calls: it must start
    once every instance is loaded and warm (here 1 s of warm-up each, after a spawn and a
    load), and end with the last timed call."""
    reader = ClockReader()
    warm = Budget(warmup=2, warmup_s=1.0, iterations=20, min_iterations=5, max_time_s=300.0)
    res = concurrency.time_processes(
        "numpy", _prepared(models[1][0]), OPTIONS, inputs, warm, n_instances=2, reader=reader
    )
    ran = [t for t in res.per_instance if t.n]  # one released late may make no call
    first = min(int(t.starts_ns[0]) for t in ran)
    last = max(int(t.starts_ns[-1] + t.samples_ns[-1]) for t in ran)
    assert reader.t0 <= first and reader.t1 >= last  # every timed call inside
    # and little else: releasing the instances and collecting their results, not a warm-up
    assert (reader.t1 - reader.t0) - (last - first) < 0.5e9
    assert res.energy == ("read", True)


def test_an_instance_killed_before_the_start_is_reported_at_once(models, inputs):
    """One instance is killed (the OS out of memory, say) while all warm up: the parent
    and the other instance waited at the start barrier until its timeout (900 s by
    default). Now the barrier is broken as the process ends, and the run fails at once."""
    import signal
    import threading

    warming = Budget(warmup=1, warmup_s=8.0, iterations=5, min_iterations=5, max_time_s=300.0)
    killed: list[int] = []

    def kill_one() -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            children = [p for p in multiprocessing.active_children() if p.name == "instance-1"]
            if children and children[0].pid:
                time.sleep(2.0)  # loaded and warming
                os.kill(children[0].pid, signal.SIGKILL)
                killed.append(time.monotonic())
                return
            time.sleep(0.05)

    threading.Thread(target=kill_one, daemon=True).start()
    with pytest.raises(concurrency.ConcurrencyError, match=r"instance 1 exited \(code -9\)"):
        concurrency.time_processes(
            "numpy", _prepared(models[1][0]), OPTIONS, inputs, warming,
            n_instances=2, start_timeout_s=120,
        )  # fmt: skip
    assert killed and time.monotonic() - killed[0] < 40  # not the 120 s timeout
    assert not [p for p in multiprocessing.active_children() if p.name.startswith("instance")]


def test_an_instance_killed_while_timing_stops_the_others_at_once(models, inputs):
    """One of two instances SIGKILLed mid-timing (max_time_s 60): the other timed on to
    its whole budget before the run failed (16 s after the kill at max_time_s 20). Now
    it stops at its next call: the error comes at once."""
    import signal

    killed: list[float] = []

    def kill_one(n: int, med: float, s: float) -> None:  # instance 0 is timing
        if not killed:
            victim = [p for p in multiprocessing.active_children() if p.name == "instance-1"]
            os.kill(victim[0].pid, signal.SIGKILL)
            killed.append(time.monotonic())

    long = Budget(warmup=2, warmup_s=0.0, iterations=10**7, min_iterations=5, max_time_s=60.0)
    with pytest.raises(concurrency.ConcurrencyError, match=r"instance 1 exited \(code -9\)"):
        concurrency.time_processes(
            "numpy", _prepared(models[1][0]), OPTIONS, inputs, long, n_instances=2,
            on_progress=kill_one,
        )  # fmt: skip
    assert killed and time.monotonic() - killed[0] < 3
    assert not [p for p in multiprocessing.active_children() if p.name.startswith("instance")]


def test_an_instance_that_fails_to_load_cuts_the_others_warm_up_short(models, inputs, tmp_path):
    """An instance that cannot load: the other warmed up for its whole warmup_s (30 s
    here) before reaching the broken start gate. Now it stops after its call in flight."""
    good = _prepared(models[1][0])
    bad = Prepared(path=tmp_path / "missing.mlpackage", source=tmp_path, compile_s=None)
    warm = Budget(warmup=2, warmup_s=30.0, iterations=5, min_iterations=5, max_time_s=60.0)
    t0 = time.monotonic()
    with pytest.raises(concurrency.ConcurrencyError, match=r"^instance 1: .*missing"):
        concurrency.time_processes("numpy", [good, bad], OPTIONS, inputs, warm)
    assert time.monotonic() - t0 < 10


def test_ctrl_c_at_the_start_ends_every_instance_at_once_and_quietly(models, inputs, capfd):
    """Ctrl-C at a terminal reaches the bench and its instances while they wait at the
    start: the parent joined each one for 10 s (they waited on, for the start timeout),
    and an instance printed its KeyboardInterrupt traceback."""
    import signal

    class CtrlC:  # the parent's reader starts between the two gates: Ctrl-C comes then
        method = "ctrl-c"

        def start(self) -> None:
            for p in multiprocessing.active_children():
                if p.name.startswith("instance") and p.pid:
                    os.kill(p.pid, signal.SIGINT)
            raise KeyboardInterrupt

        def stop(self, *, timed_only: bool = True):
            return None

    t0 = time.monotonic()
    with pytest.raises(KeyboardInterrupt):
        concurrency.time_processes(
            "numpy", _prepared(models[1][0]), OPTIONS, inputs, BUDGET,
            n_instances=2, reader=CtrlC(), start_timeout_s=120,
        )  # fmt: skip
    assert time.monotonic() - t0 < 15  # not 2 x 10 s of joins
    assert not [p for p in multiprocessing.active_children() if p.name.startswith("instance")]
    assert "Traceback" not in capfd.readouterr().err


def _ctrl_c_on_arrival(value):
    """Called as an instance unpickles its job, in multiprocessing's spawn bootstrap
    (before _instance_main runs): a Ctrl-C at a terminal lands there, for certain."""
    import signal

    os.kill(os.getpid(), signal.SIGINT)
    time.sleep(0.2)  # its handler runs here, unless SIGINT is blocked
    return value


class CtrlCOnArrival:
    """An input whose unpickling (in the instance) sends the instance a SIGINT."""

    def __init__(self, value):
        self.value = value

    def __reduce__(self):
        return _ctrl_c_on_arrival, (self.value,)


def test_ctrl_c_while_instances_start_up_is_quiet(models, inputs, capfd):
    """Ctrl-C while the instances were starting landed in each one's spawn bootstrap,
    before its handler: a `Traceback ... multiprocessing/spawn.py ... KeyboardInterrupt`
    per instance on the terminal. Now SIGINT is blocked as they are spawned and unblocked
    inside _instance_main's handler: each ends quietly, saying why."""
    name = next(iter(inputs))
    tricked = {**inputs, name: CtrlCOnArrival(inputs[name])}
    with pytest.raises(concurrency.ConcurrencyError, match=r"^instance 0: KeyboardInterrupt"):
        concurrency.time_processes(
            "numpy", _prepared(models[1][0]), OPTIONS, tricked, BUDGET, n_instances=2
        )
    err = capfd.readouterr().err
    assert "Traceback" not in err and "KeyboardInterrupt" not in err, err
    assert not [p for p in multiprocessing.active_children() if p.name.startswith("instance")]


def test_instances_dead_asleep_at_a_gate_do_not_hang_the_parents_way_out(models, inputs):
    """Ctrl-C at a terminal can end an instance while it sleeps at a gate, before it says
    it woke; the parent then broke the gates on its way out, and a multiprocessing
    barrier's abort waits, unbounded, for every sleeper to say so: bench hung (seen
    under load). Here each instance is killed asleep at the second gate, for certain."""
    import signal

    class KillThenCtrlC:  # runs between the gates: every instance is asleep at the second
        method = "ctrl-c"

        def start(self) -> None:
            for p in multiprocessing.active_children():
                if p.name.startswith("instance") and p.pid:
                    os.kill(p.pid, signal.SIGKILL)
                    p.join(10)
            raise KeyboardInterrupt

        def stop(self, *, timed_only: bool = True):
            return None

    class Hung(Exception):
        pass

    def hung(*_):
        raise Hung

    old = signal.signal(signal.SIGALRM, hung)
    signal.alarm(60)
    try:
        with pytest.raises(KeyboardInterrupt):
            concurrency.time_processes(
                "numpy", _prepared(models[1][0]), OPTIONS, inputs, BUDGET,
                n_instances=2, reader=KillThenCtrlC(), start_timeout_s=120,
            )  # fmt: skip
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


@pytest.mark.parametrize("sig", ["SIGKILL", "SIGTERM", "SIGTERM with SIGINT ignored"])
def test_a_killed_bench_leaves_its_instances_quiet(tmp_path, models, build_cache, sig):
    """SIGKILL to a bench timing two instance processes: the parent dies without a word,
    and each instance, whose next progress report or result finds
    the pipe closed, ends quietly -- no BrokenPipeError traceback on the shared stderr.
    stderr reaches its end only once both instances have exited (they hold it too). The
    case's model is the one `models` built (a cache hit: no 3 s build). SIGTERM ends it as
    Ctrl-C does: the instances ended by the parent, the run marked 'interrupted', exit 143,
    and nothing of multiprocessing's left behind (no 'leaked semaphore' warning)."""
    import signal

    from bench_util import interrupted_bench

    spec = _two_instances_spec(tmp_path)
    store = tmp_path / "s.duckdb"
    status, said = interrupted_bench(
        spec, store, build_cache,
        lambda ln: "timing  numpy x2 shared" in ln,
        delay_s=1.5,  # the instances are spawned, warm, and timing (progress every 0.25 s)
        sig=getattr(signal, sig.split()[0]), ignore_sigint="ignored" in sig,
    )  # fmt: skip
    assert "build  cache hit" in said, said
    assert "Traceback" not in said and "BrokenPipeError" not in said, said
    if sig == "SIGKILL":
        assert status == -signal.SIGKILL, said
        return
    assert status == 143 and "run marked 'interrupted'" in said, said
    assert "leaked" not in said, said
    assert rows(store, "SELECT status FROM runs") == [("interrupted",)]


def test_a_bench_whose_instance_dies_stores_the_error_as_said(tmp_path, build_cache):
    """An instance SIGKILLed mid-timing in a real bench: the case is stored FAILED with
    the ConcurrencyError's own message, which was followed by '(at concurrency.py:363)'
    as if it were a bug of ours."""
    import io
    import signal

    from anemll_spec.progress import Progress
    from anemll_spec.runner.bench import Runner

    class KillOne(Progress):  # instance 0's first report: both instances are timing
        def samples(self, *args, **kwargs) -> None:
            for p in multiprocessing.active_children():
                if p.name == "instance-1":
                    os.kill(p.pid, signal.SIGKILL)

    spec = _two_instances_spec(tmp_path)
    store = tmp_path / "s.duckdb"
    progress = KillOne(io.StringIO(), live=False)
    res = Runner(spec, store=str(store), cache_dir=build_cache, progress=progress).run()
    assert res.status == "failed"
    [(status, error)] = rows(store, "SELECT status, error FROM cases")
    assert status == "failed" and error == (
        "concurrent instances failed: ConcurrencyError: "
        "instance 1 exited (code -9) without a result"
    )


def test_a_gate_opens_for_all_breaks_for_all_and_times_out_broken():
    """gate.Gate as a Barrier behaves, the way the instances use it (threads here)."""
    import threading

    from anemll_spec.gate import BrokenGate, Gate

    ctx = multiprocessing.get_context("spawn")

    def run(gate, n, timeout=10.0):
        out: list = []

        def one():
            try:
                gate.wait(timeout)
                out.append("passed")
            except BrokenGate:
                out.append("broken")

        threads = [threading.Thread(target=one) for _ in range(n)]
        for t in threads:
            t.start()
        return threads, out

    gate = Gate(ctx, 3)
    threads, out = run(gate, 3)
    for t in threads:
        t.join(20)
    assert out == ["passed"] * 3 and not gate.broken

    gate = Gate(ctx, 3)
    threads, out = run(gate, 2)  # one party never comes: the gate is broken instead
    time.sleep(0.3)
    assert out == []
    gate.abort()
    for t in threads:
        t.join(20)
    assert out == ["broken"] * 2 and gate.broken
    with pytest.raises(BrokenGate):
        gate.wait(1)  # a later arrival too

    gate = Gate(ctx, 2)
    t0 = time.monotonic()
    with pytest.raises(BrokenGate):
        gate.wait(0.3)
    assert 0.25 < time.monotonic() - t0 < 5 and gate.broken


def test_a_gate_waiter_gives_up_when_told_and_breaks_the_gate():
    """An instance whose bench was SIGKILLed before all came to the gate waited out the
    15-minute start timeout, holding the model and the terminal's stderr. give_up is
    asked while it waits; the gate breaks for everyone within a poll or two."""
    import threading

    from anemll_spec.gate import POLL_S, BrokenGate, Gate

    gate = Gate(multiprocessing.get_context("spawn"), 3)
    told = threading.Event()
    threading.Timer(0.3, told.set).start()
    t0 = time.monotonic()
    with pytest.raises(BrokenGate):
        gate.wait(900.0, give_up=told.is_set)
    assert 0.3 <= time.monotonic() - t0 < 0.3 + 4 * POLL_S and gate.broken
    gate = Gate(multiprocessing.get_context("spawn"), 2)  # never told: its timeout holds
    t0 = time.monotonic()
    with pytest.raises(BrokenGate):
        gate.wait(0.6, give_up=lambda: False)
    assert 0.55 < time.monotonic() - t0 < 5


def test_instances_of_a_bench_killed_before_the_gate_end_at_once(tmp_path, build_cache):
    """SIGKILL to bench while its instance processes still start (load, warm-up): they
    came to the start gate, where nobody else would come, and waited there for the
    15-minute start timeout. They now see their parent gone and end within a second."""
    import signal

    import psutil

    spec = _two_instances_spec(tmp_path)
    proc = subprocess.Popen(
        [sys.executable, "-m", "anemll_spec", "bench", str(spec), "--store", str(tmp_path / "s.duckdb")],
        cwd=Path(__file__).resolve().parents[1], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "ANEMLL_SPEC_CACHE": str(build_cache)},
    )  # fmt: skip
    try:
        assert proc.stderr is not None
        for line in proc.stderr:
            if "timing  numpy x2 shared" in line:  # the instances are being spawned
                break
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            kids = [p for p in psutil.Process(proc.pid).children()
                    if "spawn_main" in " ".join(p.cmdline())]  # fmt: skip
            if len(kids) == 2:
                break
            time.sleep(0.01)
        assert len(kids) == 2
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
    finally:
        if proc.poll() is None:
            proc.kill()
    gone, alive = psutil.wait_procs(kids, timeout=20)
    for p in alive:
        p.kill()
    assert not alive, "instances still waiting 20 s after their bench was killed"


def _two_instances_spec(tmp_path: Path) -> Path:
    """A tiny head timed by two numpy instances until stopped (a million calls, 60 s)."""
    import json

    from build_util import lm_head_fields

    spec = tmp_path / "c.yaml"
    model = lm_head_fields(hidden_size=64, vocab_size=256, chunks=2)
    spec.write_text(
        f"name: conc\nmodel: {json.dumps(model)}\n"
        "run: {backends: [numpy], concurrency: 2, warmup: 2, iterations: 1000000, "
        "max_time_s: 60, energy_s: 0, dispatch_floor: false}\n"
    )
    return spec
