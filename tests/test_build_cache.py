"""The build cache: hits, keys, atomic publishing under concurrency, damage recovery."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from build_util import lm_head, matmul, model, weight_bin

from anemll_spec.build import build, cache_key, default_cache_dir
from anemll_spec.build import cache as cache_mod
from anemll_spec.errors import InputError

ROOT = Path(__file__).resolve().parents[1]


def test_miss_then_hit(tmp_path):
    m = lm_head()
    first = build(m, cache_dir=tmp_path)
    assert not first.cached and first.path.is_dir()
    t = time.perf_counter()
    second = build(m, cache_dir=tmp_path)
    assert time.perf_counter() - t < 1.0
    assert second.cached and second.path == first.path
    assert (second.weight_bytes, second.weights_sha256, second.flops) == (
        first.weight_bytes,
        first.weights_sha256,
        first.flops,
    )
    assert first.weight_bytes == weight_bin(first.path).stat().st_size
    manifest = json.loads((first.path.parent / "manifest.json").read_text())
    assert manifest["files"]["Data/com.apple.CoreML/weights/weight.bin"] == first.weight_bytes
    assert [p.name for p in tmp_path.iterdir()] == [first.key]  # no staging left behind


def test_key_covers_build_fields_only(tmp_path):
    m = lm_head()
    reordered = dict(reversed(list(m.to_json().items())))
    assert list(reordered) != list(m.to_json())
    assert cache_key(model(reordered)) == cache_key(m)  # order is no field
    assert cache_key(m) != cache_key(lm_head(seed=1))
    assert cache_key(m) != cache_key(lm_head(layout="linear"))
    (tmp_path / "x.mlpackage").mkdir()
    (tmp_path / "x.mlpackage" / "Manifest.json").write_text("{}")  # what the spec checks
    ext = model({"family": "external", "path": str(tmp_path / "x.mlpackage")})
    ranged = model({**ext.to_json(), "input_ranges": {"p": [0, 5]}})
    assert cache_key(ranged) == cache_key(ext)


def test_default_cache_dir(monkeypatch, tmp_path):
    monkeypatch.setenv("ANEMLL_SPEC_CACHE", str(tmp_path / "a"))
    assert default_cache_dir() == tmp_path / "a"
    monkeypatch.delenv("ANEMLL_SPEC_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "x"))
    assert default_cache_dir() == tmp_path / "x" / "anemll-spec"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "h"))
    assert default_cache_dir() == tmp_path / "h" / ".cache" / "anemll-spec"
    # a relative $XDG_CACHE_HOME is invalid (the XDG spec: ignored); it was taken as a
    # folder under whatever directory the command ran in
    monkeypatch.setenv("XDG_CACHE_HOME", "relative/x")
    assert default_cache_dir() == tmp_path / "h" / ".cache" / "anemll-spec"
    monkeypatch.setenv("ANEMLL_SPEC_CACHE", "mine")  # our own variable: as given
    assert default_cache_dir() == Path("mine")


def _edit_manifest(manifest: Path, change) -> None:
    doc = json.loads(manifest.read_text())
    manifest.write_text(json.dumps(change(doc)))


# a manifest of the wrong shape: no traceback (AttributeError, KeyError in _built)
_MANIFEST_DAMAGE = {
    "files_list": lambda d: {**d, "files": list(d["files"])},
    "no_weight_bytes": lambda d: {k: v for k, v in d.items() if k != "weight_bytes"},
    "flops_text": lambda d: {**d, "flops": "many"},
    "size_text": lambda d: {**d, "files": {k: str(v) for k, v in d["files"].items()}},
    "null": lambda d: None,
    # served as hits before: a model that is no object made `cache list`/`clear` raise
    # AttributeError; a negative weight_bytes ran a whole bench, lost at the store
    "model_text": lambda d: {**d, "model": "lm_head"},
    "weight_bytes_negative": lambda d: {**d, "weight_bytes": -d["weight_bytes"]},
    "weight_bytes_off": lambda d: {**d, "weight_bytes": d["weight_bytes"] + 1},
}


@pytest.mark.parametrize(
    "damage",
    ["truncate", "delete_weights", "delete_manifest", "bad_manifest", "weights_folder_is_a_file"]
    + ["nested_too_deeply"]  # json.loads: RecursionError, was a traceback
    + list(_MANIFEST_DAMAGE),
)
def test_damaged_entry_is_rebuilt(tmp_path, damage, capsys):
    m = matmul()
    first = build(m, cache_dir=tmp_path)
    good = weight_bin(first.path).read_bytes()
    wb, manifest = weight_bin(first.path), first.path.parent / "manifest.json"
    if damage == "truncate":
        wb.write_bytes(good[: len(good) // 2])
    elif damage == "delete_weights":
        wb.unlink()
    elif damage == "delete_manifest":
        manifest.unlink()
    elif damage == "weights_folder_is_a_file":  # stat of weights/weight.bin: ENOTDIR
        shutil.rmtree(wb.parent)
        wb.parent.write_text("not a folder")
    elif damage in _MANIFEST_DAMAGE:
        _edit_manifest(manifest, _MANIFEST_DAMAGE[damage])
    elif damage == "nested_too_deeply":
        manifest.write_text("[" * 100_000 + "]" * 100_000)
    else:
        manifest.write_text("{not json")
    capsys.readouterr()
    again = build(m, cache_dir=tmp_path)
    assert not again.cached
    # said where it stays (a throttled progress line could be lost), whatever the caller
    assert f"build cache entry {again.key} damaged (" in capsys.readouterr().err
    assert weight_bin(again.path).read_bytes() == good
    assert cache_mod.lookup(tmp_path, again.key)[0] is not None


_WORKER = """
import json, sys
from pathlib import Path
from anemll_spec.build import build
from anemll_spec.spec.families import LmHead
m = LmHead.model_validate(json.loads(sys.argv[2]))
b = build(m, cache_dir=Path(sys.argv[1]))
print(json.dumps({"path": str(b.path), "sha": b.weights_sha256, "cached": b.cached}))
"""


def test_two_processes_building_one_key(tmp_path):
    m = lm_head(hidden_size=512, vocab_size=4096, chunks=4)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _WORKER, str(tmp_path), json.dumps(m.to_json())],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        for _ in range(2)
    ]
    outs = []
    for p in procs:
        out, err = p.communicate(timeout=300)
        assert p.returncode == 0, err
        outs.append(json.loads(out.strip().splitlines()[-1]))
    assert outs[0]["path"] == outs[1]["path"] and outs[0]["sha"] == outs[1]["sha"]
    assert sorted(p.name for p in tmp_path.iterdir()) == [cache_key(m)]
    entry, problem = cache_mod.lookup(tmp_path, cache_key(m))
    assert entry is not None, problem
    from anemll_spec.mlmodel.inspect import weights_sha256

    assert weights_sha256(entry.package) == outs[0]["sha"]


def test_publish_adopts_the_winner(tmp_path):
    """The loser of the rename keeps nothing of its own and returns the winner's entry."""
    m = matmul()
    won = build(m, cache_dir=tmp_path)
    staging = cache_mod.new_staging(tmp_path, won.key)
    (staging / "junk").write_text("x")
    entry = cache_mod.publish(tmp_path, won.key, staging)
    assert entry.package == won.path and not staging.exists()


def test_refuses_model_larger_than_free_memory(tmp_path, monkeypatch):
    import psutil

    class Tiny:
        available = 10_000_000

    monkeypatch.setattr(psutil, "virtual_memory", lambda: Tiny())
    with pytest.raises(InputError, match=r"needs about .* GB .* only 0\.01 GB"):
        build(lm_head(), cache_dir=tmp_path)
    assert not any(tmp_path.iterdir())


def test_cache_cli_list_and_clear(tmp_path, cli):
    build(matmul(), cache_dir=tmp_path)
    # what the cache did not make is neither listed nor deleted (a wrong --cache-dir
    # must not cost anyone their files): a user's folder, a file in the charts' folder
    # that is not a Vega bundle the charts wrote (vega-bundle-<versions>.js)
    (tmp_path / "important").mkdir()
    (tmp_path / "important" / "file.txt").write_text("keep")
    (tmp_path / "vega").mkdir()
    (tmp_path / "vega" / "vega-bundle.js").write_text("//")
    trash = tmp_path / f".trash-{'ab' * 12}-0123abcd"  # an interrupted discard's: the cache's
    trash.mkdir()
    (trash / "weight.bin").write_bytes(b"w" * 1000)
    r = cli("cache", "list", "--json", "--cache-dir", tmp_path)
    assert r.returncode == 0, r.stderr
    listed = json.loads(r.stdout)
    assert [e["key"] for e in listed["entries"]] == [cache_key(matmul())]
    assert listed["entries"][0]["ok"] and listed["entries"][0]["family"] == "matmul"
    assert [(x["name"], x["bytes"]) for x in listed["leftovers"]] == [(trash.name, 1000)]
    r = cli("cache", "clear", "--json", "--cache-dir", tmp_path)
    assert json.loads(r.stdout)["removed"] == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["important", "vega"]
    assert (tmp_path / "important" / "file.txt").read_text() == "keep"
    r = cli("cache", "list", "--cache-dir", tmp_path)
    assert "(empty)" in r.stdout


def test_coremltools_writes_its_temporary_weights_in_the_staging_folder(tmp_path, monkeypatch):
    """convert writes every weight to a TemporaryDirectory before copying it into the
    package: in /tmp, a build killed meanwhile left the whole weight file there, on a
    disk the free-space check never looked at. Now it is made in the build's staging
    folder (which the cache clears when stale), and nothing of it reaches the entry."""
    import tempfile

    made: list[Path] = []
    real = tempfile.TemporaryDirectory

    class Spy(real):  # type: ignore[misc, valid-type]
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            made.append(Path(self.name))

    monkeypatch.setattr(tempfile, "TemporaryDirectory", Spy)
    built = build(matmul(), cache_dir=tmp_path)
    assert made, "coremltools made no temporary folder: the test no longer looks at one"
    assert all(p.parent.parent == tmp_path and p.parent.name.startswith(".tmp-") for p in made)
    assert sorted(p.name for p in built.path.parent.iterdir()) == [
        "manifest.json",
        "model.mlpackage",
    ]
    assert tempfile.gettempdir() != str(made[0].parent)  # the process's own is back


def test_an_entry_the_disk_refuses_to_read_is_damaged_not_an_error(tmp_path, monkeypatch):
    """PermissionError (or any OSError) from the entry's files: damaged, rebuilt."""
    m = matmul()
    first = build(m, cache_dir=tmp_path)
    wb = weight_bin(first.path)
    good = wb.read_bytes()
    stat = Path.stat
    refusals = []

    def refused(self, *a, **kw):
        if self == wb and len(refusals) < 2:  # the lookup here, then build's own
            refusals.append(self)
            raise PermissionError(13, "Permission denied", str(self))
        return stat(self, *a, **kw)

    monkeypatch.setattr(Path, "stat", refused)
    entry, problem = cache_mod.lookup(tmp_path, first.key)
    assert entry is None and problem == "unreadable: Permission denied"
    again = build(m, cache_dir=tmp_path)
    assert len(refusals) == 2 and not again.cached
    assert weight_bin(again.path).read_bytes() == good


def test_discarding_a_file_in_an_entrys_place_leaves_nothing(tmp_path, capsys):
    """A file named by the key (not a folder): the build says it is damaged, rebuilds,
    and no .trash-... file is left behind."""
    m = matmul()
    key = cache_key(m)
    (tmp_path / key).write_text("not an entry")
    built = build(m, cache_dir=tmp_path)
    assert not built.cached and "damaged (manifest missing)" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == [key]
    assert (tmp_path / key).is_dir()
