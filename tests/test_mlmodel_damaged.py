"""Damaged and hostile saved models, second round (review 36): JSON nested too deeply,
symlink loops, a damaged weight file refused before bench runs anything, strings of
model.mil read as written (a bad escape refused at its line). Each is one line and exit 2,
never a traceback or a FAILED run in the store."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from bench_util import bench_external
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


def _damage(pkg: Path, how: str, tmp_path: Path) -> str:
    """Damage the package's weights (or manifest); the message bench must give."""
    wb = pkg / "Data/com.apple.CoreML/weights/weight.bin"
    data = bytearray(wb.read_bytes())
    if how == "bad_sentinel":
        data[64:68] = b"\0\0\0\0"  # the first blob's metadata record
        wb.write_bytes(bytes(data))
        return "no blob metadata at offset 64 (bad sentinel)"
    if how == "truncated":
        wb.write_bytes(bytes(data[: len(data) // 2]))
        return "runs past the end of the file (truncated?)"
    if how == "linked_out":
        wb.unlink()
        os.symlink("/etc/passwd", wb)
        return "links outside the model"
    if how == "symlink_loop":
        (wb.parent / "a").symlink_to("b")
        (wb.parent / "b").symlink_to("a")
        return "weight file 'a' cannot be resolved (symlink loop)"
    (pkg / "Manifest.json").write_text(DEEP)
    return "Manifest.json is damaged (not JSON: maximum recursion depth"


@pytest.mark.parametrize(
    "how", ["bad_sentinel", "truncated", "linked_out", "symlink_loop", "deep_manifest"]
)
def test_bench_refuses_a_damaged_external_model_before_running(good, tmp_path, how):  # noqa: F811
    """The weights were read only when the case ran: bench stored a FAILED run, exit 1.
    Now preflight reads the program and checks every weight it references: exit 2, one
    line naming model.path, and no store written."""
    pkg = _copy(good, tmp_path)
    want = _damage(pkg, how, tmp_path)
    out = bench_external(pkg.name, tmp_path, timeout=120)
    store = tmp_path / "s.duckdb"
    assert out.returncode == 2, out.stderr + out.stdout
    assert out.stderr.count("\n") == 1 and "Traceback" not in out.stderr, out.stderr
    # at model.path's value, as validate points: 'model: {family: external, path: ' is 32
    at = f"{tmp_path / 'ext.yaml'}:2:33: ext: model.path: "
    assert f"error: {at}" in out.stderr and want in out.stderr, out.stderr
    assert not store.exists()


@pytest.mark.parametrize("command", ["bench", "build"])
def test_a_swept_damaged_model_is_refused_at_its_sweep_entry(good, tmp_path, command):  # noqa: F811
    """A sweep over model.path: the damaged package is named at its own value in the
    sweep list (line 5, its column), not at the spec file alone; nothing stored."""
    pkg = _copy(good, tmp_path)
    shutil.copytree(pkg, tmp_path / "bad.mlpackage")
    want = _damage(tmp_path / "bad.mlpackage", "truncated", tmp_path)
    spec = tmp_path / "sw.yaml"
    spec.write_text(
        "name: sw\nmodel: {family: external, path: m.mlpackage}\n"
        "run: {backends: [numpy], warmup: 1, iterations: 5, energy_s: 0}\nsweep:\n"
        "  model.path: [m.mlpackage, bad.mlpackage]\n"
    )
    store = tmp_path / "s.duckdb"
    args = ["--store", str(store)] if command == "bench" else []
    out = subprocess.run(
        [sys.executable, "-m", "anemll_spec", command, str(spec), "--cache-dir",
         str(tmp_path / "cache"), *args],
        capture_output=True, text=True, timeout=120, cwd=tmp_path,
    )  # fmt: skip
    assert out.returncode == 2, out.stderr + out.stdout
    assert out.stderr.count("\n") == 1 and "Traceback" not in out.stderr, out.stderr
    col = len("  model.path: [m.mlpackage, ") + 1
    assert f"error: {spec}:5:{col}: sw[path=bad.mlpackage]: model.path: " in out.stderr, out.stderr
    assert want in out.stderr and not store.exists(), out.stderr


def _compiled_with(tmp_path: Path, old: str, new: str) -> Path:
    """lm_head_tiny.mlmodelc with `old` replaced by `new` (once) in its model.mil, read
    from the program (no metadata.json, so inspect reads the I/O from the text too)."""
    mlc = shutil.copytree(HERE / "lm_head_tiny.mlmodelc", tmp_path / "m.mlmodelc")
    mil = mlc / "model.mil"
    text = mil.read_text()
    assert old in text
    mil.write_text(text.replace(old, new, 1), encoding="utf-8")
    (mlc / "metadata.json").unlink()
    return mlc


def _op_names(mlc: Path) -> list[str]:
    from anemll_spec.mlmodel.files import locate
    from anemll_spec.mlmodel.model import SavedModel

    return [op.name for op in SavedModel(locate(mlc)).program().function(None, "t").ops]


@pytest.mark.parametrize(
    "written, read",
    [
        ("c_\u00e9\u4e2d", "c_\u00e9\u4e2d"),  # UTF-8 text: was 'c_Ã©ä¸\\xad'
        (r"a\"b\\c\n\t", 'a"b\\c\n\t'),
        (r"\x41\u00e9\U0001F600\101", "A\u00e9\U0001f600A"),
        (r"a\/b\q", r"a\/b\q"),  # escapes C does not know stand for themselves, as before
    ],
)
def test_strings_of_model_mil_read_back_as_written(tmp_path, written, read):
    mlc = _compiled_with(tmp_path, 'string("transpose_0")', f'string("{written}")')
    assert read in _op_names(mlc)


@pytest.mark.parametrize("escape", [r"\x", r"\u12", r"\uD800"])
def test_a_bad_escape_in_a_string_of_model_mil_is_refused_at_its_line(tmp_path, capsys, escape):
    """bytes.decode('unicode_escape') raised UnicodeDecodeError: a traceback."""
    mlc = _compiled_with(tmp_path, 'string("transpose_0")', f'string("c_{escape}")')
    want = f"model.mil:6: bad escape {escape[:2]}"
    with pytest.raises(InputError, match=re.escape(want)):
        _op_names(mlc)
    _one_line_exit_2(mlc, want, capsys)


def test_an_integer_constant_out_of_its_types_range_in_model_mil_is_refused(tmp_path, capsys):
    """int32 4294967297 was wrapped silently by astype, to 1: a permutation that looks
    right; 999 as int8 read as -25."""
    mlc = _compiled_with(
        tmp_path,
        "val = tensor<int32, [3]>([0, 2, 1])",
        "val = tensor<int32, [3]>([0, 2, 4294967297])",
    )
    want = "model.mil:5: value 4294967297 is out of range for int32 (-2147483648..2147483647)"
    with pytest.raises(InputError, match=re.escape(want)):
        _op_names(mlc)
    _one_line_exit_2(mlc, want, capsys)


def test_an_int_immediate_value_out_of_range_in_the_proto_is_refused(good, tmp_path, capsys):  # noqa: F811
    from coremltools.proto import MIL_pb2
    from test_mlmodel_hostile import _const, _edit

    pkg = _copy(good, tmp_path)

    def as_int8(spec):
        op = _const(spec, "immediateValue")
        val = op.attributes["val"]
        for tt in (val.type.tensorType, op.outputs[0].type.tensorType):
            tt.dataType = MIL_pb2.DataType.Value("INT8")
        tensor = val.immediateValue.tensor
        tensor.Clear()
        tensor.ints.values.extend([-7, 65, 999])

    _edit(pkg, as_int8)
    want = "value 999 is out of range for int8 (-128..127)"
    _refused(pkg, re.escape(want), capsys)


def test_an_error_in_the_proto_program_names_the_model(good, tmp_path, capsys):  # noqa: F811
    """'error: op 0 ... immediate value holds 3 values, shape needs 5' named no model: in
    a bench of several external models, which one was it?"""
    from test_mlmodel_hostile import _const, _edit, _set_dims

    pkg = _copy(good, tmp_path)
    _edit(pkg, lambda s: _set_dims(_const(s, "immediateValue"), [5]))
    want = f"{pkg}: function 'main': op "
    with pytest.raises(InputError, match=re.escape(want)):
        inspect_model(pkg, sha=False)
    for cmd in ("inspect", "predict"):
        assert cli_main([cmd, str(pkg)]) == 2
        err = capsys.readouterr().err
        assert err.startswith(f"anemll-spec {cmd}: error: {want}"), err
        assert err.endswith("holds 3 values, shape needs 5\n") and err.count("\n") == 1, err
