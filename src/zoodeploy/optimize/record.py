"""Land a variant: write its file atomically, stamp the card essentials, record it in the card
with how it was made and how it was validated. Passes call this; they never evaluate or time
what they made (the orchestrator in `optimize.pipeline` does, once)."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import onnx

from zoodeploy.artifact import Artifact
from zoodeploy.card import GraphStats, Precision, Runtime, Validation, Variant
from zoodeploy.export.metadata import set_card_metadata
from zoodeploy.fileio import atomic_path
from zoodeploy.recipes import Recipe


def save_onnx(model: onnx.ModelProto, path: Path, artifact: Artifact | str | Path, variant: str) -> None:
    """Save with the card essentials (and the variant name) in the model's metadata_props."""
    set_card_metadata(model, Artifact.of(artifact).card, variant=variant)
    onnx.save(model, str(path))


@dataclass
class Made:
    """What a pass's `write` measured while it made the file."""

    validation: Validation | None = None
    graph: GraphStats | None = None


def record_model(artifact: Artifact | str | Path, name: str, write: Callable[[Path], object], *, made_by: str,
                 precision: Precision | str, recipe: Recipe, file: str | None = None,
                 runtime: Runtime | str = Runtime.onnxruntime, validation: Validation | None = None,
                 graph: GraphStats | None = None, notes: Iterable[str] = (), stamped: bool = False) -> Variant:
    """`write(tmp)` makes the model file (and may return what it measured); it lands as
    ARTIFACT/FILE only when complete. ONNX files get the card essentials in their metadata
    unless `write` put them in (`stamped`)."""
    art = Artifact.of(artifact)
    file = file or f"{name}.onnx"
    with atomic_path(art.path / file) as tmp:
        made = write(tmp)
        made = made if isinstance(made, Made) else Made()  # a library writer returns its own things
        if file.endswith(".onnx") and not stamped:
            save_onnx(onnx.load(str(tmp)), tmp, art, name)
    return art.add_variant(art.new_variant(name, file, precision=precision, runtime=runtime, made_by=made_by,
                                           recipe=recipe, validation=validation or made.validation,
                                           graph=graph or made.graph, notes=list(notes)))


def record_existing(artifact: Artifact | str | Path, name: str, *, file: str, made_by: str, precision: Precision | str,
                    recipe: Recipe, runtime: Runtime | str, validation: Validation | None = None,
                    notes: Iterable[str] = ()) -> Variant:
    """Record a variant that runs a file already in the artifact (the same bytes and sha256 as the
    variant that wrote it, run by another runtime): nothing is written but the card."""
    art = Artifact.of(artifact)
    sha = next((v.sha256 for v in art.card.variants.values() if v.file == file), None)  # its writer's hash
    if sha is None:
        return art.add_variant(art.new_variant(name, file, precision=precision, runtime=runtime, made_by=made_by,
                                               recipe=recipe, validation=validation, notes=list(notes)))
    art.verified(file, sha, f"variant {name!r}")
    return art.add_variant(Variant(name=name, file=file, sha256=sha, precision=precision,
                                   runtime=runtime, made_by=made_by, recipe=recipe, validation=validation,
                                   notes=list(notes)))
