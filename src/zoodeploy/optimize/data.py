"""The images optimization needs: calibration from training data, search on validation data.

Calibration never touches the held-out test split: from `digits` or an ImageFolder tree it
takes the training split, from a plain folder of images it takes them all (that folder is
calibration data by the user's choice). The accuracy-control search uses the validation split;
the checks of a made variant against its reference take `export.validate.validation_samples`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from zoodeploy.artifact import Artifact
from zoodeploy.card import DataSpec, ModelCard
from zoodeploy.errors import DataError, OptimizeError
from zoodeploy.export.validate import spread
from zoodeploy.models.data import IMAGE_EXTENSIONS, ImageSet, Splits, load_splits, splits_for
from zoodeploy.preprocess import Preprocessing, load_image, preprocess


def _subset(images: ImageSet, prep: Preprocessing, size: int) -> np.ndarray:
    return images.some_arrays(spread(len(images), size), prep)


def image_files(root: Path) -> list[Path]:
    """The images under `root`, or a DataError saying there are none."""
    if not root.is_dir():
        raise DataError(f"calibration data {root} is not a directory; pass `digits`, an ImageFolder "
                        "tree or a folder of images")
    files = sorted(p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS)
    if not files:
        raise DataError(f"calibration directory {root} has no images "
                        f"({', '.join(sorted(IMAGE_EXTENSIONS))}); add some or pass `--calib-data digits`")
    return files


def _folder_images(root: Path, prep: Preprocessing, size: int) -> tuple[np.ndarray, str]:
    files = image_files(root)  # a bag of images, whatever the sub-folders are called (#30)
    picked = [files[int(i)] for i in spread(len(files), size)]
    arrays = np.stack([preprocess(load_image(f), prep) for f in picked])
    return arrays, f"{root}, {len(picked)} of {len(files)} images"


def calibration_arrays(card: ModelCard, source: str | Path | None, size: int,
                       splits: Splits | None = None) -> tuple[np.ndarray, str]:
    """Up to `size` preprocessed calibration images (training data only), and where from
    (`splits`: the card's own, when already made)."""
    prep = card.preprocessing
    if source is None:
        if card.data is None:
            raise OptimizeError(f"{card.name}: the card records no data set to calibrate on; "
                                "pass --calib-data digits or a directory of images")
        source, splits = card.data.source, splits or splits_for(card.data)
    elif str(source) == "digits":
        splits = _same_split_as_card(card.data, "digits")
    elif card.data is not None and Path(source).resolve() == Path(card.data.source):
        splits = splits or splits_for(card.data)  # the card's own folder: its train split, never its test
    else:
        return _folder_images(Path(source), prep, size)
    train = splits.train
    return _subset(train, prep, size), f"{source} train split, {min(size, len(train))} of {len(train)} images"


def _same_split_as_card(spec: DataSpec | None, source: str) -> Splits:
    """The card's own split when it used this source (so train stays train), else the default."""
    if spec is not None and spec.source == source:
        return splits_for(spec)
    return load_splits(source)


def validation_arrays(art: Artifact) -> tuple[np.ndarray, np.ndarray]:
    """The validation split (never trained on, not the test split) for the search; its labels are
    -1 where the data has none (the search then measures agreement with fp32)."""
    card = art.card
    if card.data is None:
        raise OptimizeError(f"{card.name}: accuracy control needs a validation split, but the card records "
                            "no data set; pass --max-drop none, or --calib-data DIR (any folder of images)")
    if len(art.splits().val) == 0:
        raise OptimizeError(f"{card.name}: the validation split is empty; accuracy control needs one "
                            "(pass --max-drop none to quantize without it)")
    return art.val_data()
