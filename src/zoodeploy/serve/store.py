"""BentoML model store glue: an artifact's served variant saved as a store model, and back.

The stored model is an artifact directory of its own: `card.json` (narrowed to the one variant,
which it selects) and that variant's file(s), so `bentoml build` packs exactly what is served.
Its version is a hash of that content: importing the same artifact twice is a no-op.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from dataclasses import dataclass
from pathlib import Path

from zoodeploy.artifact import Artifact
from zoodeploy.card import CARD_FILE, ModelCard, StoreImport, save_card
from zoodeploy.errors import ArtifactError
from zoodeploy.fileio import sha256_file

NAME_PREFIX = "zoodeploy-"


@dataclass(frozen=True)
class Imported:
    tag: str  # name:version
    created: bool  # False when the store already held this exact content
    variant: str
    path: Path  # the stored model's directory


def import_artifact(artifact: Artifact | str | Path, variant: str | None = None, name: str | None = None) -> Imported:
    """Save the artifact's served variant (the card's selection unless named: `resolve_variant`)
    into the model store."""
    import bentoml
    from bentoml.exceptions import NotFound

    art = Artifact.of(artifact)
    chosen = art.resolve_variant(variant).name
    stored_card, files = _narrowed(art, chosen)
    tag = _tag(name or NAME_PREFIX + art.card.name, _version(stored_card, files))
    try:
        model = bentoml.models.get(tag)
        return Imported(str(model.tag), False, chosen, Path(model.path))
    except NotFound:
        pass
    with bentoml.models.create(tag, labels=store_labels(stored_card, chosen),
                               metadata=store_metadata(stored_card, chosen, art.path)) as model:
        for f in files:
            shutil.copy2(f, Path(model.path) / f.name)
        save_card(model.path, stored_card)
    saved = bentoml.models.get(tag)  # the model moved from its temporary directory into the store
    return Imported(str(saved.tag), True, chosen, Path(saved.path))


def _tag(name: str, version: str) -> str:
    import bentoml
    from bentoml.exceptions import BentoMLException
    if name != name.lower():
        raise ArtifactError(f"store model name {name!r} has capitals; BentoML names are lowercase")
    try:
        return str(bentoml.Tag.from_taglike(f"{name}:{version}"))
    except BentoMLException:
        raise ArtifactError(f"{name!r} is not a valid store model name; use lowercase letters, digits, "
                            "'-', '_' and '.'") from None


def _narrowed(art: Artifact, variant: str) -> tuple[ModelCard, list[Path]]:
    """The card as the store keeps it (one variant, selected) and the files that variant needs."""
    card, artifact = art.card, art.path
    v = card.variants[variant]
    files = [art.file(v)]  # checks the sha256 recorded in the card
    extra = artifact / f"{v.file}.data"  # ONNX external weights, when the graph has them
    if extra.is_file():
        files.append(extra)
    keep_checkpoint = v.runtime == "torch"
    if keep_checkpoint and card.checkpoint:
        files.append(artifact / card.checkpoint)
    stored = card.model_copy(deep=True, update={
        "variants": {variant: v}, "selected": variant,
        "checkpoint": card.checkpoint if keep_checkpoint else None,
        "provenance": card.provenance.model_copy(update={"store_import": StoreImport(
            source=str(artifact.resolve()), variant=variant, variants_left_out=sorted(set(card.variants) - {variant}))})})
    return stored, files


def _version(card: ModelCard, files: list[Path]) -> str:
    """A version from the content: the card (less where it came from) and every file's hash."""
    h = hashlib.sha256()
    provenance = card.provenance.model_copy(update={"store_import": None})
    h.update(card.model_copy(update={"provenance": provenance}).model_dump_json().encode())
    for f in files:
        h.update(f"{f.name}:{sha256_file(f)}".encode())
    return h.hexdigest()[:16]


def store_labels(card: ModelCard, variant: str) -> dict[str, str]:
    """Labels to find models by (`bentoml models list`); BentoML wants strings."""
    v = card.variants[variant]
    labels = {"framework": "zoodeploy", "arch": card.name, "variant": v.name, "precision": v.precision,
              "runtime": v.runtime, "classes": str(card.num_classes), "input_size": card.preprocessing.size_text.removesuffix("px")}
    if v.accuracy is not None:
        labels["top1" if v.accuracy.kind == "labelled" else "agreement"] = f"{v.accuracy.score:.2f}"
    if card.data is not None:
        labels["data"] = Path(card.data.source).name
    return labels


def store_metadata(card: ModelCard, variant: str, artifact: Path) -> dict:
    """The card's essentials and the variant's record (BentoML metadata holds no None)."""
    v = card.variants[variant]
    return _without_none({"card": card.essentials(),
                          "variant": json.loads(v.model_dump_json(exclude={"recipe"})),
                          "source_artifact": str(artifact.resolve())})


def _without_none(obj):
    if isinstance(obj, dict):
        return {k: _without_none(v) for k, v in obj.items() if v is not None}
    if isinstance(obj, list):
        return [_without_none(v) for v in obj if v is not None]
    return obj


def stored_artifact(tag: str) -> Path:
    """The directory of a store model made by `zoodeploy bento import` (it holds card.json)."""
    import bentoml
    from bentoml.exceptions import BentoMLException, NotFound
    try:
        model = bentoml.models.get(tag)
    except NotFound:
        raise ArtifactError(f"model {tag!r} is not in the BentoML model store ({_store_home()}); "
                            "save one with `zoodeploy bento import ARTIFACT`") from None
    except (ValueError, BentoMLException):
        raise ArtifactError(f"{tag!r} is not a model tag: use NAME or NAME:VERSION with lowercase letters, "
                            "digits, '-', '_' and '.' (see `bentoml models list`)") from None
    path = Path(model.path)
    if not (path / CARD_FILE).is_file():
        raise ArtifactError(f"store model {model.tag} has no {CARD_FILE}: it was not saved by "
                            "`zoodeploy bento import`")
    return path


def _store_home() -> str:
    from zoodeploy.serve.bentoml_compat import model_store_dir
    return model_store_dir()
