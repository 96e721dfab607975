"""Helpers for the build tests: small typed models, and reading packages back from disk.

`lm_head(...)` etc. return the spec's typed model (validated like a spec's model section);
`*_fields(...)` the plain fields, for tests that show what validation refuses."""

from __future__ import annotations

import struct
from pathlib import Path

COMMON = {
    "dtype": "float16",
    "compute_precision": "float16",
    "deployment_target": "iOS18",
    "compression": "none",
    "seed": 0,
    "weight_std": 0.02,
    "batch": 1,
}


def lm_head_fields(**kw) -> dict:
    return {
        **COMMON,
        "family": "lm_head",
        "hidden_size": 256,
        "vocab_size": 512,
        "chunks": 2,
        "layout": "conv",
        "seq_len": 1,
        **kw,
    }


def ffn_fields(**kw) -> dict:
    return {
        **COMMON,
        "family": "ffn",
        "hidden_size": 128,
        "intermediate_size": 384,
        "seq_len": 4,
        "rms_norm_eps": 1e-5,
        "layout": "conv",
        **kw,
    }


def attention_fields(**kw) -> dict:
    return {
        **COMMON,
        "family": "attention",
        "hidden_size": 256,
        "heads": 4,
        "kv_heads": 2,
        "head_dim": 64,
        "context_length": 64,
        "impl": "sdpa",
        "rope_theta": 500000.0,
        "seq_len": 1,
        **kw,
    }


def matmul_fields(**kw) -> dict:
    return {**COMMON, "family": "matmul", "m": 64, "k": 128, "n": 96, **kw}


def model(fields: dict):
    """The typed model of these fields (pydantic's ValidationError if the spec refuses them)."""
    from anemll_spec.spec.families import FAMILIES

    return FAMILIES[fields["family"]].model_validate(fields)


def updated(m, **changes):
    """The model with some fields changed, validated again (as a spec would be)."""
    return model({**m.to_json(), **changes})


def lm_head(**kw):
    return model(lm_head_fields(**kw))


def ffn(**kw):
    return model(ffn_fields(**kw))


def attention(**kw):
    return model(attention_fields(**kw))


def matmul(**kw):
    return model(matmul_fields(**kw))


def external(path, checked: bool = True):
    """An external model. checked=False skips the spec's own checks (the path exists, its
    suffix), as when the file changed after the spec was validated: the builder still
    checks what it reads."""
    from anemll_spec.spec.families import External

    if checked:
        return model({"family": "external", "path": str(path)})
    return External.model_construct(family="external", path=str(path))


def weight_bin(pkg: Path) -> Path:
    return Path(pkg) / "Data" / "com.apple.CoreML" / "weights" / "weight.bin"


def expected_weight_bin_size(blob_nbytes: list[int]) -> int:
    """MIL blob storage: 64-byte file header + per blob (64-byte record + data padded to 64),
    in file order; the file ends right after the last blob's data (no padding there)."""
    if not blob_nbytes:
        return 64
    return 64 + sum(64 + -(-n // 64) * 64 for n in blob_nbytes[:-1]) + 64 + blob_nbytes[-1]


def blob_records(path: Path) -> list[tuple[int, int, int]]:
    """(data type, size, data offset) of each blob, read straight from the file."""
    data = Path(path).read_bytes()
    count = struct.unpack_from("<I", data)[0]
    out, pos = [], 64
    for _ in range(count):
        sentinel, dtype, size, offset = struct.unpack_from("<IIQQ", data, pos)
        assert sentinel == 0xDEADBEEF
        out.append((dtype, size, offset))
        pos = -(-(offset + size) // 64) * 64
    return out


def proto(pkg: Path):
    """The saved model proto, parsed with coremltools' proto classes (not our reader)."""
    import json

    from coremltools.proto import Model_pb2

    manifest = json.loads((Path(pkg) / "Manifest.json").read_text())
    rel = manifest["itemInfoEntries"][manifest["rootModelIdentifier"]]["path"]
    spec = Model_pb2.Model()
    spec.ParseFromString((Path(pkg) / "Data" / rel).read_bytes())
    return spec


def main_ops(spec) -> list:
    fn = spec.mlProgram.functions["main"]
    return list(fn.block_specializations[fn.opset].operations)


def op_counts(spec) -> dict[str, int]:
    from collections import Counter

    return dict(Counter(op.type for op in main_ops(spec)))
