"""'did you mean' hints: the name meant over every allowed one (a prefix, a suffix, a shared
word before difflib's closest), and a key put in the wrong section names its section."""

from __future__ import annotations


def test_unknown_keys_get_the_field_they_mean(tmp_path, cli):
    """precision was told 'compression', warmup_iterations 'min_iterations', compute_unit
    'compute_precision' (a run field), min_cosine and seed only the allowed list."""
    path = tmp_path / "s.yaml"
    path.write_text(
        "iterations: 3\nname: t\nmodel:\n  family: lm_head\n  precision: float16\n"
        "  compute_unit: ALL\nrun:\n  warmup_iterations: 3\n  min_cosine: 0.9\n  seed: 1\n"
        "  tolerance: {warmups: 2}\n"
    )
    r = cli("validate", path)
    assert r.returncode == 2 and r.stdout == "" and "Traceback" not in r.stderr
    unknown = f"error: {path}:%s: unknown key %s"
    assert r.stderr.splitlines() == [
        unknown
        % ("1:1: iterations", "'iterations'; 'iterations' is a field of run, not the top level"),
        unknown % ("5:3: model.precision", "'precision'; did you mean 'compute_precision'?"),
        unknown
        % (
            "6:3: model.compute_unit",
            "'compute_unit'; did you mean 'compute_units'? It is a field of run, not model",
        ),
        unknown % ("8:3: run.warmup_iterations", "'warmup_iterations'; did you mean 'warmup'?"),
        unknown
        % (
            "9:3: run.min_cosine",
            "'min_cosine'; 'min_cosine' is a field of run.tolerance, not run",
        ),
        unknown % ("10:3: run.seed", "'seed'; 'seed' is a field of model, not run"),
        unknown
        % (
            "11:15: run.tolerance.warmups",
            "'warmups'; did you mean 'warmup'? It is a field of run, not run.tolerance",
        ),
    ]


def test_sweep_paths_get_the_path_they_mean(tmp_path, cli):
    path = tmp_path / "s.yaml"
    path.write_text(
        "name: t\nmodel: {family: lm_head}\nrun: {iterations: 3}\nsweep:\n  run.seed: [1, 2]\n"
        "  run.min_cosine: [0.9]\n  model.compute_unit: [ALL]\n  model.precision: [float16]\n"
    )
    r = cli("validate", path)
    assert r.returncode == 2 and r.stdout == ""
    hints = [line.split("; ", 1)[1] for line in r.stderr.splitlines()]
    assert hints == [
        "did you mean 'model.seed'?",
        "did you mean 'run.tolerance.min_cosine'?",
        "did you mean 'run.compute_units'?",
        "did you mean 'model.compute_precision'?",
    ]
