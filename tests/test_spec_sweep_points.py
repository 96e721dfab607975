"""Sweep points that are one case: `instances` applies with concurrency > 1 only, so
`instances: distinct` at concurrency 1 keys (and pairs) as the shared run it is, and a
sweep point that repeats another while its values make cases elsewhere is measured once."""

from __future__ import annotations

import json

MATMUL = "name: i\nmodel: {family: matmul, m: 8, k: 8, n: 8}\nrun: {backends: [numpy]%s}\n"
NOTE = (
    "1 sweep point is the same case as another and is measured once: run.concurrency=1, "
    "run.instances='distinct' (instances apply with concurrency > 1)"
)


def cases_of(tmp_path, text: str, name: str = "s.yaml"):
    from anemll_spec.spec import load_cases

    path = tmp_path / name
    path.write_text(text)
    return load_cases(path)


def test_distinct_instances_at_concurrency_one_key_as_shared(tmp_path):
    (shared,) = cases_of(tmp_path, MATMUL % "", "a.yaml")[1]
    (distinct,) = cases_of(tmp_path, MATMUL % ", instances: distinct", "b.yaml")[1]
    assert distinct.run.instances == "distinct"  # the spec as written is kept
    assert distinct.key == shared.key
    assert distinct.variant_key("numpy", None, "cpu") == shared.variant_key("numpy", None, "cpu")
    # with two instances it is measured differently: a key of its own
    (two,) = cases_of(tmp_path, MATMUL % ", concurrency: 2", "c.yaml")[1]
    (two_distinct,) = cases_of(tmp_path, MATMUL % ", concurrency: 2, instances: distinct")[1]
    assert two.key != two_distinct.key and two.key != shared.key


def test_a_point_that_repeats_another_is_measured_once(tmp_path, cli):
    text = MATMUL % "" + "sweep:\n  run.concurrency: [1, 2]\n  run.instances: [shared, distinct]\n"
    spec, cases = cases_of(tmp_path, text)
    # indices are the points' positions in the sweep: the kept ones keep theirs
    assert [(c.index, c.run.concurrency, c.run.instances) for c in cases] == [
        (0, 1, "shared"),
        (2, 2, "shared"),
        (3, 2, "distinct"),
    ]
    assert len({c.key for c in cases}) == 3
    assert spec.notes == [NOTE]
    path = tmp_path / "s.yaml"
    r = cli("validate", path)
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines() == [f"ok: {path} (i, 3 cases)", f"note: {NOTE}"]
    r = cli("plan", "--json", path)
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    assert [c["index"] for c in doc["cases"]] == [0, 2, 3]
    assert doc["notes"][0] == NOTE
    r = cli("plan", path)
    assert r.stdout.splitlines()[1] == NOTE


def test_a_value_that_makes_no_case_of_its_own_stays_an_error(tmp_path, cli):
    """At concurrency 1 alone, `distinct` repeats `shared` at every point: a mistake."""
    path = tmp_path / "s.yaml"
    path.write_text(MATMUL % "" + "sweep:\n  run.instances: [shared, distinct]\n")
    r = cli("validate", path)
    assert r.returncode == 2
    assert r.stderr == (
        f"error: {path}:5:27: sweep.run.instances[1]: 'distinct' makes the same case as "
        "'shared' (both resolve to the same settings): each value must make its cases once "
        "(instances apply with concurrency > 1)\n"
    )


def test_sweep_points_of_a_published_model_are_told_apart_in_plan(tmp_path, cli):
    """Each point is the published llama_lm_head (model_name, which views pair on, stays
    that); plan's case column adds the sweep's values, or four rows looked the same."""
    path = tmp_path / "pub.yaml"
    path.write_text(
        "name: a\nmodel: {family: lm_head}\nrun: {backends: [numpy]}\n"
        "sweep:\n  model.seed: [0, 1]\n  run.fp16_reference: [false, true]\n"
    )
    doc = json.loads(cli("plan", "--json", path).stdout)
    assert [c["model_name"] for c in doc["cases"]] == ["llama_lm_head"] * 4
    labels = [
        "llama_lm_head[seed=0,fp16_reference=False]",
        "llama_lm_head[seed=0,fp16_reference=True]",
        "llama_lm_head[seed=1,fp16_reference=False]",
        "llama_lm_head[seed=1,fp16_reference=True]",
    ]
    assert [c["label"] for c in doc["cases"]] == labels
    rows = cli("plan", path).stdout.splitlines()[3:7]
    assert [row.split()[1] for row in rows] == labels
    (plain,) = json.loads(cli("plan", "--json", "specs/lm_head.yaml").stdout)["cases"]
    assert plain["label"] == plain["model_name"] == "llama_lm_head"  # no sweep: as before


def test_a_run_with_a_dropped_point_exports_and_imports(cli, tmp_path):
    """Its cases keep their sweep positions (0, 2, 3: point 1 was dropped); import checks
    each stored case against the spec's case of that index, not of that list position."""
    import duckdb

    spec = tmp_path / "s.yaml"
    spec.write_text(
        MATMUL % ", warmup: 1, iterations: 3, dispatch_floor: false, verify: false"
        + "sweep: {run.concurrency: [1, 2], run.instances: [shared, distinct]}\n"
    )
    src, dest, out = tmp_path / "src.duckdb", tmp_path / "dest.duckdb", tmp_path / "b.parquet"
    r = cli("bench", spec, "--store", src)
    assert r.returncode == 0, r.stderr
    assert cli("export", "--store", src, "--out", out).returncode == 0
    r = cli("import", out, "--store", dest)
    assert r.returncode == 0, r.stderr
    query = "SELECT case_index, case_key, status FROM cases ORDER BY case_index"
    rows = {}
    for store in (src, dest):
        con = duckdb.connect(str(store), read_only=True)
        rows[store] = con.execute(query).fetchall()
        con.close()
    assert [i for i, _, _ in rows[src]] == [0, 2, 3]
    assert rows[dest] == rows[src]


def test_points_that_differ_only_where_no_backend_looks_are_measured_once(tmp_path, capsys):
    """numpy uses neither compute units nor a device: CPU_ONLY/ALL x cpu/mps are one
    measurement (one variant key), which bench timed four times under four labels. Now the
    first point is measured and the three others are dropped, said by validate, plan, bench."""
    import duckdb

    from anemll_spec.cli import main

    path, store = tmp_path / "s.yaml", tmp_path / "s.duckdb"
    path.write_text(
        MATMUL % ", warmup: 1, iterations: 3, dispatch_floor: false, verify: false"
        + "sweep: {run.compute_units: [CPU_ONLY, ALL], run.device: [cpu, mps]}\n"
    )
    note = (
        "3 sweep points measure the same variants as others here, measured once: "
        "run.compute_units='CPU_ONLY', run.device='mps'; run.compute_units='ALL', "
        "run.device='cpu'; run.compute_units='ALL', run.device='mps' (once backends are "
        "resolved, in any order; compute units apply to coreml only, device to torch only)"
    )
    assert main(["validate", str(path)]) == 0
    assert capsys.readouterr().out.splitlines() == [f"ok: {path} (i, 1 case)", f"note: {note}"]
    assert main(["plan", "--json", str(path)]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert [c["index"] for c in doc["cases"]] == [0] and doc["notes"] == [note]
    assert main(["bench", str(path), "--store", str(store)]) == 0
    assert note in capsys.readouterr().err
    con = duckdb.connect(str(store), read_only=True)
    rows = con.execute("SELECT case_index, backend, compute_units, variant_key FROM cases")
    (row,) = rows.fetchall()
    con.close()
    case = cases_of(tmp_path, path.read_text(), "t.yaml")[1][0]
    assert row == (0, "numpy", None, case.variant_key("numpy", None, None))


def test_the_same_backends_or_compute_units_in_another_order_are_one_case(tmp_path, cli):
    """`[numpy, torch]` and `[torch, numpy]` measure the same variants: the later value
    makes no case of its own, so it is refused as the same case, as `[CPU_ONLY]` next to
    `CPU_ONLY` is (plan showed 2 cases and bench stored each variant twice)."""
    path = tmp_path / "s.yaml"
    for entry, col, said in (
        ("run.backends: [[numpy, torch], [torch, numpy]]", 34, "['torch', 'numpy']"),
        ("run.compute_units: [[ALL, CPU_ONLY], [CPU_ONLY, ALL]]", 40, "['CPU_ONLY', 'ALL']"),
    ):
        path.write_text(MATMUL % "" + f"sweep:\n  {entry}\n")
        r = cli("validate", path)
        assert r.returncode == 2 and r.stdout == ""
        first = said.replace("[", "").replace("]", "").split(", ")
        assert r.stderr == (
            f"error: {path}:5:{col}: sweep.{entry.split(':')[0]}[1]: {said} makes the same "
            f"case as [{', '.join(reversed(first))}] (both resolve to the same settings): "
            "each value must make its cases once\n"
        )


def test_points_whose_backends_resolve_to_the_same_set_are_measured_once(tmp_path, capsys):
    """[auto, torch] (auto -> numpy here) and [torch, numpy] are one pair of variants in
    another order: measured once, with the note; bench stores each variant once."""
    import duckdb

    from anemll_spec.cli import main

    path, store = tmp_path / "s.yaml", tmp_path / "s.duckdb"
    path.write_text(
        MATMUL % ", warmup: 1, iterations: 3, dispatch_floor: false, verify: false"
        + "sweep: {run.backends: [[auto, torch], [torch, numpy]]}\n"
    )
    note = (
        "1 sweep point measures the same variants as another here, measured once: "
        "run.backends=['torch', 'numpy'] (once backends are resolved, in any order; "
        "compute units apply to coreml only, device to torch only)"
    )
    assert main(["validate", str(path)]) == 0
    assert capsys.readouterr().out.splitlines() == [f"ok: {path} (i, 1 case)", f"note: {note}"]
    assert main(["bench", str(path), "--store", str(store)]) == 0
    assert note in capsys.readouterr().err
    con = duckdb.connect(str(store), read_only=True)
    rows = con.execute("SELECT case_index, backend, variant_key FROM cases ORDER BY backend")
    found = rows.fetchall()
    con.close()
    assert [(i, b) for i, b, _ in found] == [(0, "numpy"), (0, "torch")]
    assert len({k for _, _, k in found}) == 2


def test_a_sweep_over_the_limit_still_reports_every_other_problem(tmp_path, cli):
    """The size check raised alone: a typo, a bad sweep path, a bad base value and a bad
    sweep value came out only once --max-cases allowed the sweep. Now one validate says all
    of them, checking each sweep value once (not the 1,000 x 2 points)."""
    seeds = ", ".join(map(str, range(1000)))
    path = tmp_path / "s.yaml"
    path.write_text(
        "name: t\nmodel: {family: lm_head, hidden_size: 256, vocab_size: 2048, chunks: 3}\n"
        f"run: {{iteratons: 50}}\nsweep:\n  model.sed: [1, 2]\n  model.seed: [{seeds}]\n"
        "  run.warmup: [1, -2]\n"
    )
    r = cli("validate", path)
    assert r.returncode == 2 and r.stdout == "" and "Traceback" not in r.stderr
    assert r.stderr.splitlines() == [
        f"error: {path}:2:70: model.chunks: vocab_size 2048 does not split into 3 equal "
        "chunks (2048 % 3 = 2)",
        f"error: {path}:3:7: run.iteratons: unknown key 'iteratons'; did you mean 'iterations'?",
        f"error: {path}:5:3: sweep: sweep expands to 2,000 cases (1000 x 2), over the limit "
        "of 256; pass --max-cases 2000 to allow it",
        f"error: {path}:5:3: sweep.model.sed: sweep path 'model.sed' does not exist: no field "
        "'sed' in model",  # model.seed is swept already: not "did you mean" it
        f"error: {path}:7:19: run.warmup: must be >= 0, got -2 (at sweep points such as "
        "model.seed=0, run.warmup=-2)",
    ]
    r = cli("validate", path, "--max-cases", "2000")  # the same problems, counted per point
    assert "over the limit" not in r.stderr
    assert "(at 1000 sweep points, e.g. model.seed=0, run.warmup=-2)" in r.stderr


def test_a_value_listed_three_times_is_said_at_each_later_time_as_written(tmp_path, cli):
    """[true, True, TRUE] was one error, at [1], 'True is listed twice' (Python's True,
    not the spec's text): each later time is said now, with how many times and the
    spec's own spelling."""
    path = tmp_path / "s.yaml"
    path.write_text(
        MATMUL % ", compute_units: [ALL, ALL, ALL]"
        + "sweep:\n  run.verify: [true, True, TRUE]\n  model.seed: [1, 0x1, 1, '1']\n"
    )
    r = cli("validate", path)
    assert r.returncode == 2 and r.stdout == ""
    once = ": each value makes its cases once"
    assert r.stderr.splitlines() == [
        f"error: {path}:3:47: run.compute_units[1]: 'ALL' is listed 3 times",
        f"error: {path}:3:52: run.compute_units[2]: 'ALL' is listed 3 times",
        f"error: {path}:5:22: sweep.run.verify[1]: True (the same as true) is listed 3 times{once}",
        f"error: {path}:5:28: sweep.run.verify[2]: TRUE (the same as true) is listed 3 times{once}",
        f"error: {path}:6:19: sweep.model.seed[1]: 0x1 (the same as 1) is listed 3 times{once}",
        f"error: {path}:6:24: sweep.model.seed[2]: 1 is listed 3 times{once}",
    ]
