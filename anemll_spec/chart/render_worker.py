"""Draw a chart's SVG and PNG in a second process, started before the chart is built.

vl-convert's first render in a process spends about 0.4 s starting its JavaScript engine,
and it holds the GIL while it does, so a thread cannot hide that. A process on another
core can: `chart` starts this worker first, the worker warms the engine while the command
imports Altair and queries the store, then draws the finished spec with the same
`render.draw` the command would call itself. Anything that goes wrong with the worker
(it cannot start, dies, or vl-convert raises in it) falls back to drawing here, so the
files and any error are exactly those of drawing in-process.

Protocol, one chart per worker: the spec as one JSON line on stdin; on stdout one JSON
header line, {"svg": n, "png": m} or {"error": text}, then n bytes of SVG and m of PNG.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from types import TracebackType
from typing import IO, Any


class Worker:
    """A started worker (or none, where it could not start): `draw`, then `close`."""

    def __init__(self) -> None:
        env = dict(os.environ)  # the worker imports this package as the parent found it
        root = str(Path(__file__).resolve().parents[2])
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [root, env.get("PYTHONPATH")]))
        try:
            self.proc: subprocess.Popen[bytes] | None = subprocess.Popen(
                # -P: not the working folder first on sys.path, where another checkout
                # or a stray vl_convert.py would be imported instead of ours
                [sys.executable, "-P", "-m", __name__],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,
                env=env,
            )
        except OSError:
            self.proc = None

    def draw(self, spec: dict[str, Any]) -> tuple[str, bytes]:
        """The chart's SVG and PNG: from the worker, else drawn in this process."""
        from anemll_spec.chart import render

        text = render.spec_text(spec)  # a spec JSON cannot hold raises here, as in-process
        drawn = self._ask(text) if self.proc is not None else None
        return drawn if drawn is not None else render.draw(text)

    def _ask(self, text: str) -> tuple[str, bytes] | None:
        assert self.proc is not None and self.proc.stdin and self.proc.stdout
        try:
            self.proc.stdin.write(text.encode() + b"\n")
            self.proc.stdin.close()
            header = json.loads(self.proc.stdout.readline())
            svg, png = (_read(self.proc.stdout, header[k]) for k in ("svg", "png"))
            return svg.decode("utf-8"), png
        except (OSError, ValueError, KeyError, TypeError):  # died, or an error header
            return None

    def close(self) -> None:
        """Stop the worker: its answer is read, or no longer wanted (an error came first)."""
        if self.proc is not None:
            if self.proc.poll() is None:
                self.proc.kill()
            self.proc.wait()
            for pipe in (self.proc.stdin, self.proc.stdout):
                if pipe is not None:
                    pipe.close()

    def __enter__(self) -> Worker:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


def _read(stream: IO[bytes], n: int) -> bytes:
    data = stream.read(n)
    if len(data) != n:
        raise ValueError(f"worker sent {len(data)} of {n} bytes")
    return data


def main() -> int:
    from anemll_spec.chart import render

    out = sys.stdout.buffer
    try:
        render.warm_up()
        line = sys.stdin.buffer.readline()
        if not line:
            return 0  # the command ended before it had a chart to draw
        try:
            svg, png = render.draw(line.decode("utf-8"))
        except Exception as exc:  # the parent draws again in-process and raises it there
            out.write(json.dumps({"error": f"{type(exc).__name__}: {exc}"}).encode() + b"\n")
            return 1
        data = svg.encode("utf-8")
        out.write(json.dumps({"svg": len(data), "png": len(png)}).encode() + b"\n")
        out.write(data)
        out.write(png)
        out.flush()
        return 0
    except (KeyboardInterrupt, BrokenPipeError):  # Ctrl-C, or the parent is gone
        return 1


if __name__ == "__main__":
    sys.exit(main())
