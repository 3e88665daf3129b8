"""Accuracy of a variant on the held-out test split, and its drift from the fp32 reference."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from zoodeploy.card import Accuracy, ModelCard, load_card
from zoodeploy.errors import ArtifactError
from zoodeploy.models.data import Splits, splits_for
from zoodeploy.runtime import RunOptions, open_runner

REFERENCE = "fp32"


def run_batched(runner, x: np.ndarray, batch: int = 64) -> np.ndarray:
    """A runner's logits for all of `x`, `batch` images at a time."""
    return np.concatenate([runner.run(x[i:i + batch]) for i in range(0, len(x), batch)])


def topk_accuracy(logits: np.ndarray, labels: np.ndarray, k: int) -> float:
    k = min(k, logits.shape[1])
    top = np.argpartition(-logits, k - 1, axis=1)[:, :k]
    return float((top == labels[:, None]).any(axis=1).mean() * 100.0)


def accuracy_of(logits: np.ndarray, labels: np.ndarray, reference: np.ndarray | None = None,
                class_names: list[str] | None = None) -> Accuracy:
    """Top-1/top-5 of `logits`; with `reference` (fp32 logits) also drop, agreement, max error."""
    top1 = topk_accuracy(logits, labels, 1)
    per_class = None
    if class_names is not None:
        pred = logits.argmax(1)
        per_class = {name: float((pred[labels == k] == k).mean() * 100.0)
                     for k, name in enumerate(class_names) if (labels == k).any()}
    acc = Accuracy(n=len(labels), top1=top1, top5=topk_accuracy(logits, labels, 5), per_class=per_class)
    if reference is not None:
        acc.drop_pt = topk_accuracy(reference, labels, 1) - top1
        acc.agreement = float((logits.argmax(1) == reference.argmax(1)).mean() * 100.0)
        acc.max_abs_err = float(np.abs(logits.astype(np.float64) - reference).max())
    return acc


def test_arrays(card: ModelCard, splits: Splits | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The held-out test split, preprocessed as the card says."""
    if card.data is None and splits is None:
        raise ArtifactError(f"{card.name}: the card records no data set; pass --data")
    splits = splits or splits_for(card.data)
    return splits.test.arrays(card.preprocessing), splits.test.labels


def variant_logits(artifact: str | Path, variant: str, x: np.ndarray, card: ModelCard | None = None,
                   options: RunOptions | None = None) -> np.ndarray:
    runner = open_runner(artifact, variant, options, card=card)
    try:
        return run_batched(runner, x)
    finally:
        runner.close()


def evaluate_variants(artifact: str | Path, variants: list[str] | None = None,
                      splits: Splits | None = None, options: RunOptions | None = None,
                      record: bool = True) -> dict[str, Accuracy]:
    """Accuracy and drift vs fp32 of each variant on the test split; recorded in the card."""
    card = load_card(artifact)
    names = variants or [v for v in card.variants if card.variants[v].runtime != "tensorrt"
                         or (options and options.device == "cuda")]
    x, y = test_arrays(card, splits)
    ref = variant_logits(artifact, REFERENCE, x, card, options) if REFERENCE in card.variants else None
    out = {}
    for name in names:
        logits = ref if name == REFERENCE and ref is not None else variant_logits(artifact, name, x, card, options)
        out[name] = accuracy_of(logits, y, ref, card.labels)
    if record:
        card = load_card(artifact)  # re-read: a long evaluation must not undo other writes
        for name, acc in out.items():
            card.variant(name).accuracy = acc
        from zoodeploy.card import save_card
        save_card(artifact, card)
    return out
