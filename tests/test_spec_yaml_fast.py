"""Specs are scanned by libyaml where PyYAML has it (yamlsafe._loader(fast=True): the same
composer and resolvers over libyaml's scanner and parser; a spec's load time was its
YAML scanning in pure Python, benchmarks/spec_load.py). Printable ASCII only, and any
error read again the old way, so every value, position, written form and message is what
the pure-Python path gives: checked here, document by document, against it."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from anemll_spec.errors import SpecError
from anemll_spec.spec import yamlsafe

ROOT = Path(__file__).resolve().parents[1]
TRICKY = [
    "a: &x {b: 1, c: [2, 3]}\nd: *x\ne: *x\n",
    "s: 'it''s'\nt: \"tab\\tnew\\nline \\x41\"\nu: plain text # comment\n",
    "i: !!int \"3\"\nf: !!float 1\nstr: !!str 5\nn: !!null ''\nb: !!bool true\n",
    "block: |\n  line one\n  line two\nfold: >\n  a\n  b\nkeep: |+\n  x\n\n",
    "hex: 0x10\noct: 0o17\nold: 017\ninf: -.inf\nnan: .nan\nexp: 1e-05\nyes: yes\nt: 1:30\n",
    "empty:\nnull1: ~\nnull2: null\nlist:\n- 1\n-\n- - 2\n  - 3\nflow: {a: [1, {b: 2}]}\n",
    "model:\n  <<: {family: lm_head}\n  k: 1\n  k: 2\n",  # merge key, duplicate
    "x: !custom 1\ny: !!python/name:os.system ''\nz: !!int 1.5\n",  # refused tags
    "? complex\n: 1\n'q k': 2\n\"d k\": 3\nn: -0\n",
    "deep: " + "[" * 20 + "]" * 20 + "\n",  # too deep
    "a: [1, 2\n",  # syntax error
    "a: 1\n b: 2\n",  # bad indentation
    "- just\n- a list\n",
    "",
    "# only a comment\n",
    "a: 1\n---\nb: 2\n",  # two documents
]


def _specs() -> list[str]:
    texts = [p.read_text() for p in sorted((ROOT / "specs").glob("*.yaml"))]
    return texts + [(ROOT / "tests" / "fixtures" / "spec" / "extra_specs.yaml").read_text()]


def _load(text: str) -> tuple:
    written: dict = {}
    problems: list = []
    try:
        value, positions = yamlsafe.load_yaml(text, "f.yaml", written, problems)
    except SpecError as exc:
        return ("refused", [str(p) for p in exc.problems])
    return value, positions, written, [str(p) for p in problems]


@pytest.mark.parametrize("text", _specs() + TRICKY)
def test_libyaml_reads_as_pyyaml_does(text, monkeypatch):
    if yamlsafe._loader(fast=True) is None:
        pytest.skip("PyYAML without libyaml")
    fast = _load(text)
    monkeypatch.setattr(yamlsafe, "_PLAIN_ASCII", re.compile(r"(?!)"))  # the old way only
    assert _load(text) == fast


def test_the_shipped_specs_take_the_fast_path(monkeypatch):
    """(Else the test above compares the old path with itself.)"""
    import yaml

    if yamlsafe._loader(fast=True) is None:
        pytest.skip("PyYAML without libyaml")
    seen = []
    real = yaml.compose
    monkeypatch.setattr(yaml, "compose", lambda t, Loader: seen.append(Loader) or real(t, Loader))
    for text in _specs():
        yamlsafe.load_yaml(text, "f.yaml")
    assert seen and set(seen) == {yamlsafe._loader(fast=True)}
