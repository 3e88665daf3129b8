"""What an ONNX image classifier's file says of itself: its graph (one image input, one logits
output) and the card essentials zoodeploy wrote into its metadata, if it made the file.

Read where a lone .onnx file is taken in: as a model SOURCE (models/sources.py) and as what
`optimize` starts from (optimize/source.py); and its op counts, which the card records of every graph.
"""

from __future__ import annotations

import ast
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


_DTYPES = {onnx.TensorProto.FLOAT: "float32", onnx.TensorProto.UINT8: "uint8"}


class GraphIO(NamedTuple):
    """An image classifier's one input and its logits output, as its graph declares them."""

    input_name: str
    layout: str  # nchw | nhwc (NHWC: the last dim is the channels, 1 or 3, and the second is not)
    channels: int  # 1 or 3
    height: int | None  # None: a dynamic dim, deployed at the size the user gives
    width: int | None
    dtype: str  # float32 | uint8
    output_name: str
    classes: int

    @property
    def input_size(self) -> int | None:
        """The side of a fixed square input, else None."""
        return self.height if self.height is not None and self.height == self.width else None

    @property
    def size(self) -> tuple[int, int] | None:
        """(H, W) when both are fixed."""
        return (self.height, self.width) if self.height is not None and self.width is not None else None


def graph_io(model: onnx.ModelProto, path: Path) -> GraphIO:
    """The one image input ((N, C, H, W) or (N, H, W, C); C 1 or 3; float32 or uint8; H, W fixed or
    dynamic) and (N, classes) output of an image classifier's graph."""
    initializers = {i.name for i in model.graph.initializer}
    inputs = [i for i in model.graph.input if i.name not in initializers]
    if len(inputs) != 1 or len(model.graph.output) < 1:
        raise OptimizeError(f"{path} has {len(inputs)} inputs; an image classifier takes one (N, 3, H, W) input")
    inp = inputs[0]
    shape, out = _dims(inp), _dims(model.graph.output[0])
    elem = inp.type.tensor_type.elem_type
    if elem not in _DTYPES:
        kind = onnx.TensorProto.DataType.Name(elem)
        raise OptimizeError(f"{path}: input {inp.name} is {kind}; an image classifier takes a float32 or uint8 "
                            "image batch")
    nhwc = len(shape) == 4 and shape[3] in (1, 3) and shape[1] not in (1, 3)
    channels = shape[3] if nhwc else (shape[1] if len(shape) == 4 else None)
    if len(shape) != 4 or channels not in (1, 3):
        raise OptimizeError(f"{path}: input {inp.name} has shape {shape}; need (N, C, H, W) or (N, H, W, C) with "
                            "C = 3 (colour) or 1 (grayscale)")
    h, w = (shape[1], shape[2]) if nhwc else (shape[2], shape[3])
    if len(out) != 2 or not isinstance(out[1], int):
        raise OptimizeError(f"{path}: output {model.graph.output[0].name} has shape {out}; need (N, classes)")
    return GraphIO(inp.name, "nhwc" if nhwc else "nchw", channels, h if isinstance(h, int) else None,
                   w if isinstance(w, int) else None, _DTYPES[elem], model.graph.output[0].name, out[1])


def fix_spatial_dims(model: onnx.ModelProto, io: GraphIO, size: tuple[int, int]) -> onnx.ModelProto:
    """The model with its dynamic H, W input dims set to `size` (the batch stays free)."""
    dims = model.graph.input[[i.name for i in model.graph.input].index(io.input_name)].type.tensor_type.shape.dim
    at = (1, 2) if io.layout == "nhwc" else (2, 3)
    for k, value in zip(at, size):
        dims[k].Clear()
        dims[k].dim_value = value
    return model


def onnx_metadata(model: onnx.ModelProto) -> dict | None:
    """The card essentials zoodeploy wrote into a model's metadata_props, if it made the model."""
    return next((json.loads(p.value) for p in model.metadata_props if p.key == ONNX_METADATA_KEY), None)


# metadata_props keys other tools keep a classifier's labels under, tried in this order: `labels` and
# `classes` (plain exporters), `names` (Ultralytics YOLO: a Python dict repr {0: 'cat', ...}), `id2label`
# (Hugging Face / Optimum configs: a JSON {"0": "cat", ...}), `character` (PaddleOCR: one a line)
LABEL_KEYS = ("labels", "classes", "names", "id2label", "character")


def model_labels(model: onnx.ModelProto, classes: int) -> tuple[list[str], str] | None:
    """The labels a model carries, one per output, and where they were found: zoodeploy's own
    metadata first, then the `LABEL_KEYS` conventions. Values that do not give exactly `classes`
    distinct labels are passed over (a CTC character set is not a class list)."""
    meta = onnx_metadata(model)
    found = [("zoodeploy metadata", meta.get("labels"))] if meta and meta.get("labels") else []
    props = {p.key: p.value for p in model.metadata_props}
    found += [(f"metadata_props[{key!r}]", parse_labels(props[key])) for key in LABEL_KEYS if key in props]
    for where, labels in found:
        if labels and len(labels) == classes and len(set(labels)) == classes:
            return [str(x) for x in labels], where
    return None


def parse_labels(text: str) -> list[str] | None:
    """A JSON (or Python literal) list, an id -> label map with ids 0..n-1, or one label a line."""
    stripped = text.strip()
    if stripped[:1] in ("[", "{"):
        try:
            value = json.loads(stripped)
        except json.JSONDecodeError:
            try:
                value = ast.literal_eval(stripped)  # Ultralytics writes str(dict); literal_eval runs no code
            except (ValueError, SyntaxError, MemoryError, RecursionError):
                return None
        if isinstance(value, list):
            return [str(x) for x in value]
        if isinstance(value, dict):
            try:
                ids = {int(k): str(v) for k, v in value.items()}
            except (TypeError, ValueError):
                return None
            return [ids[i] for i in range(len(ids))] if sorted(ids) == list(range(len(ids))) else None
        return None
    lines = [line.rstrip("\r") for line in text.split("\n")]
    return [line for line in lines if line] or None


def op_counts(model: onnx.ModelProto) -> dict[str, int]:
    """Nodes per op type (domain-qualified when not the default ONNX domain), sorted by name."""
    counts: dict[str, int] = {}
    for node in model.graph.node:
        key = f"{node.domain}.{node.op_type}" if node.domain not in ("", "ai.onnx") else node.op_type
        counts[key] = counts.get(key, 0) + 1
    return dict(sorted(counts.items()))
