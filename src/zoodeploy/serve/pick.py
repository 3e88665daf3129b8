"""Which of a card's variants a server runs: the one asked for, the card's selection, or the
best measured one (said in the log). Used by the service and by the model-store import."""

from __future__ import annotations

from zoodeploy.card import ModelCard, Variant
from zoodeploy.errors import ArtifactError
from zoodeploy.runtime import needs_gpu

REFERENCE = "fp32"


def pick_variant(card: ModelCard, wanted: str | None = None, gpu: bool = False) -> tuple[str, str | None]:
    """(variant, note): the one asked for, else the card's selection, else the best measured one.

    The note says why a variant was chosen when the card did not choose it, for the log.
    """
    if wanted:
        return card.variant(wanted).name, None
    if card.selected:
        return card.variant("selected").name, None
    usable = [v for v in card.variants.values() if gpu or not needs_gpu(v)]
    if not usable:
        raise ArtifactError(f"{card.name}: the card has no variant this server can run "
                            f"(have: {', '.join(card.variants) or 'none'}); run `zoodeploy export`")
    measured = [v for v in usable if v.accuracy is not None]
    if measured:
        best = max(measured, key=lambda v: (v.accuracy.score, -_p50(v)))
        why = f"the best test {best.accuracy.what} ({best.accuracy.score:.2f}%) of {len(measured)} measured variant(s)"
    else:
        best = card.variants.get(REFERENCE) or usable[0]
        why = "no variant has a measured accuracy, so the reference"
    return best.name, (f"the card selects no variant; serving {best.name!r}, {why}; "
                       "select one with `zoodeploy build` to make this explicit")


def _p50(v: Variant) -> float:
    stats = v.latency.get("1")
    return stats.p50_ms if stats else float("inf")
