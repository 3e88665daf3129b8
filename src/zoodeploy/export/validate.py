"""Validation of a model file against PyTorch: every failure measured, then one error.

The rule is Polygraphy's: logits match when the largest error is within `atol` OR within
`rtol` times the logit scale. fp32 rounding error grows with the size of the logits (a deep
random-init ResNet reaches |logit| ~ 1e2..1e5, where 1e-4 absolute is a few ulps or less), so an
absolute bound alone fails honest exports of deep nets, and a relative bound alone fails
nets whose logits are all near zero. Both limits must be exceeded for a failure.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from zoodeploy.card import Comparison, ModelCard, ToleranceSpec, Validation
from zoodeploy.errors import ValidationError

# Measured across the whole zoo (random init, digits val images at 32-75 px, ONNX Runtime CPU vs
# PyTorch CPU at batch 1 and 8; benchmarks/export_zoo.py): max relative error <= 3.2e-6 for every
# architecture, while max abs error reaches 7e-4 (ResNet-101, logits ~3e2), 0.17 (ResNet-152,
# ~1e5) and 84 (Inception v3, ~3e7). rtol 1e-4 leaves 30x headroom over the worst measured and
# is far below what a wrong graph gives (0.5 for the factor-2 divergence in the tests); atol 1e-4
# (Optimum's and Polygraphy's order for fp32) covers nets whose logits are all near zero.
FP32_ATOL = 1e-4
FP32_RTOL = 1e-4
SCALE_FLOOR = 1e-12  # a sample whose logits are all zero has no relative error to speak of


@dataclass(frozen=True)
class Tolerance:
    """When a candidate's logits count as the reference's.

    Failure when max abs error > `atol` AND max relative error > `rtol` (relative to each
    sample's largest |reference logit|); agreement minimums are percentages of samples.
    """

    atol: float = FP32_ATOL
    rtol: float = FP32_RTOL
    min_top1_agreement: float = 100.0  # percent of samples with the same top-1 class
    min_top5_agreement: float = 100.0  # percent of samples whose top-5 sets agree

    def __post_init__(self):
        if min(self.atol, self.rtol, self.min_top1_agreement, self.min_top5_agreement) < 0:
            raise ValidationError(f"tolerances must be non-negative, got {self}")


def failures(c: Comparison, tol: Tolerance) -> list[str]:
    """What in one comparison is outside the tolerance (empty: within it)."""
    out = []
    if c.max_abs_err > tol.atol and c.max_rel_err > tol.rtol:
        out.append(f"error over both atol {tol.atol:g} and rtol {tol.rtol:g} (logits up to {c.logit_scale:.3g})")
    if c.top1_agreement < tol.min_top1_agreement:
        out.append(f"top-1 agreement under {tol.min_top1_agreement:g}%")
    if c.top5_agreement < tol.min_top5_agreement:
        out.append(f"top-5 agreement under {tol.min_top5_agreement:g}%")
    return out


def summary(c: Comparison) -> str:
    return (f"measured on {c.samples} images: max abs error {c.max_abs_err:.3g}, max relative error "
            f"{c.max_rel_err:.3g}, top-1 {c.top1_agreement:.1f}%, top-5 {c.top5_agreement:.1f}%")


def compare_logits(candidate: np.ndarray, reference: np.ndarray, batch: int) -> Comparison:
    """Errors and top-1 / top-5 agreement of `candidate` (N, classes) against `reference`."""
    if candidate.shape != reference.shape:
        raise ValidationError(f"output shape {candidate.shape} differs from the reference's {reference.shape}")
    cand, ref = candidate.astype(np.float64), reference.astype(np.float64)
    err = np.abs(cand - ref)
    scale = np.maximum(np.abs(ref).max(axis=1), SCALE_FLOOR)
    k = min(5, ref.shape[1])
    top5 = lambda z: np.sort(np.argsort(-z, axis=1, kind="stable")[:, :k], axis=1)  # noqa: E731
    return Comparison(
        batch=batch, samples=len(ref), max_abs_err=float(err.max()),
        max_rel_err=float((err.max(axis=1) / scale).max()),
        top1_agreement=float((cand.argmax(1) == ref.argmax(1)).mean() * 100),
        top5_agreement=float((top5(cand) == top5(ref)).all(1).mean() * 100),
        logit_scale=float(np.abs(ref).max()))


class ToleranceError(ValidationError):
    """A validation outside tolerance; carries the measured figures for the card."""

    def __init__(self, message: str, figures: Validation):
        super().__init__(message)
        self.figures = figures


def check(comparisons: list[Comparison], tol: Tolerance, what: str, *, reference: str = "PyTorch",
          samples: str = "", runtime: str | None = None) -> Validation:
    """Raise one ToleranceError listing every failure; else return the figures for the card."""
    figures = Validation(reference=reference, samples=samples, runtime=runtime,
                         tolerance=ToleranceSpec(**asdict(tol)), comparisons=comparisons)
    problems = [f"batch {c.batch}: {', '.join(failures(c, tol))} ({summary(c)})"
                for c in comparisons if failures(c, tol)]
    if problems:
        raise ToleranceError(f"{what} failed validation against {reference}: " + "; ".join(problems), figures)
    return figures


def validation_samples(card: ModelCard, n: int) -> tuple[np.ndarray, str]:
    """`n` real preprocessed images from the card's validation split, and where they came from.

    Random normal inputs only when the card records no data (a zoo model exported as is).
    """
    size = card.input_size
    if card.data is None:
        x = np.random.default_rng(0).standard_normal((n, 3, size, size)).astype(np.float32)
        return x, "random normal inputs (the card records no data set)"
    from zoodeploy.models.data import splits_for
    from zoodeploy.preprocess import preprocess
    images = splits_for(card.data).val
    # spread over the split (it is sorted by class) and preprocess only those: a whole split
    # at 224px is hundreds of MB
    idx = np.linspace(0, len(images) - 1, num=min(n, len(images))).round().astype(np.int64)
    x = np.stack([preprocess(images.image(int(i)), card.preprocessing) for i in idx])
    return x, f"{card.data.source} val split, {len(x)} images"
