"""What the charts and the report say about where rows came from and what they are:
provenance and versions in the report, measured (own, imported, pushed) rows named as
such, chip names as the views name them, and messages about the user's own input.

Every value is read back from the store (plain SQL over its tables and views) or from a
real bundle the real export wrote and the real import read. Samples are SYNTHETIC
(seeded), not measurements.
"""

from __future__ import annotations

import html
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).parent / "fixtures" / "chart"))
import chart_energy as ce  # noqa: E402
import chart_sustained as cs  # noqa: E402
from db_util import dict_rows
from fixtures.store.synth import case, host, run, samples_ns  # noqa: E402

from anemll_spec.chart import build_chart  # noqa: E402
from anemll_spec.chart.factors import known_models  # noqa: E402
from anemll_spec.chart.factors_draw import LABEL_CHARS  # noqa: E402
from anemll_spec.chart.source import NoData, Options, connect  # noqa: E402
from anemll_spec.store import append_case, begin_run, finish_run  # noqa: E402
from anemll_spec.store.exporting import export_bundle  # noqa: E402
from anemll_spec.store.importing import import_bundles  # noqa: E402

# A CUDA machine as a Linux host records it: the OS text long, the GPU apart from the CPU
GPU_HOST = host(
    hostname="gpu-box",
    chip=None,
    cpu_model="Intel(R) Xeon(R) Processor",
    os_name="Linux",
    os_version="Ubuntu 24.04.3 LTS",
    gpu="NVIDIA H100 80GB HBM3",
    gpu_driver="580.159.04",
    cuda_version="13.0",
    torch_version="2.11.0+cu130",
)


raw = dict_rows


def gpu_run(path: Path, seed: int, model: str = "llama_lm_head") -> str:
    """A torch-on-CUDA run of `model` (synthetic samples) on GPU_HOST: the shipped spec's
    for llama_lm_head, else a run without a spec file, its case keyed by its name."""
    rng = np.random.default_rng(seed)
    torch = {"backend": "torch", "compute_units": None, "device": "cuda"}
    wall = samples_ns(rng, 200, 0.38)
    if model == "llama_lm_head":
        run_id = begin_run(path, run(), GPU_HOST)
        row = case(model=model, wall=wall, **torch)
    else:
        run_id = begin_run(path, {"spec_name": model, "command": "synthetic"}, GPU_HOST)
        row = case(key=model, model=model, wall=wall, **torch)
    append_case(path, run_id, row, wall)
    finish_run(path, run_id, "finished")
    return run_id


def imported(tmp_path: Path, source: Path, dest: Path) -> None:
    """`source` exported to a bundle and imported into `dest` (real export and import)."""
    bundle = tmp_path / f"{source.stem}.parquet"
    export_bundle(str(source), bundle)
    import_bundles(str(dest), [bundle])


@pytest.fixture(scope="module")
def mixed(tmp_path_factory) -> dict:
    """An own numpy run of llama_lm_head on a Linux host, and an imported torch-on-CUDA
    run of llama_lm_head and of a model no table publishes."""
    tmp = tmp_path_factory.mktemp("mixed")
    src, path = tmp / "gpu.duckdb", tmp / "results.duckdb"
    out = {"path": path, "gpu": gpu_run(src, 1)}
    gpu_run(src, 2, "custom_head")
    imported(tmp, src, path)
    rng = np.random.default_rng(2)
    linux = host(hostname="linux-box", chip=None, cpu_model="Intel(R) Xeon(R) Platinum 8375C",
                 os_name="Linux", os_version="Ubuntu 22.04.5 LTS")  # fmt: skip
    out["own"] = begin_run(path, run(), linux)
    wall = samples_ns(rng, 30, 180.0)
    append_case(path, out["own"], case(wall=wall, backend="numpy", compute_units=None,
                                       device="cpu"), wall)  # fmt: skip
    finish_run(path, out["own"], "finished")
    return out


def test_report_of_an_imported_run_names_its_provenance_spec_hash_and_cuda(cli, mixed, tmp_path):
    page_path = tmp_path / "rep.html"
    r = cli("report", mixed["gpu"], "--store", mixed["path"], "--out", page_path)
    assert r.returncode == 0, r.stderr
    page = page_path.read_text()
    (res,) = raw(mixed["path"], "SELECT DISTINCT provenance FROM results WHERE run_id = ?",
                 [mixed["gpu"]])  # fmt: skip
    assert res["provenance"].startswith("imported from gpu.parquet (sha256 ")
    (stored,) = raw(
        mixed["path"],
        "SELECT r.spec_sha256, h.gpu_driver, h.cuda_version FROM runs r JOIN hosts h "
        "USING (host_id) WHERE run_id = ?",
        [mixed["gpu"]],
    )
    assert len(stored["spec_sha256"]) == 64
    for label, value in (
        ("provenance", res["provenance"]),
        ("spec sha256", stored["spec_sha256"]),
        ("GPU driver", stored["gpu_driver"]),
        ("CUDA", stored["cuda_version"]),
    ):
        assert f"<tr><th>{label}</th><td>{html.escape(value)}</td></tr>" in page, label
    # the embedded factors chart says 'measured', as every chart does: this row is imported
    assert "Measured rows: this run only." in page and "Own rows" not in page
    # a run measured here says so; its host had no CUDA: no empty rows
    page_path = tmp_path / "own.html"
    assert cli("report", mixed["own"], "--store", mixed["path"], "--out", page_path).returncode == 0
    page = page_path.read_text()
    assert "<tr><th>provenance</th><td>measured here</td></tr>" in page
    assert "<th>CUDA</th>" not in page and "<th>GPU driver</th>" not in page


def test_compare_chart_of_two_machines_says_they_differ(tmp_path):
    store = tmp_path / "s.duckdb"
    rng = np.random.default_rng(3)
    ids = []
    for name in ("mac-a", "mac-b"):
        run_id = begin_run(store, run(), host(hostname=name))
        wall = samples_ns(rng, 60, 9.0)
        append_case(store, run_id, case(wall=wall), wall)
        finish_run(store, run_id, "finished")
        ids.append(run_id)
    spec = build_chart("compare", str(store), Options(runs=tuple(ids)))
    sub = spec["title"]["subtitle"]
    assert any(line.startswith("Note: A and B differ in hostname: ") for line in sub), sub
    assert "Hosts (A then B): hostname: mac-a then mac-b." in sub
    # the same machine twice: no note
    run_id = begin_run(store, run(), host(hostname="mac-b"))
    wall = samples_ns(rng, 60, 9.0)
    append_case(store, run_id, case(wall=wall), wall)
    finish_run(store, run_id, "finished")
    spec = build_chart("compare", str(store), Options(runs=(ids[1], run_id)))
    assert not any("differ" in line for line in spec["title"]["subtitle"])


def _sweep_run(store: Path, statuses: list[str]) -> str:
    rng = np.random.default_rng(4)
    run_id = begin_run(store, {"spec_name": "layouts", "command": "synthetic"}, host())
    for i, (layout, status) in enumerate(zip(("nchw", "nhwc", "nc1hwc0"), statuses, strict=False)):
        params = {"model.layout": layout}
        name = f"layouts[layout={layout}]"
        if status == "ok":
            wall = samples_ns(rng, 30, 2.0 + i)
            row = case(key=name, model=name, params=params, wall=wall, case_index=i)
        else:
            wall = np.array([], dtype=np.int64)
            row = case(key=name, model=name, params=params, case_index=i, status="failed",
                       error="the layout is not supported")  # fmt: skip
        append_case(store, run_id, row, wall)
    finish_run(store, run_id, "failed")
    return run_id


def test_a_sweep_whose_cases_failed_says_what_it_swept(tmp_path):
    store = tmp_path / "s.duckdb"
    all_failed = _sweep_run(store, ["failed", "failed", "failed"])
    with pytest.raises(NoData) as exc:
        build_chart("sweep", str(store), Options(runs=(all_failed,)))
    assert str(exc.value) == (
        f"run {all_failed} swept model.layout but has fewer than 2 ok cases to draw (3 failed)"
    )
    one_ok = _sweep_run(store, ["ok", "failed", "failed"])
    with pytest.raises(NoData, match=r"swept model\.layout but has fewer than 2 ok cases to "
                       r"draw \(2 failed\)"):  # fmt: skip
        build_chart("sweep", str(store), Options(runs=(one_ok,)))
    # a --where that leaves one ok case of a sweep says what was swept, and the filter
    two_ok = _sweep_run(store, ["ok", "ok", "failed"])
    where = "json_extract_string(params, '$.\"model.layout\"') = 'nchw'"  # one of the two ok cases
    with pytest.raises(NoData) as exc:
        build_chart("sweep", str(store), Options(runs=(two_ok,), where=where))
    assert f"run {two_ok} swept model.layout but has fewer than 2 ok cases" in str(exc.value)
    assert "--where" in str(exc.value)
    # and so does --model, which names one case of a sweep
    with pytest.raises(NoData, match=f"run {two_ok} swept model.layout but has fewer than 2"):
        build_chart("sweep", str(store), Options(runs=(two_ok,), model="layouts[layout=nchw]"))
    # --param of a parameter no case has is still refused with what was swept
    with pytest.raises(Exception, match=r"not a swept parameter here \(swept: model\.layout\)"):
        build_chart("sweep", str(store), Options(runs=(all_failed,), param="model.nope"))
    # a run that swept nothing still says so
    plain = begin_run(store, run(), host())
    wall = samples_ns(np.random.default_rng(5), 30, 9.0)
    append_case(store, plain, case(wall=wall), wall)
    finish_run(store, plain, "finished")
    with pytest.raises(NoData, match="swept no parameter"):
        build_chart("sweep", str(store), Options(runs=(plain,)))


def test_factors_by_os_names_measured_runs_and_keeps_each_labels_backend(mixed):
    spec = build_chart("factors", str(mixed["path"]), Options(by="os"))
    rows = spec["datasets"]["factors"]
    by_source = {r["source"]: r for r in rows if r["model"] == "llama_lm_head"}
    assert set(by_source) == {"own", "imported"}  # an imported run is drawn by os
    own, imp = by_source["own"], by_source["imported"]
    assert (own["backend"], imp["backend"], imp["device"]) == ("numpy", "torch", "cuda")
    assert own["label"].endswith(" (numpy)") and imp["label"].endswith(" (torch cuda)")
    assert imp["label"].startswith("imported: H100 80GB HBM3 · Linux") and "…" in imp["label"]
    for r in rows:
        assert len(r["label"]) <= LABEL_CHARS
    sub = spec["title"]["subtitle"]
    assert sub[0].startswith("Measured runs by OS version") and "Own runs" not in " ".join(sub)


def test_known_models_count_imported_runs_as_measured(mixed):
    """Published models first: an imported run's model is not one of them."""
    con = connect(str(mixed["path"]))
    try:
        models = known_models(con)
        published = {m for (m,) in con.execute("SELECT DISTINCT model FROM reference").fetchall()}
    finally:
        con.close()
    assert "custom_head" in models
    first = models[: len(published & set(models))]
    assert set(first) == published & set(models) and "custom_head" not in first


def test_energy_label_of_a_cuda_row_is_the_views_chip(tmp_path):
    path = tmp_path / "e.duckdb"
    ce.gpu_run(path)
    (view,) = raw(path, "SELECT chip FROM energy_factors WHERE device = 'cuda'")
    assert view["chip"] == "H100 80GB HBM3"  # the view's name: the GPU without 'NVIDIA'
    spec = build_chart("energy", str(path), Options())
    (row,) = spec["datasets"]["energy"]
    assert row["label"] == f"own: {view['chip']}"
    # the name the chart shows is the one --where and --baseline take
    shown = row["label"].removeprefix("own: ")
    spec = build_chart("energy", str(path), Options(where=f"chip = '{shown}'", baseline=shown))
    (row,) = spec["datasets"]["energy"]
    assert row["energy_factor"] == pytest.approx(1.0)


def test_sustained_subtitle_gives_the_throttling_clause_a_line(tmp_path):
    path = tmp_path / "s.duckdb"
    cs.sustained_run(path)
    spec = build_chart("sustained", str(path), Options())
    cases = {c["case_id"]: c for c in raw(path, "SELECT * FROM cases")}
    labels = {w["label"]: w["case_id"] for w in spec["datasets"]["windows"]}
    seen = set()
    for part in spec["vconcat"]:
        c = cases[labels[part["title"]["text"]]]
        want = {None: "Throttling not read (no thermal reading).", True: "Throttled.",
                False: "Not throttled."}[c["sustained_throttled"]]  # fmt: skip
        assert want in part["title"]["subtitle"], part["title"]["subtitle"]
        seen.add(want)
    assert seen == {"Throttling not read (no thermal reading).", "Throttled."}


def test_where_syntax_error_quotes_the_users_filter(cli, mixed, tmp_path):
    r = cli("chart", "factors", "--where", "chip = 'M1 Max", "--store", mixed["path"],
            "--out", tmp_path / "x")  # fmt: skip
    assert r.returncode == 2
    (line,) = r.stderr.strip().splitlines()
    assert line.startswith('anemll-spec chart: error: --where "chip = \'M1 Max": ')
    assert "unterminated quoted string" in line and "bandwidth" not in line
    assert not (tmp_path / "x").exists()  # nothing written
    # an unknown column keeps the binder's words about the column
    r = cli("chart", "factors", "--where", "nosuch = 1", "--store", mixed["path"],
            "--out", tmp_path / "y")  # fmt: skip
    assert r.returncode == 2 and 'column "nosuch" not found' in r.stderr


def test_a_factor_below_one_never_reads_as_one_and_sql_agrees():
    """0.996 printed '1x' (two significant digits round it up) beside '1.0x' for 1: a
    slower figure read as no difference. The views' labels and the charts' agree."""
    import duckdb

    from anemll_spec.chart.style import fmt_factor
    from anemll_spec.store.sqlparts import factor_label

    con = duckdb.connect()
    want = {
        2.345: "2.3x", 1.0: "1.0x", 0.996: "0.996x", 0.9996: "0.9996x", 0.88: "0.88x",
        0.023: "0.023x", 0.5: "0.5x", 0.99999999: "0.999999x",
    }  # fmt: skip
    for value, label in want.items():
        (sql,) = con.execute(f"SELECT {factor_label(f'{value!r}::DOUBLE')}").fetchone()
        assert fmt_factor(value) == sql == label, value
    assert con.execute(f"SELECT {factor_label('NULL::DOUBLE')}").fetchone() == (None,)
