"""Accuracy and drift: the metrics on known logits, and evaluation of real variants on held-out data."""

import shutil

import numpy as np
import pytest
from PIL import Image

from zoodeploy.artifact import Artifact
from zoodeploy.card import load_card
from zoodeploy.errors import DataError, ZoodeployError
from zoodeploy.evaluate.accuracy import accuracy_of, eval_splits, evaluate_variants, topk_accuracy
from zoodeploy.recipes import CopyRecipe


def test_metrics_on_known_logits():
    labels = np.array([0, 1, 2, 2])
    ref = np.array([[9, 1, 0], [0, 9, 1], [0, 1, 9], [9, 1, 0]], np.float32)  # 3 of 4 right
    cand = np.array([[9, 1, 0], [9, 0, 1], [0, 1, 9], [0, 9, 1.5]], np.float32)  # 2 of 4 right
    a = accuracy_of(cand, labels, ref, ["a", "b", "c"])
    assert a.n == 4 and a.top1 == 50.0 and a.drop_pt == 25.0
    assert a.agreement == 50.0  # rows 0 and 2 agree with the reference
    assert a.max_abs_err == pytest.approx(9.0)
    assert a.per_class == {"a": 100.0, "b": 0.0, "c": 50.0}
    assert topk_accuracy(cand, labels, 2) == 75.0  # row 3: 2 is second to 1
    assert a.top5 == 100.0  # k is capped at the class count


def test_reference_against_itself_has_no_drift():
    x = np.random.default_rng(0).standard_normal((50, 10)).astype(np.float32)
    y = np.arange(50) % 10
    a = accuracy_of(x, y, x)
    assert (a.drop_pt, a.agreement, a.max_abs_err) == (0.0, 100.0, 0.0)


@pytest.fixture
def lenet_int8(optimized):
    return optimized("lenet5")


def test_fp32_onnx_scores_what_pytorch_scored_on_the_same_test_split(lenet_int8, digits):
    card = load_card(lenet_int8)
    acc = evaluate_variants(lenet_int8, ["fp32", "int8"], record=False)
    # training measured the PyTorch model on this very split: the exported graph must agree
    assert acc["fp32"].top1 == pytest.approx(card.training.test_accuracy)
    assert acc["fp32"].n == len(digits.test) == card.data.counts["test"]
    assert acc["int8"].drop_pt == pytest.approx(acc["fp32"].top1 - acc["int8"].top1)
    assert 0 < acc["int8"].max_abs_err < 5 and acc["int8"].agreement > 90


def test_figures_are_recorded_and_reproducible(lenet_int8, tmp_path):
    art = tmp_path / "a"
    shutil.copytree(lenet_int8, art)
    first = evaluate_variants(art)
    card = load_card(art)
    assert {n: v.accuracy for n, v in card.variants.items()} == first
    assert evaluate_variants(art, record=False) == first  # deterministic: same data, same numbers


def test_other_data_is_evaluated_but_not_recorded(lenet_int8, tmp_path):
    art = tmp_path / "a"
    shutil.copytree(lenet_int8, art)
    card = load_card(art)
    root = tmp_path / "imgs"
    rng = np.random.default_rng(0)
    for label in card.labels:  # the model's ten classes, as a folder tree
        (root / label).mkdir(parents=True)
        for i in range(6):
            Image.fromarray(rng.integers(0, 255, (8, 8), np.uint8)).save(root / label / f"{i}.png")
    splits = eval_splits(card, root)
    before = card.variants["fp32"].accuracy
    handle = Artifact(art)
    handle.use_splits(splits)  # other data: measured on, never recorded as the card's
    acc = evaluate_variants(handle, ["fp32"])
    assert acc["fp32"].n == len(splits.test) == 10  # 20% of 6 per class
    assert load_card(art).variants["fp32"].accuracy == before != acc["fp32"]  # the card's own figures stay


def test_data_with_other_classes_is_refused(lenet_int8, tmp_path):
    for cls in ("cat", "dog"):
        (tmp_path / cls).mkdir()
        for i in range(5):
            Image.new("RGB", (8, 8)).save(tmp_path / cls / f"{i}.png")
    with pytest.raises(DataError, match="classes"):
        eval_splits(load_card(lenet_int8), tmp_path)


def test_unknown_variant_fails_before_any_work(lenet_int8):
    with pytest.raises(ZoodeployError, match="no variant 'int4'"):
        evaluate_variants(lenet_int8, ["int4"])


def test_modified_variant_file_is_refused(lenet_int8, tmp_path):
    art = tmp_path / "a"
    shutil.copytree(lenet_int8, art)
    shutil.copy(art / "fp32.onnx", art / "copy.onnx")
    handle = Artifact(art)
    handle.add_variant(handle.new_variant("copy", "copy.onnx", precision="fp32", runtime="onnxruntime",
                                          made_by="test", recipe=CopyRecipe(source="fp32.onnx")))
    (art / "copy.onnx").write_bytes((art / "copy.onnx").read_bytes() + b"\0")
    with pytest.raises(ZoodeployError, match="sha256"):
        evaluate_variants(art, ["copy"])


def test_tied_logits_count_argmaxs_class_everywhere():
    """INT8 logits tie often (dequantized from 256 levels): top-1 accuracy, agreement, the service
    and predict.py must all read the same class, the lower index (argmax's)."""
    from zoodeploy.evaluate.accuracy import agreement, topk_accuracy, topk_indices
    # classes 5, 6, 7 and 9 tie (a row where numpy's argpartition picks 6)
    logits = np.array([[1, 0, 0, 0, 0, 2, 2, 2, 1, 2]] * 64, np.float32)
    assert topk_accuracy(logits, np.full(64, 5), 1) == 100.0
    assert topk_accuracy(logits, np.full(64, 6), 1) == 0.0 and topk_accuracy(logits, np.full(64, 6), 2) == 100.0
    assert agreement(logits, np.eye(10, dtype=np.float32)[[5] * 64]) == 100.0
    assert topk_indices(logits, 5)[0].tolist() == [5, 6, 7, 9, 0]
