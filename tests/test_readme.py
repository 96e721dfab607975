"""Every shell command of the README runs as written, from a fresh shell (issue 14.1).

Each ```sh block of README.md runs in a fresh `bash -lc` (a login shell, as a new
terminal is), after the one line the README asks for in each new shell (`source
.venv/bin/activate`), from a copy of the repository root: the tracked files with `.venv`
linked in, so what the commands write (store/, charts/, report.html, reports/) lands in
the copy, never in the working tree; the package is the one `make` installed.

No command is edited. Only the environment changes what they touch: a temporary build
cache; a small spec benched twice before the blocks run (so the query and chart examples
find runs, a sweep over model.vocab_size and a previous run of the same spec); a private
PostgreSQL cluster for the shared-store blocks. Blocks that bench the full-size LM head
(1 GB of weights) are marked `slow` (`make test-slow`). Lines not run are listed in
NOT_RUN with the reason, and must exist in the README.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import duckdb
import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"

# line -> why it is not run
NOT_RUN = {"make test": "the test suite itself: running it from a test would recurse"}
# line -> what it needs; it runs in a shell of its own: where the seeded runs have what it
# needs it must succeed, elsewhere it must say why in one line (exit 2)
NEEDS = {
    "anemll-spec chart energy --out charts/": (
        "SELECT count(*) FROM cases WHERE energy_mj_per_inference IS NOT NULL",
        "no case has an energy reading",
    )
}
# a block that benches a full-size shipped spec takes minutes: `make test-slow`
SLOW = re.compile(r"make bench|bench specs/lm_head")
SETUP = "source .venv/bin/activate"
# the small specs benched into the copy's store before the blocks run: a sustained run,
# then the sweep twice (`latest` and `previous` are then runs of one spec)
SUSTAINED_SPEC = """\
name: readme_sustained
description: A tiny LM head timed for 2 s in 1 s windows (the README's sustained chart).
model:
  family: lm_head
  hidden_size: 64
  vocab_size: 256
  chunks: 2
run:
  backends: [numpy]
  duration_s: 2
  window_s: 1
"""
SEED_SPEC = """\
name: readme_seed
description: A tiny LM head swept over vocab_size, benched so the README's examples find runs.
model:
  family: lm_head
  hidden_size: 64
  vocab_size: 256
  chunks: 2
run:
  backends: [numpy]
  warmup: 2
  iterations: 20
  min_iterations: 5
  max_time_s: 2
sweep:
  model.vocab_size: [256, 512]
"""


@dataclass(frozen=True)
class Block:
    line: int  # 1-based line of the opening fence
    lang: str
    text: str

    @property
    def commands(self) -> list[str]:
        """Its lines as a shell runs them (comments and blanks dropped for NOT_RUN)."""
        return [ln for ln in self.text.splitlines() if ln.split("#", 1)[0].strip()]

    @property
    def script(self) -> str:
        return "\n".join(c for c in self.commands if _bare(c) not in {**NOT_RUN, **NEEDS})

    @property
    def code(self) -> str:
        """The script without its comments: what decides how the block is run."""
        return "\n".join(_bare(c) for c in self.script.splitlines())


def _bare(line: str) -> str:
    return line.split("  #", 1)[0].strip()


def blocks(text: str) -> list[Block]:
    out, lines, i = [], text.splitlines(), 0
    while i < len(lines):
        m = re.match(r"^```(\S*)\s*$", lines[i])
        if not m:
            i += 1
            continue
        j = next(k for k in range(i + 1, len(lines)) if lines[k].startswith("```"))
        out.append(Block(i + 1, m.group(1), "\n".join(lines[i + 1 : j])))
        i = j + 1
    return out


BLOCKS = blocks(README.read_text())
SHELL = [b for b in BLOCKS if b.lang in ("sh", "bash", "shell")]
RUN = [b for b in SHELL if SETUP not in b.text]


def _param(b: Block):
    marks = [pytest.mark.slow] if SLOW.search(b.code) else []
    return pytest.param(b, id=f"line{b.line}", marks=marks)


def test_every_fenced_block_says_its_language():
    """An untagged block could hide a command from this test: text, yaml or sh only."""
    assert all(b.lang in ("sh", "yaml", "text") for b in BLOCKS), [
        (b.line, b.lang) for b in BLOCKS if b.lang not in ("sh", "yaml", "text")
    ]
    assert len(RUN) >= 4


def test_the_setup_line_is_stated_once_before_any_cli_command():
    setup = [b for b in SHELL if SETUP in b.text]
    assert len(setup) == 1 and setup[0].commands[0].startswith(SETUP)
    first_cli = min(b.line for b in RUN if "anemll-spec" in b.text)
    assert setup[0].line < first_cli


def test_lines_not_run_are_in_the_readme():
    lines = {_bare(c) for b in SHELL for c in b.commands}
    assert set(NOT_RUN) <= lines and set(NEEDS) <= lines


@pytest.mark.parametrize("line", list(NEEDS))
def test_a_line_that_needs_data_runs_where_it_is_and_says_why_where_not(line, copy_root):
    query, why = NEEDS[line]
    con = duckdb.connect(str(copy_root / "store" / "results.duckdb"), read_only=True)
    try:
        (have,) = con.execute(query).fetchone()
    finally:
        con.close()
    r = _shell(copy_root, line, _env(copy_root))
    if have:
        assert r.returncode == 0, r.stdout + r.stderr
    else:
        assert r.returncode == 2 and why in r.stderr, r.stdout + r.stderr
        assert len(r.stderr.strip().splitlines()) == 1, r.stderr


@pytest.fixture(scope="module")
def copy_root(tmp_path_factory) -> Path:
    """A copy of the repository root whose store holds two runs of SEED_SPEC."""
    root = _copy(tmp_path_factory)
    (root.parent / "readme_sustained.yaml").write_text(SUSTAINED_SPEC)
    (root.parent / "readme_seed.yaml").write_text(SEED_SPEC)
    for name in ("readme_sustained", "readme_seed", "readme_seed"):
        r = _shell(root, f"anemll-spec bench {root.parent / name}.yaml", _env(root))
        assert r.returncode == 0, r.stdout + r.stderr
    return root


@pytest.fixture(scope="module")
def fresh_root(tmp_path_factory) -> Path:
    """A copy of the repository root with no store yet (the slow blocks' own)."""
    return _copy(tmp_path_factory)


def _copy(tmp_path_factory) -> Path:
    """The repository root as a fresh clone has it (tracked files), with `.venv` linked."""
    root = tmp_path_factory.mktemp("clone") / "repo"
    tracked = subprocess.run(
        ["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True
    ).stdout.split(b"\0")
    for name in filter(None, (t.decode() for t in tracked)):
        # the package comes from the install in .venv (as for any user of the CLI)
        if name.startswith(("anemll_spec/", "tests/")) or not (ROOT / name).is_file():
            continue
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / name, root / name)  # mtimes kept: make sees .venv up to date
    (root / ".venv").symlink_to(ROOT / ".venv")
    return root


def _env(root: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ANEMLL_SPEC_", "PG"))}
    env["ANEMLL_SPEC_CACHE"] = str(root.parent / "build-cache")
    return {**env, **extra}


def _shell(root: Path, script: str, env: dict, timeout: float = 1800):
    """`script` in a fresh login shell at `root`, after the README's set-up line."""
    return subprocess.run(
        ["bash", "-lc", f"{SETUP}\nset -e\n{script}"],
        cwd=root,
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def _postgres_env(request, root: Path, stores: bool) -> dict[str, str]:
    """libpq's settings for the test cluster, and with `stores` two shared stores on it:
    $ANEMLL_SPEC_STORE, as the set-up block exports it."""
    cluster = request.getfixturevalue("postgres")
    import pg

    targets = {}
    for var in ("ANEMLL_SPEC_STORE",) if stores else ():
        db = cluster.new_db(f"readme_{var.lower()}")
        targets[var] = cluster.target(db, data_path=root.parent / f"lake-{var.lower()}")
    return {
        "PGHOST": "127.0.0.1",
        "PGPORT": str(cluster.port),
        "PGUSER": pg.USER,
        "PGPASSWORD": pg.PASSWORD,
        **targets,
    }


@pytest.mark.parametrize("block", [_param(b) for b in RUN])
def test_readme_block_runs_as_written(block: Block, request):
    """Slow blocks get a copy of their own: their runs must not become the fast blocks'
    `latest` (`chart compare --runs previous latest` wants two runs of one spec)."""
    root = request.getfixturevalue("fresh_root" if SLOW.search(block.code) else "copy_root")
    extra: dict[str, str] = {}
    if re.search(r"createdb|\$ANEMLL_SPEC_STORE", block.code):
        extra = _postgres_env(request, root, stores="$ANEMLL_SPEC_STORE" in block.code)
    if block.code.startswith("make "):
        _venv_is_current(root)
    r = _shell(root, block.script, _env(root, **extra))
    assert r.returncode == 0, f"README line {block.line}:\n{block.script}\n{r.stdout}{r.stderr}"
    _check_effects(block, root, r.stdout)


def _venv_is_current(root: Path) -> None:
    """`make` in the copy must find .venv installed: else it would reinstall the package
    in editable mode from the copy, pointing the shared .venv at a temporary folder."""
    q = subprocess.run(["make", "-q", "venv"], cwd=root, capture_output=True, text=True)
    if q.returncode != 0:
        pytest.fail(f"{ROOT / '.venv'} is not up to date with pyproject.toml: run `make venv`")


def _check_effects(block: Block, root: Path, stdout: str) -> None:
    """What the block's commands should have left behind, checked from disk."""
    text = block.code
    if "chart factors --out charts/" in text:
        for kind in ("factors", "sweep", "compare", "sustained"):
            for ext in ("html", "png", "svg", "vl.json"):
                assert (root / "charts" / f"{kind}.{ext}").stat().st_size > 0, (kind, ext)
        for folder in ("m4max", "by-os"):  # each factors example keeps its own chart
            assert (root / "charts" / folder / "factors.png").stat().st_size > 0, folder
    if "report --run latest --out report.html" in text:
        page = (root / "report.html").read_text()
        assert "readme_seed" in page
    if "from results" in text:  # the query example lists the seeded runs' cases
        assert "readme_seed" in stdout
    if "make bench SPEC=specs/lm_head.yaml" in text:
        con = duckdb.connect(str(root / "store" / "results.duckdb"), read_only=True)
        try:
            rows = con.execute(
                "SELECT model_name, weight_bytes, status FROM results "
                "WHERE spec_name = 'lm_head' ORDER BY run_started_at DESC LIMIT 1"
            ).fetchall()
        finally:
            con.close()
        # 4096 x 128256 fp16 + 64-byte file header + 8 x 64-byte blob records
        assert rows == [("llama_lm_head", 4096 * 128256 * 2 + 64 + 8 * 64, "ok")]
        assert list((root / "reports").glob("*.html"))


def test_the_readme_spec_example_validates(fresh_root: Path, tmp_path: Path):
    """The YAML spec shown in the README is a valid spec."""
    (example,) = [b for b in BLOCKS if b.lang == "yaml" and b.text.startswith("name:")]
    path = tmp_path / "example.yaml"
    path.write_text(example.text + "\n")
    r = _shell(fresh_root, f"anemll-spec validate {path}", _env(fresh_root))
    assert r.returncode == 0, r.stdout + r.stderr
