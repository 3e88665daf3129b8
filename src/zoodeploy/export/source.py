"""What `zoodeploy export` starts from: an artifact directory, or a SOURCE (models/sources.py).

A SOURCE (zoo or torchvision name, Python callable, .pt2, .onnx) becomes a new artifact (card +
checkpoint of its weights as they are, or its program / ONNX file) and an artifact exported
into another directory is copied there first; either way the new directory
is built beside OUT and renamed onto it only when the export validated, so a failed export
leaves nothing behind.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import torch

from zoodeploy.artifact import Artifact
from zoodeploy.card import CARD_FILE, ModelCard, Variant, save_card
from zoodeploy.errors import ArtifactError, ExportError, UnknownNameError
from zoodeploy.export.config import ExportConfig
from zoodeploy.export.onnx_export import export_artifact
from zoodeploy.fileio import UMASK
from zoodeploy.models.sources import SourceConfig, make_artifact
from zoodeploy.models.weights import IMAGENET

NO_WEIGHTS = "none"
DEFAULT_ROOT = Path("artifacts")
# what defines the model; variants, selection and measurements stay with the source artifact
_MODEL_FIELDS = ("name", "num_classes", "labels", "preprocessing", "input_name", "output_name", "weights",
                 "source", "data", "training", "checkpoint", "checkpoint_sha256", "provenance")


def export_source(source: str | Path | SourceConfig, out: str | Path | None = None, cfg: ExportConfig | None = None,
                  *, weights: str | None = None, progress: bool = False) -> tuple[Path, Variant]:
    """Export SOURCE and return (artifact directory, fp32 variant).

    SOURCE is an artifact directory (exported in place unless `out` names another directory), or
    anything `zoodeploy.models.sources` resolves (zoo or torchvision name, `file.py:function`,
    .pt2, .onnx) — as text, or a SourceConfig with its labels, preprocessing and data — made into
    a new artifact at `out` (default artifacts/<name>). Names take `weights` ("imagenet" by
    default, a checkpoint path, or "none" for random init). An ONNX source is its own fp32.
    """
    cfg = cfg or ExportConfig()
    src = source if isinstance(source, SourceConfig) else SourceConfig(str(source), weights=weights)
    if Path(src.source).is_dir():
        if src.weights is not None or src.labels or src.preprocessing or src.name:
            raise ExportError(f"--weights / --labels / --preprocessing are for a new SOURCE (so is --name); {src.source} is an "
                              "artifact with its own checkpoint and card")
        return _export_existing(Path(src.source), None if out is None else Path(out), cfg, progress)
    from zoodeploy.models.sources import resolve_source
    if (os.sep in src.source or "/" in src.source) and not Path(src.source).exists() and ":" not in src.source:
        raise ArtifactError(f"artifact directory {src.source} does not exist; make one with `zoodeploy train` "
                            "or pass a model SOURCE (see `zoodeploy export --help`)")
    resolved = resolve_source(src.source)
    target = Path(out) if out else DEFAULT_ROOT / (src.name or resolved.name)
    plain_zoo = resolved.kind == "zoo" and not (src.labels or src.preprocessing or src.calib_data or src.eval_data
                                                or src.name)
    if plain_zoo:  # as zoo names always exported: zoo preprocessing, checkpoint labels
        return _export_zoo(resolved.name, target, cfg, src.weights or IMAGENET, progress)
    src.input_size = cfg.input_size or src.input_size
    with staged_dir(target) as tmp:
        with torch.random.fork_rng(devices=[]):  # random init is reproducible, the caller's RNG untouched
            torch.manual_seed(0)
            card = make_artifact(src, tmp, source=resolved)
        variant = card.variants["fp32"] if resolved.kind == "onnx" else export_artifact(tmp, cfg, progress=progress)
    return target, variant


def zoo_name(source: str) -> str:
    """`source` as a zoo name, or one line saying it is neither that nor an existing directory."""
    from zoodeploy.models.zoo import get_spec
    try:
        return get_spec(source).name
    except UnknownNameError as e:  # the registry's message suggests close names
        raise UnknownNameError(f"{source} is neither an artifact directory nor a zoo model name: {e}") from None


def _export_existing(artifact: Path, out: Path | None, cfg: ExportConfig, progress: bool) -> tuple[Path, Variant]:
    if out is None or (out.exists() and out.resolve() == artifact.resolve()):
        return artifact, export_artifact(artifact, cfg, progress=progress)
    card = Artifact(artifact).card
    with staged_dir(out) as tmp:
        model_card = ModelCard(**{k: getattr(card, k) for k in _MODEL_FIELDS})
        if card.checkpoint:
            _copy(artifact / card.checkpoint, tmp / card.checkpoint)
        save_card(tmp, model_card)
        variant = export_artifact(tmp, cfg, progress=progress)
    return out, variant


def _copy(src: Path, dst: Path) -> None:
    if not src.is_file():
        raise ArtifactError(f"{src} is missing; retrain with `zoodeploy train`")
    shutil.copyfile(src, dst)


def _export_zoo(name: str, out: Path, cfg: ExportConfig, weights: str, progress: bool) -> tuple[Path, Variant]:
    from zoodeploy.models.train import init_artifact
    from zoodeploy.models.zoo import get_spec
    size = cfg.input_size or get_spec(name).input_size
    init_weights = None if weights == NO_WEIGHTS else weights
    labels = _checkpoint_labels(name, init_weights)
    with staged_dir(out) as tmp:
        with torch.random.fork_rng(devices=[]):  # random init is reproducible, the caller's RNG untouched
            torch.manual_seed(0)
            init_artifact(name, tmp, image_size=size, weights=init_weights, labels=labels)
        variant = export_artifact(tmp, cfg, progress=progress)
    return out, variant


def _checkpoint_labels(name: str, weights: str | None) -> list[str] | None:
    """class_0.. for a local checkpoint, as many as its head has (None: the zoo's defaults)."""
    if weights in (None, IMAGENET):
        return None
    from zoodeploy.models.weights import checkpoint_num_classes, read_state_dict
    from zoodeploy.models.zoo import get_spec
    n = checkpoint_num_classes(get_spec(name), read_state_dict(Path(weights)))
    return [f"class_{i}" for i in range(n)] if n else None


@contextlib.contextmanager
def staged_dir(out: Path) -> Iterator[Path]:
    """A fresh directory beside `out`, renamed onto `out` only if the block succeeds."""
    if (out / CARD_FILE).exists():
        raise ExportError(f"{out} already holds an artifact; export it in place with `zoodeploy export {out}` "
                          "or choose another -o")
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise ExportError(f"{out} exists and is not an empty directory; choose another -o")
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".partial", dir=out.parent))
    except OSError as e:
        raise ArtifactError(f"cannot write {out}: {e.strerror or e}; choose a writable location") from None
    try:
        yield tmp
        if out.is_dir():
            out.rmdir()  # empty, checked above
        os.chmod(tmp, 0o777 & ~UMASK)  # mkdtemp makes 0700
        os.replace(tmp, out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
