"""stdout_to_stderr: native writes to fd 1 must not reach a --json stdout (issue 19.7).

Each test runs a real child Python whose stdout is a pipe (so C stdio is block-buffered,
as under `anemll-spec bench --json | jq`), writes through every route a native library
uses, and checks what reached each stream.
"""

from __future__ import annotations

import json
import subprocess
import sys

CHILD = r"""
import ctypes, ctypes.util, json, os, sys
from anemll_spec.backends.coreml_stdout import stdout_to_stderr

libc = ctypes.CDLL(ctypes.util.find_library("c"))
print("before", flush=True)
with stdout_to_stderr(enabled=ENABLED):
    os.write(1, b"raw fd1 write\n")              # what native code does
    libc.printf(b"C printf, buffered in a pipe\n")  # left in libc's buffer
    print("python print")                         # py::print goes through sys.stdout
    sys.stdout.write("sys.stdout.write\n")
    if RAISE:
        raise RuntimeError("boom")
print(json.dumps({"ok": True}))
"""


def _run(enabled: bool, raise_inside: bool = False) -> subprocess.CompletedProcess:
    code = CHILD.replace("ENABLED", str(enabled)).replace("RAISE", str(raise_inside))
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)


NOISE = ("raw fd1 write", "C printf, buffered in a pipe", "python print", "sys.stdout.write")


def test_native_and_python_writes_go_to_stderr_and_stdout_comes_back():
    res = _run(True)
    assert res.returncode == 0, res.stderr
    lines = res.stdout.splitlines()
    assert lines == ["before", '{"ok": true}'], res.stdout
    assert json.loads(lines[-1]) == {"ok": True}
    for n in NOISE:
        assert n in res.stderr


def test_without_the_redirect_the_noise_corrupts_stdout():
    """The control: the same child without the redirect pollutes stdout (the defect)."""
    res = _run(False)
    assert res.returncode == 0, res.stderr
    for n in NOISE:
        assert n in res.stdout
    assert not all(n in res.stderr for n in NOISE)


def test_stdout_is_restored_after_an_exception():
    res = _run(True, raise_inside=True)
    assert res.returncode == 1
    assert "RuntimeError: boom" in res.stderr
    assert res.stdout.splitlines() == ["before"]
    for n in NOISE:
        assert n in res.stderr


def test_a_child_process_started_inside_inherits_the_redirect():
    """The concurrency module spawns processes inside the block: their fd 1 is stderr."""
    code = (
        "import subprocess, sys\n"
        "from anemll_spec.backends.coreml_stdout import stdout_to_stderr\n"
        "with stdout_to_stderr():\n"
        "    subprocess.run([sys.executable, '-c', 'print(\"grandchild\")'])\n"
        "print('done')\n"
    )
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    assert res.stdout == "done\n"
    assert "grandchild" in res.stderr


def test_with_fd_2_closed_nothing_goes_into_the_file_that_took_it(tmp_path):
    """Started with fd 2 closed, the first file opened takes fd 2 and sys.stderr is None:
    the redirect pointed fd 1 into that file, then failed on sys.stderr.flush(). Now the
    block's writes go to /dev/null: the file gets none, stdout only what follows."""
    log = tmp_path / "log.txt"
    code = (
        "import ctypes, ctypes.util, os, sys\n"
        "from anemll_spec.backends.coreml_stdout import stdout_to_stderr\n"
        f"f = open({str(log)!r}, 'w')\n"
        "assert sys.stderr is None and f.fileno() == 2, (sys.stderr, f.fileno())\n"
        "with stdout_to_stderr():\n"
        "    os.write(1, b'raw fd1 write\\n')\n"
        "    ctypes.CDLL(ctypes.util.find_library('c')).printf(b'C printf\\n')\n"
        "    print('python print')\n"
        "f.close()\n"
        "print('{\"ok\": true}')\n"
    )
    res = subprocess.run(
        ["sh", "-c", f'{sys.executable} -c "$0" 2>&-', code], capture_output=True, text=True
    )
    assert log.read_text() == ""
    assert res.returncode == 0 and res.stderr == ""
    assert res.stdout == '{"ok": true}\n'
