"""An artifact's PyTorch model: built from its card (a zoo entry or a recorded source: torchvision
name, Python callable, exported program), weights from its hash-checked checkpoint."""

from __future__ import annotations

from pathlib import Path

from torch import nn

from zoodeploy.card import ModelCard, load_card
from zoodeploy.errors import ArtifactError
from zoodeploy.fileio import sha256_file
from zoodeploy.models.zoo import build_model


def load_model(artifact: str | Path, card: ModelCard | None = None) -> nn.Module:
    """The artifact's PyTorch model in eval mode (`card`: the artifact's, if already loaded)."""
    card = card or load_card(artifact)
    path = checkpoint_path(artifact, card)
    if card.source is None or card.source.kind == "zoo":
        return build_model(card.name, num_classes=card.num_classes, weights=str(path)).eval()
    # torchvision, callable (this runs the code the card names) or exported-program sources
    from zoodeploy.models.sources import rebuild_module
    return rebuild_module(card.source, path, card.num_classes).eval()


def checkpoint_path(artifact: str | Path, card: ModelCard) -> Path:
    """The checkpoint the card records, refused if missing or changed since it was written."""
    if not card.checkpoint:
        raise ArtifactError(f"{artifact}: the card records no checkpoint (a model made from an ONNX file "
                            "has no PyTorch module)")
    path = Path(artifact) / card.checkpoint
    if not path.is_file():
        raise ArtifactError(f"{path} is missing; retrain with `zoodeploy train`")
    if card.checkpoint_sha256 and sha256_file(path) != card.checkpoint_sha256:
        raise ArtifactError(f"{path} does not match the sha256 in the card; it was changed after training")
    return path
