"""Land a variant: write its file atomically, stamp the card essentials, record it in the card
with how it was made and how it was validated. Passes call this; they never evaluate or time
what they made (the orchestrator in `optimize.pipeline` does, once)."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import onnx

from zoodeploy.card import (GraphStats, Precision, Runtime, Validation, Variant, add_variant, load_card,
                            make_variant)
from zoodeploy.export.metadata import set_card_metadata
from zoodeploy.fileio import atomic_path
from zoodeploy.recipes import Recipe


def first_line(e: BaseException) -> str:
    """The first non-empty line of an exception from a library, for a one-line error."""
    lines = [ln.strip() for ln in str(e).splitlines() if ln.strip()]
    return (lines[0] if lines else type(e).__name__)[:300]


def save_onnx(model: onnx.ModelProto, path: Path, artifact: str | Path, variant: str) -> None:
    """Save with the card essentials (and the variant name) in the model's metadata_props."""
    set_card_metadata(model, load_card(artifact), variant=variant)
    onnx.save(model, str(path))


@dataclass
class Made:
    """What a pass's `write` measured while it made the file."""

    validation: Validation | None = None
    graph: GraphStats | None = None


def record_model(artifact: str | Path, name: str, write: Callable[[Path], object], *, made_by: str,
                 precision: Precision | str, recipe: Recipe, file: str | None = None,
                 runtime: Runtime | str = Runtime.onnxruntime, validation: Validation | None = None,
                 graph: GraphStats | None = None, notes: Iterable[str] = (), stamped: bool = False) -> Variant:
    """`write(tmp)` makes the model file (and may return what it measured); it lands as
    ARTIFACT/FILE only when complete. ONNX files get the card essentials in their metadata
    unless `write` put them in (`stamped`)."""
    file = file or f"{name}.onnx"
    with atomic_path(Path(artifact) / file) as tmp:
        made = write(tmp)
        made = made if isinstance(made, Made) else Made()  # a library writer returns its own things
        if file.endswith(".onnx") and not stamped:
            save_onnx(onnx.load(str(tmp)), tmp, artifact, name)
    variant = make_variant(artifact, name, file, precision=precision, runtime=runtime, made_by=made_by,
                           recipe=recipe, validation=validation or made.validation, graph=graph or made.graph,
                           notes=list(notes))
    add_variant(artifact, variant)
    return variant


def record_existing(artifact: str | Path, name: str, *, file: str, made_by: str, precision: Precision | str,
                    recipe: Recipe, runtime: Runtime | str, validation: Validation | None = None,
                    notes: Iterable[str] = ()) -> Variant:
    """Record a variant that runs a file already in the artifact (the same bytes and sha256 as the
    variant that wrote it, run by another runtime): nothing is written but the card."""
    variant = make_variant(artifact, name, file, precision=precision, runtime=runtime, made_by=made_by,
                           recipe=recipe, validation=validation, notes=list(notes))
    add_variant(artifact, variant)
    return variant
