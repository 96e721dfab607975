"""What each variant's outputs are verified against, and the verdict.

Core ML and torch are compared with the reference executor's fp32 result (fp16 with
run.fp16_reference). The numpy backend IS the reference executor: comparing it with
itself would check nothing, so its output is compared with the same program computed in
the other precision (fp32 against every op rounded to fp16, as an fp16 device computes):
the deviation fp16 execution shows, held to the same tolerances. The fp16 side is the
one judged (the 'output', fp32 the 'reference'), whichever of the two numpy timed: an
fp16 value that overflowed to inf where fp32 is finite fails, as it does on an fp16
device, instead of being left out as an untrusted reference value; for a program computed
in fp32, which no fp16 device runs, a deviation past them is for information only
(skipped, figures kept). The verdict's note says what was compared."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from anemll_spec.spec import Case
from anemll_spec.spec.families import LmHead
from anemll_spec.verify import Verdict, check_outputs, skipped

OFF = "verify is off in the spec (run.verify: false)"


def _mode(fp16: bool) -> str:
    return "fp16 (every op rounded)" if fp16 else "fp32"


def reference_mode(variant: Any) -> bool | None:
    """The reference precision this variant is compared with (True: fp16); None: none."""
    run = variant.case.run
    if not run.verify:
        return None
    if variant.backend == "numpy":
        return not run.fp16_reference
    return run.fp16_reference


def reference_outputs(path: Path, inputs: dict[str, Any], fp16: bool) -> dict[str, Any]:
    """The reference executor's outputs from a fresh state."""
    from anemll_spec.executor import load

    prog = load(path, fp16=fp16)
    return prog.predict(inputs, prog.make_state() if prog.states else None)


def verdict(m: Any, outputs: dict[str, Any], references: dict[bool, Any], case: Case) -> Verdict:
    """The variant's first outputs against its reference."""
    fp16 = reference_mode(m.variant)
    if fp16 is None:
        return skipped(OFF)
    ref = references.get(fp16)
    if isinstance(ref, BaseException) or ref is None:
        why = f"{type(ref).__name__}: {ref}" if ref is not None else "not computed"
        return skipped(f"the reference executor failed: {why}")
    chunk = case.model.vocab_size // case.model.chunks if isinstance(case.model, LmHead) else None
    judged, against = outputs, ref
    own = _mode(case.run.fp16_reference)
    if m.variant.backend != "numpy":
        what = f"{m.variant.backend} vs the reference executor in {_mode(fp16)}"
    elif fp16:  # the fp16 program is judged: its overflows (inf) are failures, as on the ANE
        judged, against = ref, outputs
        what = _roles(f"the same program in {_mode(fp16)}", f"numpy executor {own}")
    else:
        what = _roles(f"numpy executor {own}", f"the same program in {_mode(fp16)}")
    v = check_outputs(judged, against, case.run.tolerance, vocab_chunk=chunk)
    note = f"compared: {what}" + (f"; {v.note}" if v.note else "")
    if m.variant.backend == "numpy" and fp16 and _fp32_program(case) and v.status == "fail":
        return dataclasses.replace(
            v, status="skipped", note=f"{note}; for information only: an fp32 program runs in "
            "fp32 (no fp16 device computes it), so fp16's deviation is no verdict on it"
        )  # fmt: skip
    return dataclasses.replace(v, note=note)


def _roles(output: str, reference: str) -> str:
    """Which side is which in the verdict's notes ('output values ... the reference ...')."""
    return f"{output} as the output, {reference} as the reference"


def _fp32_program(case: Case) -> bool:
    """A built model computed in fp32 (an external model's precision is its own)."""
    return getattr(case.model, "family", None) != "external" and (
        getattr(case.model, "compute_precision", None) == "float32"
    )
