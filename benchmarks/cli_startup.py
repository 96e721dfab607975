"""`anemll-spec --help` must start in under 0.5 s.

Prints one JSON line: the median wall time of `python -m anemll_spec --help` and of a
bare `python -c pass` (the interpreter's own start-up), measured interleaved in the
same process, and their difference.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import time


def _time(cmd: list[str]) -> float:
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, capture_output=True)
    return time.perf_counter() - t0


def main(repeats: int = 15) -> None:
    help_cmd = [sys.executable, "-m", "anemll_spec", "--help"]
    bare_cmd = [sys.executable, "-c", "pass"]
    helps, bares = [], []
    for _ in range(repeats):  # interleaved, so drift hits both alike
        helps.append(_time(help_cmd))
        bares.append(_time(bare_cmd))
    help_s, bare_s = statistics.median(helps), statistics.median(bares)
    print(
        json.dumps(
            {
                "benchmark": "cli_startup",
                "help_median_s": round(help_s, 4),
                "python_bare_median_s": round(bare_s, 4),
                "overhead_s": round(help_s - bare_s, 4),
                "ratio_vs_bare": round(help_s / bare_s, 2),
                "target_s": 0.5,
                "ok": help_s < 0.5,
            }
        )
    )


if __name__ == "__main__":
    main()
