"""`cache list` shows the spec that built each entry and the total size; `cache clear`
says what it removed and takes --older-than (issue 14 item 12)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from build_util import matmul

from anemll_spec.build import build, leftovers
from anemll_spec.cli import main as cli_main


def _disk(root: Path) -> int:
    return sum(p.stat().st_size for p in root.rglob("*") if p.is_file())


@pytest.fixture
def two_entries(tmp_path) -> tuple[Path, str, str]:
    """A real entry built now (recorded as built by spec 'myspec'), and a copy of it under
    another key whose manifest says it was built ten days ago."""
    fresh = build(matmul(), cache_dir=tmp_path).key
    manifest = tmp_path / fresh / "manifest.json"
    doc = json.loads(manifest.read_text())
    doc["spec"] = "myspec"
    manifest.write_text(json.dumps(doc))
    old = "0" * 23 + "1"
    shutil.copytree(tmp_path / fresh, tmp_path / old)
    doc["created"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - 10 * 86400))
    doc["spec"] = None
    (tmp_path / old / "manifest.json").write_text(json.dumps(doc))
    return tmp_path, fresh, old


def test_list_shows_spec_and_total(two_entries, capsys):
    cache, fresh, old = two_entries
    assert cli_main(["cache", "list", "--json", "--cache-dir", str(cache)]) == 0
    listed = json.loads(capsys.readouterr().out)
    by_key = {e["key"]: e for e in listed["entries"]}
    assert by_key[fresh]["spec"] == "myspec" and by_key[old]["spec"] is None
    assert listed["total_bytes"] == _disk(cache / fresh) + _disk(cache / old)
    assert cli_main(["cache", "list", "--cache-dir", str(cache)]) == 0
    out = capsys.readouterr().out
    assert "myspec" in out and "2 entries" in out and "on disk" in out
    # the column is the cache key (the folder's name), labelled so, not a case key (stop 27)
    header, _, *rows = out.splitlines()[1:5]
    assert header.startswith("cache key  ") and "spec" in header
    assert {r.split()[0] for r in rows} == {fresh, old}


def test_clear_older_than_removes_only_old_entries_and_says_what(two_entries, capsys):
    cache, fresh, old = two_entries
    size = _disk(cache / old)
    assert cli_main(["cache", "clear", "--older-than", "7d", "--cache-dir", str(cache)]) == 0
    out = capsys.readouterr().out
    assert f"removed {old} (matmul, " in out and "removed 1 entry" in out
    assert (cache / fresh).is_dir() and not (cache / old).exists()
    assert cli_main(["cache", "clear", "--json", "--cache-dir", str(cache)]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["removed"] == 1 and [i["spec"] for i in report["items"]] == ["myspec"]
    assert report["freed_bytes"] > 0 and size > 0


def test_the_chart_javascript_in_the_cache_is_listed_and_cleared(two_entries, capsys, monkeypatch):
    """chart and report keep the Vega bundle under the cache folder: `cache list` names it
    and counts it, `cache clear` removes it; what the cache did not make stays."""
    from anemll_spec.chart.render import vega_bundle

    cache, fresh, old = two_entries
    mine = cache / "notes"  # someone's own folder under a wrong --cache-dir
    mine.mkdir()
    (mine / "keep.txt").write_text("mine")
    from anemll_spec.chart import render

    monkeypatch.setenv("ANEMLL_SPEC_CACHE", str(cache))
    monkeypatch.setattr(render, "_bundle_memo", {})
    assert "vegaEmbed" in vega_bundle()  # written into this cache, as a chart would
    # a partial copy a killed chart left (old), and one a chart is writing now (fresh)
    (bundle,) = (cache / "vega").glob("vega-bundle-*.js")
    stale, writing = (cache / "vega" / f".{bundle.name}.{x}" for x in ("k1ll3d", "n0w"))
    stale.write_text("x" * 1000)
    writing.write_text("y" * 10)
    day_ago = time.time() - 86_400
    os.utime(stale, (day_ago, day_ago))
    vega = _disk(cache / "vega") - 10  # not the file being written
    assert vega > 100_000
    assert cli_main(["cache", "list", "--json", "--cache-dir", str(cache)]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert [(a["name"], a["files"], a["bytes"]) for a in listed["assets"]] == [("vega", 2, vega)]
    assert listed["total_bytes"] == _disk(cache / fresh) + _disk(cache / old) + vega
    assert cli_main(["cache", "list", "--cache-dir", str(cache)]) == 0
    assert "also vega/: the Vega JavaScript" in capsys.readouterr().out
    assert cli_main(["cache", "clear", "--json", "--cache-dir", str(cache)]) == 0
    report = json.loads(capsys.readouterr().out)
    keys = {i["key"] for i in report["items"]}
    assert keys == {fresh, old, f"vega/{bundle.name}", f"vega/{stale.name}"}
    assert report["freed_bytes"] >= vega and (mine / "keep.txt").read_text() == "mine"
    assert [p.name for p in (cache / "vega").iterdir()] == [writing.name]  # left to its writer
    writing.unlink()
    (cache / "vega").rmdir()
    # a folder of that name holding someone else's files is not ours: kept, not counted
    (cache / "vega").mkdir()
    (cache / "vega" / "chart.json").write_text("{}")
    assert cli_main(["cache", "clear", "--cache-dir", str(cache)]) == 0
    assert (cache / "vega" / "chart.json").read_text() == "{}"


@pytest.mark.parametrize(
    "argv",
    [
        ["cache", "clear", "--older-than", "7 days"],
        ["cache", "clear", "--older-than", "-1d"],
        ["cache", "list", "--older-than", "1d"],
    ],
)
def test_bad_older_than_exits_2(tmp_path, argv, capsys):
    with pytest.raises(SystemExit) as exc:
        code = cli_main([*argv, "--cache-dir", str(tmp_path)])
        raise SystemExit(code)
    assert exc.value.code == 2
    assert "older-than" in capsys.readouterr().err


def test_a_cache_hit_never_imports_coremltools(tmp_path):
    """issue 20: the key reads coremltools' version from package metadata; a hit (and
    `cache list`) works even where `import coremltools` would fail."""
    import subprocess
    import sys
    import textwrap

    built = build(matmul(), cache_dir=tmp_path)
    code = f"""
        import sys
        sys.modules["coremltools"] = None  # any import of it now fails
        sys.path.insert(0, {str(Path(__file__).parent)!r})
        from build_util import matmul
        from anemll_spec.build import build
        from anemll_spec.cli import main
        b = build(matmul(), cache_dir={str(tmp_path)!r})
        assert b.cached and str(b.path) == {str(built.path)!r}, b
        raise SystemExit(main(["cache", "list", "--cache-dir", {str(tmp_path)!r}]))
    """
    r = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True
    )
    assert r.returncode == 0, r.stderr
    assert built.key in r.stdout


def test_cache_list_starts_without_the_spec_models(tmp_path):
    """`cache list` reads manifests only: it must not pay pydantic's import (~140 ms,
    which made it slower than before issue 20) through `anemll_spec.build`."""
    import subprocess
    import sys

    built = build(matmul(), cache_dir=tmp_path)
    code = (
        "import sys\n"
        "from anemll_spec.cli import main\n"
        f"code = main(['cache', 'list', '--cache-dir', {str(tmp_path)!r}])\n"
        "heavy = [m for m in ('pydantic', 'anemll_spec.spec', 'coremltools', 'numpy')"
        " if m in sys.modules]\n"
        "print('heavy', heavy)\n"
        "raise SystemExit(code)\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert built.key in r.stdout
    assert "heavy []" in r.stdout, r.stdout


def test_no_home_directory_is_one_line_exit_2(tmp_path):
    """A uid with no passwd entry and $HOME unset (a container's): Path.home() raises
    RuntimeError, as Python itself does there. The cache folder is then unknown: `cache
    list` and `bench` say so in one line naming --cache-dir / $ANEMLL_SPEC_CACHE /
    $XDG_CACHE_HOME, exit 2, no store made; `report` (Altair calls Path.home() on import)
    says to set $HOME."""
    import os
    import subprocess
    import sys
    import textwrap

    sys.path.insert(0, str(Path(__file__).parent / "fixtures" / "chart"))
    import chart_synthetic as syn

    charts = tmp_path / "charts.duckdb"
    syn.lm_head_run(charts, seed=3)
    spec = Path(__file__).parents[1] / "specs" / "smoke.yaml"
    store = tmp_path / "bench.duckdb"
    code = f"""
        import contextlib, io, json, pathlib, sys

        def no_home(cls):
            raise RuntimeError("Could not determine home directory.")

        pathlib.Path.home = classmethod(no_home)
        from anemll_spec.cli import main

        out = []
        for argv in (["cache", "list"], ["bench", {str(spec)!r}, "--store", {str(store)!r}],
                     ["report", "--store", {str(charts)!r}, "--out", {str(tmp_path / "r.html")!r}]):
            err = io.StringIO()
            with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
                code = main(argv)
            out.append((code, err.getvalue()))
        print(json.dumps(out))
    """
    env = {k: v for k, v in os.environ.items() if k not in ("HOME", "XDG_CACHE_HOME")}
    env.pop("ANEMLL_SPEC_CACHE")
    r = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, env=env
    )
    assert r.returncode == 0 and "Traceback" not in r.stderr, r.stderr
    (lc, list_err), (bc, bench_err), (rc, report_err) = json.loads(r.stdout)
    names = "give one with --cache-dir, $ANEMLL_SPEC_CACHE or $XDG_CACHE_HOME"
    for code, err in ((lc, list_err), (bc, bench_err)):
        assert code == 2 and err.count("\n") == 1, err
        assert "error: " in err and "the home directory is unknown ($HOME is unset" in err
        assert err.rstrip().endswith(names), err
    assert rc == 2 and report_err.count("\n") == 1 and report_err.rstrip().endswith("set $HOME")
    assert not store.exists() and not (tmp_path / "r.html").exists()


def test_a_tilde_path_of_an_unknown_user_is_said_as_such(cli):
    """Python raises the same 'Could not determine home directory' for '~nosuchuser': with
    $HOME set, the message must not blame $HOME (setting it would change nothing)."""
    for args in (
        ["query", "--store", "~anemll_no_such_user/x.duckdb", "SELECT 1"],
        ["cache", "list", "--cache-dir", "~anemll_no_such_user/c"],
    ):
        r = cli(*args, env={"HOME": "/tmp"})
        assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr
        assert "'~user' for a user this system does not know" in r.stderr, r.stderr
        assert "$HOME" not in r.stderr and r.stderr.count("\n") == 1, r.stderr


def test_damaged_entries_are_listed_as_such_and_cleared(two_entries, capsys):
    """A folder of the package replaced by a file (stat: NotADirectoryError) and a
    manifest of the wrong shape stopped list and clear with exit 2 half-way: both are
    damaged entries, listed so and removed."""
    cache, fresh, old = two_entries
    weights = cache / fresh / "model.mlpackage" / "Data" / "com.apple.CoreML" / "weights"
    shutil.rmtree(weights)
    weights.write_text("not a folder")
    manifest = cache / old / "manifest.json"
    doc = json.loads(manifest.read_text())
    # a model that is no object: AttributeError in list and clear (clear removed nothing)
    manifest.write_text(json.dumps({**doc, "files": list(doc["files"]), "model": "lm_head"}))
    assert cli_main(["cache", "list", "--json", "--cache-dir", str(cache)]) == 0
    listed = {e["key"]: e for e in json.loads(capsys.readouterr().out)["entries"]}
    assert listed[fresh]["problem"].endswith("weight.bin missing")
    assert listed[old]["problem"] == "manifest unreadable (files missing or not dict)"
    manifest.write_text(json.dumps({**doc, "model": "lm_head"}))
    assert cli_main(["cache", "list", "--json", "--cache-dir", str(cache)]) == 0
    listed = {e["key"]: e for e in json.loads(capsys.readouterr().out)["entries"]}
    assert listed[old]["problem"] == "manifest unreadable (model missing or not dict)"
    sizes = {fresh: _disk(cache / fresh), old: _disk(cache / old)}
    assert not listed[fresh]["ok"] and not listed[old]["ok"]
    assert cli_main(["cache", "clear", "--json", "--cache-dir", str(cache)]) == 0
    cleared = json.loads(capsys.readouterr().out)
    assert cleared["removed"] == 2 and cleared["freed_bytes"] == sum(sizes.values())
    assert list(cache.iterdir()) == []


def test_a_manifest_nested_too_deeply_is_a_damaged_entry(two_entries, capsys):
    """100,000 nested brackets: json.loads raised RecursionError, a traceback in `cache
    list` (and in a build reading the entry); now the entry is damaged, listed so."""
    cache, fresh, old = two_entries
    (cache / old / "manifest.json").write_text("[" * 100_000)
    assert cli_main(["cache", "list", "--json", "--cache-dir", str(cache)]) == 0
    listed = {e["key"]: e for e in json.loads(capsys.readouterr().out)["entries"]}
    assert listed[old]["problem"] == "manifest unreadable" and not listed[old]["ok"]
    assert listed[fresh]["ok"]


def _aged(path: Path, seconds: float) -> Path:
    t = time.time() - seconds
    os.utime(path, (t, t))
    return path


def _folder(path: Path, nbytes: int) -> Path:
    path.mkdir()
    (path / "weight.bin").write_bytes(b"w" * nbytes)
    return path


def test_clear_touches_only_the_caches_own_staging_and_trash_names(tmp_path, capsys):
    """Anything named .tmp-* (an hour old) or .trash-* was removed, and list never showed
    them: a user's .tmp-old-notes/ in a cache set to $HOME was lost. Only the cache's
    full names count now, and list shows what clear would remove, with its bytes."""
    key = "ab" * 12
    theirs = [
        _folder(tmp_path / ".tmp-old-notes", 10),
        _folder(tmp_path / ".trash-notes", 10),
        _folder(tmp_path / f".tmp-{key}-123-notes", 10),  # not hex
        _folder(tmp_path / f".trash-{key}-0123abcd-x", 10),
    ]
    for p in theirs:
        _aged(p, 2 * 3600)
    # staging whose builder cannot be told (another host, an older version: its tag is
    # not this host's): an hour old is stale, younger is kept
    other = "00000000" if leftovers.host_tag() != "000000" else "11111111"
    stale = _aged(_folder(tmp_path / f".tmp-{key}-999999-{other}", 300), 2 * 3600)
    young = _aged(_folder(tmp_path / f".tmp-{'cd' * 12}-999999-{other}", 7), 60)
    trash = _folder(tmp_path / f".trash-{key}-0123abcd", 200)  # any age
    assert cli_main(["cache", "list", "--json", "--cache-dir", str(tmp_path)]) == 0
    listed = json.loads(capsys.readouterr().out)
    got = {x["name"]: (x["kind"], x["bytes"], x["stale"]) for x in listed["leftovers"]}
    assert got == {
        stale.name: ("staging", 300, True),
        young.name: ("staging", 7, False),
        trash.name: ("trash", 200, True),
    }
    assert listed["total_bytes"] == 507 and listed["entries"] == []
    assert cli_main(["cache", "list", "--cache-dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert f"also {stale.name}: staging of another host's or an older build" in out
    assert f"also {trash.name}: an interrupted discard (clear removes it), 200 B" in out
    assert cli_main(["cache", "clear", "--json", "--cache-dir", str(tmp_path)]) == 0
    cleared = json.loads(capsys.readouterr().out)
    assert {i["key"] for i in cleared["items"]} == {stale.name, trash.name}
    assert cleared["freed_bytes"] == 500
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(p.name for p in [*theirs, young])


_BUILDER = """
import sys, time
from pathlib import Path
from anemll_spec.build import cache
staging = cache.new_staging(Path(sys.argv[1]), "ef" * 12)
(staging / "weight.bin").write_bytes(b"w" * 5000)
print(staging, flush=True)
time.sleep(60)
"""


def test_a_killed_builders_staging_is_stale_at_once_a_live_ones_never(tmp_path, capsys):
    """A build killed with kill -9 left its staging folder, unlisted, kept an hour by
    clear though its pid is in the name. Its pid is not alive: stale at once; while the
    builder lives, its folder is listed as running and kept, whatever its age."""
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    proc = subprocess.Popen([sys.executable, "-c", _BUILDER, str(tmp_path)], env=env,
                            stdout=subprocess.PIPE, text=True)  # fmt: skip
    try:
        staging = Path(proc.stdout.readline().strip())
        assert staging.parent == tmp_path and f"-{proc.pid}-" in staging.name
        _aged(staging, 2 * 3600)  # older than the age rule: alive still wins
        assert cli_main(["cache", "clear", "--cache-dir", str(tmp_path)]) == 0
        assert staging.is_dir()
        capsys.readouterr()
        assert cli_main(["cache", "list", "--cache-dir", str(tmp_path)]) == 0
        assert f"{staging.name}: a build running now (pid {proc.pid}), 5.00 KB" in (
            capsys.readouterr().out
        )
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        proc.stdout.close()
    _aged(staging, 0)  # just made, as far as age goes
    assert cli_main(["cache", "list", "--cache-dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert f"{staging.name}: staging of a build that died (pid {proc.pid};" in out
    assert cli_main(["cache", "clear", "--json", "--cache-dir", str(tmp_path)]) == 0
    cleared = json.loads(capsys.readouterr().out)
    assert [(i["key"], i["kind"], i["bytes"]) for i in cleared["items"]] == [
        (staging.name, "staging", 5000)
    ]
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("action", ["list", "clear"])
def test_a_cache_that_is_a_file_is_refused_by_list_and_clear(tmp_path, cli, action):
    """build refused $ANEMLL_SPEC_CACHE naming a file; list said '(empty)', exit 0."""
    afile = tmp_path / "afile"
    afile.write_text("mine")
    r = cli("cache", action, env={"ANEMLL_SPEC_CACHE": str(afile)})
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert r.stderr.strip().splitlines() == [
        f"anemll-spec cache: error: build cache {afile}: is a file, not a folder "
        "(--cache-dir or $ANEMLL_SPEC_CACHE)"
    ]
    assert r.stdout == "" and afile.read_text() == "mine"
