"""verify.check_outputs on real executor outputs: fp16-rounded execution against the fp32 reference."""

from __future__ import annotations

import io

import numpy as np
import pytest
from build_util import lm_head

from anemll_spec.spec.run_section import Tolerance
from anemll_spec.verify import check_outputs, top1_agreement, vocab_axis

# the spec's own fp16 defaults, so this tests what users get
DEFAULT_TOL = Tolerance()
HEAD = lm_head(hidden_size=256, vocab_size=1024, chunks=4, seq_len=3)


@pytest.fixture(scope="module")
def outputs(tmp_path_factory):
    """(fp16-rounded outputs, fp32 reference) of a real LM head on the same inputs."""
    from anemll_spec.build import build
    from anemll_spec.executor import load
    from anemll_spec.model_io import describe, synth_inputs

    built = build(HEAD, cache_dir=tmp_path_factory.mktemp("cache"))
    inputs = synth_inputs(describe(built.path), seed=1)
    ref = load(built.path).predict(inputs)
    half = load(built.path, fp16=True).predict(inputs)
    return half, ref


def test_fp16_execution_passes_default_tolerances(outputs):
    half, ref = outputs
    v = check_outputs(half, ref, DEFAULT_TOL, vocab_chunk=256)
    a = np.concatenate([np.asarray(half[k], np.float64).ravel() for k in ref])
    b = np.concatenate([np.asarray(r, np.float64).ravel() for r in ref.values()])
    assert v.max_abs_error == pytest.approx(np.abs(a - b).max())
    assert v.rel_l2_error == pytest.approx(np.linalg.norm(a - b) / np.linalg.norm(b))
    assert v.cosine == pytest.approx(a @ b / np.linalg.norm(a) / np.linalg.norm(b))
    assert 0 < v.max_abs_error < 0.05
    # top-1 over the concatenated chunks, per position (3 positions), computed by hand
    full_a = np.concatenate([half[k] for k in ref], axis=-1).reshape(-1, 1024)
    full_b = np.concatenate(list(ref.values()), axis=-1).reshape(-1, 1024)
    assert v.top1_agreement == pytest.approx(np.mean(full_a.argmax(1) == full_b.argmax(1)))
    assert v.status == "pass" and v.note is None


def test_tight_tolerance_fails_with_the_reason(outputs):
    half, ref = outputs
    tight = Tolerance(max_abs_error=1e-6)
    v = check_outputs(half, ref, tight, vocab_chunk=256)
    assert v.status == "fail" and "max_abs_error" in v.note and "> 1e-06" in v.note


def test_wrong_outputs_fail(outputs):
    _, ref = outputs
    shuffled = {k: np.asarray(v)[..., ::-1].copy() for k, v in ref.items()}
    v = check_outputs(shuffled, ref, DEFAULT_TOL, vocab_chunk=256)
    assert v.status == "fail" and v.top1_agreement < 1.0 and v.cosine < 0.5
    missing = dict(list(ref.items())[1:])
    assert check_outputs(missing, ref, DEFAULT_TOL).status == "fail"
    nan = {k: np.full_like(np.asarray(v), np.nan) for k, v in ref.items()}
    v = check_outputs(nan, ref, DEFAULT_TOL)
    assert v.status == "fail" and "non-finite" in v.note


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_top1_leaves_out_positions_whose_reference_overflowed(bad):
    """A reference NaN/inf where the output is finite is left out of the figures; argmax
    still took it (a NaN or inf wins), so a case whose every compared value matched
    FAILED with top1_agreement 0. Now the position is left out of top-1 too, and said."""
    rows = np.array([[1, 0, 3, 2], [5, 1, 0, 2], [0, 4, 1, 2]], np.float32)  # top-1: 2, 0, 1
    other = np.full((3, 4), 0.5, np.float32)
    out = {"logits1": rows[None], "logits2": other[None]}
    ref_rows = rows.copy()
    ref_rows[0, 1] = bad  # position 0's reference overflowed; the output there is finite
    ref = {"logits1": ref_rows[None], "logits2": other[None]}
    v = check_outputs(out, ref, DEFAULT_TOL, vocab_chunk=4)
    assert v.status == "pass", v.note
    assert v.top1_agreement == 1.0 and v.max_abs_error == 0.0
    assert "1 position left out of top1_agreement" in v.note
    # every position overflowed: no top-1 figure at all, never 0
    ref_all = {"logits1": np.full((1, 3, 4), bad, np.float32), "logits2": other[None]}
    v = check_outputs(out, ref_all, DEFAULT_TOL, vocab_chunk=4)
    assert v.top1_agreement is None and "3 positions left out" in v.note
    # a real top-1 miss at a finite position still fails
    wrong = rows.copy()
    wrong[1] = [0, 9, 0, 0]
    v = check_outputs(
        {"logits1": wrong[None], "logits2": other[None]}, ref, DEFAULT_TOL, vocab_chunk=4
    )
    assert v.status == "fail" and v.top1_agreement == 0.5


def test_a_reference_minus_inf_leaves_top1_known():
    """A -inf never wins argmax: a reference that overflowed to -inf on one logit keeps
    its top-1, and a real top-1 miss still fails (every position was left out, top-1
    None, and the case passed)."""
    ref = np.zeros((1, 8, 64), np.float32)
    ref[..., 10] = 5.0  # the reference's top-1: 10
    ref[..., 5] = -np.inf  # an fp16 overflow, below every other logit
    out = ref.copy()
    out[..., 5] = -65520.0
    out[..., 10], out[..., 11] = 4.0, 5.0  # the output's top-1: 11, everywhere
    v = check_outputs(
        {"logits1": out},
        {"logits1": ref},
        Tolerance(max_abs_error=2.0, rel_l2_error=1.0, min_cosine=0.0),
        vocab_chunk=64,
    )
    assert v.top1_agreement == 0.0 and v.status == "fail", v
    assert "top1_agreement 0 < 1" in v.note and "left out of top1" not in v.note
    # a row of -inf only has no top-1: left out
    all_minus = np.full((1, 1, 64), -np.inf, np.float32)
    v = check_outputs({"logits1": all_minus}, {"logits1": all_minus}, DEFAULT_TOL, vocab_chunk=64)
    assert v.top1_agreement is None


def test_vocab_axis_in_both_layouts():
    assert vocab_axis((1, 1, 16032), 16032) == 2
    assert vocab_axis((1, 16032, 1, 4), 16032) == 1
    a = [np.eye(3, 4)[None], np.zeros((1, 3, 4))]  # two chunks of 4 logits, 3 positions
    b = [np.zeros((1, 3, 4)), np.eye(3, 4)[None]]
    assert top1_agreement(a, a, 4) == 1.0
    assert top1_agreement(a, b, 4) == 0.0


def test_a_non_finite_reference_value_is_left_out_and_the_rest_verified():
    """An fp16 reference that overflowed has nothing to say there: it failed right outputs,
    then (skipped whole) let a wholly wrong second output pass as 'skipped'."""
    out = {"y": np.ones(8, np.float32)}
    ref = {"y": np.array([1, 1, np.inf, 1, 1, 1, 1, 1], np.float32)}
    tol = Tolerance(max_abs_error=0.1, rel_l2_error=0.1, min_cosine=0.9)
    v = check_outputs(out, ref, tol)
    assert (v.status, v.max_abs_error, v.rel_l2_error, v.cosine) == ("pass", 0.0, 0.0, 1.0)
    assert "1 reference values are non-finite where the output is finite" in v.note
    wrong = {"a": np.array([65504.0, 1, 2, 3]), "b": -50 * np.ones(1000)}
    ref2 = {"a": np.array([np.inf, 1, 2, 3]), "b": np.ones(1000)}
    v = check_outputs(wrong, ref2, DEFAULT_TOL)
    assert v.status == "fail" and v.max_abs_error == 51.0  # b, off everywhere
    v = check_outputs({"y": np.ones(3)}, {"y": np.full(3, np.inf)}, tol)
    assert v.status == "skipped" and v.max_abs_error is None  # nothing infinite is stored
    assert v.note == "no finite value of the reference to compare with"


def test_non_finite_values_equal_to_the_reference_pass_and_others_fail():
    """An additive mask's -inf, where the reference has it too, is right: it failed."""
    mask = np.triu(np.full((6, 6), -np.inf), 1)
    ref = np.arange(36.0).reshape(6, 6) / 10 + mask
    out = ref + np.where(np.isfinite(ref), 1e-3, 0.0)
    v = check_outputs({"y": out}, {"y": ref}, DEFAULT_TOL)
    finite = np.isfinite(ref)
    a, b = out[finite], ref[finite]
    assert v.status == "pass" and v.max_abs_error == pytest.approx(1e-3)
    assert v.rel_l2_error == pytest.approx(np.linalg.norm(a - b) / np.linalg.norm(b))
    assert v.note == "15 infinities equal the reference's (left out of the figures)"
    flipped = np.where(np.isfinite(ref), out, np.inf)  # +inf where the reference has -inf
    v = check_outputs({"y": flipped}, {"y": ref}, DEFAULT_TOL)  # the other infinity: wrong
    assert v.status == "fail" and v.note.startswith("15 non-finite output values"), v
    out[0, 0] = np.nan  # where the reference is finite: wrong
    v = check_outputs({"y": out}, {"y": ref}, DEFAULT_TOL)
    assert v.status == "fail" and v.note.startswith("1 non-finite output values")
    # a NaN is never right, nor equal: where the reference has -inf, or NaN, it fails
    nan_at_mask = np.where(np.isfinite(ref), ref, np.nan)
    v = check_outputs({"y": nan_at_mask}, {"y": ref}, DEFAULT_TOL)
    assert v.status == "fail" and v.note.startswith("15 non-finite output values"), v
    all_nan = {"y": np.full(8, np.nan)}
    v = check_outputs(all_nan, all_nan, DEFAULT_TOL)  # it passed
    # said as it is: not "values the reference does not have" (it has them)
    assert (v.status, v.note) == ("fail", "8 NaN output values where the reference is NaN "
                                  "too (a NaN is never a right value, in either)")  # fmt: skip
    two = {"a": np.ones(4), "b": np.full(4, np.nan)}
    assert check_outputs(two, two, DEFAULT_TOL).status == "fail"
    mixed = np.array([np.nan, np.nan, np.inf, 1.0])
    v = check_outputs({"y": mixed}, {"y": np.array([np.nan, 2.0, 3.0, 1.0])}, DEFAULT_TOL)
    assert (v.status, v.note) == ("fail", "2 non-finite output values (inf/nan) the reference "
                                  "does not have; 1 NaN output values where the reference is "
                                  "NaN too (a NaN is never a right value, in either)")  # fmt: skip
    only_inf = {"y": np.full(4, -np.inf)}  # nothing finite left: no verdict either way
    v = check_outputs(only_inf, only_inf, DEFAULT_TOL)
    assert v.status == "skipped" and v.note == "no finite value of the reference to compare with"


def test_a_small_wrong_output_beside_a_large_right_one_fails_and_is_named():
    """32,000 right logits and 64 hidden values all zero: the concatenated figures passed
    (rel_l2 4.6e-4, cosine 0.9999999)."""
    rng = np.random.default_rng(0)
    ref = {"logits": rng.standard_normal(32000), "hidden": 0.01 * rng.standard_normal(64)}
    out = {"logits": ref["logits"].copy(), "hidden": np.zeros(64)}
    v = check_outputs(out, ref, DEFAULT_TOL)
    a = np.concatenate([out[k] for k in ref])
    b = np.concatenate(list(ref.values()))
    assert v.rel_l2_error == pytest.approx(np.linalg.norm(a - b) / np.linalg.norm(b))
    assert v.rel_l2_error < DEFAULT_TOL.rel_l2_error  # the stored figure is the whole's
    assert v.status == "fail"
    assert (
        v.note
        == "beyond tolerance: rel_l2_error 1 > 0.01 in output hidden; cosine 0 < 0.999 in output hidden"
    ), v.note


def test_an_all_zero_reference_holds_to_max_abs_only():
    """Its rel_l2 was the absolute norm and its cosine 0.0: an error of 1e-6 failed."""
    v = check_outputs({"y": np.full(100, 1e-6)}, {"y": np.zeros(100)}, DEFAULT_TOL)
    assert (v.status, v.max_abs_error, v.rel_l2_error, v.cosine) == ("pass", 1e-6, None, None)
    assert "the reference is all zeros: max_abs_error only" in v.note
    v = check_outputs({"y": np.full(100, 0.5)}, {"y": np.zeros(100)}, DEFAULT_TOL)
    assert v.status == "fail" and v.note.startswith("beyond tolerance: max_abs_error 0.5 >")


def test_identical_outputs_meet_a_cosine_of_exactly_one():
    x = np.random.default_rng(1).standard_normal(100_000)
    v = check_outputs(
        {"y": x.copy()}, {"y": x}, Tolerance(max_abs_error=0, rel_l2_error=0, min_cosine=1)
    )
    assert (v.status, v.cosine, v.rel_l2_error, v.max_abs_error) == ("pass", 1.0, 0.0, 0.0)


def test_a_classifier_that_passes_is_shown_as_a_pass():
    """Its verdict has no max_abs_error (labels only): bench's summary raised TypeError."""
    from types import SimpleNamespace

    from anemll_spec.cli.bench import _verify
    from anemll_spec.verify import Verdict

    assert _verify(SimpleNamespace(verdict=Verdict("pass"))) == "pass"
    assert (
        _verify(SimpleNamespace(verdict=Verdict("pass", max_abs_error=0.0123)))
        == "pass (max err 0.012)"
    )


RNG_TOP1 = np.random.default_rng(3)
ONES = np.ones(1000)
ALTERNATING = np.where(np.arange(1000) % 2 == 0, 1.0, -1.0)  # orthogonal to ONES


def _tol(max_abs: float, rel_l2: float, cosine: float) -> Tolerance:
    return Tolerance(max_abs_error=max_abs, rel_l2_error=rel_l2, min_cosine=cosine)


# (outputs, tolerance) each breaking exactly one criterion; the others hold with room
ONE_CRITERION = {
    # one value off by 0.5: max_abs 0.5; rel_l2 0.5/sqrt(1000) = 0.016; cosine 0.99996
    "max_abs_error": (ONES + np.eye(1, 1000)[0] * 0.5, _tol(0.1, 0.05, 0.999)),
    # every value 2 % high: max_abs 0.02, rel_l2 0.02, cosine exactly 1
    "rel_l2_error": (ONES * 1.02, _tol(0.05, 0.01, 0.999)),
    # an error orthogonal to the reference: rel_l2 0.1, cosine 1 / sqrt(1.01) = 0.99504
    "cosine": (ONES + 0.1 * ALTERNATING, _tol(0.5, 0.2, 0.999)),
}


@pytest.mark.parametrize("criterion", ONE_CRITERION)
def test_each_criterion_fails_a_case_on_its_own(criterion):
    out, tol = ONE_CRITERION[criterion]
    v = check_outputs({"y": out}, {"y": ONES}, tol)
    diff = out - ONES
    assert v.max_abs_error == pytest.approx(np.abs(diff).max())
    assert v.rel_l2_error == pytest.approx(np.linalg.norm(diff) / np.linalg.norm(ONES))
    assert v.cosine == pytest.approx(out @ ONES / np.linalg.norm(out) / np.linalg.norm(ONES))
    assert v.status == "fail"
    assert v.note.startswith(f"beyond tolerance: {criterion} ") and ";" not in v.note, v.note
    # the same figures at a tolerance that admits them pass: the limits are inclusive
    at_limit = Tolerance(
        max_abs_error=v.max_abs_error, rel_l2_error=v.rel_l2_error, min_cosine=v.cosine
    )
    assert check_outputs({"y": out}, {"y": ONES}, at_limit).status == "pass"


def test_top1_alone_fails_an_lm_head():
    """Two near-tied logits swapped at one of four positions: every float figure is tiny,
    top-1 agreement is 3/4."""
    ref = RNG_TOP1.standard_normal((1, 4, 8))
    ref[0, 2, :2] = [5.0, 5.001]
    out = ref.copy()
    out[0, 2, :2] = [5.001, 5.0]
    chunks = {"logits_0": ref[..., :4], "logits_1": ref[..., 4:]}  # two chunks of 4 logits
    got = {"logits_0": out[..., :4], "logits_1": out[..., 4:]}
    v = check_outputs(got, chunks, DEFAULT_TOL, vocab_chunk=4)
    assert v.top1_agreement == pytest.approx(
        np.mean(out.reshape(4, 8).argmax(1) == ref.reshape(4, 8).argmax(1))
    )
    assert v.top1_agreement == 0.75 and v.max_abs_error == pytest.approx(0.001)
    assert v.status == "fail" and v.note == "beyond tolerance: top1_agreement 0.75 < 1"
    # without vocab_chunk (not an LM head) there is no top-1 and the case passes
    assert check_outputs(got, chunks, DEFAULT_TOL).status == "pass"


@pytest.mark.parametrize(
    "out, tol, said",
    [
        # just past the limit: as many digits as keep the printed inequality true
        (ONES + np.eye(1, 1000)[0] * 0.0100004, _tol(0.01, 1, 0), "max_abs_error 0.0100004 > 0.01"),
        (ONES + 6e-4 * ALTERNATING, _tol(1, 1, 0.9999999), "cosine 0.9999998 < 0.9999999"),
        (ONES * 1.02, _tol(1, 0.01, 0), "rel_l2_error 0.02 > 0.01"),
    ],
)
def test_a_failure_note_never_prints_a_false_inequality(out, tol, said):
    v = check_outputs({"y": out}, {"y": ONES}, tol)
    assert v.note == f"beyond tolerance: {said}"
    value, sign, limit = said.split()[1:]
    assert (float(value) > float(limit)) if sign == ">" else (float(value) < float(limit))


def test_an_fp16_overflow_on_the_numpy_backend_fails_in_both_roles(tmp_path):
    """The numpy backend times fp32 and judges the same program in fp16: that fp16 run
    was passed as the reference, so its infs (fp32 finite there) were 'reference values
    non-finite ... left out' and the case passed, though an fp16 device (the ANE)
    overflows the same way and Core ML's verify fails it. Now the fp16 side is the one
    judged in both settings of run.fp16_reference, and both fail on its infs."""
    import duckdb

    from anemll_spec.progress import Progress
    from anemll_spec.runner import Runner

    spec = tmp_path / "ovf.yaml"
    spec.write_text(
        "name: ovf\nmodel: {family: lm_head, hidden_size: 65536, vocab_size: 64, chunks: 1,\n"
        "  layout: linear, weight_std: 100}\n"
        "run: {backends: [numpy], iterations: 3, warmup: 0, energy_s: 0, dispatch_floor: false,"
        "\n  tolerance: {max_abs_error: 100}}\nsweep: {run.fp16_reference: [false, true]}\n"
    )
    store = tmp_path / "s.duckdb"
    res = Runner(spec, store=str(store), cache_dir=tmp_path / "c",
                 progress=Progress(io.StringIO(), live=False)).run()  # fmt: skip
    assert res.failed
    with duckdb.connect(str(store), read_only=True) as con:
        rows = con.execute(
            "SELECT status, verify_status, verify_note FROM cases ORDER BY case_index"
        ).fetchall()
    lost = "2 non-finite output values (inf/nan) the reference does not have"
    assert rows == [
        ("failed", "fail", "compared: the same program in fp16 (every op rounded) as the "
         f"output, numpy executor fp32 as the reference; {lost}"),
        ("failed", "fail", "compared: numpy executor fp16 (every op rounded) as the output, "
         f"the same program in fp32 as the reference; {lost}"),
    ]  # fmt: skip
