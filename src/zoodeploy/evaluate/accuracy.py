"""Accuracy of a variant on the held-out test split, and its drift from the fp32 reference."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from zoodeploy.artifact import REFERENCE, Artifact
from zoodeploy.card import Accuracy, DataSpec, ModelCard
from zoodeploy.errors import ArtifactError
from zoodeploy.models.data import Splits, load_splits, splits_for
from zoodeploy.progress import bar
from zoodeploy.runtime import RunOptions, open_runner
from zoodeploy.target import needs_gpu


def run_batched(runner, x: np.ndarray, batch: int = 64) -> np.ndarray:
    """A runner's logits for all of `x`, `batch` images at a time."""
    return np.concatenate([runner.run(x[i:i + batch]) for i in range(0, len(x), batch)])


def topk_indices(logits: np.ndarray, k: int) -> np.ndarray:
    """Each row's k best classes, ties to the lower index: the top-1 is argmax's, as agreement,
    the service and predict.py read it (int8 logits tie often: dequantized from 256 levels)."""
    return np.argsort(-logits, axis=1, kind="stable")[:, :min(k, logits.shape[1])]


def topk_accuracy(logits: np.ndarray, labels: np.ndarray, k: int) -> float:
    return float((topk_indices(logits, k) == labels[:, None]).any(axis=1).mean() * 100.0)


def is_labelled(labels: np.ndarray) -> bool:
    """Whether every image has a label (unlabelled images carry -1)."""
    return labels.size > 0 and bool((labels >= 0).all())


def agreement(logits: np.ndarray, reference: np.ndarray) -> float:
    """Percent of images whose top-1 class is the reference's."""
    return float((logits.argmax(1) == reference.argmax(1)).mean() * 100.0)


def drop_measure(labels: np.ndarray) -> str:
    """What `top1_score` measures on these labels, for the lines and records that quote a drop."""
    return "top-1" if is_labelled(labels) else "top-1 agreement with fp32"


def top1_score(logits: np.ndarray, labels: np.ndarray, reference: np.ndarray) -> float:
    """What a drop budget is measured on: top-1 accuracy with labels, agreement with the
    reference (fp32) without them."""
    return topk_accuracy(logits, labels, 1) if is_labelled(labels) else agreement(logits, reference)


def accuracy_of(logits: np.ndarray, labels: np.ndarray, reference: np.ndarray | None = None,
                class_names: list[str] | None = None) -> Accuracy:
    """Top-1/top-5 of `logits` (when the images are labelled); with `reference` (fp32 logits)
    also drop, agreement, top-5 containment and logit error. Without labels every figure is
    relative to the reference, and says so (`kind="agreement"`)."""
    if is_labelled(labels):
        acc = Accuracy(n=len(labels), top1=topk_accuracy(logits, labels, 1), top5=topk_accuracy(logits, labels, 5),
                       per_class=_per_class(logits, labels, class_names))
    else:
        acc = Accuracy(n=len(labels), kind="agreement")
        if reference is None:
            reference = logits  # fp32 itself: it agrees with itself
    if reference is not None:
        acc.agreement = agreement(logits, reference)
        acc.drop_pt = (topk_accuracy(reference, labels, 1) - acc.top1 if acc.kind == "labelled"
                       else 100.0 - acc.agreement)
        k = min(5, logits.shape[1])
        top = topk_indices(logits, k)
        acc.top5_containment = float((top == reference.argmax(1)[:, None]).any(axis=1).mean() * 100.0)
        err = np.abs(logits.astype(np.float64) - reference)
        acc.max_abs_err, acc.mean_abs_err = float(err.max()), float(err.mean())
    return acc


def _per_class(logits: np.ndarray, labels: np.ndarray, class_names: list[str] | None) -> dict[str, float] | None:
    if class_names is None:
        return None
    pred = logits.argmax(1)
    return {name: float((pred[labels == k] == k).mean() * 100.0)
            for k, name in enumerate(class_names) if (labels == k).any()}


def same_data(a: DataSpec | None, b: DataSpec | None) -> bool:
    """Whether two specs describe the same images split the same way."""
    keys = ("source", "seed", "val_fraction", "test_fraction", "counts")
    return a is not None and b is not None and all(getattr(a, k) == getattr(b, k) for k in keys)


def eval_splits(card: ModelCard, data: str | Path | None = None) -> Splits:
    """The splits to evaluate on: the card's own data, or `data` (digits or an ImageFolder tree whose
    class folders are matched to the card's labels by name, in any order; a folder that is no label is
    refused: a guessed class order would make every figure wrong)."""
    if data is None:
        if card.data is None:
            raise ArtifactError(f"{card.name}: the card records no labelled data set to measure accuracy on; "
                                "evaluate on one with `zoodeploy evaluate ARTIFACT --data digits|DIR`")
        return splits_for(card.data)
    source = "digits" if str(data) == "digits" else str(Path(data).resolve())
    if card.data is not None and source == card.data.source:
        return splits_for(card.data)  # the same seed and fractions as training
    return load_splits(data, labels=card.labels)  # class folders matched to the model's labels by name


def runnable_variants(card: ModelCard, device: str = "cpu") -> list[str]:
    """The card's variants that `device` can run (GPU engines only on cuda)."""
    return [name for name, v in card.variants.items() if device == "cuda" or not needs_gpu(v)]


def variant_logits(artifact: Artifact | str | Path, variant: str, x: np.ndarray,
                   options: RunOptions | None = None) -> np.ndarray:
    with open_runner(artifact, variant, options) as runner:
        return run_batched(runner, x)


def evaluate_variants(artifact: Artifact | str | Path, variants: list[str] | None = None,
                      options: RunOptions | None = None, record: bool = True,
                      progress: bool = False) -> dict[str, Accuracy]:
    """Accuracy and drift vs fp32 of each variant on the test split (label-free agreement with
    fp32 when the images have no labels): the handle's test data (`Artifact.test_data`: the card's
    split, or other data handed over with `Artifact.use_splits`), preprocessed once per handle.

    Recorded in the card when `record` and the data is the card's own (figures on other data
    would be mistaken for the artifact's); returns the figures either way.
    """
    art = Artifact.of(artifact)
    card = art.card
    options = options or RunOptions()
    names = variants or runnable_variants(card, options.device)
    for name in names:
        card.variant(name)  # unknown names fail before any work
    x, y = art.test_data()
    ref = variant_logits(art, REFERENCE, x, options) if REFERENCE in card.variants else None
    out = {}
    for name in bar(names, desc="evaluate", unit="variant", disable=not progress, leave=False):
        logits = ref if name == REFERENCE and ref is not None else variant_logits(art, name, x, options)
        out[name] = accuracy_of(logits, y, ref, card.labels)
    if record and same_data(card.data, art.splits().spec):
        with art.update() as fresh:  # re-read under the lock: a long evaluation undoes no other write
            for name, acc in out.items():
                fresh.variant(name).accuracy = acc
    return out
