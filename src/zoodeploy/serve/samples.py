"""Sample request images: one held-out (test split) image per class, as PNG files to send."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np

from zoodeploy.artifact import Artifact
from zoodeploy.errors import ArtifactError
from zoodeploy.fileio import write_bytes


def write_samples(artifact: Artifact | str | Path, out_dir: str | Path, per_class: int = 1) -> list[Path]:
    """Write `per_class` test-split images of each class to OUT_DIR/<prefix><label>[-i].png.

    Test images only: the model never trained on them, so a right answer means something.
    """
    art = Artifact.of(artifact)
    card = art.card
    if card.data is None:
        raise ArtifactError(f"{artifact}: the card records no data set, so there are no test images to write")
    test = art.splits().test
    prefix = "digit-" if card.data.source == "digits" else ""
    written = []
    for k, label in enumerate(card.labels):
        for n, i in enumerate(np.flatnonzero(test.labels == k)[:per_class]):
            buf = io.BytesIO()
            test.image(int(i)).save(buf, format="PNG")
            name = f"{prefix}{_safe(label)}{f'-{n}' if per_class > 1 else ''}.png"
            written.append(write_bytes(Path(out_dir) / name, buf.getvalue()))
    return written


def _safe(label: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in label)
