"""Validation of a model against its reference: every failure measured, then one error.

The rule is Polygraphy's: logits match when the largest error is within `atol` OR within
`rtol` times the logit scale. fp32 rounding error grows with the size of the logits (a deep
random-init ResNet reaches |logit| ~ 1e2..1e5, where 1e-4 absolute is a few ulps or less), so an
absolute bound alone fails honest exports of deep nets, and a relative bound alone fails
nets whose logits are all near zero. Both limits must be exceeded for a failure.

`compare` is the one comparison path every stage uses: a candidate runner and a reference (a
runner, or its logits) on the same images at each batch size asked, judged by the tolerance of the
candidate's precision from `TOLERANCES`; export, fusion, fp16, OpenVINO and the GPU engines all
call it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, NamedTuple, Protocol

import numpy as np

from zoodeploy.card import Comparison, ModelCard, Precision, ToleranceSpec, Validation
from zoodeploy.errors import ValidationError
from zoodeploy.preprocess import synthetic_batch

if TYPE_CHECKING:
    from zoodeploy.artifact import Artifact

# Measured across the whole zoo (random init, digits val images at 32-75 px, ONNX Runtime CPU vs
# PyTorch CPU at batch 1 and 8; benchmarks/export_zoo.py): max relative error <= 3.2e-6 for every
# architecture, while max abs error reaches 7e-4 (ResNet-101, logits ~3e2), 0.17 (ResNet-152,
# ~1e5) and 84 (Inception v3, ~3e7). rtol 1e-4 leaves 30x headroom over the worst measured and
# is far below what a wrong graph gives (0.5 for the factor-2 divergence in the tests); atol 1e-4
# (Optimum's and Polygraphy's order for fp32) covers nets whose logits are all near zero.
FP32_ATOL = 1e-4
FP32_RTOL = 1e-4
SCALE_FLOOR = 1e-12  # a sample whose logits are all zero has no relative error to speak of
NOT_GATED = 1e9  # an error measured and recorded, not gated (a card is JSON, which has no infinity)
DEFAULT_BATCH = 32  # images per run when no batch size is asked for
EXPORT = "export"  # the TOLERANCES key of an export checked against PyTorch


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


# What a candidate must match its reference by, one entry per precision: a sanity bound on how it
# was made, never the accuracy gate (the orchestrator measures drift against fp32 on the test split).
TOLERANCES: dict[str, Tolerance] = {
    # PyTorch -> ONNX (and the saved program) on one CPU: the same fp32 arithmetic, translated
    EXPORT: Tolerance(),
    # the same fp32 model reordered: fused graphs, OpenVINO's f32 kernels, TensorRT engines with TF32
    # off: as tight as an export (every class and top-5 set the same); a wrong graph is off by far
    # more (0.5 in the export tests)
    Precision.fp32: Tolerance(),
    # 10 mantissa bits: logits move by a few percent, the class and the top-5 set rarely
    Precision.fp16: Tolerance(atol=NOT_GATED, rtol=3e-2, min_top1_agreement=95.0, min_top5_agreement=90.0),
    # 8 mantissa bits: logits move by a few percent, the class rarely; the lower logits' order is
    # rounding where they nearly tie
    Precision.bf16: Tolerance(atol=NOT_GATED, rtol=NOT_GATED, min_top1_agreement=90.0, min_top5_agreement=0.0),
    # int8 kernels round differently on every runtime, and against fp32 the quantization error adds:
    # top-1 agreement only (random-init ResNet-50 at 224 px agreed on 87.5% of top-5 sets at 2.4%
    # relative error, OpenVINO vs ONNX Runtime on the same QDQ file)
    Precision.int8: Tolerance(atol=NOT_GATED, rtol=NOT_GATED, min_top1_agreement=90.0, min_top5_agreement=0.0),
}
TOLERANCES[Precision.mixed] = TOLERANCES[Precision.int8]  # int8 with some nodes kept in float


def check(comparisons: list[Comparison], tol: Tolerance | None, what: str, *, reference: str = "PyTorch",
          samples: str = "", runtime: str | None = None) -> Validation:
    """Raise one ToleranceError listing every failure; else return the figures for the card
    (`tol` None: measured, not gated)."""
    figures = Validation(reference=reference, samples=samples, runtime=runtime,
                         tolerance=ToleranceSpec(**asdict(tol)) if tol else None, comparisons=comparisons)
    problems = [f"batch {c.batch}: {', '.join(failures(c, tol))} ({summary(c)})"
                for c in comparisons if tol and failures(c, tol)]
    if problems:
        raise ToleranceError(f"{what} failed validation against {reference}: " + "; ".join(problems), figures)
    return figures


class Runs(Protocol):
    """Anything that maps an image batch to logits: a `zoodeploy.runtime` Runner, a wrapped module."""

    def run(self, x: np.ndarray) -> np.ndarray: ...


def whole_batches(samples: np.ndarray, batch: int) -> list[np.ndarray]:
    """`samples` (repeated as needed to fill the last one) cut into batches of exactly `batch`: a
    fixed-batch graph runs, and each batch size is measured on every sample."""
    n = -(-len(samples) // batch) * batch
    x = np.resize(samples, (n, *samples.shape[1:]))
    return [x[i:i + batch] for i in range(0, n, batch)]


def compare(candidate: Runs, reference: Runs | np.ndarray, samples: np.ndarray, what: str, *,
            tol: Tolerance | None, batches: Sequence[int] = (), against: str = "PyTorch", samples_from: str = "",
            runtime: str | None = None) -> Validation:
    """Run `candidate` and `reference` (a runner, or its logits on `samples`) on the same images at
    each batch size in `batches` (default: one, up to DEFAULT_BATCH); the figures for the card, or
    one ToleranceError listing every failure when `tol` is given."""
    comparisons = []
    for b in dict.fromkeys(batches or [min(len(samples), DEFAULT_BATCH)]):
        xs = whole_batches(samples, b)
        got = np.concatenate([candidate.run(x) for x in xs])
        want = (np.resize(reference, got.shape) if isinstance(reference, np.ndarray)
                else np.concatenate([reference.run(x) for x in xs]))
        comparisons.append(compare_logits(got, want, b))
    return check(comparisons, tol, what, reference=against, samples=samples_from, runtime=runtime)


class Samples(NamedTuple):
    """Preprocessed images to check a model on, and where they came from (for the card)."""

    x: np.ndarray
    source: str


def spread(n_items: int, size: int) -> np.ndarray:
    """`size` indices spread evenly over `n_items` (splits are sorted by class: this mixes classes)."""
    return np.unique(np.linspace(0, n_items - 1, num=min(size, n_items)).round().astype(np.int64))


def validation_samples(artifact: Artifact, n: int = 64, card: ModelCard | None = None) -> Samples:
    """Up to `n` real preprocessed images from the validation split the card records (never the
    test split), for checks against a reference; random normal inputs only when the card records
    no data (a zoo model exported as is). `card`: the artifact's card as a stage is about to change it
    (an export at another input size)."""
    card = card or artifact.card
    if card.data is None:
        x = synthetic_batch(card.preprocessing, n)
        return Samples(x, "random normal inputs (the card records no data set)")
    images = artifact.splits().val
    x = images.some_arrays(spread(len(images), n), card.preprocessing)
    return Samples(x, f"{card.data.source} val split, {len(x)} images")
