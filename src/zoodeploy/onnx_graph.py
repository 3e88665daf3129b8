"""What an ONNX image classifier's file says of itself: its graph (one image input, one logits
output) and the card essentials zoodeploy wrote into its metadata, if it made the file.

Read where a lone .onnx file is taken in: as a model SOURCE (models/sources.py) and as what
`optimize` starts from (optimize/source.py); and its op counts, which the card records of every graph.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import NamedTuple

import onnx

from zoodeploy.card import ONNX_METADATA_KEY
from zoodeploy.errors import ArtifactError, OptimizeError


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


def op_counts(model: onnx.ModelProto) -> dict[str, int]:
    """Nodes per op type (domain-qualified when not the default ONNX domain), sorted by name."""
    counts: dict[str, int] = {}
    for node in model.graph.node:
        key = f"{node.domain}.{node.op_type}" if node.domain not in ("", "ai.onnx") else node.op_type
        counts[key] = counts.get(key, 0) + 1
    return dict(sorted(counts.items()))
