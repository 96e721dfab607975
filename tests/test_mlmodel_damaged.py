"""Damaged and hostile saved models, second round (review 36): JSON nested too deeply,
symlink loops. Each is one line and exit 2, never a traceback."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from fixtures.build.make_compiled import HERE
from test_mlmodel_hostile import _copy, _model_file, _refused, good  # noqa: F401 (fixture)

from anemll_spec.cli import main as cli_main
from anemll_spec.errors import InputError
from anemll_spec.mlmodel.inspect import inspect_model
from anemll_spec.model_io import describe

DEEP = "[" * 200_000 + "]" * 200_000  # json.loads: RecursionError


def _one_line_exit_2(path: Path, match: str, capsys, commands=("inspect", "predict")) -> None:
    for cmd in commands:
        assert cli_main([cmd, str(path)]) == 2, cmd
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "Traceback" not in err, err
        assert match in err, err


def test_a_manifest_nested_too_deeply_is_refused(good, tmp_path, capsys):  # noqa: F811
    pkg = _copy(good, tmp_path)
    (pkg / "Manifest.json").write_text(DEEP)
    _refused(pkg, r"Manifest.json is damaged \(not JSON: maximum recursion depth", capsys)


def test_metadata_json_nested_too_deeply_is_refused(tmp_path, capsys):
    mlc = shutil.copytree(HERE / "lm_head_tiny.mlmodelc", tmp_path / "m.mlmodelc")
    (mlc / "metadata.json").write_text(DEEP)
    _refused(mlc, r"metadata.json is not valid JSON \(maximum recursion depth", capsys)


def test_a_shape_string_nested_too_deeply_is_refused(tmp_path, capsys):
    mlc = shutil.copytree(HERE / "lm_head_tiny.mlmodelc", tmp_path / "m.mlmodelc")
    doc = json.loads((mlc / "metadata.json").read_text())
    doc[0]["outputSchema"][0]["shape"] = DEEP
    (mlc / "metadata.json").write_text(json.dumps(doc))
    with pytest.raises(InputError, match=r"feature 'logits1' has a bad shape"):
        describe(mlc)
    _one_line_exit_2(mlc, "has a bad shape", capsys)


def test_a_root_model_linked_to_itself_is_refused(good, tmp_path, capsys):  # noqa: F811
    """Path.resolve() raised RuntimeError('Symlink loop'): a traceback in every command."""
    pkg = _copy(good, tmp_path)
    _model_file(pkg).unlink()
    _model_file(pkg).symlink_to("model.mlmodel")
    _refused(
        pkg, r"the root model path 'model.mlmodel' cannot be resolved \(symlink loop\)", capsys
    )


def test_weight_files_linked_in_a_loop_are_refused(good, tmp_path, capsys):  # noqa: F811
    pkg = _copy(good, tmp_path)
    weights = pkg / "Data/com.apple.CoreML/weights"
    (weights / "a").symlink_to("b")
    (weights / "b").symlink_to("a")
    with pytest.raises(InputError, match=r"weight file 'a' cannot be resolved \(symlink loop\)"):
        inspect_model(pkg, sha=False)
    _one_line_exit_2(pkg, "weight file 'a' cannot be resolved (symlink loop)", capsys, ["inspect"])
