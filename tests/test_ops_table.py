"""`anemll-spec ops` and the data behind it stay in step with coremltools' op registry and
with the kernel registry; every op not supported says why."""

from __future__ import annotations

import collections
import json
import subprocess
import sys

from anemll_spec.executor.kernels import KERNELS
from anemll_spec.executor.kernels.coverage import NO_KERNEL, coverage, op_coverage
from anemll_spec.executor.kernels.misc import PENDING
from anemll_spec.executor.kernels.opsets import OPSETS, SAVED_ONLY, generate


def test_opset_table_matches_coremltools_registry():
    assert generate() == OPSETS
    assert len(OPSETS) >= 169  # coremltools 9: 168 core ops + the coreml dialect's state op
    assert OPSETS["gather"] == ("iOS15", "iOS16", "iOS17")
    assert OPSETS["read_state"] == ("iOS18",)


def test_every_kernel_is_an_op_of_the_opsets():
    assert set(KERNELS) - set(OPSETS) == set(SAVED_ONLY)


def test_every_op_is_supported_refused_or_says_why():
    rows = coverage()
    assert [r.op for r in rows] == list(OPSETS)
    for r in rows:
        for side in (r.numpy, r.torch):
            assert side.status in ("supported", "refused", "not supported")
            if side.status != "supported":
                assert side.note, f"{r.op}: {side.status} without a reason"
    missing = {r.op for r in rows if r.numpy.status == "not supported"}
    known = set(PENDING) | set(NO_KERNEL) | {op for op in OPSETS if op.startswith("constexpr_")}
    assert missing <= known, f"ops with no kernel and no stated reason: {sorted(missing - known)}"
    refused = {r.op for r in rows if r.numpy.status == "refused"}
    assert refused == {"random_bernoulli", "random_categorical", "random_normal", "random_uniform"}


def test_host_ops_say_so_on_torch():
    row = op_coverage("non_maximum_suppression")
    assert row.numpy.status == row.torch.status == "supported"
    assert "host" in row.torch.note and "CUDA graph" in row.torch.note
    assert op_coverage("conv_transpose").torch.note == ""


def test_ops_cli_json_without_coremltools():
    code = (
        "import json, sys\n"
        "from anemll_spec.cli import main\n"
        "rc = main(['ops', '--json'])\n"
        "assert rc == 0, rc\n"
        "assert 'coremltools' not in sys.modules, 'ops imported coremltools'\n"
    )
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    data = json.loads(res.stdout)
    assert [o["op"] for o in data["ops"]] == list(OPSETS)
    # the totals are the listed rows' statuses, counted here, and every op is one of them
    for side in ("numpy", "torch"):
        counted = collections.Counter(o[side]["status"] for o in data["ops"])
        assert data["totals"][side] == {
            s: counted[s] for s in ("supported", "refused", "not supported")
        }
        assert sum(data["totals"][side].values()) == len(OPSETS)
    by_op = {o["op"]: o for o in data["ops"]}
    assert by_op["conv"]["opsets"] == ["iOS15", "iOS17"]
    assert by_op["random_normal"]["numpy"]["status"] == "refused"


def test_ops_cli_text_and_missing(capsys):
    from anemll_spec.cli import main

    assert main(["ops", "--missing"]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert lines[0].split() == ["op", "opsets", "numpy", "torch", "note"]
    listed = {line.split()[0] for line in lines[2:] if not line.startswith(("numpy:", "torch:"))}
    assert listed == {r.op for r in coverage() if r.numpy.status != "supported"}
    supported = sum(r.numpy.status == "supported" for r in coverage())
    assert f"numpy: {supported} of {len(OPSETS)} ops supported" in out


# kernels the op tests build without naming `mb.<op>`, and the test that runs each
BUILT_ELSEWHERE = {
    "l2_pool": "test_ops_conv (getattr(mb, f'{kind}_pool'))",
    "write_state": "test_executor_state (coremltools saves coreml_update_state as it)",
    "classify": "test_ops_classify (ct.convert with a ClassifierConfig)",
}


def test_every_kernel_is_built_by_a_test():
    """A kernel no test builds is a kernel no test runs: each kernel is built as mb.<op>
    somewhere under tests/ (the op tests run what they build on both executors), or is
    listed above with the test that runs it."""
    import re
    from pathlib import Path

    built: set[str] = set()
    for path in Path(__file__).parent.rglob("*.py"):
        built |= set(re.findall(r"\bmb\.([a-z_0-9]+)\b", path.read_text()))
    supported = {op for op, k in KERNELS.items() if op_coverage(op).numpy.status == "supported"}
    assert supported - built - set(BUILT_ELSEWHERE) == set()
    assert set(BUILT_ELSEWHERE) <= supported - built  # each entry is needed
