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
