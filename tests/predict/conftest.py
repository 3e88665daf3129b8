"""Digits test-split images written as PNG files, the inputs of every predict test."""

from __future__ import annotations

from pathlib import Path

import pytest

from predict_helpers import N_IMAGES


@pytest.fixture(scope="session")
def digit_pngs(digits, tmp_path_factory) -> list[Path]:
    """The first N_IMAGES images of the held-out test split as PNG files (lossless: same pixels)."""
    root = tmp_path_factory.mktemp("digit-pngs")
    paths = []
    for i in range(N_IMAGES):
        paths.append(root / f"{i:03d}-label{int(digits.test.labels[i])}.png")
        digits.test.image(i).save(paths[-1])
    return paths
