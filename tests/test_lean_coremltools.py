"""The CLI imports coremltools without torch (lean_coremltools), and builds the same model.

Each check runs in a fresh interpreter: what matters is a process's first import.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
HAS_TORCH = importlib.util.find_spec("torch") is not None
PROBE = """
import json, sys
{setup}
import coremltools
from coremltools import _deps
state = {{"torch_imported": sys.modules.get("torch") is not None,
          "has_torch": _deps._HAS_TORCH,
          "loader": type(coremltools.__spec__.loader).__name__,
          "finders": [type(f).__name__ for f in sys.meta_path]}}
import importlib.util
state["torch_findable"] = importlib.util.find_spec("torch") is not None
print(json.dumps(state))
"""
LEAN = "from anemll_spec import lean_coremltools; lean_coremltools.install()"


def _probe(setup: str) -> dict:
    r = subprocess.run(
        [sys.executable, "-W", "ignore", "-c", PROBE.format(setup=setup)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert r.returncode == 0, r.stderr[-2000:]
    return json.loads(r.stdout.splitlines()[-1])


def test_coremltools_imported_lean_leaves_torch_out_and_gives_it_back():
    got = _probe(LEAN)
    assert got["torch_imported"] is False and got["has_torch"] is False
    assert got["loader"] == "SourceFileLoader", "coremltools keeps its own loader"
    assert "_Finder" not in got["finders"], "the finder removes itself after its one import"
    assert got["torch_findable"] is HAS_TORCH, "torch is importable again afterwards"


@pytest.mark.slow  # torch's import: seconds
@pytest.mark.skipif(not HAS_TORCH, reason="torch is not installed")
def test_torch_imported_first_is_left_as_it_is():
    got = _probe("import torch\n" + LEAN)
    assert got["torch_imported"] is True and got["has_torch"] is True


def test_the_cli_installs_it_and_help_does_not_import_coremltools():
    code = (
        "import sys\nfrom anemll_spec.cli import _quiet_coremltools\n_quiet_coremltools()\n"
        "print([type(f).__name__ for f in sys.meta_path], 'coremltools' in sys.modules)"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == str(["_Finder", *_default_finders()]) + " False"


def _default_finders() -> list[str]:
    code = "import sys; print(' '.join(type(f).__name__ for f in sys.meta_path))"
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    return r.stdout.split()


def _digest(package: Path) -> dict[str, str]:
    """sha256 of each file; the program's protobuf re-serialized deterministically (its maps
    are written in arbitrary order: two builds in one mode differ byte for byte)."""
    from anemll_spec.mlmodel.proto import parse_model

    out = {}
    for p in sorted(package.rglob("*")):
        if not p.is_file() or p.name == "Manifest.json":  # its item ids are random uuids
            continue
        data = p.read_bytes()
        if p.name == "model.mlmodel":
            data = parse_model(data, p).SerializeToString(deterministic=True)
        out[str(p.relative_to(package))] = hashlib.sha256(data).hexdigest()
    return out


@pytest.mark.slow
@pytest.mark.skipif(not HAS_TORCH, reason="torch is not installed")
def test_a_build_is_byte_identical_with_torch_hidden_or_not(tmp_path):
    """The CLI's lean build against a build in a process where coremltools has torch."""
    spec = tmp_path / "t.yaml"
    spec.write_text(
        "name: t\nmodel: {family: ffn, hidden_size: 64, intermediate_size: 128,\n"
        "  compression: {palettize: {nbits: 4, granularity: per_grouped_channel, group_size: 8}}}\n"
    )
    code = (
        "import sys, json\n{setup}\nfrom anemll_spec.cli import main\n"
        "rc = main(['build', sys.argv[1], '--cache-dir', sys.argv[2], '--json'])\n"
        "print('TORCH', sys.modules.get('torch') is not None)\nraise SystemExit(rc)"
    )
    digests = {}
    for name, setup in (("lean", ""), ("torch", "import torch, coremltools")):
        r = subprocess.run(
            [sys.executable, "-W", "ignore", "-c", code.format(setup=setup), str(spec),
             str(tmp_path / name)],
            capture_output=True, text=True, cwd=ROOT,
        )  # fmt: skip
        assert r.returncode == 0, r.stderr[-2000:]
        assert f"TORCH {name == 'torch'}" in r.stdout
        doc = json.loads(r.stdout[: r.stdout.rindex("TORCH")])
        cases = doc["cases"] if isinstance(doc, dict) else doc
        digests[name] = _digest(Path(cases[0]["path"]))
    assert digests["lean"] == digests["torch"] and any("weight" in k for k in digests["lean"])


SPAWNED = """
import multiprocessing, sys
sys.path.insert(0, {tests!r})
import lean_probe
from anemll_spec import lean_coremltools
{setup}
ctx = multiprocessing.get_context("spawn")
recv, send = ctx.Pipe(duplex=False)
proc = ctx.Process(target=lean_probe.child, args=(lean_coremltools.wanted(), send))
proc.start()
print(recv.recv())
proc.join()
"""


@pytest.mark.slow  # torch's import, in the child that is not lean
@pytest.mark.skipif(not HAS_TORCH, reason="torch is not installed")
@pytest.mark.parametrize("setup, torch_imported", [(LEAN, False), ("", True)])
def test_instance_processes_spawned_by_the_cli_import_coremltools_lean_too(setup, torch_imported):
    """bench's instances are spawned: no CLI main runs in them, so the parent's wish is
    handed on; a program using anemll_spec as a library keeps coremltools' own import."""
    code = SPAWNED.format(tests=str(ROOT / "tests"), setup=setup)
    r = subprocess.run(
        [sys.executable, "-W", "ignore", "-c", code], capture_output=True, text=True, cwd=ROOT
    )
    assert r.returncode == 0, r.stderr[-2000:]
    assert r.stdout.split()[-1] == str(torch_imported)
