"""inspect: everything read back from the saved files, for packages and compiled models."""

from __future__ import annotations

import hashlib
import json
import re
import shutil
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from build_util import attention, ffn, lm_head, matmul, op_counts, proto, weight_bin
from fixtures.executor.mil_models import mb, save_program

from anemll_spec.build import build, build_package
from anemll_spec.errors import InputError
from anemll_spec.mlmodel.inspect import inspect_model

FIX = Path(__file__).parent / "fixtures" / "build"


def _sha(pkg: Path) -> str:
    h = hashlib.sha256()
    wdir = pkg / "Data" / "com.apple.CoreML" / "weights"
    for p in sorted(wdir.rglob("*")):
        h.update(str(p.relative_to(wdir)).encode() + b"\0" + p.read_bytes())
    return h.hexdigest()


@pytest.mark.parametrize(
    "model, flops",
    [
        (lm_head(), 2 * 256 * 512),
        (lm_head(layout="linear", seq_len=2), 2 * 2 * 256 * 512),
        (ffn(), 2 * 4 * 3 * 128 * 384),
        # projections 2*s*h*(2*heads*hd + 2*kv*hd) + attention 4*heads*s*ctx*hd
        (attention(), 2 * 256 * (2 * 256 + 2 * 128) + 4 * 4 * 64 * 64),
        (
            attention(impl="matmul", seq_len=2),
            2 * 2 * 256 * (2 * 256 + 2 * 128) + 4 * 4 * 2 * 64 * 64,
        ),
        (matmul(), 2 * 64 * 128 * 96),
    ],
)
def test_inspect_package(tmp_path, model, flops):
    pkg = tmp_path / "m.mlpackage"
    build_package(model, pkg)
    info = inspect_model(pkg)
    assert info["flops"] == flops
    assert info["weight_bytes"] == weight_bin(pkg).stat().st_size
    assert info["weights_sha256"] == _sha(pkg)
    assert info["ops"] == dict(sorted(op_counts(proto(pkg)).items()))
    assert info["deployment_target"] == "iOS18" and info["spec_version"] == 9
    assert info["compression"] == []


def test_inspect_reports_compression_and_targets(tmp_path):
    pkg = tmp_path / "q.mlpackage"
    build_package(
        lm_head(
            deployment_target="iOS17",
            compression={"quantize": {"dtype": "int8", "granularity": "per_channel"}},
        ),
        pkg,
    )
    info = inspect_model(pkg, sha=False)
    assert info["deployment_target"] == "iOS17" and info["spec_version"] == 8
    assert [(c["op"], c["nbits"], c["granularity"]) for c in info["compression"]] == [
        ("constexpr_affine_dequantize", 8, "per_channel")
    ] * 2
    assert info["flops"] == 2 * 256 * 512  # conv FLOPs through the constexpr weight's shape


def test_inspect_compiled_fixture_agrees_with_its_metadata():
    for name, flops in [
        ("lm_head_tiny", 2 * 64 * 64),
        ("attention_tiny", 2 * 64 * (2 * 64 + 2 * 32) + 4 * 2 * 16 * 32),
    ]:
        path = FIX / f"{name}.mlmodelc"
        info = inspect_model(path)
        meta = json.loads((path / "metadata.json").read_text())[0]
        hist = {k.split(".", 1)[1]: v for k, v in meta["mlProgramOperationTypeHistogram"].items()}
        assert {k: v for k, v in info["ops"].items() if k != "const"} == hist
        assert info["flops"] == flops
        assert info["weight_bytes"] == (path / "weights" / "weight.bin").stat().st_size
        assert info["deployment_target"] == "iOS18"


def test_inspect_rejects_corrupt_models(tmp_path):
    pkg = tmp_path / "m.mlpackage"
    build_package(matmul(), pkg)
    wb = weight_bin(pkg)
    wb.write_bytes(wb.read_bytes()[:200])
    with pytest.raises(InputError, match="truncated|past the end"):
        inspect_model(pkg)
    bad = tmp_path / "c.mlmodelc"
    shutil.copytree(FIX / "lm_head_tiny.mlmodelc", bad)
    (bad / "weights" / "weight.bin").unlink()
    with pytest.raises(InputError, match="missing"):
        inspect_model(bad)


def test_inspect_cli_json_and_text(tmp_path, cli):
    b = build(attention(), cache_dir=tmp_path / "c")
    r = cli("inspect", b.path, "--json")
    assert r.returncode == 0, r.stderr
    info = json.loads(r.stdout)
    assert [s["name"] for s in info["states"]] == ["key_cache", "value_cache"]
    assert info["weights_sha256"] == b.weights_sha256 and info["flops"] == b.flops
    r = cli("inspect", FIX / "attention_tiny.mlmodelc")
    assert (
        r.returncode == 0
        and "key_cache" in r.stdout
        and "scaled_dot_product_attention 1" in r.stdout
    )
    r = cli("inspect", tmp_path / "nope.mlpackage")
    assert r.returncode == 2 and "nope.mlpackage" in r.stderr and "Traceback" not in r.stderr


def test_compiled_histogram_counts_are_proto_counts():
    """The fixture's histogram was written from the package proto it was made from."""
    info = inspect_model(FIX / "attention_tiny.mlmodelc", sha=False)
    assert Counter(info["ops"])["write_state"] == 2


def test_a_neural_network_model_says_what_inspect_does_not_read(tmp_path, capsys):
    """Its layers and weights are not read: 'ops: n/a', not an empty list and 0 B as if
    measured; an output whose description gives no shape is unknown, not a scalar."""
    import coremltools as ct
    from coremltools.converters.mil import Builder as mb

    from anemll_spec.cli import main

    @mb.program(input_specs=[mb.TensorSpec(shape=(1, 4))])
    def prog(x):
        return mb.mul(x=x, y=2.0, name="y")

    path = tmp_path / "nn.mlmodel"
    ct.convert(prog, convert_to="neuralnetwork").save(str(path))
    spec = ct.models.MLModel(str(path), skip_model_load=True).get_spec()
    assert spec.WhichOneof("Type") == "neuralNetwork"
    assert not spec.description.output[0].type.multiArrayType.shape  # what converters write
    assert main(["inspect", str(path)]) == 0
    out = capsys.readouterr().out
    assert "ops: n/a (a neuralNetwork model, not an ML Program" in out
    assert "y     ? (not declared)  float32" in out and "scalar" not in out
    assert main(["inspect", str(path), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["model_type"] == "neuralNetwork"


def test_an_mlmodel_file_has_no_weights_folder(tmp_path, capsys):
    """proj/nn.mlmodel beside proj/weights/checkpoint.pt: the folder was reported (and
    hashed) as the model's weights, 'weights 3.00 MB'. A single .mlmodel holds its own."""
    import coremltools as ct
    from coremltools.converters.mil import Builder as mb

    from anemll_spec.cli import main

    @mb.program(input_specs=[mb.TensorSpec(shape=(1, 4))])
    def prog(x):
        return mb.mul(x=x, y=2.0, name="y")

    path = tmp_path / "nn.mlmodel"
    ct.convert(prog, convert_to="neuralnetwork").save(str(path))
    (tmp_path / "weights").mkdir()
    (tmp_path / "weights" / "checkpoint.pt").write_bytes(b"\0" * 3_000_000)
    info = inspect_model(path)
    assert (info["weight_bytes"], info["weight_files"]) == (0, {})
    assert info["weights_sha256"] == hashlib.sha256().hexdigest()  # nothing hashed
    assert main(["inspect", str(path)]) == 0
    assert "weights 0 B (0 B in 0 file(s), 0 blobs)" in capsys.readouterr().out


def test_an_ml_program_mlmodel_counts_the_weights_beside_it(tmp_path):
    """The fix above gave every .mlmodel 0 B, the model.mlmodel of a package too, whose
    program reads ../weights/weight.bin: inspect said 'weights 0 B ... 2 blobs' and the
    hash of nothing. An ML Program's weights are the package's."""
    pkg = tmp_path / "m.mlpackage"
    build_package(matmul(), pkg)
    inner = pkg / "Data" / "com.apple.CoreML" / "model.mlmodel"
    whole, alone = inspect_model(pkg), inspect_model(inner)
    on_disk = (pkg / "Data" / "com.apple.CoreML" / "weights" / "weight.bin").stat().st_size
    assert alone["weight_bytes"] == whole["weight_bytes"] == on_disk > 0
    assert alone["weights_sha256"] == whole["weights_sha256"] == _sha(pkg)


def test_the_weights_hash_is_the_same_in_a_process_whose_memory_is_locked(tmp_path):
    """The hash drops each hashed slice of its mapping (madvise, so a 1 GB file does not
    sit in the build's RSS); that is advice, and a process with locked memory, where
    Linux refuses it (EINVAL), still gets the hash, the same as hashlib's."""
    import subprocess
    import sys

    pkg = tmp_path / "m.mlpackage"
    build_package(matmul(), pkg)
    code = (
        "import ctypes, sys\n"
        "libc = ctypes.CDLL(None, use_errno=True)\n"
        "if libc.mlockall(3) != 0: print('no-lock'); sys.exit(0)\n"  # MCL_CURRENT|MCL_FUTURE
        "from anemll_spec.mlmodel.inspect import weights_sha256\n"
        "print(weights_sha256(sys.argv[1]))\n"
    )
    res = subprocess.run([sys.executable, "-c", code, str(pkg)], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    if res.stdout.strip() == "no-lock":
        pytest.skip("this process may not lock its memory")
    assert res.stdout.strip() == _sha(pkg)


W_LINEAR = np.zeros((48, 32), np.float32)  # (out, in): not square, so in != out
FLOP_PROGRAMS = {
    # 2 x out elements x in features
    "linear": ([(2, 3, 32)], lambda x: mb.linear(x=x, weight=W_LINEAR), 2 * 2 * 3 * 48 * 32),
    # x (5, 7) transposed: the contracted size is x's first axis (5), out (7, 3)
    "matmul_transpose_x": (
        [(5, 7), (5, 3)],
        lambda x, y: mb.matmul(x=x, y=y, transpose_x=True),
        2 * 7 * 3 * 5,
    ),
    "matmul_transpose_y": (
        [(4, 6), (9, 6)],
        lambda x, y: mb.matmul(x=x, y=y, transpose_y=True),
        2 * 4 * 9 * 6,
    ),
    # each of x's 1 x 8 x 16 x 16 elements meets the 4 x 2 x 2 weights of its input channel
    # (weight: C_in, C_out / groups, kH, kW); 0 before, with no note
    "conv_transpose": (
        [(1, 8, 16, 16)],
        lambda x: mb.conv_transpose(x=x, weight=np.zeros((8, 4, 2, 2), np.float32), strides=[2, 2]),
        2 * (8 * 16 * 16) * (4 * 2 * 2),
    ),
    "conv_transpose_groups": (
        [(1, 8, 16, 16)],
        lambda x: mb.conv_transpose(
            x=x, weight=np.zeros((8, 2, 2, 2), np.float32), strides=[2, 2], groups=2
        ),
        2 * (8 * 16 * 16) * (2 * 2 * 2),
    ),
    # every letter once: n=2 c=5 h=1 w=6 u=4
    "einsum": (
        [(2, 5, 1, 6), (2, 6, 1, 4)],
        lambda a, b: mb.einsum(values=(a, b), equation="nchw,nwhu->nchu"),
        2 * 2 * 5 * 1 * 6 * 4,
    ),
}


@pytest.mark.parametrize("name", FLOP_PROGRAMS)
def test_flops_of_each_op_kind(tmp_path, name):
    shapes, op, flops = FLOP_PROGRAMS[name]
    specs = [mb.TensorSpec(shape=s) for s in shapes]
    prog = mb.program(input_specs=specs)(op)
    pkg = save_program(prog, tmp_path / "m.mlpackage")
    assert inspect_model(pkg, sha=False)["flops"] == flops


def test_flops_of_an_unchunked_linear_head(tmp_path):
    """One chunk: the weight is (vocab, hidden), 512 x 256, not square."""
    build_package(lm_head(layout="linear", chunks=1), tmp_path / "m.mlpackage")
    assert inspect_model(tmp_path / "m.mlpackage", sha=False)["flops"] == 2 * 256 * 512


@pytest.mark.parametrize(
    "make, quantize, expect",
    [
        (lm_head, {"granularity": "per_channel"}, ("per_channel", None)),
        (lm_head, {"granularity": "per_block", "block_size": 32}, ("per_block", 32)),
        # one scale per weight element: still more than one per output channel
        (lm_head, {"granularity": "per_block", "block_size": 1}, ("per_block", 1)),
        (matmul, {"granularity": "per_channel"}, ("per_channel", None)),  # output axis 1
        (matmul, {"granularity": "per_block", "block_size": 1}, ("per_block", 1)),
    ],
)
def test_inspect_reads_quantize_granularity_and_block_size(tmp_path, make, quantize, expect):
    pkg = tmp_path / "q.mlpackage"
    fields = {"hidden_size": 64, "vocab_size": 128, "chunks": 1} if make is lm_head else {}
    build_package(make(compression={"quantize": {"dtype": "int8", **quantize}}, **fields), pkg)
    (c,) = inspect_model(pkg, sha=False)["compression"]
    assert (c["op"], c["granularity"], c.get("block_size")) == (
        "constexpr_blockwise_shift_scale",
        *expect,
    )


def test_inspect_reads_a_block_on_two_axes_as_its_shape(tmp_path, capsys):
    """block_size [4, 16] (coremltools' per-axis form) was shown as 'per_block 4'."""
    import coremltools as ct
    import coremltools.optimize.coreml as cto

    w = np.random.default_rng(0).standard_normal((64, 128)).astype(np.float32)

    @mb.program(input_specs=[mb.TensorSpec((1, 128))], opset_version=ct.target.iOS18)
    def prog(x):
        return mb.linear(x=x, weight=w)

    model = ct.convert(prog, minimum_deployment_target=ct.target.iOS18)
    cfg = cto.OpLinearQuantizerConfig(
        mode="linear_symmetric", granularity="per_block", block_size=[4, 16], weight_threshold=0
    )
    model = cto.linear_quantize_weights(model, cto.OptimizationConfig(global_config=cfg))
    model.save(str(tmp_path / "q.mlpackage"))
    (c,) = inspect_model(tmp_path / "q.mlpackage", sha=False)["compression"]
    assert (c["granularity"], c["block_size"]) == ("per_block", [4, 16])
    from anemll_spec.cli import main

    assert main(["inspect", str(tmp_path / "q.mlpackage")]) == 0
    assert re.search(
        r"constexpr_blockwise_shift_scale +8 +per_block +4x16\n", capsys.readouterr().out
    )
