"""What `optimize` starts from: an artifact directory, a lone .onnx file made into one, or any
other SOURCE (a zoo or torchvision name, a callable, a .pt2), exported first.

A lone ONNX model becomes `<stem>-artifact/` beside it (or `out`): its copy as `fp32.onnx`
plus a card built from its own metadata when zoodeploy made it, otherwise from its graph
(input size, class count: any) with `--labels` or the data's class folders, or class_<i>. The
data may be labelled or not: its train split calibrates, its test split measures accuracy
(or agreement with fp32, without labels).
"""

from __future__ import annotations

from pathlib import Path

from zoodeploy.artifact import Artifact
from zoodeploy.card import CARD_FILE, load_card
from zoodeploy.errors import OptimizeError
from zoodeploy.fileio import sha256_file
from zoodeploy.onnx_graph import load_onnx

FP32_FILE = "fp32.onnx"


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


def resolve_artifact(target: Artifact | str | Path, calib_data: str | None = None, out: str | Path | None = None, *,
                     labels: str | None = None, preprocessing: str | None = None,
                     weights: str | None = None) -> Artifact:
    """An artifact for `target`: itself (a handle, or its directory), one made from a lone .onnx
    file, or one exported from another SOURCE (zoo / torchvision name, callable, .pt2)."""
    if isinstance(target, Artifact):
        return target
    target_path = Path(target)
    if target_path.is_dir():
        if labels or preprocessing:
            raise OptimizeError(f"{target} is an artifact: its card has the labels and preprocessing; "
                                "--labels / --preprocessing are for a new SOURCE")
        return Artifact(target_path)
    if target_path.is_file() and target_path.suffix.lower() != ".pt2":
        return Artifact(artifact_from_onnx(target_path, calib_data, out, labels=labels, preprocessing=preprocessing))
    from zoodeploy.export.source import export_source
    from zoodeploy.models.sources import SourceConfig
    cfg = SourceConfig(str(target), weights=weights, labels=labels, preprocessing=preprocessing,
                       calib_data=calib_data)
    return Artifact(export_source(cfg, out)[0])
