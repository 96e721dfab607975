"""Which ops of the iOS15-iOS18 opsets the executor runs, on numpy and on torch, and why
not where it does not: the data behind `anemll-spec ops`."""

from __future__ import annotations

from dataclasses import asdict, dataclass

from anemll_spec.executor.kernels.base import HOST_OPS, HOST_READS, KERNELS, REFUSED
from anemll_spec.executor.kernels.misc import PENDING
from anemll_spec.executor.kernels.opsets import OPSETS

SUPPORTED, REFUSED_STATUS, MISSING = "supported", "refused", "not supported"

# ops without a kernel or a program-side implementation, and why
NO_KERNEL: dict[str, str] = {}


@dataclass(frozen=True)
class Support:
    status: str  # supported | refused | not supported
    note: str = ""


@dataclass(frozen=True)
class OpCoverage:
    op: str
    opsets: tuple[str, ...]  # where its definitions start (first: where it appears)
    numpy: Support
    torch: Support

    def to_dict(self) -> dict:
        return asdict(self)


def op_coverage(op: str) -> OpCoverage:
    from anemll_spec.executor import control, decompress

    defs = OPSETS.get(op, ())
    if op == "const" or op in getattr(decompress, "_DECOMPRESS", {}):
        note = "evaluated at load (numpy)"
        return OpCoverage(op, defs, Support(SUPPORTED, note), Support(SUPPORTED, note))
    if op in control.CONTROL_OPS:
        note = "run by the program (nested blocks)"
        on_host = "its condition is read on the host: no CUDA graph"
        return OpCoverage(op, defs, Support(SUPPORTED, note), Support(SUPPORTED, on_host))
    if op in REFUSED:
        refused = Support(REFUSED_STATUS, REFUSED[op])
        return OpCoverage(op, defs, refused, refused)
    if op in PENDING or op not in KERNELS:
        why = (
            PENDING.get(op)
            or NO_KERNEL.get(op)
            or ("no decompressor yet" if op.startswith("constexpr_") else "no kernel")
        )
        missing = Support(MISSING, why)
        return OpCoverage(op, defs, missing, missing)
    host, reads = HOST_OPS.get(op), HOST_READS.get(op)
    torch_note = ""
    if host:
        torch_note = f"computed on the host (numpy): {host}; no CUDA graph"
    elif reads:
        torch_note = f"reads {reads} on the host (no CUDA graph then)"
    return OpCoverage(op, defs, Support(SUPPORTED), Support(SUPPORTED, torch_note))


def coverage() -> list[OpCoverage]:
    """Every op of the four opsets (coremltools 9), in name order."""
    return [op_coverage(op) for op in OPSETS]


def totals(rows: list[OpCoverage]) -> dict[str, dict[str, int]]:
    out: dict[str, dict[str, int]] = {}
    for side in ("numpy", "torch"):
        counts = {SUPPORTED: 0, REFUSED_STATUS: 0, MISSING: 0}
        for r in rows:
            counts[getattr(r, side).status] += 1
        out[side] = counts
    return out
