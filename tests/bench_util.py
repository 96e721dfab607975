"""A real `anemll-spec bench` in a subprocess, stopped with Ctrl-C (SIGINT), or another
signal, once a line of its progress says so: what the Ctrl-C tests share."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def interrupted_bench(
    spec: Path,
    store: Path,
    cache: Path,
    when: Callable[[str], bool],
    delay_s: float = 0.0,
    stdout: list[str] | None = None,
    sig: int = signal.SIGINT,
    ignore_sigint: bool = False,
) -> tuple[int, str]:
    """(exit status, everything it printed on stderr) of a bench sent `sig` `delay_s`
    after the first stderr line for which `when(line)` holds; what it printed on stdout
    is appended to `stdout` when given."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "anemll_spec", "bench", str(spec), "--store", str(store)],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "ANEMLL_SPEC_CACHE": str(cache)},
        # as a non-interactive shell starts a background job (`cmd &`): SIGINT ignored
        preexec_fn=(lambda: signal.signal(signal.SIGINT, signal.SIG_IGN)) if ignore_sigint else None,
    )  # fmt: skip
    seen = []
    try:
        assert proc.stderr is not None
        for line in proc.stderr:
            seen.append(line)
            if when(line):
                break
        time.sleep(delay_s)
        proc.send_signal(sig)
        out, err = proc.communicate(timeout=60)
        if stdout is not None:
            stdout.append(out)
    finally:
        if proc.poll() is None:
            proc.kill()
    return proc.returncode, "".join(seen) + err


def bench_external(
    path: str | Path, tmp_path: Path, timeout: float = 300
) -> subprocess.CompletedProcess:
    """A real bench of a short spec of the external model at `path` (5 calls, no energy),
    into tmp_path/s.duckdb with a cache of its own."""
    run = "run: {backends: [numpy], warmup: 1, iterations: 5, max_time_s: 1, energy_s: 0}"
    spec = tmp_path / "ext.yaml"
    spec.write_text(f"name: ext\nmodel: {{family: external, path: {path}}}\n{run}\n")
    return subprocess.run(
        [sys.executable, "-m", "anemll_spec", "bench", str(spec), "--store", str(tmp_path / "s.duckdb"),
         "--cache-dir", str(tmp_path / "cache")],
        capture_output=True, text=True, timeout=timeout, cwd=tmp_path,
    )  # fmt: skip
