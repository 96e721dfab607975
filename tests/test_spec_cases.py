"""Sweep expansion and case keys, through the public API and across processes."""

from __future__ import annotations

import json
import subprocess
import sys
from itertools import product
from pathlib import Path

from anemll_spec.spec import expand, load_spec, parse
from anemll_spec.spec.case import published_model

ROOT = Path(__file__).resolve().parents[1]

SWEEP = """\
name: sw
model:
  family: lm_head
  hidden_size: 64
  vocab_size: 512
  chunks: 2
run:
  backends: [numpy]
sweep:
  model.vocab_size: [256, 512, 1024]
  run.compute_units: [[CPU_ONLY], [CPU_AND_NE, ALL]]
  model.compression: [none, {palettize: {nbits: 4}}]
"""


def _spec(tmp_path: Path, text: str = SWEEP):
    p = tmp_path / "s.yaml"
    p.write_text(text)
    return load_spec(p)


def test_sweep_is_the_cartesian_product_in_order(tmp_path):
    cases = expand(_spec(tmp_path))
    assert len(cases) == 3 * 2 * 2
    expected = list(
        product(
            [256, 512, 1024],
            [["CPU_ONLY"], ["CPU_AND_NE", "ALL"]],
            ["none", {"palettize": {"nbits": 4}}],
        )
    )
    for case, (vocab, cus, comp) in zip(cases, expected, strict=True):
        assert case.model.vocab_size == vocab
        assert case.run.compute_units == cus
        assert case.params == {
            "model.vocab_size": vocab,
            "run.compute_units": cus,
            "model.compression": comp,
        }
        if comp == "none":
            assert case.model.compression == "none"
        else:  # defaults filled in
            assert case.model.to_json()["compression"] == {
                "palettize": {
                    "nbits": 4,
                    "granularity": "per_tensor",
                    "group_size": 8,
                    "mode": "kmeans",
                }
            }
        assert case.model.hidden_size == 64 and case.model.chunks == 2
    assert [c.index for c in cases] == list(range(12))
    assert len({c.key for c in cases}) == 12


def test_defaults_are_resolved(tmp_path):
    (case,) = expand(_spec(tmp_path, SWEEP.split("sweep:")[0]))
    assert case.model.dtype == "float16" and case.model.compute_precision == "float16"
    assert case.model.deployment_target == "iOS18" and case.model.layout == "conv"
    assert case.run.iterations == 300 and case.run.compute_units == ["CPU_AND_NE"]
    assert case.run.tolerance.min_cosine == 0.999


def _keys_in_subprocess(path: Path) -> list[str]:
    code = (
        "import json,sys; from anemll_spec.spec import load_spec, expand;"
        "print(json.dumps([c.key for c in expand(load_spec(sys.argv[1]))]))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, str(path)], capture_output=True, text=True, check=True
    )
    return json.loads(out.stdout)


def test_case_keys_are_stable_across_processes(tmp_path):
    spec = _spec(tmp_path)
    here = [c.key for c in expand(spec)]
    assert _keys_in_subprocess(spec.path) == here
    # formatting, comments and key order do not change what is measured
    reordered = tmp_path / "r.yaml"
    reordered.write_text(
        "# a comment\n"
        + SWEEP.replace(
            "  hidden_size: 64\n  vocab_size: 512\n", "  vocab_size: 512\n  hidden_size:   64\n"
        )
    )
    assert _keys_in_subprocess(reordered) == here


def test_changing_a_field_changes_its_key(tmp_path):
    base = SWEEP.split("sweep:")[0]
    (ref,) = expand(_spec(tmp_path, base))
    for old, new in [
        ("hidden_size: 64", "hidden_size: 128"),
        ("chunks: 2", "chunks: 4"),
        ("backends: [numpy]", "backends: [auto]"),
        ("family: lm_head", "family: lm_head\n  seed: 1"),
        ("backends: [numpy]", "backends: [numpy]\n  compute_units: [ALL]"),
    ]:
        (changed,) = expand(_spec(tmp_path, base.replace(old, new)))
        assert changed.key != ref.key, (old, new)
    # iterations say how long we measure, not what: the key (and comparability) stays
    (longer,) = expand(
        _spec(tmp_path, base.replace("backends: [numpy]", "backends: [numpy]\n  iterations: 7"))
    )
    assert longer.key == ref.key
    # the build key ignores run fields entirely
    (cu,) = expand(_spec(tmp_path, base.replace("backends: [numpy]", "backends: [coreml]")))
    assert cu.build_key == ref.build_key and cu.key != ref.key


def test_variants_and_their_keys(tmp_path):
    base = SWEEP.split("sweep:")[0].replace(
        "backends: [numpy]", "backends: [coreml, numpy]\n  compute_units: [CPU_ONLY, ALL]"
    )
    (case,) = expand(_spec(tmp_path, base))
    assert case.variants() == [("coreml", "CPU_ONLY"), ("coreml", "ALL"), ("numpy", None)]
    keys = {case.variant_key(b, cu, None) for b, cu in case.variants()}
    assert len(keys) == 3


def test_shipped_lm_head_specs_are_the_published_models():
    (fp16,) = expand(load_spec(ROOT / "specs" / "lm_head.yaml"))
    (lut6,) = expand(load_spec(ROOT / "specs" / "lm_head_lut6.yaml"))
    assert fp16.model_name == "llama_lm_head"
    assert lut6.model_name == "llama_lm_head_lut6"
    assert (
        fp16.model.hidden_size * fp16.model.vocab_size * 2 + 64 + 64 * fp16.model.chunks
        == 1_050_673_728
    )
    # a different vocab is a different model: never compared with the published one
    assert published_model(fp16.model.model_copy(update={"vocab_size": 32000})) is None


def test_sweep_model_name_names_the_point(tmp_path):
    cases = expand(parse(ROOT / "specs" / "sweep_vocab.yaml"))
    assert [c.model_name for c in cases][0] == "sweep_vocab[vocab_size=16000]"
    assert (
        cases[-1].model_name == "llama_lm_head"
    )  # 128256 x 4096 in 8 conv chunks is the published head


def test_help_imports_nothing_heavy():
    code = (
        "import sys; from anemll_spec.cli import build_parser; build_parser().format_help();"
        "heavy = [m for m in ('coremltools','torch','altair','duckdb','numpy','yaml') if m in sys.modules];"
        "print(','.join(heavy))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def test_python_dash_m_and_console_script_agree():
    a = subprocess.run(
        [sys.executable, "-m", "anemll_spec", "--help"], capture_output=True, text=True
    )
    script = Path(sys.executable).parent / "anemll-spec"
    b = subprocess.run([str(script), "--help"], capture_output=True, text=True)
    assert a.returncode == b.returncode == 0
    assert a.stdout == b.stdout and "validate" in a.stdout


def test_an_fp32_compute_head_is_not_the_published_model():
    (fp16,) = expand(load_spec(ROOT / "specs" / "lm_head.yaml"))
    assert published_model(fp16.model.model_copy(update={"compute_precision": "float32"})) is None


def test_variant_keys_ignore_what_else_the_spec_lists(tmp_path):
    base = SWEEP.split("sweep:")[0]
    (one,) = expand(_spec(tmp_path, base.replace("backends: [numpy]", "backends: [coreml]")))
    (two,) = expand(
        _spec(
            tmp_path,
            base.replace(
                "backends: [numpy]", "backends: [coreml, numpy]\n  compute_units: [CPU_AND_NE, ALL]"
            ),
        )
    )
    assert one.key != two.key  # the specs differ...
    # ...but the coreml/CPU_AND_NE variant measured by both is the same measurement
    assert one.variant_key("coreml", "CPU_AND_NE", None) == two.variant_key(
        "coreml", "CPU_AND_NE", None
    )
    assert one.variant_key("coreml", "CPU_AND_NE", None) != one.variant_key("coreml", "ALL", None)


def test_exponent_floats_without_a_dot_are_numbers(tmp_path):
    """1e-05 is a float in YAML 1.2 (and in the README's own table); PyYAML's 1.1 rules
    read it as a string. A quoted one stays a string."""
    path = tmp_path / "e.yaml"
    path.write_text(
        'name: "1e5"\nmodel: {family: ffn, hidden_size: 64, intermediate_size: 128, '
        "rms_norm_eps: 1e-05}\nrun: {backends: [numpy], max_time_s: 1E2, "
        "tolerance: {max_abs_error: 5e-2}}\n",
    )
    spec = parse(path)
    (case,) = expand(spec)
    assert spec.name == "1e5"
    assert case.model.rms_norm_eps == 1e-05 and isinstance(case.model.rms_norm_eps, float)
    assert case.run.max_time_s == 100.0
    assert case.run.tolerance.max_abs_error == 0.05
