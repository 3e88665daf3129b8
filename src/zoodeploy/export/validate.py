"""Validation of a model file against PyTorch: every failure measured, then one error."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from zoodeploy.errors import ValidationError


@dataclass(frozen=True)
class Tolerance:
    atol: float = 1e-4  # max |onnx - torch| logit error (fp32)
    rtol: float = 1e-3  # max error relative to the largest |torch logit|
    min_top1_agreement: float = 100.0  # percent
    min_top5_agreement: float = 100.0  # percent of samples whose top-5 sets agree


@dataclass
class Comparison:
    """Measured difference between a candidate's logits and the reference's."""

    batch: int
    samples: int
    max_abs_err: float
    max_rel_err: float
    top1_agreement: float
    top5_agreement: float

    def failures(self, tol: Tolerance) -> list[str]:
        out = []
        if self.max_abs_err > tol.atol:
            out.append(f"max abs error {self.max_abs_err:.3g} > atol {tol.atol:g}")
        if self.max_rel_err > tol.rtol:
            out.append(f"max relative error {self.max_rel_err:.3g} > rtol {tol.rtol:g}")
        if self.top1_agreement < tol.min_top1_agreement:
            out.append(f"top-1 agreement {self.top1_agreement:.2f}% < {tol.min_top1_agreement:g}%")
        if self.top5_agreement < tol.min_top5_agreement:
            out.append(f"top-5 agreement {self.top5_agreement:.2f}% < {tol.min_top5_agreement:g}%")
        return out


def compare_logits(candidate: np.ndarray, reference: np.ndarray, batch: int) -> Comparison:
    err = np.abs(candidate.astype(np.float64) - reference.astype(np.float64))
    scale = max(float(np.abs(reference).max()), 1e-12)
    k = min(5, reference.shape[1])
    top5 = lambda z: np.sort(np.argsort(-z, axis=1)[:, :k], axis=1)  # noqa: E731
    return Comparison(
        batch=batch, samples=len(reference), max_abs_err=float(err.max()),
        max_rel_err=float(err.max() / scale),
        top1_agreement=float((candidate.argmax(1) == reference.argmax(1)).mean() * 100),
        top5_agreement=float((top5(candidate) == top5(reference)).all(1).mean() * 100))


def check(comparisons: list[Comparison], tol: Tolerance, what: str) -> dict:
    """Raise one ValidationError listing every failure; else return the figures for the card."""
    problems = [f"batch {c.batch}: {f}" for c in comparisons for f in c.failures(tol)]
    if problems:
        raise ValidationError(f"{what} failed validation against PyTorch: " + "; ".join(problems))
    return {"tolerance": asdict(tol), "comparisons": [asdict(c) for c in comparisons]}
