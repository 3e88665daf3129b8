"""Data sets: scikit-learn's bundled digits (offline default), any ImageFolder tree, or a
folder of images without classes (unlabelled: every label -1).

Splits are deterministic and stratified: per class, a seeded shuffle, then test, val and
the rest for training. Calibration uses `train`; accuracy is measured on `test` only, so
calibration and evaluation never share an image.
"""

from __future__ import annotations

import gzip
import importlib.util
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from zoodeploy.card import DataSpec
from zoodeploy.errors import DataError
from zoodeploy.preprocess import Preprocessing, load_image, preprocess

IMAGE_EXTENSIONS = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm"}
SPLITS = ("train", "val", "test")


@dataclass
class ImageSet:
    """Images (in memory or file paths) with integer labels (-1: unlabelled)."""

    items: list[Image.Image | Path]
    labels: np.ndarray
    _cache: dict[Preprocessing, np.ndarray] = field(default_factory=dict, repr=False)

    def __len__(self) -> int:
        return len(self.items)

    def image(self, i: int) -> Image.Image:
        item = self.items[i]
        return item if isinstance(item, Image.Image) else load_image(item)

    def arrays(self, prep: Preprocessing, limit: int | None = None) -> np.ndarray:
        """All (or the first `limit`) images preprocessed: float32 (N, 3, H, W), cached."""
        if prep not in self._cache:
            self._cache[prep] = np.stack([preprocess(self.image(i), prep) for i in range(len(self))])
        return self._cache[prep][:limit]

    def some_arrays(self, indices: np.ndarray, prep: Preprocessing) -> np.ndarray:
        """The images at `indices`, preprocessed: taken from `arrays` when it was made already,
        else only these (a whole split at 224 px would be hundreds of MB for a few images)."""
        if prep in self._cache:
            return self._cache[prep][indices]
        return np.stack([preprocess(self.image(int(i)), prep) for i in indices])


@dataclass
class Splits:
    train: ImageSet
    val: ImageSet
    test: ImageSet
    labels: list[str]
    spec: DataSpec

    def __getitem__(self, split: str) -> ImageSet:
        if split not in SPLITS:
            raise DataError(f"unknown split {split!r}; use one of {', '.join(SPLITS)}")
        return getattr(self, split)


def _digits() -> tuple[list[Image.Image], np.ndarray, list[str]]:
    images, target = _digits_arrays()
    pixels = (images * (255.0 / 16.0)).round().astype(np.uint8)
    return [Image.fromarray(p, "L") for p in pixels], target.astype(np.int64), [str(i) for i in range(10)]


def _digits_arrays() -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's digits (8x8 images 0..16, targets) read from the CSV it ships, which is what
    `load_digits` reads, without importing scikit-learn: that import alone took 2.3 s of every
    command (and server) that evaluates on digits."""
    spec = importlib.util.find_spec("sklearn")
    csv = Path(next(iter(spec.submodule_search_locations)), "datasets", "data", "digits.csv.gz") \
        if spec and spec.submodule_search_locations else None
    if csv is None or not csv.is_file():  # another layout: ask scikit-learn itself
        from sklearn.datasets import load_digits
        d = load_digits()
        return d.images, d.target
    with gzip.open(csv, "rt") as f:
        table = np.loadtxt(f, delimiter=",")
    return table[:, :-1].reshape(-1, 8, 8), table[:, -1].astype(np.int64)


def _class_files(root: Path, images_only: bool = False) -> dict[str, list[Path]] | list[Path]:
    """An ImageFolder's class folder -> image files, or the images of a folder without classes
    (`images_only`: every image under root, sub-folders or not)."""
    if not root.exists():
        raise DataError(f"data directory {root} does not exist; pass `digits`, an ImageFolder directory "
                        "(one sub-folder of images per class) or a folder of images")
    if not root.is_dir():
        raise DataError(f"{root} is not a directory; pass an ImageFolder directory or a folder of images")
    subdirs = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if subdirs and not images_only:
        return {d.name: _images_under(d) for d in subdirs}
    files = _images_under(root)
    if not files:
        raise DataError(f"{root} has no images ({', '.join(sorted(IMAGE_EXTENSIONS))}); add some")
    return files


def class_folders(source: str | Path) -> list[str]:
    """The top-level sub-folder names of a data folder (digits: its classes `0`..`9`), sorted; [] when
    it holds none (or does not exist: loading it says so)."""
    if str(source) == "digits":
        return [str(i) for i in range(10)]
    root = Path(source)
    if not root.is_dir():
        return []
    return sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))


def _images_under(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS
                  and not any(part.startswith(".") for part in p.relative_to(root).parts))


def _readable(files: list[Path]) -> list[Path]:
    """The files that decode; the others are skipped (and counted by the caller)."""
    out = []
    for f in files:
        try:
            load_image(f)
        except DataError:
            continue
        out.append(f)
    return out


def class_map(classes: list[str], labels: list[str], where: str) -> dict[str, int]:
    """Class folder names -> the model's label indices, matched by name (any folder order)."""
    index = {name: i for i, name in enumerate(labels)}
    unknown = [c for c in classes if c not in index]
    if unknown:
        shown = ", ".join(unknown[:3]) + (f" and {len(unknown) - 3} more" if len(unknown) > 3 else "")
        raise DataError(f"{where}: class folder(s) {shown} are not labels of the model "
                        f"({len(labels)} classes, e.g. {', '.join(labels[:3])}); rename them to the model's "
                        "labels, or pass a folder of images without class folders")
    return {c: index[c] for c in classes}


def _labelled(per_class: dict[str, list[Path]], root: str, labels: list[str] | None,
              mapping: dict[str, int] | None) -> tuple[list[Path], np.ndarray, np.ndarray, list[str], dict | None]:
    """(items, class folder index per item, label per item, label names, folder->label map or None)."""
    classes = list(per_class)
    if mapping is None and labels is not None:
        mapping = class_map(classes, labels, root)
    empty = [c for c in classes if not per_class[c]]
    if empty:
        raise DataError(f"class folder {Path(root) / empty[0]} has no images (or none readable; "
                        f"{', '.join(sorted(IMAGE_EXTENSIONS))}); add images or remove the folder")
    if mapping is None and len(classes) < 2:
        raise DataError(f"{root} has {len(classes)} class folder(s); an ImageFolder tree needs at least 2 "
                        "sub-folders, one per class (or name the model's labels to match them by name)")
    items: list[Path] = []
    groups: list[int] = []
    y: list[int] = []
    for k, c in enumerate(classes):
        items += per_class[c]
        groups += [k] * len(per_class[c])
        y += [mapping[c] if mapping is not None else k] * len(per_class[c])
    names = labels if labels is not None else (classes if mapping is None else _names(mapping))
    return items, np.asarray(groups, np.int64), np.asarray(y, np.int64), names, mapping


def _names(mapping: dict[str, int]) -> list[str]:
    """Label names known only from a folder -> index map (the others as class_<i>)."""
    names = [f"class_{i}" for i in range(max(mapping.values()) + 1)]
    for c, i in mapping.items():
        names[i] = c
    return names


def _counts(n: int, val_fraction: float, test_fraction: float, what: str) -> tuple[int, int]:
    """(test, val) images of `n`; val + test >= 1 makes an evaluation-only set without train."""
    n_test = max(1, int(round(n * test_fraction))) if test_fraction > 0 else 0
    if val_fraction + test_fraction >= 1:
        return min(n_test, n), max(0, n - n_test)
    n_val = max(1, int(round(n * val_fraction))) if val_fraction > 0 else 0
    if n - n_test - n_val < 1:
        raise DataError(f"{what} has only {n} image(s): too few to split into train/val/test; add images")
    return n_test, n_val


def _split_indices(groups: np.ndarray, seed: int, val_fraction: float,
                   test_fraction: float) -> dict[str, np.ndarray]:
    """Stratified by group (a class; one group for unlabelled images), seeded."""
    rng = np.random.default_rng(seed)
    out: dict[str, list[int]] = {s: [] for s in SPLITS}
    for k in np.unique(groups):
        idx = rng.permutation(np.flatnonzero(groups == k))
        # every class in every split, so that val and test accuracy cover every class
        n_test, n_val = _counts(len(idx), val_fraction, test_fraction, f"class {k}")
        out["test"] += idx[:n_test].tolist()
        out["val"] += idx[n_test:n_test + n_val].tolist()
        out["train"] += idx[n_test + n_val:].tolist()
    return {s: np.sort(np.asarray(v, np.int64)) for s, v in out.items()}


def load_splits(source: str | Path, *, seed: int = 0, val_fraction: float = 0.15,
                test_fraction: float = 0.2, labels: list[str] | None = None,
                class_to_label: dict[str, int] | None = None, images_only: bool = False) -> Splits:
    """Load `digits`, an ImageFolder directory or a folder of images, and split it deterministically.

    With `labels` (the model's), class folders are matched to them by name, whatever their order;
    `class_to_label` is such a match already made (from a recorded DataSpec). A folder with images
    but no class sub-folders is unlabelled: every label -1. Unreadable images are skipped and
    counted in the spec. val_fraction + test_fraction >= 1 keeps no train split (evaluation only).
    `images_only` reads a folder as a bag of images, recursively, whatever its sub-folders are called.
    """
    skipped, num_files, labelled = 0, None, True
    if str(source) == "digits":  # in the data set's own order, as every recorded digits split
        items, groups, classes = _digits()
        if images_only:  # a model whose labels are not the digits: the images, without their classes
            labelled, mapping, y_all, names = False, None, np.full(len(items), -1, np.int64), labels or []
        else:
            mapping = class_to_label or (class_map(classes, labels, "digits") if labels is not None else None)
            y_all = groups if mapping is None else np.asarray([mapping[classes[k]] for k in groups], np.int64)
            names = labels if labels is not None else (classes if mapping is None else _names(mapping))
    else:
        where = str(Path(source))
        found = _class_files(Path(source), images_only)
        labelled = isinstance(found, dict)
        files = [f for fs in found.values() for f in fs] if labelled else found
        num_files = len(files)
        per_class = {c: _readable(fs) for c, fs in found.items()} if labelled else _readable(found)
        kept = sum(map(len, per_class.values())) if labelled else len(per_class)
        skipped = num_files - kept
        if num_files == 0:
            raise DataError(f"{where} has no images ({', '.join(sorted(IMAGE_EXTENSIONS))}); point at a folder "
                            "that holds some")
        if kept == 0:
            raise DataError(f"{where}: none of its {num_files} image files is readable; add images Pillow decodes")
        if labelled:
            items, groups, y_all, names, mapping = _labelled(per_class, where, labels, class_to_label)
        else:  # no classes: one group, no labels
            items, groups, mapping = per_class, np.zeros(len(per_class), np.int64), None
            y_all, names = np.full(len(items), -1, np.int64), labels or []
    idx = _split_indices(groups, seed, val_fraction, test_fraction)
    sets = {s: ImageSet([items[i] for i in idx[s]], y_all[idx[s]]) for s in SPLITS}
    spec = DataSpec(source=str(source) if str(source) == "digits" else str(Path(source).resolve()),
                    seed=seed, val_fraction=val_fraction, test_fraction=test_fraction,
                    counts={s: len(sets[s]) for s in SPLITS}, num_files=num_files,
                    labelled=labelled, skipped=skipped, class_to_label=mapping)
    return Splits(labels=list(names), spec=spec, **sets)


def splits_for(spec: DataSpec, labels: list[str] | None = None) -> Splits:
    """Re-create the exact splits a card records (`labels`: the card's, for the label names)."""
    splits = load_splits(spec.source, seed=spec.seed, val_fraction=spec.val_fraction,
                         test_fraction=spec.test_fraction, class_to_label=spec.class_to_label,
                         images_only=not spec.labelled)
    if splits.spec.counts != spec.counts or splits.spec.labelled != spec.labelled:
        raise DataError(f"data at {spec.source} changed since it was recorded (split sizes "
                        f"{splits.spec.counts} vs {spec.counts}); pass the data explicitly")
    if labels is not None and spec.class_to_label is not None:
        splits.labels = list(labels)
    return splits


def digits_preprocessing(image_size: int) -> Preprocessing:
    """Digits are tightly framed 8x8 images: scale to the input size, no crop."""
    return Preprocessing(size=image_size, resize=image_size)
