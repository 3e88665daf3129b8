"""The validation rule on hand-made logits: relative error for large logits, absolute near zero."""

import numpy as np
import pytest

from zoodeploy.errors import ValidationError
from zoodeploy.export.validate import Tolerance, ToleranceError, check, compare_logits, failures

RNG = np.random.default_rng(0)


def logits(scale, n=16, classes=10):
    return (RNG.standard_normal((n, classes)) * scale).astype(np.float32)


def test_large_logits_pass_on_relative_error():
    ref = logits(1e5)  # as a random-init ResNet-152 gives: 0.15 abs error is ~1e-6 relative
    cand = ref + np.float32(0.15)
    c = compare_logits(cand, ref, batch=8)
    assert c.max_abs_err > Tolerance().atol and c.max_rel_err < Tolerance().rtol
    assert failures(c, Tolerance()) == []


def test_near_zero_logits_pass_on_absolute_error():
    ref = logits(1e-10)  # as random-init MobileNets give
    cand = ref + np.float32(1e-11)
    c = compare_logits(cand, ref, batch=1)
    assert c.max_rel_err > Tolerance().rtol and failures(c, Tolerance()) == []


def test_error_over_both_limits_fails_with_every_figure_in_one_message():
    ref = logits(1.0)
    cand = ref * 1.01
    comps = [compare_logits(cand, ref, b) for b in (1, 8)]
    with pytest.raises(ToleranceError) as e:
        check(comps, Tolerance(), "m fp32")
    assert isinstance(e.value, ValidationError)
    msg = str(e.value)
    assert msg.count("error over both atol") == 2 and "batch 1" in msg and "batch 8" in msg
    assert f"max abs error {comps[0].max_abs_err:.3g}" in msg
    assert [c.batch for c in e.value.figures.comparisons] == [1, 8]


def test_top1_and_top5_agreement_are_counted_per_sample():
    ref = np.tile(np.arange(10, dtype=np.float32), (4, 1))  # class 9 first, then 8, 7, 6, 5
    cand = ref.copy()
    cand[0, [9, 8]] = cand[0, [8, 9]]  # sample 0: top-1 swapped, same top-5 set
    cand[1, [5, 4]] = cand[1, [4, 5]]  # sample 1: 5th and 6th swapped, top-5 set differs
    c = compare_logits(cand, ref, batch=4)
    assert (c.top1_agreement, c.top5_agreement) == (75.0, 75.0)
    assert failures(c, Tolerance(atol=10, rtol=10)) == ["top-1 agreement under 100%", "top-5 agreement under 100%"]
    assert failures(c, Tolerance(atol=10, rtol=10, min_top1_agreement=75, min_top5_agreement=75)) == []


def test_negative_tolerance_is_refused():
    with pytest.raises(ValidationError, match="non-negative"):
        Tolerance(atol=-1.0)
