"""Review 39, provenance: host facts the OS hands over as odd bytes, and the git commit
of the right checkout. The odd facts are made for real in a private namespace (a UTS
namespace for the hostname, a mount namespace for /etc/os-release), where root may."""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest

from anemll_spec import host
from anemll_spec.store.columns import NAME

REPO = Path(__file__).resolve().parents[1]
SPEC = """\
name: tiny
model:
  family: lm_head
  hidden_size: 64
  vocab_size: 256
  chunks: 1
  dtype: float16
run:
  backends: [numpy]
  compute_units: [CPU_ONLY]
  warmup: 1
  iterations: 3
  max_time_s: 2
  energy_s: 0
"""


def _can_unshare(flag: str) -> bool:
    if not shutil.which("unshare") or os.geteuid() != 0:
        return False
    return subprocess.run(["unshare", flag, "true"], capture_output=True).returncode == 0


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(REPO)}


def _expected(raw: bytes) -> str:
    """The stored form, worked out here by hand: undecodable bytes as \\xNN, control
    characters as Python's escapes."""
    out = []
    for ch in raw.decode("utf-8", "backslashreplace"):
        out.append(ch if ch.isprintable() else repr(ch)[1:-1])
    return "".join(out)


def test_store_line_shows_undecodable_bytes_and_control_characters():
    from anemll_spec.text import store_line

    raw = os.fsdecode(b"lab\xff\x1b[2Jx\x07")  # as os.uname and gethostname hand it over
    assert store_line(raw) == _expected(b"lab\xff\x1b[2Jx\x07")
    assert store_line(raw) == "lab\\xff\\x1b[2Jx\\x07"
    store_line(raw).encode("utf-8")  # no lone surrogate left: DuckDB can bind it
    assert store_line("MacBook-Pro") == "MacBook-Pro"
    long = store_line("\x1b" * NAME)
    assert len(long) == NAME and long.endswith("…")


def _in_namespace(flag: str, setup: str, args: list[str], cwd: Path):
    """`python -m anemll_spec ARGS` in a new namespace, after the shell line `setup`."""
    cmd = ["unshare", flag, "sh", "-c", setup + ' && exec "$0" "$@"', sys.executable]
    return subprocess.run(
        [*cmd, "-m", "anemll_spec", *args], cwd=cwd, env=_env(), capture_output=True, text=True
    )


def _bench_args(tmp_path: Path) -> list[str]:
    (tmp_path / "tiny.yaml").write_text(SPEC)
    store = str(tmp_path / "s.duckdb")
    return ["bench", "tiny.yaml", "--store", store, "--cache-dir", str(tmp_path / "cache")]


@pytest.mark.skipif(not _can_unshare("--uts"), reason="needs root and unshare --uts")
@pytest.mark.parametrize("raw", [b"lab\x1b[2Jx", b"lab\xffx"])
def test_bench_on_a_host_whose_name_has_odd_bytes(tmp_path, raw):
    """Linux takes any bytes as a hostname. One with ESC made the store refuse the host
    (bench exit 2, nothing measured); one that is no UTF-8 crashed bench (traceback).
    Both are stored escaped, the same in hosts.hostname and runs.writer_hostname."""
    (tmp_path / "name").write_bytes(raw)
    setup = f"cat '{tmp_path / 'name'}' > /proc/sys/kernel/hostname"
    res = _in_namespace("--uts", setup, _bench_args(tmp_path), tmp_path)
    assert res.returncode == 0, res.stderr[-2000:]
    store = tmp_path / "s.duckdb"
    with duckdb.connect(str(store), read_only=True) as con:
        rows = con.execute(
            "SELECT h.hostname, r.writer_hostname, r.status FROM runs r JOIN hosts h USING (host_id)"
        ).fetchall()
    assert rows == [(_expected(raw), _expected(raw), "finished")]


@pytest.mark.skipif(not _can_unshare("--mount"), reason="needs root and unshare --mount")
@pytest.mark.parametrize("pretty", [b"Odd \xff Linux", b"Odd \x1b[2J Linux"])
def test_an_os_release_with_odd_bytes(tmp_path, pretty):
    """An /etc/os-release that is no UTF-8 crashed info and bench (UnicodeDecodeError);
    one with ESC in PRETTY_NAME made the store refuse the host."""
    fake = tmp_path / "os-release"
    fake.write_bytes(b'NAME="Odd"\nPRETTY_NAME="' + pretty + b'"\n')
    setup = f"mount --bind '{fake}' /etc/os-release"
    info = _in_namespace("--mount", setup, ["info", "--json"], tmp_path)
    assert info.returncode == 0, info.stderr[-2000:]
    assert json.loads(info.stdout)["host"]["os_version"] == _expected(pretty)
    res = _in_namespace("--mount", setup, _bench_args(tmp_path), tmp_path)
    assert res.returncode == 0, res.stderr[-2000:]
    store = tmp_path / "s.duckdb"
    with duckdb.connect(str(store), read_only=True) as con:
        got = con.execute("SELECT os_version FROM hosts").fetchall()
    assert got == [(_expected(pretty),)]
    assert host.capture()["os_version"] != _expected(pretty)  # this process saw the real one


def _clean_git(*args: str) -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
    return subprocess.run(
        ["git", *args], capture_output=True, text=True, check=True, env=env
    ).stdout.strip()


def _repo_with_a_change(path: Path) -> str:
    """A repository whose one tracked file differs from its commit; its HEAD."""
    subprocess.run(["git", "init", "-q", str(path)], check=True)
    (path / "f.txt").write_text("1")
    _clean_git("-C", str(path), "add", "f.txt")
    _clean_git("-C", str(path), "-c", "user.email=a@b", "-c", "user.name=t", "commit", "-qm", "x")
    (path / "f.txt").write_text("2")
    return _clean_git("-C", str(path), "rev-parse", "HEAD")


@pytest.mark.skipif(not shutil.which("git"), reason="needs git")
@pytest.mark.parametrize(
    "variables", [("GIT_DIR", "GIT_WORK_TREE"), ("GIT_DIR",), ("GIT_INDEX_FILE",)]
)
def test_git_info_reads_the_packages_checkout_whatever_git_variables_say(tmp_path, variables):
    """Run from a git hook of another repository (hooks export GIT_DIR, GIT_INDEX_FILE),
    or with GIT_DIR kept in a shell, `git -C <checkout>` read THAT repository: runs stored
    its commit, or its index's dirty state, as anemll-spec's. The package's own checkout
    (this test's repository, imported by path) is what must be read, from any folder."""
    other = tmp_path / "other"
    other_head = _repo_with_a_change(other)
    values = {
        "GIT_DIR": str(other / ".git"),
        "GIT_WORK_TREE": str(other),
        "GIT_INDEX_FILE": str(other / ".git" / "index"),
    }
    env = {**_env(), **{k: values[k] for k in variables}}
    code = "import json; from anemll_spec import host; print(json.dumps(host.git_info()))"
    res = subprocess.run(
        [sys.executable, "-c", code], cwd=other, env=env, capture_output=True, text=True
    )
    assert res.returncode == 0, res.stderr
    got = json.loads(res.stdout)
    if not (REPO / ".git").exists():
        pytest.skip("the package does not run from a git checkout here")
    head = _clean_git("-C", str(REPO), "rev-parse", "HEAD")
    dirty = bool(_clean_git("-C", str(REPO), "status", "--porcelain", "--untracked-files=no"))
    assert head != other_head
    assert got == {"git_commit": head, "git_dirty": dirty}


def _memory_cgroup(tmp_name: str) -> tuple[Path, str] | None:
    """A new memory cgroup (v1 or v2) and the file that sets its limit; None where none
    can be made here (not root, no memory controller)."""
    for base, limit in (
        (Path("/sys/fs/cgroup/memory"), "memory.limit_in_bytes"),
        (Path("/sys/fs/cgroup"), "memory.max"),
    ):
        if os.geteuid() != 0 or not (base / "cgroup.procs").exists():
            continue
        if limit == "memory.max" and "memory" not in (base / "cgroup.subtree_control").read_text():
            continue
        group = base / tmp_name
        try:
            group.mkdir()
        except OSError:
            continue
        return group, limit
    return None


def test_memory_and_cores_are_the_machines_and_the_schema_says_so(tmp_path):
    """In a container limited to 1 GiB, hosts.memory_bytes is still the machine's
    MemTotal (and cores_total its cores): the column docs said only 'physical memory' and
    'CPU cores', so a reader could take them for what the run could use."""
    from anemll_spec.store import schema

    hosts = next(t for t in schema.TABLES if t.name == "hosts")
    assert "not a container's cgroup limit" in hosts.column("memory_bytes").doc
    assert "not a container's CPU quota" in hosts.column("cores_total").doc
    doc = (REPO / "docs" / "store.md").read_text()
    assert hosts.column("memory_bytes").doc in doc
    made = _memory_cgroup(f"review39-{os.getpid()}")
    if made is None:
        pytest.skip("no memory cgroup can be made here")
    group, limit = made
    try:
        (group / limit).write_text(str(1 << 30))
        code = "import json; from anemll_spec import host; print(json.dumps(host.capture()))"
        script = f'echo $$ > "{group}/cgroup.procs" && exec "$0" -c "$1"'
        res = subprocess.run(
            ["sh", "-c", script, sys.executable, code], env=_env(), capture_output=True, text=True
        )
    finally:
        group.rmdir()
    assert res.returncode == 0, res.stderr
    got = json.loads(res.stdout)
    meminfo = Path("/proc/meminfo").read_text().split("\n")
    total = next(int(line.split()[1]) * 1024 for line in meminfo if line.startswith("MemTotal:"))
    assert total > 1 << 30
    assert got["memory_bytes"] == total


def _cli(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "anemll_spec", *args],
        cwd=cwd,
        env=_env(),
        capture_output=True,
        text=True,
    )


def test_a_spec_longer_than_the_store_keeps_is_refused(tmp_path):
    """A spec may be 1 MiB, but runs.spec_yaml keeps 262,144 characters: the store cut
    the text, so spec_sha256 was not the hash of the text stored, and import refused the
    run's exported bundle. Such a spec is now refused when read (exit 2), before anything
    runs."""
    text = SPEC + "# " + "x" * 270_000 + "\n"
    (tmp_path / "odd.yaml").write_text(text, encoding="utf-8")
    bench = ["bench", "odd.yaml", "--store", str(tmp_path / "s.duckdb"), "--cache-dir", "c"]
    for args in (["validate", "odd.yaml"], bench):
        res = _cli(args, tmp_path)
        assert res.returncode == 2, res.stdout + res.stderr
        assert f"odd.yaml: {len(text):,} characters long" in res.stderr, res.stderr
        assert "Traceback" not in res.stderr
    assert not (tmp_path / "s.duckdb").exists()


def test_a_spec_with_nel_is_stored_verbatim_and_its_bundle_imports(tmp_path):
    """NEL (U+0085) is a character the spec reader takes (as YAML 1.2 reads it). The
    store escaped it in runs.spec_yaml, so spec_sha256 was not the hash of the text
    stored, and import refused the run's bundle ('spec_sha256 is not the hash of its
    spec text'). spec_yaml now keeps it as written."""
    import hashlib

    text = SPEC.replace("name: tiny", "name: tiny  # caf\u0085e")
    (tmp_path / "nel.yaml").write_text(text, encoding="utf-8")
    store, other = tmp_path / "s.duckdb", tmp_path / "t.duckdb"
    res = _cli(["bench", "nel.yaml", "--store", str(store), "--cache-dir", "c"], tmp_path)
    assert res.returncode == 0, res.stderr[-2000:]
    with duckdb.connect(str(store), read_only=True) as con:
        got = con.execute("SELECT spec_sha256, sha256(spec_yaml), spec_yaml FROM runs").fetchall()
    file_hash = hashlib.sha256((tmp_path / "nel.yaml").read_bytes()).hexdigest()
    assert got == [(file_hash, file_hash, text)]
    res = _cli(["export", "--store", str(store), "--out", "b.parquet"], tmp_path)
    assert res.returncode == 0, res.stderr[-2000:]
    res = _cli(["import", "b.parquet", "--store", str(other)], tmp_path)
    assert res.returncode == 0, res.stderr[-2000:]
    with duckdb.connect(str(other), read_only=True) as con:
        assert con.execute("SELECT spec_yaml FROM runs").fetchall() == [(text,)]


def test_spec_sha256_is_the_hash_of_the_stored_text_wherever_the_file_is(tmp_path):
    """The hash names the text, not the file: the same bytes at two paths hash alike; a
    copy with CRLF line ends is other text, stored verbatim, and hashes as its bytes."""
    import hashlib

    hashes = []
    for name, text in (("a/tiny.yaml", SPEC), ("b/other.yaml", SPEC), ("c/tiny.yaml", SPEC)):
        data = text.encode() if name[0] != "c" else text.replace("\n", "\r\n").encode()
        path = tmp_path / name
        path.parent.mkdir()
        path.write_bytes(data)
        store = tmp_path / "s.duckdb"
        res = _cli(["bench", str(path), "--store", str(store), "--cache-dir", "cache"], tmp_path)
        assert res.returncode == 0, res.stderr[-2000:]
        hashes.append(hashlib.sha256(data).hexdigest())
    with duckdb.connect(str(tmp_path / "s.duckdb"), read_only=True) as con:
        rows = con.execute(
            "SELECT spec_sha256, sha256(spec_yaml), spec_yaml FROM runs ORDER BY started_at"
        ).fetchall()
    assert [r[0] for r in rows] == [r[1] for r in rows] == hashes
    assert hashes[0] == hashes[1] != hashes[2]
    assert rows[2][2] == SPEC.replace("\n", "\r\n")


def test_spec_yaml_keeps_nel_and_no_other_control_character():
    """The writer's rule (rows) and import's (trust, in DuckDB's RE2) agree: of C0, DEL
    and C1, spec_yaml keeps tab, newline, CR and NEL; other multi-line text keeps no NEL."""
    from anemll_spec.store import rows, schema, trust

    assert schema.RUNS.column("spec_yaml").verbatim
    assert not schema.RUNS.column("command").verbatim
    kept = {"\t", "\n", "\r", "\x85"}
    chars = [chr(c) for c in [*range(0x20), *range(0x7F, 0xA0)]]
    with duckdb.connect() as con:
        for ch in chars:
            writer = rows.CONTROL_VERBATIM.search(ch) is None
            importer = not con.execute(
                f"SELECT regexp_matches(?, '{trust._CONTROL_VERBATIM}')", [ch]
            ).fetchone()[0]
            assert writer == importer == (ch in kept), hex(ord(ch))
            assert (rows.CONTROL_MULTILINE.search(ch) is None) == (ch in kept - {"\x85"})


def test_bench_of_a_spec_whose_file_name_is_no_utf8(tmp_path):
    """A file name's bytes that are no UTF-8 reach argv as lone surrogates: storing the
    run's command line crashed bench (a DuckDB cast traceback, nothing stored). The
    command keeps those bytes as \\xNN."""
    name = os.fsdecode(b"sp\xffec.yaml")
    (tmp_path / name).write_text(SPEC)
    store = tmp_path / "s.duckdb"
    res = subprocess.run(
        [sys.executable, "-m", "anemll_spec", "bench", name, "--store", str(store)]
        + ["--cache-dir", "c"],
        cwd=tmp_path,
        env=_env(),
        capture_output=True,
    )
    assert res.returncode == 0, res.stderr[-2000:]
    with duckdb.connect(str(store), read_only=True) as con:
        rows = con.execute("SELECT status, command FROM runs").fetchall()
    assert len(rows) == 1 and rows[0][0] == "finished"
    word = shlex.quote(b"sp\xffec.yaml".decode("utf-8", "backslashreplace"))
    assert f" bench {word} " in rows[0][1], rows[0][1]


OS_RELEASE = (
    "NAME='Odd Linux'\n"
    "PRETTY_NAME='Odd Linux 1 (\"quoted\")'\n"
    'VERSION="1 \\"LTS\\" \\$x \\\\ \\`y\\`"\n'
    "ID=odd\n"
    "# a comment\n"
)


def test_os_release_values_as_the_standard_library_reads_them():
    """os-release(5) values may be single-quoted and may escape quotes: a single-quoted
    PRETTY_NAME was stored with its quotes, an escaped quote cut the value."""
    import platform

    want = platform._parse_os_release(OS_RELEASE.splitlines())  # type: ignore[attr-defined]
    got = host.parse_os_release(OS_RELEASE)
    assert got == {k: want[k] for k in got}
    assert set(got) == {"NAME", "PRETTY_NAME", "VERSION", "ID"}
    assert got["PRETTY_NAME"] == 'Odd Linux 1 ("quoted")'


@pytest.mark.skipif(not _can_unshare("--mount"), reason="needs root and unshare --mount")
def test_a_single_quoted_pretty_name_is_stored_without_its_quotes(tmp_path):
    fake = tmp_path / "os-release"
    fake.write_text(OS_RELEASE)
    res = _in_namespace(
        "--mount", f"mount --bind '{fake}' /etc/os-release", ["info", "--json"], tmp_path
    )
    assert res.returncode == 0, res.stderr[-2000:]
    assert json.loads(res.stdout)["host"]["os_version"] == 'Odd Linux 1 ("quoted")'


def test_a_machine_id_file_that_holds_no_id_is_none(tmp_path):
    """machine-id(5): 32 lowercase hex digits, or 'uninitialized' in an image not yet
    booted. That word (or other text) was hashed as the machine's id, so every machine
    built from one image claimed the same identity in runs.writer_machine_id."""
    from anemll_spec import machine_id as mid

    first, second = tmp_path / "etc-machine-id", tmp_path / "dbus-machine-id"
    first.write_text("uninitialized\n")
    real = os.urandom(16).hex()
    second.write_text(real + "\n")
    assert mid.linux_raw((str(first),)) is None
    assert mid.linux_raw((str(first), str(second))) == real
    first.write_text("not an id\n")
    assert mid.linux_raw((str(first),)) is None


def test_torch_gpu_facts_are_store_lines(monkeypatch):
    """The GPU's name comes from the driver (torch's device properties): it is made a
    store line as host.capture's texts are (it reached the store as the driver wrote it)."""
    pytest.importorskip("torch")
    from anemll_spec.executor import torch_host
    from anemll_spec.text import store_line

    name = "NVIDIA H100\x1b[2J" + "x" * 300
    monkeypatch.setattr(
        torch_host, "_torch_info", lambda kind, index: {"gpu": name, "gpu_sm_count": 132}
    )
    got = torch_host.torch_info("cpu")
    assert got == {"gpu": store_line(name), "gpu_sm_count": 132}
    assert got["gpu"].startswith("NVIDIA H100\\x1b[2J") and len(got["gpu"]) == 256
