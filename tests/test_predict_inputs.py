"""`predict --inputs x.npz`: an .npz is untrusted input; each member's .npy header is
read and checked (its claimed size against the member's bytes and the memory available)
before numpy allocates the array it claims."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import numpy as np
import pytest
from fixtures.build.make_compiled import HERE

from anemll_spec.cli import main as cli_main

MODEL = HERE / "lm_head_tiny.mlmodelc"


def _npz_claiming(path: Path, shape: tuple[int, ...], version: tuple[int, int]) -> Path:
    """An .npz whose one member's header claims `shape` (float32) over 16 bytes of data."""
    buf = io.BytesIO()
    header = {"descr": "<f4", "fortran_order": False, "shape": shape}
    if version == (1, 0):
        np.lib.format.write_array_header_1_0(buf, header)
    else:
        np.lib.format.write_array_header_2_0(buf, header)
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("hidden_states.npy", buf.getvalue() + b"\0" * 16)
    return path


@pytest.mark.parametrize("version", [(1, 0), (2, 0)])
def test_a_member_claiming_more_than_it_holds_is_refused_before_allocating(
    tmp_path, capsys, version
):
    """A 300-byte file claiming 4 TiB: numpy allocated first, MemoryError traceback."""
    npz = _npz_claiming(tmp_path / "huge.npz", (1 << 40,), version)
    assert cli_main(["predict", str(MODEL), "--inputs", str(npz)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    assert "member 'hidden_states.npy' claims shape (1099511627776,) of float32" in err, err
    assert "(4,398,046,511,104 bytes) but holds 16 bytes" in err, err


def test_a_member_larger_than_memory_is_refused(tmp_path, capsys, monkeypatch):
    """A member that does hold its bytes (here, 64 of them) but more than memory allows."""
    import anemll_spec.mlmodel.limits as limits

    npz = tmp_path / "x.npz"
    np.savez(npz, hidden_states=np.zeros((1, 1, 16), np.float32))
    monkeypatch.setattr(limits, "available_bytes", lambda: 32)
    assert cli_main(["predict", str(MODEL), "--inputs", str(npz)]) == 2
    err = capsys.readouterr().err
    assert "member 'hidden_states.npy': reading it needs 0.0 MiB of memory" in err, err


def test_a_sound_npz_is_read(tmp_path, capsys):
    npz = tmp_path / "x.npz"
    np.savez_compressed(npz, hidden_states=np.ones((1, 1, 64), np.float16))
    out = tmp_path / "out.npz"
    assert cli_main(["predict", str(MODEL), "--inputs", str(npz), "--out", str(out)]) == 0
    with np.load(out) as got:
        assert got["logits1"].shape == (1, 1, 32) and np.isfinite(got["logits1"]).all()
