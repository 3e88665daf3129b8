"""One artifact directory as every stage sees it: the `Artifact` handle.

    art = Artifact.of("artifacts/mnv2")     # a path at the edge; an Artifact passes through
    art.card                                # card.json, read once
    with art.update() as card: ...          # the only re-read: under the card's lock, then saved
    art.file("int8")                        # the variant's file, its sha256 checked once per process
    art.splits(), art.test_data()           # the recorded data split and its preprocessed images, once
    art.resolve_variant(None)               # which variant runs: the one rule serve, predict,
                                            # package, the model store and build all use

The card's own vocabulary lives here too: the reference every variant is judged against, the
variant speed-ups are measured against, the word for "the card's pick".
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from zoodeploy.card import Accuracy, ModelCard, Variant, load_card, save_card, update_card
from zoodeploy.errors import ArtifactError, GateError
from zoodeploy.fileio import sha256_file

if TYPE_CHECKING:
    import numpy as np

    from zoodeploy.models.data import Splits

REFERENCE = "fp32"  # what every variant is judged against
FUSED = "fused"  # what speed-ups are measured against, when the card has it
SELECTED = "selected"  # the card's pick, as a variant name on the command line and in configs
EAGER = "eager"  # the PyTorch model itself, timed beside the variants


class Artifact:
    """An artifact directory and what a process has read of it (the card, verified files, data).

    The card is read once; `update()` re-reads it under the lock, lets the block change it, saves it
    and keeps the result, so a change another process made meanwhile is never undone. Anything
    read from disk is checked against the card the first time and trusted after that in this process.
    """

    def __init__(self, path: str | Path, card: ModelCard | None = None):
        self.path = Path(path)
        self._card = card
        self._verified: dict[tuple[str, str], Path] = {}  # (file, sha256) -> path, checked this process
        self._splits: Splits | None = None

    @classmethod
    def of(cls, artifact: Artifact | str | Path) -> Artifact:
        """`artifact` itself, or a new handle on the directory it names."""
        return artifact if isinstance(artifact, Artifact) else cls(artifact)

    def __fspath__(self) -> str:
        return str(self.path)

    def __str__(self) -> str:
        return str(self.path)

    def __repr__(self) -> str:
        return f"Artifact({str(self.path)!r})"

    # --- the card ---------------------------------------------------------------------------

    @property
    def card(self) -> ModelCard:
        """The card as this process last read or wrote it."""
        if self._card is None:
            self._card = load_card(self.path)
        return self._card

    @contextlib.contextmanager
    def update(self) -> Iterator[ModelCard]:
        """Change the card under its lock: re-read, let the block change it, save atomically.

        Any number of zoodeploy commands on one artifact at once lose nothing: each change is made
        to the card as the previous writer left it. Keep slow work (measuring) outside the block.
        """
        with update_card(self.path) as card:
            yield card
        self._card = card

    def create(self, card: ModelCard) -> ModelCard:
        """Write a new card (a stage that makes the artifact: train, a source import)."""
        save_card(self.path, card)
        self._card = card
        return card

    def add_variant(self, variant: Variant) -> Variant:
        """Record (or replace) a variant in the card."""
        with self.update() as card:
            card.variants[variant.name] = variant
        return variant

    def new_variant(self, name: str, file: str, **fields) -> Variant:
        """A Variant for a file just written into the directory: hashed here, and trusted by
        `file()` for the rest of the process (it is the hash this process computed)."""
        sha = sha256_file(self.path / file)
        self._verified[(file, sha)] = self.path / file
        return Variant(name=name, file=file, sha256=sha, **fields)

    # --- files ------------------------------------------------------------------------------

    def file(self, variant: str | Variant) -> Path:
        """The variant's file, checked against the card's sha256 the first time it is asked for."""
        v = variant if isinstance(variant, Variant) else self.card.variant(variant)
        return self.verified(v.file, v.sha256, f"variant {v.name!r}")

    def verified(self, file: str, sha256: str | None, what: str) -> Path:
        """ARTIFACT/FILE, refused when missing or not matching `sha256` (hashed once per process)."""
        key = (file, sha256 or "")
        if key in self._verified:
            return self._verified[key]
        path = self.path / file
        if not path.is_file():
            raise ArtifactError(f"{path} is missing; rebuild {what}")
        if sha256 and sha256_file(path) != sha256:
            raise ArtifactError(f"{path} does not match the sha256 in the card; it was modified "
                                f"after {what} was made — rebuild it")
        self._verified[key] = path
        return path

    # --- data -------------------------------------------------------------------------------

    def splits(self) -> Splits:
        """The data split the card records, made once per handle."""
        if self._splits is None:
            from zoodeploy.models.data import splits_for
            if self.card.data is None:
                raise ArtifactError(f"{self.card.name}: the card records no data set; evaluate on one with "
                                    "`zoodeploy evaluate ARTIFACT --data digits|DIR`")
            self._splits = splits_for(self.card.data)
        return self._splits

    def use_splits(self, splits: Splits) -> None:
        """Hand over splits already made: a build loads them once, before the card records them; an
        evaluation on other data (`evaluate --data`, `check`) measures on them instead of the card's."""
        self._splits = splits

    def arrays(self, split: str) -> tuple[np.ndarray, np.ndarray]:
        """One split's images preprocessed as the card says, and its labels: made once per handle
        (the split's ImageSet keeps them; training on the same Splits made them already)."""
        images = self.splits()[split]
        return images.arrays(self.card.preprocessing), images.labels

    def test_data(self) -> tuple[np.ndarray, np.ndarray]:
        """The held-out test split, preprocessed once per handle, and its labels."""
        return self.arrays("test")

    def val_data(self) -> tuple[np.ndarray, np.ndarray]:
        """The validation split (never trained on, never the test split), preprocessed once per handle."""
        return self.arrays("val")

    # --- which variant runs -----------------------------------------------------------------

    def resolve_variant(self, name: str | None = None) -> Variant:
        """The variant that runs when `name` is asked for: see `resolve_variant`."""
        return resolve_variant(self.card, name)


def resolve_variant(card: ModelCard, name: str | None = None) -> Variant:
    """Which variant runs: the one named, else the card's selection.

    The one rule serve, predict, package, the model store and build share. A card that selects
    nothing is refused in one line (the same line everywhere): nothing is guessed for a user.
    """
    if name and name != SELECTED:
        return card.variant(name)
    if not card.selected:
        raise ArtifactError(f"{card.name}: the card selects no variant; select one with `zoodeploy build`, or "
                            f"name one (--variant NAME; ZOODEPLOY_VARIANT for the service; have: "
                            f"{', '.join(card.variants) or 'none'})")
    return card.variant(card.selected)


def target_figures(card: ModelCard, name: str) -> tuple[str, Accuracy] | None:
    """Variant `name`'s figures measured on the device of the card's target ISA (`evaluate --on`),
    with that ISA; None when it has none there."""
    isa = card.target_isa
    acc = card.variants[name].accuracy_on.get(isa) if isa else None
    return (isa, acc) if acc is not None else None


def target_accuracy(card: ModelCard, name: str) -> Accuracy | None:
    """What a gate or a selection judges variant `name` by: its figures measured on the card's
    target ISA's device when there are any, else those measured on the build host."""
    found = target_figures(card, name)
    return found[1] if found else card.variants[name].accuracy


def select_variant(card: ModelCard, max_drop: float, batch: int) -> str:
    """The fastest variant (p50 at `batch`) whose top-1 (agreement with fp32, without labels) is
    within `max_drop` pt of fp32, judged by `target_accuracy`."""
    acc = {n: target_accuracy(card, n) for n in card.variants}
    ok = {n: v.latency[str(batch)].p50_ms for n, v in card.variants.items()
          if acc[n] is not None and acc[n].drop_pt is not None and acc[n].drop_pt <= max_drop
          and str(batch) in v.latency}
    if not ok:
        raise GateError(f"{card.name}: no variant has accuracy within {max_drop:g} pt of fp32 and batch-{batch} "
                        "latency; run `zoodeploy evaluate` and `zoodeploy bench`")
    return min(ok, key=ok.get)


__all__ = ["EAGER", "FUSED", "REFERENCE", "SELECTED", "Artifact", "resolve_variant", "select_variant",
           "target_accuracy", "target_figures"]
