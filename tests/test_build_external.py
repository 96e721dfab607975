"""external models: validated where they lie, never copied; clear errors for bad input."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from build_util import external, lm_head, weight_bin

from anemll_spec.build import build, build_package, estimate
from anemll_spec.errors import InputError

FIX = Path(__file__).parent / "fixtures" / "build"


def test_external_package_is_not_copied(tmp_path):
    pkg = tmp_path / "user.mlpackage"
    build_package(lm_head(), pkg)
    cache = tmp_path / "cache"
    b = build(external(pkg), cache_dir=cache)
    assert b.path == pkg and b.cached
    assert b.weight_bytes == weight_bin(pkg).stat().st_size
    assert b.flops == 2 * 256 * 512
    assert not cache.exists()
    e = estimate(external(pkg))
    assert (e.weight_bytes, e.flops) == (b.weight_bytes, b.flops)


def test_external_compiled_model():
    b = build(external(FIX / "attention_tiny.mlmodelc"))
    assert b.weight_bytes == (FIX / "attention_tiny.mlmodelc/weights/weight.bin").stat().st_size


@pytest.mark.parametrize(
    "setup, match",
    [
        (lambda d: d / "missing.mlpackage", "does not exist"),
        (lambda d: (d / "w.onnx").write_bytes(b"x") and d / "w.onnx", "not a .mlpackage"),
        (lambda d: (d / "e.mlpackage").mkdir() or d / "e.mlpackage", "Manifest.json missing"),
        (lambda d: (d / "e.mlmodelc").mkdir() or d / "e.mlmodelc", "not a compiled Core ML model"),
    ],
)
def test_external_bad_paths(tmp_path, setup, match):
    path = setup(tmp_path)
    with pytest.raises(InputError, match=match) as err:
        build(external(path, checked=False))
    assert str(path) in str(err.value)


def test_external_corrupt_model_mil(tmp_path):
    bad = tmp_path / "x.mlmodelc"
    shutil.copytree(FIX / "lm_head_tiny.mlmodelc", bad)
    (bad / "metadata.json").unlink()
    (bad / "model.mil").write_text("program(1.3)\n{ nonsense }\n")
    with pytest.raises(InputError, match="no function"):
        build(external(bad))


@pytest.mark.slow  # a real bench process: ~7 s (make test-slow; CI runs both)
def test_a_link_to_a_package_keeps_its_name_and_benches(tmp_path):
    """A content-addressed store links ext/head.mlpackage -> ../blobs/sha256-abc. The spec
    kept the link's target (no suffix): validation passed, then bench failed "not a Core
    ML model" (Core ML picks compile or load by that suffix too). Now the link's own
    path is kept, and the case keys as a plain copy of the package does."""
    import json
    import subprocess
    import sys

    copy = tmp_path / "copy.mlpackage"
    build_package(lm_head(hidden_size=64, vocab_size=128, chunks=1, layout="linear"), copy)
    (tmp_path / "blobs").mkdir()
    shutil.copytree(copy, tmp_path / "blobs" / "sha256-abc")
    (tmp_path / "ext").mkdir()
    (tmp_path / "ext" / "head.mlpackage").symlink_to("../blobs/sha256-abc")
    assert external(tmp_path / "ext" / "head.mlpackage").path == str(
        tmp_path.resolve() / "ext" / "head.mlpackage"
    )
    run = "run: {backends: [numpy], warmup: 1, iterations: 5, max_time_s: 1, energy_s: 0}\n"
    for name, path in (("linked", "ext/head.mlpackage"), ("copied", "copy.mlpackage")):
        text = f"name: {name}\nmodel: {{family: external, path: {path}}}\n{run}"
        (tmp_path / f"{name}.yaml").write_text(text)
    cli = [sys.executable, "-m", "anemll_spec"]
    out = subprocess.run(
        [*cli, "bench", str(tmp_path / "linked.yaml"), "--json"]
        + ["--store", str(tmp_path / "s.duckdb"), "--cache-dir", str(tmp_path / "cache")],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr
    (result,) = json.loads(out.stdout)["results"]
    assert result["status"] == "ok" and result["stats"]["n"] == 5
    plan = subprocess.run(
        [*cli, "plan", str(tmp_path / "copied.yaml"), "--json"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert plan.returncode == 0, plan.stderr
    assert result["case_key"] == json.loads(plan.stdout)["cases"][0]["key"]


@pytest.fixture(scope="module")
def two_functions(tmp_path_factory) -> Path:
    """A small (16 x 256) and a big (4096 x 256) fp16 linear in one package, the small one
    the default: the weight file holds both functions' weights."""
    import coremltools as ct
    import numpy as np
    from coremltools.converters.mil.mil import types
    from fixtures.executor.mil_models import mb, save_program

    tmp = tmp_path_factory.mktemp("multi")
    rng = np.random.default_rng(0)

    def linear(out: int):
        w = rng.standard_normal((out, 256)).astype(np.float16)
        b = rng.standard_normal(out).astype(np.float16)

        @mb.program(
            input_specs=[mb.TensorSpec((1, 256), dtype=types.fp16)],
            opset_version=ct.target.iOS18,
        )
        def prog(x):
            return mb.linear(x=x, weight=w, bias=b, name="y")

        return save_program(prog, tmp / f"f{out}.mlpackage", precision="fp16")

    desc = ct.utils.MultiFunctionDescriptor()
    desc.add_function(str(linear(16)), src_function_name="main", target_function_name="small")
    desc.add_function(str(linear(4096)), src_function_name="main", target_function_name="big")
    desc.default_function_name = "small"
    ct.utils.save_multifunction(desc, str(tmp / "multi.mlpackage"))
    return tmp / "multi.mlpackage"


def test_a_multi_function_models_weight_bytes_are_its_default_functions(two_functions, capsys):
    """They were the whole weight file, every function's (2.11 MB for 8 KB of the run
    function's): GB/s ~250x too high. Now the blobs the default function references."""
    from anemll_spec.cli import main as cli_main

    small = (16 * 256 + 16) * 2  # fp16 weight and bias
    b = build(external(two_functions))
    assert b.weight_bytes == small == estimate(external(two_functions)).weight_bytes
    assert b.flops == 2 * 16 * 256
    assert weight_bin(two_functions).stat().st_size > 4096 * 256 * 2  # both are in the file
    assert cli_main(["inspect", str(two_functions)]) == 0
    line = capsys.readouterr().out.splitlines()[2]
    assert line.startswith(f"weights 8.22 KB ({small:,} B: the 2 blobs function 'small' "), line
    assert "the default of 2 (big, small)" in line and "all functions hold 2.11 MB" in line, line


@pytest.mark.slow  # a real bench process: ~10 s on a busy 2-core machine
def test_a_multi_function_models_bench_stores_its_default_functions_bytes(two_functions, tmp_path):
    import duckdb
    from bench_util import bench_external

    out = bench_external(two_functions, tmp_path)
    store = tmp_path / "s.duckdb"
    assert out.returncode == 0, out.stderr
    con = duckdb.connect(str(store), read_only=True)
    try:
        ((nbytes, gbps, median_ms),) = con.execute(
            "SELECT weight_bytes, bandwidth_gbps, median_ms FROM results"
        ).fetchall()
    finally:
        con.close()
    assert nbytes == (16 * 256 + 16) * 2
    assert gbps == pytest.approx(nbytes / (median_ms * 1e-3) / 1e9, rel=1e-6)
