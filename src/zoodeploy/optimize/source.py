"""What `optimize` starts from: an artifact directory, a lone .onnx file made into one, or any
other SOURCE (a zoo or torchvision name, a callable, a .pt2), exported first.

A lone ONNX model becomes `<stem>-artifact/` beside it (or `out`): its copy as `fp32.onnx`
plus a card built from its own metadata when zoodeploy made it, otherwise from its graph
(input size, class count: any) with `--labels` or the data's class folders, or class_<i>. The
data may be labelled or not: its train split calibrates, its test split measures accuracy
(or agreement with fp32, without labels).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import NamedTuple

import onnx

from zoodeploy.card import CARD_FILE, ONNX_METADATA_KEY, load_card
from zoodeploy.errors import ArtifactError, OptimizeError
from zoodeploy.fileio import sha256_file

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


class GraphIO(NamedTuple):
    input_name: str
    input_size: int
    output_name: str
    classes: int


def graph_io(model: onnx.ModelProto, path: Path) -> GraphIO:
    """The one (N, 3, S, S) float input and (N, classes) output of an image classifier's graph."""
    initializers = {i.name for i in model.graph.initializer}
    inputs = [i for i in model.graph.input if i.name not in initializers]
    if len(inputs) != 1 or len(model.graph.output) < 1:
        raise OptimizeError(f"{path} has {len(inputs)} inputs; an image classifier takes one (N, 3, H, W) input")
    shape, out = _dims(inputs[0]), _dims(model.graph.output[0])
    if inputs[0].type.tensor_type.elem_type != onnx.TensorProto.FLOAT:
        kind = onnx.TensorProto.DataType.Name(inputs[0].type.tensor_type.elem_type)
        raise OptimizeError(f"{path}: input {inputs[0].name} is {kind}; an image classifier takes a float32 "
                            "(N, 3, H, W) image batch")
    if len(shape) != 4 or shape[1] != 3 or not isinstance(shape[2], int) or shape[2] != shape[3]:
        raise OptimizeError(f"{path}: input {inputs[0].name} has shape {shape}; need (N, 3, S, S) with a fixed "
                            "size S (fix it with python -m onnxruntime.tools.make_dynamic_shape_fixed)")
    if len(out) != 2 or not isinstance(out[1], int):
        raise OptimizeError(f"{path}: output {model.graph.output[0].name} has shape {out}; need (N, classes)")
    return GraphIO(inputs[0].name, shape[2], model.graph.output[0].name, out[1])


def onnx_metadata(model: onnx.ModelProto) -> dict | None:
    """The card essentials zoodeploy wrote into a model's metadata_props, if it made the model."""
    return next((json.loads(p.value) for p in model.metadata_props if p.key == ONNX_METADATA_KEY), None)


def artifact_from_onnx(path: str | Path, calib_data: str | None, out: str | Path | None = None, *,
                       labels: str | None = None, preprocessing: str | None = None) -> Path:
    """Make (or reuse) an artifact directory holding the lone ONNX model as its fp32 variant."""
    from zoodeploy.export.source import staged_dir
    from zoodeploy.models.sources import SourceConfig, make_artifact, resolve_source
    path = Path(path)
    source = resolve_source(str(path)) if path.suffix.lower() == ".onnx" else _as_onnx(path)
    if calib_data is None:
        raise OptimizeError(f"{path} is a lone ONNX model: pass --calib-data DIR (any folder of images; "
                            "an ImageFolder's classes are matched to the labels by name) or digits")
    out = Path(out) if out else path.with_name(f"{path.stem}-artifact")
    if (out / CARD_FILE).exists():
        card = load_card(out)
        if "fp32" in card.variants and card.variants["fp32"].sha256 == sha256_file(path):
            return out  # made from this very model before: optimize it again in place
        raise OptimizeError(f"{out} already holds another artifact; pass --out to choose a new directory")
    cfg = SourceConfig(str(path), labels=labels, preprocessing=preprocessing, calib_data=calib_data)
    with staged_dir(out) as tmp:
        make_artifact(cfg, tmp, source=source)
    return out


def _as_onnx(path: Path):
    """A file without the .onnx suffix, resolved as an ONNX model all the same."""
    from zoodeploy.models.sources import SOURCE_KINDS
    load_onnx(path)
    return SOURCE_KINDS.get("onnx").resolve(str(path))


def resolve_artifact(target: str | Path, calib_data: str | None = None, out: str | Path | None = None, *,
                     labels: str | None = None, preprocessing: str | None = None,
                     weights: str | None = None) -> Path:
    """An artifact directory for `target`: itself, one made from a lone .onnx file, or one
    exported from another SOURCE (zoo / torchvision name, callable, .pt2)."""
    target_path = Path(target)
    if target_path.is_dir():
        if labels or preprocessing:
            raise OptimizeError(f"{target} is an artifact: its card has the labels and preprocessing; "
                                "--labels / --preprocessing are for a new SOURCE")
        return target_path
    if target_path.is_file() and target_path.suffix.lower() != ".pt2":
        return artifact_from_onnx(target_path, calib_data, out, labels=labels, preprocessing=preprocessing)
    from zoodeploy.export.source import export_source
    from zoodeploy.models.sources import SourceConfig
    cfg = SourceConfig(str(target), weights=weights, labels=labels, preprocessing=preprocessing,
                       calib_data=calib_data)
    return export_source(cfg, out)[0]
