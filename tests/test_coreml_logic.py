"""The Core ML backend's decisions that need no Core ML, on real packages built here
(issue 19: deployment targets, int8 I/O, the default function, the compile cache)."""

from __future__ import annotations

import json
import os
import platform
import shutil
from pathlib import Path

import pytest
from build_util import attention, lm_head

from anemll_spec import backends
from anemll_spec.backends import coreml, coreml_compile, coreml_plan, coreml_target
from anemll_spec.backends.base import BackendError
from anemll_spec.errors import InputError


@pytest.fixture(scope="module")
def cache(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("cache")


@pytest.fixture(scope="module")
def built(cache):
    from anemll_spec.build import build

    return build(
        lm_head(hidden_size=64, vocab_size=128, chunks=1, layout="linear"), cache_dir=cache
    )


def _mil_package(path: Path, *, int8: bool) -> Path:
    """A real iOS26 ML Program: int8 in and out when int8 (iOS26 allows int8 I/O)."""
    import coremltools as ct
    from coremltools.converters.mil import Builder as mb
    from coremltools.converters.mil.mil import types

    dtype = types.int8 if int8 else types.fp32

    @mb.program(
        input_specs=[mb.TensorSpec(shape=(1, 4), dtype=dtype)], opset_version=ct.target.iOS26
    )
    def prog(x):
        return mb.identity(x=x)

    ct.convert(prog, minimum_deployment_target=ct.target.iOS26, skip_model_load=True).save(
        str(path)
    )
    return path


@pytest.fixture(scope="module")
def int8_package(tmp_path_factory) -> Path:
    return _mil_package(tmp_path_factory.mktemp("int8") / "int8io.mlpackage", int8=True)


@pytest.fixture(scope="module")
def fp32_package(tmp_path_factory) -> Path:
    return _mil_package(tmp_path_factory.mktemp("fp32") / "fp32io.mlpackage", int8=False)


# -- 19.3 deployment target -> macOS ---------------------------------------------------
@pytest.mark.parametrize(
    ("target", "state", "macos", "refused"),
    [
        ("iOS18", False, (15, 0), None),
        ("iOS18", False, (14, 6, 1), "deployment target iOS18 needs macOS 15.0"),
        ("iOS17", False, (14, 0), None),
        ("iOS17", False, (13, 5), "deployment target iOS17 needs macOS 14.0"),
        ("iOS16", False, (13, 0), None),
        ("iOS16", True, (14, 6), "state (MLState) needs macOS 15.0"),
        ("iOS26", False, (15, 5), "deployment target iOS26 needs macOS 26.0"),
        ("iOS16", False, (), None),  # unknown macOS: availability's business
    ],
)
def test_target_to_minimum_macos(target, state, macos, refused):
    why = coreml_target.why_not_on(target, state, macos)
    if refused is None:
        assert why is None
    else:
        assert why.startswith(refused) and "this Mac runs macOS" in why


@pytest.mark.parametrize(
    ("mac_ver", "asked", "real"),
    [
        ("15.3.1", ["26.0"], (15, 3, 1)),  # a real answer: nothing asked
        ("16.0", ["16.0", "26.0.1"], (26, 0, 1)),  # the sysctl in compat mode too: sw_vers
        ("10.16", [None, "14.6"], (14, 6)),
        ("16.1", [None, None], (26, 1)),  # nobody answers: 16.x is 26.x's compat answer
        ("10.16", [None, None], (10, 16)),  # nothing to say which 11+ it is
    ],
)
def test_a_compatibility_answer_asks_on(mac_ver, asked, real):
    assert coreml_target.real_macos(mac_ver, *(lambda a=a: a for a in asked)) == real


def test_macos_26_seen_as_16_by_an_old_sdk_python_is_26(monkeypatch, tmp_path, fp32_package):
    """CPython gh-135675: on macOS 26, a Python built against an older SDK reads 16.0 from
    platform.mac_ver() (kern.osproductversion too, in compat mode); coremltools and the
    host row ask `sw_vers`, which says 26. An iOS26 model was refused ("this Mac runs
    macOS 16.0"). Here a real `sw_vers` on PATH answers, as on that Mac."""
    model = {"family": "external", "path": str(fp32_package)}  # an iOS26 ML Program
    sw_vers = tmp_path / "sw_vers"
    sw_vers.write_text('#!/bin/sh\n[ "$1" = -productVersion ] && echo 26.0.1\n')
    sw_vers.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path}:{os.environ['PATH']}")
    monkeypatch.setattr("sys.platform", "darwin")
    monkeypatch.setattr(platform, "mac_ver", lambda: ("16.0", ("", "", ""), "arm64"))
    monkeypatch.setattr("anemll_spec.host.sysctl_str", lambda name: "16.0")
    coreml_target._sw_vers.cache_clear()
    try:
        assert coreml_target.macos_version() == (26, 0, 1)
        assert coreml_target.why_not(model) is None
    finally:
        coreml_target._sw_vers.cache_clear()


def test_targets_of_built_and_external_models(int8_package):
    assert coreml_target.model_target(lm_head(deployment_target="iOS17").to_json()) == (
        "iOS17",
        False,
    )
    assert coreml_target.model_target(attention().to_json()) == ("iOS18", True)
    # external: from the file (specificationVersion 10), not the spec's default field
    ext = {"family": "external", "path": str(int8_package), "deployment_target": "iOS18"}
    assert coreml_target.model_target(ext) == ("iOS26", False)
    assert coreml_target.why_not(ext, macos=(15, 4)).startswith("deployment target iOS26")
    assert coreml_target.why_not(lm_head(deployment_target="iOS16"), macos=(13, 1)) is None


def test_auto_never_picks_a_backend_that_cannot_run_the_case(monkeypatch):
    """Availability on a macOS 14 Mac, simulated: coreml is available but cannot run an
    iOS18 case, so auto takes numpy for it (and coreml for an iOS17 one)."""
    real = backends.availability

    def on_a_mac(name):
        if name == "coreml":
            return backends.Availability("coreml", True, "Core ML on macOS 14.6")
        return real(name)

    monkeypatch.setattr(backends, "availability", on_a_mac)
    monkeypatch.setattr(coreml_target, "macos_version", lambda: (14, 6))
    name, why = backends.resolve_auto(lm_head(deployment_target="iOS18"))
    assert name == "numpy"
    assert "coreml: deployment target iOS18 needs macOS 15.0 or later" in why
    assert backends.resolve_auto(lm_head(deployment_target="iOS17"))[0] == "coreml"
    assert backends.resolve_auto()[0] == "coreml"  # no case given: availability only
    with pytest.raises(InputError, match=r"backend coreml cannot run case 3 here: deployment"):
        backends.check_runs("coreml", lm_head().to_json(), "case 3")
    backends.check_runs("coreml", lm_head(deployment_target="iOS16"))
    backends.check_runs("numpy", lm_head())  # numpy has no such limit


def test_check_runs_refuses_an_unavailable_backend_here():
    import sys

    if sys.platform == "darwin":
        pytest.skip("coreml is available on a Mac")
    with pytest.raises(InputError, match="backend coreml is not available here: not macOS"):
        backends.check_runs("coreml", lm_head())


# -- 19.6 int8 I/O ---------------------------------------------------------------------
def test_int8_package_refused_before_compiling(int8_package, tmp_path):
    from anemll_spec.model_io import describe

    io = describe(int8_package)
    assert [t.dtype for t in io.inputs + io.outputs] == ["int8", "int8"]
    with pytest.raises(BackendError, match=r"input x \(int8\).*Python binding cannot pass"):
        coreml.backend().prepare(int8_package, tmp_path / "work")
    assert not (tmp_path / "work").exists()  # nothing compiled, nothing written


@pytest.fixture
def on_macos_26(monkeypatch):
    """Core ML available on a macOS 26 Mac, simulated (the availability and version
    checks only: nothing of Core ML runs)."""
    real = backends.availability
    monkeypatch.setattr(
        backends,
        "availability",
        lambda n: backends.Availability("coreml", True, "macOS 26") if n == "coreml" else real(n),
    )
    monkeypatch.setattr(coreml_target, "macos_version", lambda: (26, 0))


def test_int8_io_is_known_before_the_run(on_macos_26, int8_package, fp32_package):
    """check_dtypes refused int8 I/O only in prepare: on macOS 26, auto picked coreml for
    an int8 model (which then FAILED, numpy never tried) and a named coreml was not
    refused up front (exit 1 and a failed case, not exit 2). Availability on a macOS 26
    Mac simulated, as in the auto test above; the models are real iOS26 packages."""
    int8 = {"family": "external", "path": str(int8_package)}
    why = coreml_target.why_not(int8)
    assert why is not None and why.startswith("input x (int8): coremltools ")
    name, said = backends.resolve_auto(int8)
    assert name == "numpy" and "coreml: input x (int8)" in said, said
    with pytest.raises(InputError, match=r"backend coreml cannot run case 1 here: input x"):
        backends.check_runs("coreml", int8, "case 1")
    fp32 = {"family": "external", "path": str(fp32_package)}
    assert coreml_target.why_not(fp32) is None
    assert backends.resolve_auto(fp32)[0] == "coreml"


@pytest.mark.parametrize("backends_field", ["auto", "coreml"])
def test_a_damaged_model_on_a_mac_is_refused_at_model_path(
    on_macos_26, tmp_path, fp32_package, backends_field
):
    """On a Mac, auto and coreml asked why_not first, which opened the model and raised
    its error bare (no spec, case or line): now why_not cannot tell, and the build's
    preflight refuses it at model.path's line:col, as on Linux. Availability on a macOS
    26 Mac simulated; the package is a real one with its proto cut short."""
    import shutil
    from io import StringIO

    from anemll_spec.progress import Progress
    from anemll_spec.runner import Runner

    pkg = shutil.copytree(fp32_package, tmp_path / "bad.mlpackage")
    proto = pkg / "Data" / "com.apple.CoreML" / "model.mlmodel"
    proto.write_bytes(proto.read_bytes()[:40])
    assert coreml_target.why_not({"family": "external", "path": str(pkg)}) is None
    spec = tmp_path / "ext.yaml"
    spec.write_text(
        f"name: ext\nmodel: {{family: external, path: bad.mlpackage}}\n"
        f"run: {{backends: [{backends_field}], iterations: 5}}\n"
    )
    with pytest.raises(InputError) as err:
        Runner(spec, store=str(tmp_path / "s.duckdb"), cache_dir=tmp_path / "c",
               progress=Progress(StringIO())).run()  # fmt: skip
    assert str(err.value).startswith(f"{spec}:2:33: ext: model.path: {pkg}"), str(err.value)
    assert not (tmp_path / "s.duckdb").exists()


# -- 19.9 the default function -----------------------------------------------------------
@pytest.fixture(scope="module")
def multifunction(cache, tmp_path_factory) -> Path:
    """A real two-function package whose default is the SECOND function added."""
    from coremltools.models.utils import MultiFunctionDescriptor, save_multifunction

    from anemll_spec.build import build

    a = build(
        lm_head(hidden_size=64, vocab_size=128, chunks=1, layout="linear", seed=1), cache_dir=cache
    )
    b = build(
        lm_head(hidden_size=64, vocab_size=256, chunks=1, layout="linear", seed=2), cache_dir=cache
    )
    desc = MultiFunctionDescriptor()
    desc.add_function(str(a.path), "main", "first")
    desc.add_function(str(b.path), "main", "second")
    desc.default_function_name = "second"
    out = tmp_path_factory.mktemp("mf") / "two.mlpackage"
    save_multifunction(desc, str(out))
    return out


def test_plan_reads_the_default_function_not_main_or_the_first(multifunction, built):
    from anemll_spec.mlmodel import open_model

    names = list(open_model(multifunction).spec.mlProgram.functions)
    assert sorted(names) == ["first", "second"]
    default = coreml_plan.default_function(multifunction)
    assert default == "second"
    assert coreml_plan.pick_function(names, default) == "second"
    # a single-function package: no default recorded, its one function ('main')
    single = list(open_model(built.path).spec.mlProgram.functions)
    assert coreml_plan.default_function(built.path) is None
    assert coreml_plan.pick_function(single, None) == "main"
    assert coreml_plan.default_function(Path("x.mlmodelc")) is None
    with pytest.raises(BackendError, match="default function is unknown"):
        coreml_plan.pick_function(names, None)
    with pytest.raises(BackendError, match="'third' is not in its program"):
        coreml_plan.pick_function(names, "third")


# -- compiling once, into the build cache -----------------------------------------------
class _Compiler:
    """Stands in for Core ML's compiler (macOS only): writes a folder, counts calls."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, src: Path, dest: Path) -> Path:
        self.calls += 1
        dest.mkdir(parents=True)
        (dest / "model.mil").write_text(f"compiled from {src.name}")
        return dest


def test_build_cache_package_compiled_once_and_reused(built, tmp_path):
    home = coreml_compile.cache_home(built.path)
    assert home == built.path.parent
    compiler = _Compiler()
    path, spent, how = coreml_compile.compiled(
        built.path, tmp_path, compile_fn=compiler, build="24B91"
    )
    assert how == "cached" and compiler.calls == 1 and spent >= 0
    assert path == home / f"compiled-24B91-{platform.machine()}" / "model.mlmodelc"
    assert path.is_dir() and not list(home.glob(".tmp-compiled-*"))
    again = coreml_compile.compiled(built.path, tmp_path, compile_fn=compiler, build="24B91")
    assert again == (path, 0.0, "reused") and compiler.calls == 1
    # another macOS build compiles its own copy
    other, _, how = coreml_compile.compiled(built.path, tmp_path, compile_fn=compiler, build="25A1")
    assert how == "cached" and other != path and compiler.calls == 2


def test_a_copy_for_a_new_macos_build_replaces_the_older_builds_copies(built, tmp_path):
    """Each compiled copy is a full copy of the weights: every OS update left one more per
    entry (four builds: 4 copies of a model, cache list still 'ok'). Publishing a copy
    for a new build removes the earlier builds' copies of this architecture."""
    home = coreml_compile.cache_home(built.path)
    compiler = _Compiler()
    arch = platform.machine()
    elsewhere = home / "compiled-24A335-otherarch" / coreml_compile.COMPILED
    _Compiler()(built.path, elsewhere)  # another architecture's copy (a shared cache)
    for build in ("24A335", "24B83", "24C101"):
        path, _, how = coreml_compile.compiled(
            built.path, tmp_path, compile_fn=compiler, build=build
        )
        assert how == "cached"
    assert sorted(p.name for p in home.glob("compiled-*")) == [
        "compiled-24A335-otherarch",
        f"compiled-24C101-{arch}",
    ]
    assert path.is_dir() and not list(home.glob(".tmp-compiled-*"))


def test_a_dead_compilers_staging_folder_is_dropped_even_when_the_copy_is_reused(built, tmp_path):
    """A compile killed mid-way left its staging folder (the model's size) for good once
    a later run published the copy: reuse never looked again, and the one-hour rule asked
    no pid. A dead compiler's folder goes on the next use; a live one's stays."""
    import subprocess
    import sys

    from anemll_spec.build.leftovers import host_tag

    home = coreml_compile.cache_home(built.path)
    compiler = _Compiler()
    coreml_compile.compiled(built.path, tmp_path, compile_fn=compiler, build="LEAK1")
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)  # fmt: skip
    dead = home / f".tmp-compiled-{int(gone.stdout)}-{host_tag()}ab"
    live = home / f".tmp-compiled-{os.getpid()}-{host_tag()}cd"
    for p in (dead, live):
        (p / coreml_compile.COMPILED).mkdir(parents=True)
        (p / coreml_compile.COMPILED / "weight.bin").write_bytes(b"\0" * 1024)
    _, _, how = coreml_compile.compiled(built.path, tmp_path, compile_fn=compiler, build="LEAK1")
    assert how == "reused" and compiler.calls == 1
    assert not dead.exists() and live.is_dir()
    shutil.rmtree(live)  # this test's own: the entry is shared with the other tests


def test_a_read_only_cache_compiles_into_the_run_folder_not_a_failed_case(built, tmp_path):
    """Builds are served from a read-only cache (numpy and torch ran), but Core ML's
    prepare made its staging folder in the entry: OSError, every Core ML case FAILED.
    It compiles into the run's folder then, and says why load_ms is a first load."""
    import subprocess

    ro = tmp_path / "ro"
    ro.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", str(ro)],
                      capture_output=True).returncode:  # fmt: skip
        pytest.skip("cannot mount a tmpfs here")
    try:
        entry = ro / built.path.parent.name
        shutil.copytree(built.path.parent, entry)
        subprocess.run(["mount", "-o", "remount,ro", str(ro)], check=True)
        src = entry / built.path.name
        assert coreml_compile.cache_home(src) == entry
        before = sorted(p.name for p in entry.iterdir())
        compiler = _Compiler()
        path, spent, how = coreml_compile.compiled(
            src, tmp_path / "work", compile_fn=compiler, build="RO1"
        )
        assert how == "unwritable" and compiler.calls == 1 and spent >= 0
        assert (tmp_path / "work") in path.parents and path.is_dir()
        assert sorted(p.name for p in entry.iterdir()) == before  # nothing written there
    finally:
        subprocess.run(["umount", str(ro)], capture_output=True)


def test_a_lost_publishing_race_adopts_the_winner(built, tmp_path):
    home = coreml_compile.cache_home(built.path)
    final = home / coreml_compile.tag("RACE1") / coreml_compile.COMPILED

    def racing(src: Path, dest: Path) -> Path:
        _Compiler()(src, final)  # another process publishes while we compile
        return _Compiler()(src, dest)

    path, _, how = coreml_compile.compiled(built.path, tmp_path, compile_fn=racing, build="RACE1")
    assert (path, how) == (final, "cached")
    assert not list(home.glob(".tmp-compiled-*"))


def test_other_packages_compile_into_the_run_folder_each_time(built, tmp_path):
    outside = tmp_path / "user" / "model.mlpackage"
    shutil.copytree(built.path, outside)  # an external model: no build-cache manifest
    assert coreml_compile.cache_home(outside) is None
    compiler = _Compiler()
    a = coreml_compile.compiled(outside, tmp_path / "work", compile_fn=compiler)
    b = coreml_compile.compiled(outside, tmp_path / "work", compile_fn=compiler)
    assert a[2] == b[2] == "temp" and a[0] != b[0] and compiler.calls == 2
    assert (tmp_path / "work") in a[0].parents
    # a manifest naming another key is not this entry's
    fake = tmp_path / "0123" / "model.mlpackage"
    shutil.copytree(built.path, fake)
    (fake.parent / "manifest.json").write_text(json.dumps({"key": "abcd"}))
    assert coreml_compile.cache_home(fake) is None


def test_compile_cached_is_null_where_nothing_was_compiled(built, tmp_path):
    """cases.compile_cached: true for a compiled model reused from the build cache, false
    for a fresh compile, NULL for an external .mlmodelc used as it is (the real prepare
    of the Core ML backend: it compiles nothing for one) and for other backends."""
    from anemll_spec.runner.stages import compile_cached

    compiled = Path(__file__).parent / "fixtures" / "build" / "lm_head_tiny.mlmodelc"
    prepared = coreml.backend().prepare(compiled, tmp_path / "work")
    assert prepared.compile_s is None and prepared.path == compiled
    assert compile_cached(True, prepared.compile_s) is None
    assert not (tmp_path / "work").exists()  # nothing compiled, nothing written
    compiler = _Compiler()
    _, first, _ = coreml_compile.compiled(built.path, tmp_path, compile_fn=compiler, build="CC1")
    _, again, _ = coreml_compile.compiled(built.path, tmp_path, compile_fn=compiler, build="CC1")
    assert first > 0 and again == 0.0  # compiled now, then reused
    assert compile_cached(True, first) is False and compile_cached(True, again) is True
    assert compile_cached(False, None) is None


def test_compile_notes_say_whether_load_ms_is_a_first_load():
    assert "first load" in coreml_compile.NOTES["temp"]
    assert "warm" in coreml_compile.NOTES["reused"]
    assert "read-only" in coreml_compile.NOTES["unwritable"]
    assert all(
        ("{path}" in n) == (k in ("reused", "cached")) for k, n in coreml_compile.NOTES.items()
    )


@pytest.mark.parametrize(
    "make, runtime",
    [("coreml.CoreMLBackend()", "coremltools.models.utils"), ("torch_.TorchBackend()", "torch")],
)
def test_a_backend_imports_its_runtime_when_made_not_when_timed(make, runtime):
    """Importing coremltools takes seconds: inside prepare or load it was counted as the
    first variant's compile_ms or load_ms. The runner makes its backends before it times
    anything, so making one must import the runtime (a fresh process, nothing imported)."""
    import subprocess
    import sys

    if runtime == "torch":
        pytest.importorskip("torch")
    code = (
        "import sys\nfrom anemll_spec.backends import coreml, torch_\n"
        f"assert {runtime!r} not in sys.modules\n{make}\nprint({runtime!r} in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "True"


def test_a_backend_asks_its_environment_questions_when_made_not_when_timed():
    """CompiledMLModel asks coremltools' _macos_version(), which spawns `sw_vers` once per
    process: unasked, the first variant's load_ms held that spawn. The coremltools
    version (a scan of the installed packages) is read once too, not in every load."""
    import subprocess
    import sys

    code = (
        "import importlib.metadata\nfrom anemll_spec.backends import coreml\n"
        "b = coreml.CoreMLBackend()\nfrom coremltools.models import utils\n"
        "print(utils._macos_version.cache_info().currsize, "
        "b._ct == importlib.metadata.version('coremltools'))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["1", "True"]


def test_no_compute_plan_before_macos_14_4_is_said_not_an_empty_plan(monkeypatch, tmp_path):
    """placements() raises, so the case notes "compute plan unavailable: ..." (an empty
    list read as a model with no ops placed anywhere)."""
    from anemll_spec.backends.base import Prepared

    monkeypatch.setattr(coreml, "macos_version", lambda: (14, 2))
    session = coreml.CoreMLSession(None, Prepared(tmp_path, tmp_path, None), "ALL")
    with pytest.raises(BackendError, match=r"needs macOS 14\.4 or later \(this Mac: 14\.2\)"):
        session.placements()


def test_a_multi_function_model_describes_the_function_that_runs(multifunction, capsys):
    """Its top-level I/O lists are empty: inspect showed none, predict synthesised none."""
    import coremltools as ct

    from anemll_spec.cli import main
    from anemll_spec.model_io import describe

    spec = ct.models.MLModel(str(multifunction), skip_model_load=True).get_spec()
    declared = {f.name: f for f in spec.description.functions}
    for name, io in (
        ("second", describe(multifunction)),
        ("first", describe(multifunction, "first")),
    ):
        want = declared[name]
        assert [t.name for t in io.inputs] == [f.name for f in want.input]
        assert [t.shape for t in io.outputs] == [
            tuple(f.type.multiArrayType.shape) for f in want.output
        ]
    assert describe(multifunction).outputs[0].shape[-1] == 256  # the default: 'second'
    with pytest.raises(InputError, match=r"no function 'third' \(has: first, second\)"):
        describe(multifunction, "third")
    assert main(["inspect", str(multifunction), "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert [t["name"] for t in shown["inputs"]] == [f.name for f in declared["second"].input]
    for function, width in ((None, 256), ("first", 128)):
        args = ["predict", str(multifunction), "--json"] + (
            ["--function", function] if function else []
        )
        assert main(args) == 0
        (out,) = json.loads(capsys.readouterr().out)["outputs"].values()
        assert out["shape"][-1] == width
