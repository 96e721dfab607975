"""Every op case on the torch executor on CUDA (fp32 and fp16), against the same numpy
formulas; a program without host reads is captured as one CUDA graph. Skips without CUDA
(run on a GPU host: pytest tests/test_ops_cuda.py)."""

from __future__ import annotations

import importlib

import pytest
from fixtures.executor.op_cases import PRECISIONS, Group

torch = pytest.importorskip("torch")
pytestmark = [
    pytest.mark.torch,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA"),
]

# test module -> its case lists (and their targets) under the names the module uses
MODULES = {
    "test_ops_shape": [("CASES", None)],
    "test_ops_gather": [("CASES", None), ("CASES16", "iOS16")],
    "test_ops_sort": [("CASES", None), ("CASES_15", "iOS16")],
    "test_ops_conv": [("CASES", None), ("CASES_15", "iOS15")],
    "test_ops_norm": [("CASES", None)],
    "test_ops_image": [("CASES", None), ("CASES_16", "iOS16")],
    "test_ops_sample": [("CASES", None)],
    "test_ops_recurrent": [("CASES", None)],
    "test_ops_reference": [("CASES", None)],
    "test_ops_existing": [("CASES", None)],
}
CAPTURABLE = ("test_ops_conv:CASES", "test_ops_recurrent:CASES", "test_ops_norm:CASES")


def _groups():
    import coremltools as ct

    out = []
    for module, lists in MODULES.items():
        mod = importlib.import_module(module)
        for attr, target in lists:
            kw = {"target": getattr(ct.target, target)} if target else {}
            if module == "test_ops_existing":
                kw["fp16_pass"] = True
            out.append((f"{module}:{attr}", getattr(mod, attr), kw))
    return out


GROUPS = _groups()


@pytest.fixture(scope="module")
def groups(tmp_path_factory):
    return {
        key: Group(cases, tmp_path_factory.mktemp(key.replace(":", "_")), **kw)
        for key, cases, kw in GROUPS
    }


@pytest.mark.parametrize("precision", PRECISIONS)
@pytest.mark.parametrize(
    ("key", "name"), [(key, c.name) for key, cases, _ in GROUPS for c in cases]
)
def test_cuda(groups, key, name, precision):
    groups[key].check(name, precision, "cuda")


@pytest.mark.parametrize("key", CAPTURABLE)
def test_programs_without_host_reads_are_one_cuda_graph(groups, key):
    group = groups[key]
    name = next(iter(group.cases))
    group.check(name, "fp16", "cuda")
    runner = group.runners[("fp16", "cuda")]
    assert runner.graphed, runner.graph_note
