"""What `optimize` starts from: an artifact directory, or a lone .onnx file made into one.

A lone ONNX model becomes `<stem>-artifact/` beside it (or `out`): its copy as `fp32.onnx`
plus a card built from its own metadata when zoodeploy made it, otherwise from its graph
(input size, class count) and the calibration data the user names, whose train split
calibrates and whose test split measures accuracy.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import onnx

from zoodeploy.card import ONNX_METADATA_KEY, ModelCard, Variant, load_card, make_variant, provenance, save_card
from zoodeploy.errors import ArtifactError, OptimizeError
from zoodeploy.fileio import atomic_path, sha256_file
from zoodeploy.models.data import Splits, digits_preprocessing, load_splits
from zoodeploy.optimize.data import image_files
from zoodeploy.preprocess import Preprocessing
from zoodeploy.recipes import CopyRecipe

FP32_FILE = "fp32.onnx"


def load_onnx(path: Path) -> onnx.ModelProto:
    """An ONNX model with a graph, or a one-line ArtifactError saying what the file is not."""
    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as e:
        raise ArtifactError(f"{path} is not a readable ONNX model ({type(e).__name__}); pass an "
                            "artifact directory or an .onnx file") from None
    if not model.graph.node or not model.graph.input or not model.graph.output:
        raise ArtifactError(f"{path} is not an ONNX model (no graph inside); pass an artifact "
                            "directory or an .onnx file")
    return model


def _dims(value_info: onnx.ValueInfoProto) -> list[int | str]:
    return [d.dim_value if d.HasField("dim_value") else (d.dim_param or "?")
            for d in value_info.type.tensor_type.shape.dim]


def _graph_io(model: onnx.ModelProto, path: Path) -> tuple[str, int, str, int]:
    """(input name, input size, output name, classes) of an image classifier's graph."""
    initializers = {i.name for i in model.graph.initializer}
    inputs = [i for i in model.graph.input if i.name not in initializers]
    if len(inputs) != 1 or len(model.graph.output) < 1:
        raise OptimizeError(f"{path} has {len(inputs)} inputs; an image classifier takes one (N, 3, H, W) input")
    shape, out = _dims(inputs[0]), _dims(model.graph.output[0])
    if len(shape) != 4 or shape[1] != 3 or not isinstance(shape[2], int) or shape[2] != shape[3]:
        raise OptimizeError(f"{path}: input {inputs[0].name} has shape {shape}; need (N, 3, S, S) with a fixed "
                            "size S (fix it with python -m onnxruntime.tools.make_dynamic_shape_fixed)")
    if len(out) != 2 or not isinstance(out[1], int):
        raise OptimizeError(f"{path}: output {model.graph.output[0].name} has shape {out}; need (N, classes)")
    return inputs[0].name, shape[2], model.graph.output[0].name, out[1]


def card_for_onnx(model: onnx.ModelProto, path: Path, splits: Splits) -> ModelCard:
    """A card for a lone ONNX model: its own metadata when zoodeploy made it, else its graph."""
    input_name, size, output_name, classes = _graph_io(model, path)
    meta = next((json.loads(p.value) for p in model.metadata_props if p.key == ONNX_METADATA_KEY), None)
    if classes != len(splits.labels):
        raise OptimizeError(f"{path} outputs {classes} classes but {splits.spec.source} has "
                            f"{len(splits.labels)}; calibrate and evaluate on data with the model's classes")
    if meta:
        prep = Preprocessing.from_dict(meta["preprocessing"])
        name, labels = meta["name"], meta["labels"]
    else:
        prep = digits_preprocessing(size) if splits.spec.source == "digits" else Preprocessing.for_size(size)
        name, labels = path.stem, splits.labels
    return ModelCard(name=name, num_classes=classes, labels=labels, preprocessing=prep, input_name=input_name,
                     output_name=output_name, weights=f"lone ONNX model {path.name}", data=splits.spec,
                     provenance=provenance().model_copy(update={
                         "source_onnx": str(path.resolve()), "card_from": "onnx metadata" if meta else "graph + data"}))


def artifact_from_onnx(path: str | Path, calib_data: str | None, out: str | Path | None = None) -> Path:
    """Make (or reuse) an artifact directory holding the lone ONNX model as its fp32 variant."""
    path = Path(path)
    model = load_onnx(path)
    if calib_data is None:
        raise OptimizeError(f"{path} is a lone ONNX model: pass --calib-data digits or an ImageFolder "
                            "directory (its train split calibrates, its test split measures accuracy)")
    out = Path(out) if out else path.with_name(f"{path.stem}-artifact")
    if (out / "card.json").exists():
        card = load_card(out)
        if "fp32" in card.variants and card.variants["fp32"].sha256 == sha256_file(path):
            return out  # made from this very model before: optimize it again in place
        raise OptimizeError(f"{out} already holds another artifact; pass --out to choose a new directory")
    if calib_data != "digits":
        image_files(Path(calib_data))  # a clear error for a folder without images
    splits = load_splits(calib_data)
    card = card_for_onnx(model, path, splits)
    out.mkdir(parents=True, exist_ok=True)
    with atomic_path(out / FP32_FILE) as tmp:
        shutil.copyfile(path, tmp)
    card.variants["fp32"] = _fp32_variant(out, path)
    save_card(out, card)
    return out


def _fp32_variant(out: Path, path: Path) -> Variant:
    return make_variant(out, "fp32", FP32_FILE, precision="fp32", runtime="onnxruntime",
                        made_by=f"copied from the lone ONNX model {path.resolve()}",
                        recipe=CopyRecipe(source=str(path)))


def resolve_artifact(target: str | Path, calib_data: str | None = None, out: str | Path | None = None) -> Path:
    """An artifact directory for `target`: itself, or one made from a lone .onnx file."""
    target = Path(target)
    if target.is_dir():
        return target
    if not target.exists():
        raise ArtifactError(f"{target} does not exist; pass an artifact directory (from `zoodeploy train`) "
                            "or an .onnx file")
    return artifact_from_onnx(target, calib_data, out)
