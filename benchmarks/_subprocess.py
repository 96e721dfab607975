"""Run a benchmark step in a fresh Python process (its own peak RSS, no warm caches)."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap


def run_python(code: str, *args: str) -> dict:
    """Run `code` with `args` as sys.argv[1:]; its last stdout line is a JSON object."""
    out = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code), *args],
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])
