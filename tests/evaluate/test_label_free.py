"""Without labels, drift is agreement: every figure relative to fp32, and every budget reads it."""

from __future__ import annotations

import numpy as np
import pytest

from zoodeploy.artifact import select_variant
from zoodeploy.card import Accuracy, LatencyStats, ModelCard, Variant
from zoodeploy.evaluate.accuracy import accuracy_of, top1_score
from zoodeploy.gate import GateConfig, _accuracy_failures
from zoodeploy.preprocess import Preprocessing
from zoodeploy.recipes import CopyRecipe

UNLABELLED = -np.ones(40, np.int64)


def flip(logits: np.ndarray, n: int) -> np.ndarray:
    """The first `n` images' top-1 moved to another class."""
    out = logits.copy()
    for i in range(n):
        out[i, (out[i].argmax() + 1) % out.shape[1]] = out[i].max() + 1.0
    return out


def test_unlabelled_images_give_agreement_figures_not_accuracy():
    ref = np.random.default_rng(0).standard_normal((40, 1000)).astype(np.float32)
    acc = accuracy_of(flip(ref, 4), UNLABELLED, ref)
    assert acc.kind == "agreement" and acc.top1 is None and acc.top5 is None
    assert acc.agreement == 90.0 and acc.drop_pt == pytest.approx(10.0) and acc.score == 90.0
    assert acc.top5_containment == 100.0  # fp32's class is the runner-up: still in the top 5
    assert acc.max_abs_err > 0 and "agreement" in acc.summary() and "no labels" in acc.summary()
    fp32 = accuracy_of(ref, UNLABELLED)
    assert (fp32.kind, fp32.agreement, fp32.drop_pt) == ("agreement", 100.0, 0.0)


def test_the_search_scores_agreement_without_labels_and_accuracy_with_them():
    ref = np.random.default_rng(1).standard_normal((40, 10))
    assert top1_score(flip(ref, 2), UNLABELLED, ref) == 95.0
    labels = ref.argmax(1)
    labels[:10] = (labels[:10] + 1) % 10  # fp32 itself is wrong on 10 of them
    assert top1_score(ref, labels, ref) == 75.0


def card_with(drops: dict[str, float], p50: dict[str, float]) -> ModelCard:
    variants = {n: Variant(name=n, file=f"{n}.onnx", sha256="0" * 64, precision="fp32", runtime="onnxruntime",
                           made_by="test", recipe=CopyRecipe(source="x"),
                           accuracy=Accuracy(n=100, kind="agreement", agreement=100 - d, drop_pt=d),
                           latency={"1": LatencyStats(batch=1, runs=10, p50_ms=p50[n], p90_ms=p50[n], p99_ms=p50[n],
                                                      mean_ms=p50[n], throughput=1000 / p50[n])})
                for n, d in drops.items()}
    return ModelCard(name="m", num_classes=1000, labels=[str(i) for i in range(1000)],
                     preprocessing=Preprocessing.for_size(32), variants=variants)


def test_selection_and_gate_read_the_agreement_drop():
    card = card_with({"fp32": 0.0, "int8": 2.0, "int8-control": 0.4}, {"fp32": 3.0, "int8": 1.0, "int8-control": 1.4})
    assert select_variant(card, max_drop=0.5, batch=1) == "int8-control"
    assert select_variant(card, max_drop=2.0, batch=1) == "int8"
    [failure] = _accuracy_failures("int8", card.variants["int8"].accuracy, GateConfig(max_drop=0.5),
                                     "this x86-avx2 host")
    assert "agreement with fp32 (no labels) dropped 2.00 pt > budget 0.5 pt on this x86-avx2 host" in failure.message
