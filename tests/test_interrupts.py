"""A Ctrl-C during an import whose module swallows it (coremltools' bare `except:`) is
raised again once the import returns, so the command stops instead of going on."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

# A module that does what coremltools' __init__ does around its optional imports: the
# interrupt lands inside a bare except and is lost there.
SWALLOWS = """
import os, signal, time
try:
    os.kill(os.getpid(), signal.SIGINT)
    time.sleep(2)
except:  # noqa: E722
    pass
"""


def _pythonpath() -> str:
    """This checkout first, then whatever PYTHONPATH the tests run under (an install whose
    dependencies live on PYTHONPATH, as on the GPU machine, needs them in the child)."""
    return os.pathsep.join(
        p for p in (str(Path(__file__).parents[1]), os.environ.get("PYTHONPATH")) if p
    )


def _import(tmp_path: Path, how: str, module: str = SWALLOWS) -> subprocess.CompletedProcess:
    (tmp_path / "swallows.py").write_text(module)
    code = f"{how}('swallows'); print('went on')"
    return subprocess.run(
        [sys.executable, "-c", f"import importlib, anemll_spec.interrupts as i; {code}"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        env={"PYTHONPATH": _pythonpath()},
    )


def test_a_plain_import_loses_the_interrupt(tmp_path):
    r = _import(tmp_path, "importlib.import_module")
    assert r.returncode == 0 and "went on" in r.stdout  # the hazard itself


def test_import_module_raises_it_once_the_import_returns(tmp_path):
    r = _import(tmp_path, "i.import_module")
    assert r.returncode != 0 and "went on" not in r.stdout
    assert r.stderr.strip().endswith("KeyboardInterrupt")
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


@pytest.mark.parametrize("after_s", [0.3, 0.6, 1.0, 1.5])
def test_a_ctrl_c_during_import_coremltools_stops_the_import(after_s):
    """The real import: whenever the interrupt lands, the process does not go on."""
    proc = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import anemll_spec.interrupts as i; i.import_module('coremltools'); print('went on')",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    time.sleep(after_s)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    if "went on" in out and not err:  # the import had finished before the signal came
        pytest.skip("coremltools was imported before the interrupt arrived")
    assert "went on" not in out and err.strip().endswith("KeyboardInterrupt"), err[-600:]
    # the interrupt waited for the import: no module was left half made (a Ctrl-C inside
    # asyncio's __init__ once surfaced as "NameError: name 'coroutines' is not defined")
    assert "Error" not in err.replace("ModuleNotFoundError", ""), err[-600:]


def test_the_interrupt_waits_for_the_import_and_a_second_one_does_not(tmp_path):
    """One Ctrl-C: the module's code runs to its end, then the command stops; two: the
    second stops it where it is."""
    once = "import os, signal\nos.kill(os.getpid(), signal.SIGINT)\nprint('module ended')\n"
    r = _import(tmp_path, "i.import_module", once)
    assert "module ended" in r.stdout and "went on" not in r.stdout
    assert r.stderr.strip().endswith("KeyboardInterrupt")
    twice = (
        "import os, signal, time\nos.kill(os.getpid(), signal.SIGINT)\n"
        "os.kill(os.getpid(), signal.SIGINT)\ntime.sleep(30)\nprint('module ended')\n"
    )
    started = time.monotonic()
    r = _import(tmp_path, "i.import_module", twice)
    assert time.monotonic() - started < 20 and "module ended" not in r.stdout
    assert r.stderr.strip().endswith("KeyboardInterrupt")


def test_an_import_that_fails_after_a_ctrl_c_stops_as_interrupted(tmp_path):
    fails = "import os, signal\nos.kill(os.getpid(), signal.SIGINT)\nraise NameError('half made')\n"
    r = _import(tmp_path, "i.import_module", fails)
    assert "went on" not in r.stdout and r.stderr.strip().endswith("KeyboardInterrupt")
    assert "NameError: half made" in r.stderr  # the cause is kept, chained


def _deferred(body: str) -> subprocess.CompletedProcess:
    code = (
        "import os, signal, time, anemll_spec.interrupts as i\n"
        "try:\n"
        "    with i.deferred(lambda: print('noted', flush=True)):\n"
        f"{body}"
        "        print('block ended', flush=True)\n"
        "except KeyboardInterrupt:\n"
        "    print('raised after', flush=True)\n"
        "print(signal.getsignal(signal.SIGINT) is signal.default_int_handler)\n"
    )
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
        env={"PYTHONPATH": _pythonpath()},
    )  # fmt: skip


def test_a_deferred_block_ends_whole_and_then_raises_the_ctrl_c():
    """The statistics of timed calls and a case's write: cut, they lose the measurement."""
    one = "        os.kill(os.getpid(), signal.SIGINT); time.sleep(0.3)\n"
    r = _deferred(one)
    assert r.stdout.split("\n")[:4] == ["noted", "block ended", "raised after", "True"], r
    two = one + "        os.kill(os.getpid(), signal.SIGINT); time.sleep(0.3)\n"
    r = _deferred(two)  # a second Ctrl-C: at once, the block does not end
    assert r.stdout.split("\n")[:3] == ["noted", "raised after", "True"], r
    r = _deferred("        time.sleep(0.01)\n")  # no Ctrl-C: nothing raised
    assert r.stdout.split("\n")[:2] == ["block ended", "True"], r


# bench with SIGINT ignored (a script's `anemll-spec bench ... &`), SIGTERM'd as its case is
# being stored: the signal is sent by the store's write itself, so it lands there for sure
TERM_WHILE_STORING = """
import os, signal, sys
if sys.argv[1] == "ignored":
    signal.signal(signal.SIGINT, signal.SIG_IGN)
from anemll_spec.cli import main
from anemll_spec.runner import record
write = record.store_measurement
def storing(*args, **kwargs):
    os.kill(os.getpid(), signal.SIGTERM)
    return write(*args, **kwargs)
record.store_measurement = storing
sys.exit(main(["bench", sys.argv[2], "--store", sys.argv[3], "--cache-dir", sys.argv[4]]))
"""


@pytest.mark.parametrize("sigint", ["ignored", "default"])
def test_sigterm_while_a_case_is_stored_keeps_the_case(tmp_path, sigint):
    """SIGTERM to a bench run as a script's background job (SIGINT ignored) was raised at
    once, not held off as a Ctrl-C is: the case being written was lost (0 cases stored,
    exit 143). Now it is stored whole, then the run stops, as with SIGINT at its default."""
    from db_util import rows

    spec = tmp_path / "t.yaml"
    spec.write_text(
        "name: t\nmodel: {family: matmul, m: 4, k: 8, n: 8}\nrun: {backends: [numpy], "
        "warmup: 1, iterations: 20, energy_s: 0, dispatch_floor: false}\n"
    )
    store = tmp_path / "s.duckdb"
    r = subprocess.run(
        [sys.executable, "-c", TERM_WHILE_STORING, sigint, str(spec), str(store),
         str(tmp_path / "cache")],
        capture_output=True, text=True, timeout=120,
        env={"PYTHONPATH": _pythonpath(), "HOME": str(tmp_path)},
    )  # fmt: skip
    assert r.returncode == 143, r.stderr
    assert "Traceback" not in r.stderr and "run marked 'interrupted'" in r.stderr, r.stderr
    assert rows(store, "SELECT status FROM runs") == [("interrupted",)]
    assert rows(store, "SELECT count(*), min(n_samples) FROM cases") == [(1, 20)]
