"""The render worker (`chart` draws SVG and PNG in a second process, warmed while the chart
is built) gives the bytes drawing in-process gives, falls back to drawing in-process
whenever it cannot answer, and never outlives the command.

SYNTHETIC samples for chart rendering (tests/fixtures/chart), not measurements.
"""

from __future__ import annotations

import sys
import time
import uuid
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent / "fixtures" / "chart"))
import chart_synthetic as syn  # noqa: E402

from anemll_spec.chart import build_chart, render  # noqa: E402
from anemll_spec.chart.render_worker import Worker  # noqa: E402
from anemll_spec.chart.source import Options  # noqa: E402


@pytest.fixture(scope="module")
def drawn(tmp_path_factory) -> tuple[dict, str, bytes]:
    """A factors chart's spec (as write_chart passes it) and its in-process drawing."""
    path = tmp_path_factory.mktemp("worker") / "results.duckdb"
    syn.lm_head_run(path, seed=3)
    spec = render.printable_strings(build_chart("factors", str(path), Options()))
    svg, png = render.draw(spec)
    return spec, svg, png


def _refuse(spec: dict) -> tuple[str, bytes]:
    raise AssertionError("drawn in the parent process")


def test_the_worker_draws_the_same_bytes_in_its_own_process(drawn, monkeypatch):
    spec, svg, png = drawn
    monkeypatch.setattr(render, "draw", _refuse)  # only the worker can draw now
    with Worker() as worker:
        got_svg, got_png = worker.draw(spec)
        assert worker.proc is not None
        assert worker.proc.wait(timeout=30) == 0
    assert got_svg == svg and got_png == png
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and "<svg" in svg


def test_a_worker_that_cannot_start_or_dies_leaves_drawing_to_this_process(drawn, monkeypatch):
    spec, svg, png = drawn
    monkeypatch.setattr(sys, "executable", "/nonexistent/python")
    with Worker() as worker:
        assert worker.proc is None
        assert worker.draw(spec) == (svg, png)
    monkeypatch.undo()
    with Worker() as worker:
        assert worker.proc is not None
        worker.proc.kill()
        worker.proc.wait()
        assert worker.draw(spec) == (svg, png)


def test_a_spec_vl_convert_refuses_raises_as_it_does_in_process():
    bad = {"mark": "no-such-mark"}
    with pytest.raises(ValueError) as here:
        render.draw(bad)
    with Worker() as worker, pytest.raises(ValueError) as via_worker:
        worker.draw(bad)
    assert str(via_worker.value) == str(here.value)


def test_close_before_drawing_stops_the_warming_worker_at_once():
    worker = Worker()
    assert worker.proc is not None and worker.proc.poll() is None
    t0 = time.perf_counter()
    worker.close()
    assert worker.proc.returncode is not None
    assert time.perf_counter() - t0 < 5  # killed, not waited for through its warm-up


@pytest.mark.skipif(not Path("/proc/self/environ").exists(), reason="reads /proc")
def test_chart_cli_leaves_no_worker_behind_after_an_error(cli, tmp_path):
    """An input error before drawing ends the command, and with it its worker (found by
    a tag in its environment, so other tests' workers do not count)."""
    tag = f"ANEMLL_SPEC_TEST_TAG={uuid.uuid4().hex}".encode()
    r = cli(
        "chart", "factors", "--store", tmp_path / "missing.duckdb", "--out", tmp_path / "o",
        env={"ANEMLL_SPEC_TEST_TAG": tag.split(b"=")[1].decode()},
    )  # fmt: skip
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert not _tagged(tag), "a render worker outlived the command"


def _tagged(tag: bytes) -> list[int]:
    """Processes whose environment holds `tag`."""
    found = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                if tag in (proc / "environ").read_bytes().split(b"\0"):
                    found.append(int(proc.name))
            except OSError:
                continue
    return found


def test_the_worker_runs_this_package_not_one_in_the_working_folder(drawn, monkeypatch, tmp_path):
    """`chart` run inside another checkout (or beside a stray vl_convert.py) draws with the
    code the command itself imported."""
    spec, svg, png = drawn
    fake = tmp_path / "anemll_spec" / "chart"
    fake.mkdir(parents=True)
    for d in (fake.parent, fake):
        (d / "__init__.py").write_text("")
    answer = 'import sys; sys.stdout.buffer.write(b\'{"svg": 3, "png": 1}\\n<s>P\')\n'
    (fake / "render_worker.py").write_text(answer)
    (tmp_path / "vl_convert.py").write_text("raise SystemExit('the stray one')\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(render, "draw", _refuse)
    with Worker() as worker:
        assert worker.draw(spec) == (svg, png)


def test_the_worker_and_this_process_take_the_same_json():
    """Both hand vl-convert the spec as JSON text: a key JSON writes as text (an int) is
    drawn alike; a value JSON cannot hold fails alike, with the same error."""
    spec = {"mark": "text", "encoding": {"text": {"value": "k"}}, "usermeta": {7: "int key"}}
    with Worker() as worker:
        assert worker.draw(spec) == render.draw(spec)
    bad = {**spec, "usermeta": {"when": object()}}
    with pytest.raises(TypeError) as here:
        render.draw(bad)
    with Worker() as worker, pytest.raises(TypeError) as there:
        worker.draw(bad)
    assert str(there.value) == str(here.value)
