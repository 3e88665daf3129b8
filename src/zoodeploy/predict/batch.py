"""One batch of files to rows: decode and preprocess (zoodeploy.preprocess, as training,
evaluation, serving and edge bundles do), run the variant, take the top k. Both engines call it."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from zoodeploy.predict.output import Block, Schema
from zoodeploy.preprocess import Preprocessing, crop, load_image, normalize


@dataclass(frozen=True)
class Decoded:
    """A batch's images that could be read, as model input, and the reason for each that could not."""

    x: np.ndarray  # the model's input batch (len(ok), *prep.input_shape)
    ok: list[int]  # indices into the batch
    errors: list[str | None]  # one per file


def decode_batch(paths: Sequence[str], prep: Preprocessing) -> Decoded:
    crops, ok, errors = [], [], []
    for i, path in enumerate(paths):
        try:
            crops.append(crop(load_image(path), prep))
        except Exception as e:  # noqa: BLE001 - whatever one file does wrong is its row's error, not the run's
            errors.append(" ".join(str(e).split()) or type(e).__name__)
            continue
        ok.append(i)
        errors.append(None)
    if not crops:
        return Decoded(np.zeros((0, *prep.input_shape), prep.np_dtype), ok, errors)
    return Decoded(normalize(np.stack(crops), prep), ok, errors)


def run_model(runner, x: np.ndarray) -> np.ndarray:
    """The runner's logits for `x`; a fixed-batch export gets full batches, zero-padded at the end."""
    fixed = getattr(runner, "batch", None)
    if not len(x) or not fixed or len(x) == fixed:
        return runner.run(x) if len(x) else np.zeros((0, 0), np.float32)
    out = []
    for i in range(0, len(x), fixed):
        chunk = x[i:i + fixed]
        pad = np.zeros((fixed - len(chunk), *x.shape[1:]), x.dtype)
        out.append(runner.run(np.concatenate([chunk, pad]))[:len(chunk)])
    return np.concatenate(out)


def predict_rows(runner, paths: Sequence[str], decoded: Decoded, schema: Schema) -> Block:
    return schema.block(paths, run_model(runner, decoded.x), decoded.ok, decoded.errors)
