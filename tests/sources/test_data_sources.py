"""Data with or without labels: class folders matched to a model's labels by name, unlabelled
folders, unreadable images skipped and counted, splits rebuilt from the recorded spec."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import write_folder

from zoodeploy.errors import DataError
from zoodeploy.models.data import load_splits, splits_for

WORDS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]


def test_class_folders_matched_by_name_not_order(tmp_path):
    # folders sort as eight, five, four, ... : nothing like the model's label order
    root = write_folder(tmp_path / "d", 300, classes=dict(enumerate(WORDS)))
    model_labels = ["junk", *WORDS]  # index of "three" is 4, whatever the folder order
    splits = load_splits(root, labels=model_labels)
    assert splits.labels == model_labels and splits.spec.labelled
    assert splits.spec.class_to_label == {w: i + 1 for i, w in enumerate(WORDS)}
    from sklearn.datasets import load_digits
    targets = load_digits().target
    for s in ("train", "val", "test"):
        for path, y in zip(splits[s].items, splits[s].labels):
            digit = int(targets[int(path.stem[3:])])
            assert model_labels[y] == WORDS[digit], (path, y)
    again = splits_for(splits.spec, labels=model_labels)
    assert [str(p) for p in again.test.items] == [str(p) for p in splits.test.items]
    assert (again.test.labels == splits.test.labels).all()


def test_subset_of_labels_and_unknown_folder(tmp_path):
    root = write_folder(tmp_path / "d", 120, classes={3: "three"})
    splits = load_splits(root, labels=WORDS)  # one class folder is fine when matched by name
    assert set(np.unique(splits.test.labels)) == {3}
    (root / "tabby").mkdir()
    (root / "three" / "img0003.png").rename(root / "tabby" / "x.png")
    with pytest.raises(DataError, match="tabby.*not labels of the model"):
        load_splits(root, labels=WORDS)


def test_unlabelled_folder_splits_without_overlap(unlabelled):
    splits = load_splits(unlabelled)
    assert not splits.spec.labelled and splits.labels == []
    names = [set(map(str, splits[s].items)) for s in ("train", "val", "test")]
    assert sum(map(len, names)) == 60 and not (names[0] & names[2]) and not (names[1] & names[2])
    assert all((splits[s].labels == -1).all() for s in ("train", "val", "test"))
    assert splits_for(splits.spec).spec == splits.spec


def test_unreadable_images_skipped_and_counted(unlabelled):
    (unlabelled / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    (unlabelled / "empty.jpg").write_bytes(b"")
    splits = load_splits(unlabelled)
    assert splits.spec.skipped == 2 and splits.spec.num_files == 62
    assert sum(splits.spec.counts.values()) == 60


def test_evaluation_only_fractions_keep_no_train(unlabelled):
    splits = load_splits(unlabelled, val_fraction=0.25, test_fraction=0.75)
    assert splits.spec.counts == {"train": 0, "val": 15, "test": 45}


def test_folder_without_images(tmp_path):
    (tmp_path / "none").mkdir()
    (tmp_path / "none" / "notes.txt").write_text("x")
    with pytest.raises(DataError, match="has no images"):
        load_splits(tmp_path / "none")
