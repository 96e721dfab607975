"""An external model's keys hash its content, not where it lies: the same package in two
folders (or on two Macs) pairs in `compare`; different weight bytes never do."""

from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path

import pytest
from build_util import matmul

FIX = Path(__file__).parent / "fixtures" / "build"


@pytest.fixture(scope="module")
def package(tmp_path_factory) -> Path:
    from anemll_spec.build import build_package

    pkg = tmp_path_factory.mktemp("pkg") / "m.mlpackage"
    build_package(matmul(m=8, k=16, n=8), pkg)
    return pkg


def keys_beside(folder: Path, model: Path) -> tuple:
    """The case key, a variant key and the build key of a spec next to a copy of `model`."""
    from anemll_spec.spec import load_cases

    folder.mkdir()
    shutil.copytree(model, folder / model.name)
    spec = folder / "spec.yaml"
    spec.write_text(f"name: e\nmodel: {{family: external, path: {model.name}}}\n")
    (case,) = load_cases(spec)[1]
    assert case.model.to_json()["path"] == str((folder / model.name).resolve())  # shown as is
    return case.key, case.variant_key("numpy", None, "cpu"), case.build_key


@pytest.mark.parametrize("form", ["mlpackage", "mlmodelc"])
def test_the_same_model_in_two_folders_has_the_same_keys(tmp_path, package, form):
    model = package if form == "mlpackage" else FIX / "lm_head_tiny.mlmodelc"
    alice = keys_beside(tmp_path / "alice", model)
    bob = keys_beside(tmp_path / "bob", model)
    assert alice == bob

    changed = tmp_path / "changed" / model.name
    shutil.copytree(model, changed)
    weights = next(p for p in sorted(changed.rglob("*.bin")) if p.parent.name == "weights")
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0xFF  # one weight byte differs
    weights.write_bytes(bytes(data))
    other = keys_beside(tmp_path / "carol", changed)
    assert all(a != c for a, c in zip(alice, other, strict=True))


def test_content_hash_is_every_regular_file_by_path_and_bytes(tmp_path):
    """Recomputed here from the definition: sorted relative paths, size and bytes."""
    from anemll_spec.spec.content import content_sha256

    model = tmp_path / "x.mlmodelc"
    shutil.copytree(FIX / "lm_head_tiny.mlmodelc", model)
    h = hashlib.sha256()
    files = sorted((p.relative_to(model).as_posix(), p) for p in model.rglob("*") if p.is_file())
    for rel, p in files:
        data = p.read_bytes()
        h.update(f"{rel}\0{len(data)}\0".encode() + data)
    assert content_sha256(str(model.resolve())) == h.hexdigest()


def test_validation_alone_hashes_nothing(tmp_path):
    """validate reads no weights: the content is hashed only where a key is asked for."""
    from anemll_spec.spec import load_cases
    from anemll_spec.spec.content import content_sha256

    shutil.copytree(FIX / "lm_head_tiny.mlmodelc", tmp_path / "m.mlmodelc")
    spec = tmp_path / "spec.yaml"
    spec.write_text(
        "name: e\nmodel: {family: external, path: m.mlmodelc}\nsweep: {model.seed: [0, 1, 2]}\n"
    )
    before = content_sha256.cache_info()
    cases = load_cases(spec)[1]
    assert content_sha256.cache_info() == before
    assert len({c.key for c in cases}) == 3
    after = content_sha256.cache_info()
    assert (after.misses - before.misses, after.hits - before.hits) == (1, 2)  # once per path


def test_built_family_fields_are_refused_for_an_external_model(cli, tmp_path):
    """dtype, compute_precision, deployment_target, batch and weight_std describe what a
    builder makes: set on an external model (to anything but the default) they changed every
    key and described nothing of the file. One problem each, at its own line and column;
    their defaults written out, and seed, stay allowed."""
    import re

    model = FIX / "lm_head_tiny.mlmodelc"
    spec = tmp_path / "e.yaml"
    spec.write_text(
        f"name: e\nmodel:\n  family: external\n  path: {model}\n  dtype: float32\n"
        "  batch: 7\n  weight_std: 5\n  deployment_target: iOS16\n  seed: 3\n"
    )
    r = cli("validate", spec)
    assert r.returncode == 2 and "Traceback" not in r.stderr
    lines = r.stderr.splitlines()
    assert len(lines) == 4, r.stderr
    for line, (row, name) in zip(
        lines,
        [(5, "dtype"), (6, "batch"), (7, "weight_std"), (8, "deployment_target")],
        strict=True,
    ):
        assert re.fullmatch(
            rf"error: {re.escape(str(spec))}:{row}:\d+: model\.{name}: {name} applies to built "
            r"families; an external model's own dtype, target and shapes are used",
            line,
        ), line
    spec.write_text(
        f"name: e\nmodel:\n  family: external\n  path: {model}\n  compute_precision: float32\n"
    )
    r = cli("validate", spec)
    assert r.returncode == 2 and ":5:" in r.stderr and "model.compute_precision:" in r.stderr
    spec.write_text(
        f"name: e\nmodel:\n  family: external\n  path: {model}\n  dtype: float16\n"
        "  compute_precision: float16\n  deployment_target: iOS18\n  batch: 1\n"
        "  weight_std: 0.02\n  seed: 3\n"
    )
    r = cli("validate", spec)
    assert r.returncode == 0, r.stderr


def test_links_inside_are_hashed_by_content_and_others_by_their_text(tmp_path):
    """A link to a file inside the model is hashed by that file's bytes (a package whose
    weights are linked equals a plain copy); a link out of the model is never read: its
    text is hashed, so a link to /proc/self/stat keeps one key. A link to a folder, a
    dangling link and a link loop are hashed by their text too: no walk loops or blocks."""
    from anemll_spec.spec.content import content_sha256

    src = FIX / "lm_head_tiny.mlmodelc"
    linked = tmp_path / "linked" / src.name
    shutil.copytree(src, linked)
    weights = linked / "weights" / "weight.bin"
    weights.rename(linked / "blob")
    weights.symlink_to("../blob")
    plain = tmp_path / "plain" / src.name
    shutil.copytree(src, plain)
    (plain / "blob").write_bytes((src / "weights" / "weight.bin").read_bytes())
    assert content_sha256(str(linked)) == content_sha256(str(plain))

    outside = tmp_path / "outside" / src.name
    shutil.copytree(src, outside)
    (outside / "notes").symlink_to("/proc/self/stat")  # different bytes at every read
    first = content_sha256(str(outside))
    content_sha256.cache_clear()
    assert content_sha256(str(outside)) == first
    secret = tmp_path / "secret.txt"
    secret.write_text("one")
    (outside / "other").symlink_to(secret)
    content_sha256.cache_clear()
    before = content_sha256(str(outside))
    secret.write_text("two")  # not read: the key stays
    content_sha256.cache_clear()
    assert content_sha256(str(outside)) == before

    odd = tmp_path / "odd" / src.name
    shutil.copytree(src, odd)
    content_sha256.cache_clear()
    bare = content_sha256(str(odd))
    (odd / "up").symlink_to("..")  # a folder link back up: never walked into
    (odd / "gone").symlink_to("nowhere")
    (odd / "loop").symlink_to("loop")
    os.mkfifo(odd / "fifo_target")
    (odd / "fifo").symlink_to("fifo_target")
    content_sha256.cache_clear()
    after = content_sha256(str(odd))
    assert after != bare
    (odd / "gone").unlink()
    (odd / "gone").symlink_to("elsewhere")  # another link text: another hash
    content_sha256.cache_clear()
    assert content_sha256(str(odd)) != after


def test_two_copies_in_one_sweep_are_said_to_share_a_key(cli, tmp_path):
    """A sweep over two copies of one package makes two cases of one key: plan (and bench)
    say so; two different packages do not share one."""
    import json

    src = FIX / "lm_head_tiny.mlmodelc"
    for name in ("x", "y"):
        shutil.copytree(src, tmp_path / f"{name}.mlmodelc")
    spec = tmp_path / "s.yaml"
    spec.write_text(
        "name: s\nmodel: {family: external, path: x.mlmodelc}\nrun: {backends: [numpy]}\n"
        "sweep: {model.path: [x.mlmodelc, y.mlmodelc]}\n"
    )
    r = cli("plan", spec, "--json")
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    keys = [c["key"] for c in doc["cases"]]
    assert len(keys) == 2 and keys[0] == keys[1]
    shared = [n for n in doc["notes"] if "have one key" in n]
    assert len(shared) == 1 and "#0 " in shared[0] and "#1 " in shared[0], doc["notes"]
    data = bytearray((tmp_path / "y.mlmodelc" / "weights" / "weight.bin").read_bytes())
    data[-1] ^= 0xFF
    (tmp_path / "y.mlmodelc" / "weights" / "weight.bin").write_bytes(bytes(data))
    doc = json.loads(cli("plan", spec, "--json").stdout)
    assert len({c["key"] for c in doc["cases"]}) == 2
    assert not [n for n in doc["notes"] if "have one key" in n]
