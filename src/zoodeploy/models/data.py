"""Data sets: scikit-learn's bundled digits (offline default) or any ImageFolder tree.

Splits are deterministic and stratified: per class, a seeded shuffle, then test, val and
the rest for training. Calibration uses `train`; accuracy is measured on `test` only.
"""

from __future__ import annotations

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
    """Images (in memory or file paths) with integer labels."""

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
    from sklearn.datasets import load_digits
    d = load_digits()
    pixels = (d.images * (255.0 / 16.0)).round().astype(np.uint8)
    return [Image.fromarray(p, "L") for p in pixels], d.target.astype(np.int64), [str(i) for i in range(10)]


def _folder(root: Path) -> tuple[list[Path], np.ndarray, list[str]]:
    if not root.exists():
        raise DataError(f"data directory {root} does not exist; pass `digits` or an ImageFolder "
                        "directory (one sub-folder of images per class)")
    if not root.is_dir():
        raise DataError(f"{root} is not a directory; pass an ImageFolder directory (one sub-folder per class)")
    classes = sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if len(classes) < 2:
        raise DataError(f"{root} has {len(classes)} class folder(s); an ImageFolder tree needs "
                        "at least 2 sub-folders, one per class")
    items, labels = [], []
    for k, cls in enumerate(classes):
        files = sorted(p for p in (root / cls).rglob("*")
                       if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS)
        if not files:
            raise DataError(f"class folder {root / cls} has no images ({', '.join(sorted(IMAGE_EXTENSIONS))}); "
                            "add images or remove the folder")
        items += files
        labels += [k] * len(files)
    return items, np.asarray(labels, np.int64), classes


def _split_indices(labels: np.ndarray, seed: int, val_fraction: float,
                   test_fraction: float) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    out: dict[str, list[int]] = {s: [] for s in SPLITS}
    for k in np.unique(labels):
        idx = rng.permutation(np.flatnonzero(labels == k))
        # every class in every split, so that val and test accuracy cover every class
        n_test = max(1, int(round(len(idx) * test_fraction))) if test_fraction > 0 else 0
        n_val = max(1, int(round(len(idx) * val_fraction))) if val_fraction > 0 else 0
        if len(idx) - n_test - n_val < 1:
            raise DataError(f"class {k} has only {len(idx)} image(s): too few to split into "
                            "train/val/test; add images")
        out["test"] += idx[:n_test].tolist()
        out["val"] += idx[n_test:n_test + n_val].tolist()
        out["train"] += idx[n_test + n_val:].tolist()
    return {s: np.sort(np.asarray(v, np.int64)) for s, v in out.items()}


def load_splits(source: str | Path, *, seed: int = 0, val_fraction: float = 0.15,
                test_fraction: float = 0.2) -> Splits:
    """Load `digits` or an ImageFolder directory and split it deterministically."""
    if str(source) == "digits":
        items, labels, classes = _digits()
        num_files = None
    else:
        items, labels, classes = _folder(Path(source))
        num_files = len(items)
    idx = _split_indices(labels, seed, val_fraction, test_fraction)
    sets = {s: ImageSet([items[i] for i in idx[s]], labels[idx[s]]) for s in SPLITS}
    spec = DataSpec(source=str(source) if str(source) == "digits" else str(Path(source).resolve()),
                    seed=seed, val_fraction=val_fraction, test_fraction=test_fraction,
                    counts={s: len(sets[s]) for s in SPLITS}, num_files=num_files)
    return Splits(labels=classes, spec=spec, **sets)


def splits_for(spec: DataSpec) -> Splits:
    """Re-create the exact splits an artifact was trained on."""
    splits = load_splits(spec.source, seed=spec.seed, val_fraction=spec.val_fraction,
                         test_fraction=spec.test_fraction)
    if splits.spec.counts != spec.counts:
        raise DataError(f"data at {spec.source} changed since training (split sizes "
                        f"{splits.spec.counts} vs {spec.counts}); pass the data explicitly")
    return splits


def digits_preprocessing(image_size: int) -> Preprocessing:
    """Digits are tightly framed 8x8 images: scale to the input size, no crop."""
    return Preprocessing(input_size=image_size, resize=image_size)
