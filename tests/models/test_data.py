"""Data sets and splits: deterministic, stratified, disjoint; folders checked with clear errors."""

import numpy as np
import pytest
from PIL import Image

from zoodeploy.errors import DataError
from zoodeploy.models.data import load_splits


def test_digits_splits_are_deterministic_disjoint_and_stratified(digits):
    again = load_splits("digits")
    for split in ("train", "val", "test"):
        assert np.array_equal(digits[split].labels, again[split].labels)
    assert sum(digits.spec.counts.values()) == 1797
    assert digits.labels == [str(i) for i in range(10)]
    # every class appears in every split, in roughly the split's share
    for split, frac in (("test", 0.2), ("val", 0.15)):
        counts = np.bincount(digits[split].labels, minlength=10)
        assert (abs(counts / np.bincount(np.concatenate([digits[s].labels for s in ("train", "val", "test")])) - frac) < 0.02).all()


def test_digits_images_are_real_pixels(digits):
    from zoodeploy.models.data import digits_preprocessing
    x = digits.test.arrays(digits_preprocessing(32))
    assert x.shape == (len(digits.test), 3, 32, 32) and x.dtype == np.float32
    assert x.std() > 0.5  # not blank


def _folder(root, classes):
    for cls, n in classes.items():
        (root / cls).mkdir(parents=True)
        for i in range(n):
            Image.fromarray(np.full((12, 12, 3), (40 * i) % 256, np.uint8)).save(root / cls / f"{i}.png")
    return root


def test_digits_read_without_scikit_learn_are_scikit_learns():
    from sklearn.datasets import load_digits

    from zoodeploy.models.data import _digits_arrays
    images, target = _digits_arrays()
    d = load_digits()
    assert np.array_equal(images, d.images) and np.array_equal(target, d.target)


def test_image_folder_loads_and_splits(tmp_path):
    splits = load_splits(_folder(tmp_path / "d", {"cat": 10, "dog": 10}))
    assert splits.labels == ["cat", "dog"]
    assert sum(splits.spec.counts.values()) == 20 and splits.spec.num_files == 20
    assert splits.test.image(0).size == (12, 12)


@pytest.mark.parametrize("make, message", [
    (lambda p: p / "missing", "does not exist"),
    (lambda p: _folder(p / "d", {"only": 3}), "at least 2"),
    (lambda p: (_folder(p / "d", {"a": 3, "b": 3}), (p / "d" / "empty").mkdir())[0], "has no images"),
    (lambda p: _folder(p / "d", {"a": 1, "b": 5}), "too few"),
])
def test_bad_folders_are_clear_errors(tmp_path, make, message):
    with pytest.raises(DataError, match=message):
        load_splits(make(tmp_path))


def test_corrupt_image_is_skipped_and_counted(tmp_path):
    root = _folder(tmp_path / "d", {"a": 5, "b": 5})
    (root / "a" / "3.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    splits = load_splits(root)
    assert splits.spec.skipped == 1 and splits.spec.num_files == 10
    assert sum(splits.spec.counts.values()) == 9
    assert not any(p.name == "3.png" and p.parent.name == "a" for s in ("train", "val", "test")
                   for p in splits[s].items)
