"""Each panel of a multi-panel chart draws its own case's data.

Rendered by vl-convert (the renderer behind our PNG/SVG) and read back from the SVG's
aria labels, so this checks what is drawn, not the spec we meant to write. Panels built
from one template once shared view names, and Vega then drew the last case's samples
in every panel.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).parent / "fixtures" / "chart"))
import chart_synthetic as syn  # noqa: E402

from anemll_spec.chart import build_chart  # noqa: E402
from anemll_spec.chart.source import Options  # noqa: E402

POINT = re.compile(r'aria-label="[^"]*?latency \(ms\): ([0-9.e-]+); case: ([^;"]+)')


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    path = tmp_path_factory.mktemp("panels") / "results.duckdb"
    return path, syn.lm_head_run(path, seed=3)


def test_timeline_panels_draw_their_own_samples(store):
    import duckdb
    import vl_convert

    path, run_id = store
    svg = vl_convert.vegalite_to_svg(build_chart("timeline", str(path), Options(runs=(run_id,))))
    drawn: dict[str, list[float]] = {}
    for ms, case in POINT.findall(svg):
        drawn.setdefault(case.split(" · ")[0].strip(), []).append(float(ms))
    con = duckdb.connect(str(path), read_only=True)
    rows = con.execute(
        "SELECT c.model_name, s.wall_ns / 1e6 FROM samples s JOIN cases c USING (case_id) "
        "WHERE c.run_id = ?",
        [run_id],
    ).fetchall()
    con.close()
    stored: dict[str, np.ndarray] = {}
    for model, ms in rows:
        stored.setdefault(model, []).append(ms)
    assert len(stored) == 2 and set(drawn) == set(stored)
    for model, values in drawn.items():
        mine = np.array(stored[model])
        assert all(np.isclose(mine, v, rtol=1e-5).any() for v in values), model
