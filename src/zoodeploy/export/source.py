"""What `zoodeploy export` starts from: an artifact directory, or a zoo model name.

A zoo name becomes a new artifact (card + checkpoint of its weights as they are) and an
artifact exported into another directory is copied there first; either way the new directory
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

from zoodeploy.card import CARD_FILE, ModelCard, Variant, load_card, save_card
from zoodeploy.errors import ArtifactError, ExportError, UnknownNameError
from zoodeploy.export.onnx_export import ExportConfig, export_artifact
from zoodeploy.fileio import UMASK

IMAGENET = "imagenet"
NO_WEIGHTS = "none"
DEFAULT_ROOT = Path("artifacts")
# what defines the model; variants, selection and measurements stay with the source artifact
_MODEL_FIELDS = ("name", "num_classes", "labels", "preprocessing", "input_name", "output_name", "weights",
                 "data", "training", "checkpoint", "checkpoint_sha256", "provenance")


def export_source(source: str | Path, out: str | Path | None = None, cfg: ExportConfig | None = None, *,
                  weights: str | None = None, progress: bool = False) -> tuple[Path, Variant]:
    """Export SOURCE (artifact directory or zoo name) and return (artifact directory, fp32 variant).

    An artifact is exported in place unless `out` names another directory. A zoo name is built
    with `weights` ("imagenet" by default, a checkpoint path, or "none" for random init) into
    `out` (default artifacts/<name>).
    """
    cfg = cfg or ExportConfig()
    if Path(source).exists():
        if weights is not None:
            raise ExportError(f"--weights is for a zoo model name; {source} is an artifact with its own "
                              "checkpoint")
        return _export_existing(Path(source), None if out is None else Path(out), cfg, progress)
    if os.sep in str(source) or "/" in str(source):  # a path, not a name: say it is missing
        raise ArtifactError(f"artifact directory {source} does not exist; make one with `zoodeploy train` "
                            "or pass a zoo model name")
    name = zoo_name(str(source))
    return _export_zoo(name, Path(out) if out else DEFAULT_ROOT / name, cfg, weights or IMAGENET, progress)


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
    card = load_card(artifact)
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
