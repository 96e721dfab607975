"""The published anemll-bench results (store/reference/*.csv), loaded into the store.

Named "published" in code so that "reference" means one thing (the reference
executor); the SQL table keeps its name `reference` (users query it) and so does the
data folder store/reference/.

The CSV holds facts only, one published number a row. We add the numbers that follow
from them (fp16 latency = weight bytes / published GB/s; LUT6 bandwidth = weight
bytes / published ms) as rows with derived = true and a note saying how, so a chart
can put own and published results on the same axes without hiding what was measured.
"""

from __future__ import annotations

import csv
import hashlib
from pathlib import Path
from typing import Any

# The repo's store/ folder in a checkout; a wheel carries it as anemll_spec/_data/.
_CHECKOUT_STORE = Path(__file__).resolve().parents[2] / "store"
_WHEEL_STORE = Path(__file__).resolve().parents[1] / "_data"
STORE_DIR = _CHECKOUT_STORE if (_CHECKOUT_STORE / "reference").is_dir() else _WHEEL_STORE
PUBLISHED_DIR = STORE_DIR / "reference"  # the folder keeps its name (data, docs)
QUERIES_DIR = STORE_DIR / "queries"
PUBLISHED_CSV = PUBLISHED_DIR / "anemll_bench_published.csv"

# What every comparison with the published figures says beside them (share, report).
CAVEAT = (
    "The published tables' GB/s belong to llama_lm_head (fp16) and their ms to "
    "llama_lm_head_lut6; the other figure of each is derived (weight bytes / the published "
    "one). Published latency is a mean of time.time() samples; ours is a median."
)

# Weight bytes on disk of the published models (store/reference/README.md).
MODEL_WEIGHT_BYTES = {"llama_lm_head": 1_050_673_728, "llama_lm_head_lut6": 396_055_616}

# Bump when the derivation below changes, so stores reload their published rows.
LOADER_VERSION = "1"

CSV_COLUMNS = ["chip", "model", "metric", "value", "unit", "source", "note"]


def published_rows(path: Path = PUBLISHED_CSV) -> list[dict]:
    """Published rows (derived=False) followed by the rows derived from them."""
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        if reader.fieldnames != CSV_COLUMNS:
            raise ValueError(f"{path}: expected columns {CSV_COLUMNS}, got {reader.fieldnames}")
        rows: list[dict[str, Any]] = [
            {**r, "value": float(r["value"]), "derived": False} for r in reader
        ]
    have = {(r["source"], r["chip"], r["model"], r["metric"]) for r in rows}
    derived = []
    for r in rows:
        nbytes = MODEL_WEIGHT_BYTES.get(r["model"])
        if nbytes is None:
            continue
        if r["metric"] == "bandwidth_gbps":
            other, unit = "latency_ms", "ms"
            value = nbytes / (r["value"] * 1e6)  # bytes / (GB/s) -> ms
            how = f"derived: {nbytes:,} weight bytes / {r['value']:g} GB/s (published)"
        else:
            other, unit = "bandwidth_gbps", "GB/s"
            value = nbytes / (r["value"] * 1e6)  # bytes / ms -> GB/s
            how = f"derived: {nbytes:,} weight bytes / {r['value']:g} ms (published)"
        key = (r["source"], r["chip"], r["model"], other)
        if key in have:
            continue
        have.add(key)
        derived.append(
            {
                **r,
                "metric": other,
                "value": value,
                "unit": unit,
                "note": f"{how}; from: {r['note']}",
                "derived": True,
            }
        )
    return rows + derived


def fingerprint(path: Path = PUBLISHED_CSV) -> str:
    """Changes when the CSV or the derivation changes (stores then reload)."""
    data = path.read_bytes() if path.is_file() else b""
    return hashlib.sha256(LOADER_VERSION.encode() + b"\0" + data).hexdigest()


def reload(con, path: Path = PUBLISHED_CSV) -> int:
    """Replace the rows of the `reference` table (inside the caller's transaction);
    returns the count."""
    rows = published_rows(path)
    con.execute("DELETE FROM reference")
    con.executemany(
        "INSERT INTO reference (chip, model, metric, value, unit, source, note, derived) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        [[r[k] for k in [*CSV_COLUMNS, "derived"]] for r in rows],
    )
    return len(rows)
