"""Land a variant: write its file atomically, stamp the card essentials, record it in the card
with how it was made and how it was validated. Passes call this; they never evaluate or time
what they made (the orchestrator in `optimize.pipeline` does, once)."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Iterator
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import onnx

from zoodeploy.artifact import Artifact, put_variant, rebuild_command, stale_reason
from zoodeploy.card import GraphStats, ModelCard, Precision, Runtime, Validation, Variant
from zoodeploy.export.metadata import set_card_metadata
from zoodeploy.fileio import atomic_path
from zoodeploy.recipes import Recipe

if TYPE_CHECKING:
    from zoodeploy.optimize.passes import Pass

_MAKING: ContextVar[Pass | None] = ContextVar("pass being run", default=None)
STALE = "stale: "


@contextlib.contextmanager
def making(p: Pass) -> Iterator[None]:
    """While pass `p` runs (the orchestrator says so), the variant it lands records `p` and the
    sha256 its source variant has: a later change of that source marks it stale."""
    token = _MAKING.set(p)
    try:
        yield
    finally:
        _MAKING.reset(token)


def source_of(card: ModelCard, p: Pass, v: Variant) -> str | None:
    """The variant `v` was made from: the one its recipe names (by variant name, or by file: the
    file's own variant before another runtime's run of it), else the pass's stated source."""
    named = getattr(v.recipe, "source", None)
    if named in card.variants and named != v.name:
        return named
    by_file = sorted((n for n, o in card.variants.items() if o.file == named and n != v.name),
                     key=lambda n: (n != Path(str(named)).stem, n))
    return by_file[0] if by_file else p.source


def land(art: Artifact, variant: Variant) -> Variant:
    """Record `variant` in the card, in one locked update: stamped with the pass that made it and its
    source's sha256, and every variant's stale note refreshed (with the command that remakes it)."""
    p = _MAKING.get()
    with art.update() as card:
        if p is not None:
            src = source_of(card, p, variant)
            variant.recipe.made_by_pass = p.name
            if src in card.variants:
                variant.recipe.source_variant, variant.recipe.source_sha256 = src, card.variants[src].sha256
        put_variant(card, variant)
        for name, v in card.variants.items():
            why = stale_reason(card, name)
            v.notes = [n for n in v.notes if not n.startswith(STALE)]
            if why:
                v.notes.append(f"{STALE}{why}; rebuild it with `{rebuild_command(card, name, art.path)}`")
    return variant


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
    return land(art, art.new_variant(name, file, precision=precision, runtime=runtime, made_by=made_by,
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
        return land(art, art.new_variant(name, file, precision=precision, runtime=runtime, made_by=made_by,
                                         recipe=recipe, validation=validation, notes=list(notes)))
    art.verified(file, sha, f"variant {name!r}")
    return land(art, Variant(name=name, file=file, sha256=sha, precision=precision,
                             runtime=runtime, made_by=made_by, recipe=recipe, validation=validation,
                             notes=list(notes)))
