"""`plan` and `info` through the real CLI."""

from __future__ import annotations

import json
import sys

import pytest
from conftest import SPECS


def test_plan_lm_head_estimates_the_published_weights(cli):
    res = cli("plan", SPECS / "lm_head.yaml", "--json")
    assert res.returncode == 0, res.stderr
    doc = json.loads(res.stdout)
    (case,) = doc["cases"]
    assert case["model_name"] == "llama_lm_head"
    assert case["family"] == "lm_head" and case["compression"] == "none"
    # store/reference/README.md: 4096 x 128256 x 2 bytes + 576 bytes of blob headers
    assert case["estimate"]["weight_bytes"] == 4096 * 128256 * 2 + 576 == 1_050_673_728
    assert case["estimate"]["flops"] == 2 * 4096 * 128256
    assert "8 x 16032" in case["shapes"]
    assert case["budget"]["iterations"] == 300 and case["budget"]["max_time_s"] == 60
    assert case["variants"] and all(v["backend"] != "auto" for v in case["variants"])
    if sys.platform != "darwin":
        assert case["variants"] == [{"backend": "numpy", "compute_units": None}]
        assert any("auto -> numpy" in n for n in doc["notes"])


def test_plan_sweep_lists_every_case_and_collapses_compute_units(cli):
    res = cli("plan", SPECS / "sweep_vocab.yaml", "--json")
    doc = json.loads(res.stdout)
    assert [c["params"]["model.vocab_size"] for c in doc["cases"]] == [
        16000,
        32000,
        64000,
        96000,
        128256,
    ]
    assert len({c["key"] for c in doc["cases"]}) == 5
    res = cli("plan", SPECS / "compute_units.yaml", "--backend", "numpy", "--json")
    (case,) = json.loads(res.stdout)["cases"]
    assert case["variants"] == [{"backend": "numpy", "compute_units": None}]
    res = cli("plan", SPECS / "compute_units.yaml", "--json")
    (case,) = json.loads(res.stdout)["cases"]
    if sys.platform != "darwin":  # auto -> numpy: the four compute units collapse
        assert case["variants"] == [{"backend": "numpy", "compute_units": None}]
        assert "4 compute-unit variants collapsed into one" in case["notes"][0]
    else:
        assert [v["compute_units"] for v in case["variants"]] == [
            "CPU_ONLY",
            "CPU_AND_GPU",
            "CPU_AND_NE",
            "ALL",
        ]


def test_plan_text_and_warnings(cli, tmp_path):
    spec = tmp_path / "big.yaml"
    spec.write_text("name: big\nmodel: {family: lm_head, vocab_size: 128256, chunks: 4}\n")
    res = cli("plan", spec)
    assert res.returncode == 0, res.stderr
    assert "big" in res.stdout and "32064" in res.stdout
    assert "warning:" in res.stdout and "16384" in res.stdout  # rows above the ANE limit


def test_plan_says_a_sustained_run_times_for_its_duration(cli, tmp_path):
    """Not the iteration range, which a sustained run does not use."""
    spec = tmp_path / "sus.yaml"
    spec.write_text(
        "name: sus\nmodel: {family: matmul, m: 8, k: 8, n: 8}\n"
        "run: {backends: [numpy], duration_s: 12, window_s: 3, warmup: 5}\n"
    )
    res = cli("plan", spec)
    assert res.returncode == 0, res.stderr
    assert "warmup 5 (<= 120 s), sustained 12 s in 3 s windows" in res.stdout
    assert " it, " not in res.stdout
    assert "not interleaved" not in res.stdout  # one variant: nothing to take turns with


def test_plan_says_a_sustained_run_times_its_variants_one_after_the_other(cli, tmp_path):
    """As bench notes on each result (and the same words): `interleave` does not apply
    to a sustained run's variants."""
    spec = tmp_path / "sus.yaml"
    spec.write_text(
        "name: sus\nmodel: {family: matmul, m: 8, k: 8, n: 8}\n"
        "run: {backends: [numpy, torch], device: cpu, duration_s: 12, window_s: 3}\n"
    )
    res = cli("plan", spec, "--json")
    assert res.returncode == 0, res.stderr
    (case,) = json.loads(res.stdout)["cases"]
    assert (
        "not interleaved: a sustained run times each variant for its whole duration, one "
        "after the other" in case["notes"]
    )
    # concurrent instances are timed one variant at a time too
    conc = spec.read_text().replace("duration_s: 12, window_s: 3}", "concurrency: 2}")
    spec.write_text(conc)
    (case,) = json.loads(cli("plan", spec, "--json").stdout)["cases"]
    assert any(n.startswith("not interleaved: concurrent instances") for n in case["notes"])
    spec.write_text(conc.replace("concurrency: 2}", "duration_s: 12, window_s: 3}"))
    off = spec.read_text().replace("window_s: 3}", "window_s: 3, interleave: false}")
    spec.write_text(off)
    (case,) = json.loads(cli("plan", spec, "--json").stdout)["cases"]
    assert not any("interleaved" in n for n in case["notes"])


@pytest.mark.parametrize(
    ("run", "per_variant_s"),
    [
        # warm-up 7 + timing 7 + dispatch floor 1 + an energy pass of 4
        ("{max_time_s: 7, energy_s: 4}", 7 + 7 + 1 + 4),
        ("{max_time_s: 7, energy_s: 4, power: false, dispatch_floor: false}", 7 + 7),
        # sustained: warm-up 7 + the duration; its energy is read in its windows
        ("{max_time_s: 7, energy_s: 4, duration_s: 12, window_s: 3}", 7 + 12 + 1),
        ("{max_time_s: 7, energy_s: 4, concurrency: 2}", 7 + 7 + 1),
    ],
)
def test_plans_time_bound_counts_every_phase(cli, tmp_path, run, per_variant_s):
    """`plan`'s "timing takes at most": per variant, and the cooldown once per case."""
    doc = _plan_json(
        cli,
        tmp_path / "b.yaml",
        "name: b\nmodel: {family: matmul, m: 8, k: 8, n: 8}\n"
        f"run: {run[:-1]}, backends: [numpy], cooldown_s: 2}}\n",
    )
    assert doc["time_bound_s"] == pytest.approx(per_variant_s + 2)


@pytest.mark.parametrize("name", ["lm_head.yaml", "lm_head_lut6.yaml", "smoke.yaml"])
def test_plans_printed_bound_is_at_least_the_bound(cli, name):
    """Stop 27: "at most" rounded the bound down (131 s printed as "at most 2 min")."""
    import re

    doc = json.loads(cli("plan", SPECS / name, "--json").stdout)
    bound = doc["time_bound_s"]
    text = cli("plan", SPECS / name).stdout
    for c in doc["cases"]:  # the 16-hex case key, labelled as one (not the build or cache key)
        assert f"\n#{c['index']} case {c['key']}: warmup " in text
    got = re.search(r"timing takes at most ([\d.]+) (s|min|h) ", text)
    assert got, text
    printed = float(got[1]) * {"s": 1, "min": 60, "h": 3600}[got[2]]
    assert printed >= bound


def _kmeans_warnings(doc: dict) -> list[str]:
    return [w for w in doc["cases"][0]["estimate"]["warnings"] if "k-means" in w]


def test_plan_warns_of_the_kmeans_build_with_its_group_count(cli, tmp_path):
    """Stop 27: a LUT6 head's first run spends minutes in k-means, which plan never said.
    The count: each chunk's rows (vocab / chunks) in groups of group_size."""
    import yaml

    spec = yaml.safe_load((SPECS / "lm_head_lut6.yaml").read_text())
    m = spec["model"]
    pal = m["compression"]["palettize"]
    groups = m["chunks"] * (m["vocab_size"] // m["chunks"] // pal["group_size"])
    doc = json.loads(cli("plan", SPECS / "lm_head_lut6.yaml", "--json").stdout)
    assert _kmeans_warnings(doc) == [
        f"build: k-means over {groups:,} LUT groups: minutes on a laptop the first time "
        "(cached after)"
    ]
    assert "k-means over 16,032 LUT groups" in cli("plan", SPECS / "lm_head_lut6.yaml").stdout
    # per tensor: one group per weight (here the 3 projections); uniform and dense: none
    for compression, want in [
        ("{palettize: {nbits: 4}}", "build: k-means over 3 LUT groups: the first build only "
         "(cached after)"),
        ("{palettize: {nbits: 4, granularity: per_grouped_channel, group_size: 16}}",
         f"build: k-means over {(64 + 64 + 32) // 16} LUT groups"),
        ("{palettize: {nbits: 4, mode: uniform}}", None),
        ("none", None),
    ]:  # fmt: skip
        doc = _plan_json(
            cli,
            tmp_path / "f.yaml",
            "name: f\nmodel: {family: ffn, hidden_size: 32, intermediate_size: 64, "
            f"compression: {compression}}}\nrun: {{backends: [numpy]}}\n",
        )
        got = _kmeans_warnings(doc)
        assert (got[0].startswith(want) and len(got) == 1) if want else got == [], got


def test_plan_builds_nothing_and_imports_no_coremltools(tmp_path):
    import subprocess

    code = (
        "import sys; from anemll_spec.cli import main; "
        f"main(['plan', {str(SPECS / 'ffn.yaml')!r}, '--json']); "
        "print([m for m in ('coremltools', 'torch', 'duckdb') if m in sys.modules], "
        "file=sys.stderr)"
    )
    env = {"ANEMLL_SPEC_CACHE": str(tmp_path / "cache"), "PATH": "/usr/bin:/bin"}
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert res.returncode == 0, res.stderr
    assert res.stderr.strip().splitlines()[-1] == "[]"
    assert not (tmp_path / "cache").exists()
    assert len(json.loads(res.stdout)["cases"]) == 2


def test_plan_bad_spec_is_exit_2(cli, tmp_path):
    spec = tmp_path / "bad.yaml"
    spec.write_text("name: bad\nmodel: {family: lm_head, vocab_size: 1000, chunks: 3}\n")
    res = cli("plan", spec)
    assert res.returncode == 2 and "chunks" in res.stderr and "Traceback" not in res.stderr


def test_info_json_names_every_backend_with_its_reason(cli):
    res = cli("info", "--json")
    assert res.returncode == 0, res.stderr
    doc = json.loads(res.stdout)
    got = {b["name"]: b for b in doc["backends"]}
    assert set(got) == {"coreml", "numpy", "torch"}
    assert got["numpy"]["available"] is True
    assert doc["host"]["python_version"] == ".".join(map(str, sys.version_info[:3]))
    # the id a store keeps of the machines that write it, as runs.writer_machine_id holds it
    from anemll_spec.machine_id import machine_id

    assert doc["host"]["machine_id"] == machine_id()
    if sys.platform != "darwin":
        assert got["coreml"] == {
            "name": "coreml",
            "available": False,
            "reason": "not macOS (Core ML runs only on macOS)",
        }
        assert doc["auto"]["backend"] == "numpy"


def test_info_text(cli):
    res = cli("info")
    assert res.returncode == 0
    assert "numpy" in res.stdout and "available" in res.stdout and "Python:" in res.stdout


def test_plan_previews_a_backend_this_machine_lacks(cli):
    """plan runs nothing: an unavailable backend is a note, not an error (bench refuses)."""
    from anemll_spec import backends

    missing = [n for n in ("coreml", "torch") if not backends.availability(n).available]
    if not missing:
        pytest.skip("every backend is available here")
    res = cli("plan", SPECS / "smoke.yaml", "--backend", missing[0], "--json")
    assert res.returncode == 0, res.stderr
    doc = json.loads(res.stdout)
    why = backends.availability(missing[0]).reason  # the words plan has always used
    assert f"backend {missing[0]} is not available here ({why}): bench would refuse" in doc["notes"]
    assert all(v["backend"] == missing[0] for c in doc["cases"] for v in c["variants"])
    bench = cli("bench", SPECS / "smoke.yaml", "--backend", missing[0], "--store", "/nonexistent/x")
    assert bench.returncode == 2 and "not available here" in bench.stderr


def test_bench_checks_every_spec_before_running_any(cli, tmp_path):
    """`bench a.yaml b.yaml`: b's bad input (here a model far too big for this machine, or
    a backend this machine lacks) stops the command before a runs: exit 2, no store."""
    from anemll_spec import backends

    good = tmp_path / "good.yaml"
    good.write_text(
        "name: good\nmodel: {family: lm_head, hidden_size: 64, vocab_size: 128, chunks: 1}\n"
        "run: {backends: [numpy], iterations: 10, dispatch_floor: false}\n"
    )
    huge = tmp_path / "huge.yaml"
    huge.write_text(
        "name: huge\nmodel: {family: lm_head, hidden_size: 1048576, vocab_size: 1048576, "
        "chunks: 1024}\nrun: {backends: [numpy]}\n"
    )
    calls = tmp_path / "calls.yaml"  # small weights, but a call's tensors fit nowhere
    calls.write_text(
        "name: calls\nmodel: {family: lm_head, hidden_size: 8, vocab_size: 1024, chunks: 1, "
        "seq_len: 65536, batch: 4096}\nrun: {backends: [numpy]}\n"
    )
    kv = tmp_path / "kv.yaml"  # small weights and inputs; a KV cache of 256 GiB
    kv.write_text(
        "name: kv\nmodel: {family: attention, hidden_size: 64, heads: 8, kv_heads: 8, "
        "head_dim: 8, context_length: 262144, batch: 4096}\nrun: {backends: [numpy]}\n"
    )
    (tmp_path / "x.mlpackage").mkdir()
    (tmp_path / "x.mlpackage" / "Manifest.json").write_text("not json")
    damaged = tmp_path / "damaged.yaml"
    damaged.write_text("name: damaged\nmodel: {family: external, path: x.mlpackage}\n")
    bad = [
        (huge, f"{huge}: huge: model.lm_head: building needs about"),
        (calls, f"{calls}: calls: model.lm_head: one call's inputs, outputs and states need"),
        (kv, f"{kv}: kv: model.attention: one call's inputs, outputs and states need at least"),
        (damaged, f"{damaged}:2:33: damaged: model.path: "),  # at the path
    ]
    missing = [n for n in ("coreml", "torch") if not backends.availability(n).available]
    if missing:
        lacking = tmp_path / "lacking.yaml"
        lacking.write_text(good.read_text().replace("[numpy]", f"[{missing[0]}]"))
        bad.append((lacking, "not available here"))
    if "torch" not in missing:
        import torch

        if not torch.cuda.is_available():
            cuda = tmp_path / "cuda.yaml"
            cuda.write_text(good.read_text().replace("[numpy]", "[torch], device: cuda"))
            bad.append((cuda, f"{cuda}: run.device: torch device cuda: CUDA is not available"))
    for spec, why in bad:
        store = tmp_path / f"{spec.stem}.duckdb"
        cache = tmp_path / f"{spec.stem}.cache"
        res = cli("bench", good, spec, "--store", store, env={"ANEMLL_SPEC_CACHE": str(cache)})
        assert res.returncode == 2, res.stderr
        assert why in res.stderr and "Traceback" not in res.stderr
        assert not store.exists()  # good.yaml did not run first
        assert not cache.exists() or not any(cache.iterdir())  # nor was anything built


def test_plan_says_what_attentions_gbps_counts(cli):
    """The attention caveat is a fact of the case: plan says it before anything runs."""
    (case,) = json.loads(cli("plan", SPECS / "attention.yaml", "--json").stdout)["cases"]
    (note,) = [n for n in case["notes"] if n.startswith("GB/s counts the weight file")]
    # specs/attention.yaml: batch 1, 8 kv heads, context 512, head_dim 128
    kv = 2 * 1 * 8 * 512 * 128 * 2  # key + value, fp16
    assert f"not the {kv / 1e6:.3g} MB fp16 KV cache" in note


def _plan_json(cli, path, text: str) -> dict:
    """`plan --json` of a spec written from `text` (which must plan)."""
    path.write_text(text)
    res = cli("plan", path, "--json")
    assert res.returncode == 0, res.stderr
    return json.loads(res.stdout)
