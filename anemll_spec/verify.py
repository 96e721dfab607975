"""Outputs of a backend against the reference executor's, with the spec's tolerances.

All outputs are compared together, flattened and concatenated in the reference's
output order, in float64: max |out - ref|, ||out - ref||_2 / ||ref||_2, cosine
similarity (the figures stored); for LM heads also top-1 agreement (argmax over the
concatenated logits chunks, per position). With several outputs each is also held to the
relative and cosine tolerances alone, and the worst is named: a small output could be
wholly wrong inside a large one's figures. A result beyond tolerance is a FAILED case.
Where the reference is all zeros only max_abs applies (the others are undefined: None).
Infinities equal in both (an additive mask's -inf) are left out of the figures; a NaN
output, or an infinity the reference does not have there, fails; where the reference is
non-finite and the output finite (an fp16 reference that overflowed) there is nothing
to verify against: those values are left out, said in the note, and the rest verified
(top-1 leaves out the positions holding them: a NaN or inf wins the reference's argmax).

A classifier's outputs are host values: its {label: probability} dict must have the
reference's labels, and its probabilities join the float comparison above (reference
label order); its predicted label (str or int) must equal the reference's exactly.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, replace
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from anemll_spec.spec.run_section import Tolerance


@dataclass(frozen=True)
class Verdict:
    status: str  # pass | fail | skipped
    max_abs_error: float | None = None
    rel_l2_error: float | None = None
    cosine: float | None = None
    top1_agreement: float | None = None
    note: str | None = None

    def to_dict(self) -> dict:
        return asdict(self)


def skipped(note: str) -> Verdict:
    return Verdict("skipped", note=note)


def check_outputs(
    outputs: Mapping[str, np.ndarray],
    reference: Mapping[str, np.ndarray],
    tolerance: Tolerance,
    *,
    vocab_chunk: int | None = None,
) -> Verdict:
    """Compare every reference output; vocab_chunk (logits per chunk) enables top-1."""
    missing = [k for k in reference if k not in outputs]
    if missing:
        return Verdict("fail", note=f"outputs missing: {', '.join(missing)}")
    host = [k for k, v in reference.items() if isinstance(v, (Mapping, str, int))]
    if host:
        return _check_with_values(outputs, reference, host, tolerance)
    bad_shape = [
        f"{k} {np.shape(outputs[k])} vs {np.shape(v)}"
        for k, v in reference.items()
        if np.size(outputs[k]) != np.size(v)
    ]
    if bad_shape:
        return Verdict(
            "fail", note="output sizes differ from the reference: " + "; ".join(bad_shape)
        )
    outs = {k: np.asarray(outputs[k], np.float64).ravel() for k in reference}
    refs = {k: np.asarray(v, np.float64).ravel() for k, v in reference.items()}
    broken, nan_both, untrusted, equal = _non_finite(outs, refs)  # equal ones: dropped
    if broken or nan_both:
        notes = [f"{broken} non-finite output values (inf/nan) the reference does not have"]
        if nan_both:  # not "does not have": it does, and it is wrong there too
            notes = notes[:1] if broken else []
            notes.append(f"{nan_both} NaN output values where the reference is NaN too (a "
                         "NaN is never a right value, in either)")  # fmt: skip
        return Verdict("fail", note="; ".join(notes))
    out, ref = (np.concatenate(list(d.values())) for d in (outs, refs))
    if (equal or untrusted) and not out.size:
        return skipped("no finite value of the reference to compare with")
    max_abs, rel_l2, cosine = figures(out, ref)
    top1, top1_out = None, 0
    if vocab_chunk:
        top1, top1_out = top1_counted(
            [np.asarray(outputs[k]) for k in reference],
            [np.asarray(v) for v in reference.values()],
            vocab_chunk,
        )
    tol = tolerance
    failed = _beyond_tolerance(max_abs, rel_l2, cosine, tol)
    if len(reference) > 1:  # a small output is swamped in the concatenation: each alone too
        failed += _worst_outputs({k: figures(outs[k], refs[k]) for k in reference}, tol)
    if top1 is not None and top1 < tol.min_top1_agreement:
        failed.append(beyond("top1_agreement", top1, "<", tol.min_top1_agreement))
    notes = ["beyond tolerance: " + "; ".join(failed)] if failed else []
    if rel_l2 is None:
        notes.append("the reference is all zeros: max_abs_error only (rel_l2, cosine undefined)")
    if equal:
        notes.append(f"{equal} infinities equal the reference's (left out of the figures)")
    if untrusted:
        notes.append(
            f"{untrusted} reference values are non-finite where the output is finite (fp16 "
            "overflow in the reference?): left out of the figures"
        )
    if top1_out:
        notes.append(
            f"{top1_out} position{'s' if top1_out > 1 else ''} left out of top1_agreement "
            "(the reference's top-1 there is unknown: non-finite)"
        )
    return Verdict(
        "fail" if failed else "pass",
        max_abs_error=max_abs,
        rel_l2_error=rel_l2,
        cosine=cosine,
        top1_agreement=top1,
        note="; ".join(notes) or None,
    )


def _non_finite(
    outs: dict[str, np.ndarray], refs: dict[str, np.ndarray]
) -> tuple[int, int, int, int]:
    """Counts of non-finite values: the output's that are wrong (a NaN where the reference
    has none, an infinity the reference does not have there), the output's NaNs where
    the reference has NaN too (wrong as well: a NaN is never equal to anything, nor
    right), the reference's where the output is finite (no reference there), and
    infinities equal in both (an additive mask's -inf). Wherever the reference is
    non-finite both are dropped: the rest is verified."""
    broken = nan_both = untrusted = equal = 0
    for k, r in refs.items():
        o = outs[k]
        bad_o, bad_r = ~np.isfinite(o), ~np.isfinite(r)
        if not (bad_o.any() or bad_r.any()):
            continue
        nan_o = np.isnan(o)
        same = np.isinf(r) & (o == r)
        both = nan_o & np.isnan(r)
        broken += int(np.count_nonzero((nan_o | (bad_o & ~same)) & ~both))  # or the other inf
        nan_both += int(np.count_nonzero(both))
        untrusted += int(np.count_nonzero(bad_r & ~bad_o))
        equal += int(np.count_nonzero(same))
        outs[k], refs[k] = o[~bad_r], r[~bad_r]
    return broken, nan_both, untrusted, equal


def figures(out: np.ndarray, ref: np.ndarray) -> tuple[float, float | None, float | None]:
    """max |out - ref|, ||out - ref|| / ||ref||, cosine(out, ref); the last two None where
    the reference is all zeros (no scale to be relative to, no direction)."""
    diff = out - ref
    max_abs = float(np.max(np.abs(diff))) if diff.size else 0.0
    ref_norm = float(np.linalg.norm(ref))
    if ref_norm == 0:
        return max_abs, None, None
    if not diff.any():  # identical: exactly 1 (the float64 sums can round below it)
        return max_abs, 0.0, 1.0
    out_norm = float(np.linalg.norm(out))
    cosine = float(np.dot(out, ref) / (out_norm * ref_norm)) if out_norm > 0 else 0.0
    return max_abs, float(np.linalg.norm(diff) / ref_norm), min(1.0, max(-1.0, cosine))


def _worst_outputs(per: dict[str, tuple], tol: Tolerance) -> list[str]:
    """The output with the largest rel_l2 and the one with the lowest cosine, where beyond
    tolerance (one scores output 26% off beside 32,000 good logits passed)."""
    found = []
    rel = {k: f[1] for k, f in per.items() if f[1] is not None}
    cos = {k: f[2] for k, f in per.items() if f[2] is not None}
    if rel and (k := max(rel, key=rel.__getitem__)) and rel[k] > tol.rel_l2_error:
        found.append(f"{beyond('rel_l2_error', rel[k], '>', tol.rel_l2_error)} in output {k}")
    if cos and (k := min(cos, key=cos.__getitem__)) and cos[k] < tol.min_cosine:
        found.append(f"{beyond('cosine', cos[k], '<', tol.min_cosine)} in output {k}")
    return found


def _beyond_tolerance(
    max_abs: float, rel_l2: float | None, cosine: float | None, tol: Tolerance
) -> list[str]:
    failed = []
    if max_abs > tol.max_abs_error:
        failed.append(beyond("max_abs_error", max_abs, ">", tol.max_abs_error))
    if rel_l2 is not None and rel_l2 > tol.rel_l2_error:
        failed.append(beyond("rel_l2_error", rel_l2, ">", tol.rel_l2_error))
    if cosine is not None and cosine < tol.min_cosine:
        failed.append(beyond("cosine", cosine, "<", tol.min_cosine))
    return failed


def beyond(name: str, value: float, sign: str, limit: float) -> str:
    """'name value sign limit': the limit as written (shortest exact form), the value with
    as many significant digits (4 at least) as keep the inequality true as printed;
    0.0100004 against 0.01 printed '0.01 > 0.01' at a fixed 4."""
    bound = repr(float(limit)).removesuffix(".0")
    for digits in range(4, 18):
        shown = f"{value:.{digits}g}"
        if (float(shown) > limit) if sign == ">" else (float(shown) < limit):
            break
    return f"{name} {shown} {sign} {bound}"


def _check_with_values(
    outputs: Mapping[str, Any],
    reference: Mapping[str, Any],
    host: list[str],
    tolerance: Tolerance,
) -> Verdict:
    """A classifier's outputs: labels exactly, dict keys exactly, probabilities (as arrays
    in the reference's key order) and any array outputs by the float comparison."""
    differ: list[str] = []
    arrays_out: dict[str, Any] = {}
    arrays_ref: dict[str, Any] = {}
    for k, ref in reference.items():
        out = _host_value(outputs[k]) if k in host else outputs[k]
        if k not in host:
            arrays_out[k], arrays_ref[k] = out, ref
        elif isinstance(ref, Mapping):
            if not isinstance(out, Mapping) or set(out) != set(ref):
                got = sorted(map(str, out)) if isinstance(out, Mapping) else type(out).__name__
                differ.append(f"{k} has labels {got}, the reference {sorted(map(str, ref))}")
            else:
                arrays_out[k] = np.array([out[c] for c in ref], np.float64)
                arrays_ref[k] = np.array(list(ref.values()), np.float64)
        elif not (isinstance(out, (str, int)) and out == ref):
            differ.append(f"{k} is {out!r}, the reference {ref!r}")
    v = check_outputs(arrays_out, arrays_ref, tolerance) if arrays_ref else Verdict("pass")
    if not differ:
        same = ", ".join(
            f"{k} {reference[k]!r}" for k in host if not isinstance(reference[k], Mapping)
        )
        said = f"labels equal the reference ({same})" if same else ""
        return replace(v, note="; ".join(n for n in (said, v.note) if n) or None)
    notes = "; ".join(differ) + (f"; {v.note}" if v.note else "")
    return replace(v, status="fail", note="labels differ from the reference: " + notes)


def _host_value(v: Any) -> Any:
    """A label or dict as a Python value: the Core ML backend hands every output over
    through np.asarray, which wraps a str, an int or a dict in a 0-d array."""
    if isinstance(v, np.ndarray) and v.ndim == 0 or isinstance(v, np.generic):
        return v.item()
    return v


def vocab_axis(shape: tuple[int, ...], vocab_chunk: int) -> int:
    """The axis holding the logits of one chunk: the last axis of that size."""
    for ax in range(len(shape) - 1, -1, -1):
        if shape[ax] == vocab_chunk:
            return ax
    raise ValueError(f"no axis of size {vocab_chunk} in output shape {shape}")


def top1_agreement(
    outs: list[np.ndarray], refs: list[np.ndarray], vocab_chunk: int
) -> float | None:
    """Share of positions whose argmax over the concatenated chunks matches the reference
    (None: no position's reference top-1 is known)."""
    return top1_counted(outs, refs, vocab_chunk)[0]


def top1_counted(
    outs: list[np.ndarray], refs: list[np.ndarray], vocab_chunk: int
) -> tuple[float | None, int]:
    """top1_agreement, and how many positions it left out (reference top-1 unknown)."""

    def logits(chunks: list[np.ndarray], shapes: list[tuple[int, ...]]) -> np.ndarray:
        parts = []
        for c, shape in zip(chunks, shapes, strict=True):
            c = np.asarray(c).reshape(shape)
            parts.append(np.moveaxis(c, vocab_axis(shape, vocab_chunk), -1))
        full = np.concatenate(parts, axis=-1)
        return full.reshape(-1, full.shape[-1])

    shapes = [tuple(r.shape) for r in refs]
    o, r = logits(outs, shapes), logits(refs, shapes)
    kept = top1_rows(o, r)
    left_out = int(kept.size - np.count_nonzero(kept))
    if not kept.any():
        return None, left_out
    return float(np.mean(o[kept].argmax(axis=-1) == r[kept].argmax(axis=-1))), left_out


def top1_rows(o: np.ndarray, r: np.ndarray) -> np.ndarray:
    """The positions whose reference top-1 is known. A NaN or +inf in the reference
    that the output does not have wins its argmax and says nothing (an fp16 overflow):
    such a position is left out, as its values are left out of the figures. A -inf
    never wins, so it leaves the top-1 known, unless the whole row is -inf."""
    with np.errstate(invalid="ignore"):
        unknown = (np.isnan(r) | (r == np.inf)) & ~(o == r)
    return ~(unknown.any(axis=-1) | (r == -np.inf).all(axis=-1))
