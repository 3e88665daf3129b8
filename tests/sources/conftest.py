"""Helpers for the bring-your-own-model tests: folders of real images (digits) on disk."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image


def digit_images(n: int, start: int = 0) -> list[tuple[Image.Image, int]]:
    """`n` of scikit-learn's digits as 8-bit grayscale images, with their class."""
    from sklearn.datasets import load_digits
    d = load_digits()
    pixels = (d.images * (255.0 / 16.0)).round().astype(np.uint8)
    return [(Image.fromarray(pixels[i], "L"), int(d.target[i])) for i in range(start, start + n)]


def write_folder(root: Path, n: int, *, classes: dict[int, str] | None = None, start: int = 0) -> Path:
    """`n` digits as PNGs under root: in class folders named by `classes` (digit -> folder name;
    digits not named are left out), or all in root without classes."""
    root.mkdir(parents=True, exist_ok=True)
    for i, (img, y) in enumerate(digit_images(n, start)):
        if classes is None:
            img.save(root / f"img{i:04d}.png")
        elif y in classes:
            (root / classes[y]).mkdir(exist_ok=True)
            img.save(root / classes[y] / f"img{i:04d}.png")
    return root


@pytest.fixture
def unlabelled(tmp_path) -> Path:
    """60 digit images in one folder, no classes."""
    return write_folder(tmp_path / "photos", 60)
