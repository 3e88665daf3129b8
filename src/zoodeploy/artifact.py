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
import difflib
from collections.abc import Iterator
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING

from zoodeploy.card import (Accuracy, LatencyStats, ModelCard, Precision, ThroughputStats, Variant, load_card,
                            settled, update_card)
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

    def add_variant(self, variant: Variant) -> Variant:
        """Record (or replace) a variant in the card. A variant made again with the very same bytes
        on the same runtime keeps the latency rows and device figures measured for it (a rerun of
        `optimize` re-times batch 1 only; batch 8 and 32 stay); new bytes start with none."""
        with self.update() as card:
            put_variant(card, variant)
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
        return resolve_variant(self.card, name, where=self.path)


def put_variant(card: ModelCard, variant: Variant) -> None:
    """Put `variant` in the card, replacing one of its name; if that one has the very same bytes on
    the same runtime, the latency rows, best throughput and device figures measured for it are kept."""
    old = card.variants.get(variant.name)
    if old is not None and (old.sha256, old.runtime) == (variant.sha256, variant.runtime):
        variant.latency = {**old.latency, **variant.latency}
        variant.throughput = variant.throughput or old.throughput
        variant.accuracy_on = {**old.accuracy_on, **variant.accuracy_on}
    card.variants[variant.name] = variant


def variant_name(card: ModelCard, name: str) -> str:
    """The card's variant that `name` means: a variant name, `selected`, or the name of the pass
    that made it (`ov-int8` -> `int8-ov`, `fuse` -> `fused`); else one line with a did-you-mean."""
    if name == SELECTED or name in card.variants:
        return name
    by_pass = {v.recipe.made_by_pass: n for n, v in card.variants.items() if v.recipe.made_by_pass}
    if name in by_pass:
        return by_pass[name]
    close = difflib.get_close_matches(name, [*card.variants, *by_pass], n=3, cutoff=0.5)
    close = list(dict.fromkeys(by_pass.get(c, c) for c in close))
    suggest = f"; did you mean {', '.join(close)}?" if close else ""
    raise ArtifactError(f"{card.name}: no variant {name!r}{suggest} (have: {', '.join(card.variants) or 'none'}); "
                        "make it with `zoodeploy export` / `zoodeploy optimize`")


def stale_reason(card: ModelCard, name: str, _seen: frozenset[str] = frozenset()) -> str | None:
    """Why variant `name` no longer matches what it was made from (its source variant changed, or is
    stale itself), or None. Variants made before sources were recorded are trusted, and so is one
    whose source is not in the card (a model-store copy keeps the served variant alone): its own
    file is still checked against its sha256 when it is opened."""
    r = card.variants[name].recipe
    src = r.source_variant or (getattr(r, "source", None) if r.source_sha256 else None)  # TensorRT's own fields
    if not src or name in _seen or src not in card.variants:
        return None
    if r.source_sha256 and card.variants[src].sha256 != r.source_sha256:
        return f"its source {src!r} was rebuilt after it was made"
    upstream = stale_reason(card, src, _seen | {name})
    return f"its source {src!r} is stale ({upstream})" if upstream else None


def rebuild_command(card: ModelCard, name: str, where: str | Path = "ARTIFACT") -> str:
    """The command that remakes variant `name` (and, first, any stale variant it is made from)."""
    return f"zoodeploy optimize {where} --passes {card.variants[name].recipe.made_by_pass or name}"


def resolve_variant(card: ModelCard, name: str | None = None, *, where: str | Path = "ARTIFACT") -> Variant:
    """Which variant runs: the one named (a variant or the pass that makes it), else the card's selection.

    The one rule serve, predict, package, the model store and build share. A card that selects
    nothing is refused in one line (the same line everywhere): nothing is guessed for a user. A
    stale variant (its source changed since it was made) is refused with the command that remakes it.
    """
    if name and name != SELECTED:
        chosen = card.variant(variant_name(card, name))
    elif not card.selected:
        raise ArtifactError(f"{card.name}: the card selects no variant; select one with `zoodeploy build`, or "
                            f"name one (--variant NAME; ZOODEPLOY_VARIANT for the service; have: "
                            f"{', '.join(card.variants) or 'none'})")
    else:
        chosen = card.variant(card.selected)
    why = stale_reason(card, chosen.name)
    if why:
        raise ArtifactError(f"{card.name}: variant {chosen.name!r} is stale: {why}; rebuild it with "
                            f"`{rebuild_command(card, chosen.name, where)}`")
    return chosen


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


class Objective(str, Enum):
    """What a selection optimizes among the variants within the accuracy budget."""

    latency = "latency"  # the lowest batch-1 (the select batch's) p50
    throughput = "throughput"  # the most images/s: `bench --throughput`'s best, else the best measured batch
    size = "size"  # the smallest file, int8 first: for a target this host cannot time (mobile / ARM)


MAX_SANE_SPEEDUP = 30.0  # a speed-up over eager above this is flagged, not printed as fact


@dataclass
class Selection:
    """A selection and the reasons a person needs to defend it."""

    name: str
    objective: Objective
    figure: str  # what it won by, e.g. "p50 0.41 ms at batch 1"
    notes: list[str] = field(default_factory=list)  # variants left out and why; a fallback taken
    by: str | None = None  # what it was chosen by when not the objective (no stable timing: accuracy)

    def line(self) -> str:
        return f"{self.name} by {self.by or self.objective.value} ({self.figure})" + "".join(f"; {n}" for n in self.notes)


def select(card: ModelCard, max_drop: float, batch: int, *, objective: Objective | str = Objective.latency,
           max_latency_ms: float | None = None, sizes: dict[str, int] | None = None) -> Selection:
    """The variant to run: the best by `objective` among those whose top-1 (agreement with fp32,
    without labels), judged by `target_accuracy`, is within `max_drop` pt of fp32, that are not stale,
    whose batch-`batch` p50 is within `max_latency_ms` when given. A variant whose timing stayed
    unstable is never chosen on speed; when no variant in the budget has a stable one, the most
    accurate is chosen and the selection says so. `size` needs `sizes` (file bytes by variant)."""
    objective = Objective(objective)
    notes: list[str] = []
    ok = []
    for n, v in card.variants.items():
        acc, why = target_accuracy(card, n), stale_reason(card, n)
        if why:
            notes.append(f"{n} left out: stale ({why})")
        elif acc is not None and acc.drop_pt is not None and acc.drop_pt <= max_drop:
            ok.append(n)
    if max_latency_ms is not None:
        slow = [n for n in ok if str(batch) not in card.variants[n].latency
                or card.variants[n].latency[str(batch)].p50_ms > max_latency_ms]
        ok = [n for n in ok if n not in slow]
        if slow:
            notes.append(f"{', '.join(slow)} left out: batch-{batch} p50 over {max_latency_ms:g} ms or not measured")
    if objective is Objective.size:
        return _by_size(card, ok, sizes or {}, max_drop, notes)
    rows = {n: _best_row(card.variants[n], objective, batch) for n in ok}
    rows = {n: s for n, s in rows.items() if s is not None}
    if not rows:
        raise GateError(f"{card.name}: no variant has accuracy within {max_drop:g} pt of fp32 and batch-{batch} "
                        f"latency{'' if max_latency_ms is None else f' within {max_latency_ms:g} ms'}; "
                        "run `zoodeploy evaluate` and `zoodeploy bench`")
    unstable = sorted(n for n, s in rows.items() if not settled(s))
    stable = {n: s for n, s in rows.items() if settled(s)}
    if unstable:
        notes.append(f"{', '.join(unstable)} not chosen on speed: latency unstable after re-measuring")
    if not stable:
        best = min(rows, key=lambda n: target_accuracy(card, n).drop_pt)
        notes.append("no variant within the budget has a stable timing: the most accurate was chosen")
        return Selection(best, objective, f"{target_accuracy(card, best).change()} pt vs fp32", notes, by="accuracy")
    if objective is Objective.throughput:
        best = max(stable, key=lambda n: stable[n].throughput)
        return Selection(best, objective, _throughput_figure(stable[best]), notes)
    best = min(stable, key=lambda n: stable[n].p50_ms)
    return Selection(best, objective, f"p50 {stable[best].p50_ms:.3g} ms at batch {batch}", notes)


def _best_row(variant: Variant, objective: Objective, batch: int) -> LatencyStats | ThroughputStats | None:
    """The figure a variant competes with: batch `batch`'s row for latency; for throughput, the best
    `bench --throughput` found (batch x requests in flight) when it ran, else the latency row with
    the most images/s (stable rows first)."""
    if objective is Objective.latency:
        return variant.latency.get(str(batch))
    if variant.throughput is not None:
        return variant.throughput
    rows = sorted(variant.latency.values(), key=lambda s: (settled(s), s.throughput))
    return rows[-1] if rows else None


def _throughput_figure(s: LatencyStats | ThroughputStats) -> str:
    in_flight = f" x {s.streams} in flight" if isinstance(s, ThroughputStats) and s.streams > 1 else ""
    return f"{s.throughput:,.0f} img/s at batch {s.batch}{in_flight}"


def _by_size(card: ModelCard, ok: list[str], sizes: dict[str, int], max_drop: float, notes: list[str]) -> Selection:
    int8 = [n for n in ok if card.variants[n].precision in (Precision.int8, Precision.mixed) and n in sizes]
    pool = int8 or [n for n in ok if n in sizes]
    if not pool:
        raise GateError(f"{card.name}: no variant has accuracy within {max_drop:g} pt of fp32; "
                        "run `zoodeploy evaluate` (or `zoodeploy evaluate --on arm64`)")
    best = min(pool, key=lambda n: (sizes[n], n))
    where = target_figures(card, best)
    measured = f"drift measured on {where[0]}" if where else "drift measured on this host"
    notes.append(f"timing not measured on the target ({card.target_isa or 'its CPU'}); {measured}")
    return Selection(best, Objective.size, f"{sizes[best] / 1024:.0f} KiB, "
                     f"{'smallest int8' if int8 else 'smallest'} within {max_drop:g} pt", notes)


def select_variant(card: ModelCard, max_drop: float, batch: int) -> str:
    """The fastest variant (stable p50 at `batch`) within `max_drop` pt of fp32: `select(...).name`."""
    return select(card, max_drop, batch).name


__all__ = ["EAGER", "FUSED", "MAX_SANE_SPEEDUP", "REFERENCE", "SELECTED", "Artifact", "Objective", "Selection",
           "put_variant", "rebuild_command", "resolve_variant", "select", "select_variant", "stale_reason", "target_accuracy",
           "target_figures", "variant_name"]
