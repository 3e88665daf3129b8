"""Land a variant: write its file atomically, stamp the card essentials, record it with its
accuracy and drift on the test split; measure its latency against a reference."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import numpy as np
import onnx

from zoodeploy.bench.latency import BenchConfig, measure
from zoodeploy.card import LatencyStats, Variant, add_variant, load_card, make_variant, save_card
from zoodeploy.evaluate.accuracy import evaluate_variants
from zoodeploy.export.metadata import set_card_metadata
from zoodeploy.fileio import atomic_path
from zoodeploy.runtime import RunOptions, open_runner

# batch-1 latency for the card: enough runs for a stable median, bounded so a sweep stays short
SPEED_BENCH = BenchConfig(warmup=5, window=20, min_runs=40, max_runs=1000, max_seconds=8.0)


def first_line(e: BaseException) -> str:
    """The first non-empty line of an exception from a library, for a one-line error."""
    lines = [ln.strip() for ln in str(e).splitlines() if ln.strip()]
    return (lines[0] if lines else type(e).__name__)[:300]


def save_onnx(model: onnx.ModelProto, path: Path, artifact: str | Path, variant: str) -> None:
    """Save with the card essentials (and the variant name) in the model's metadata_props."""
    set_card_metadata(model, load_card(artifact), variant=variant)
    onnx.save(model, str(path))


def record_model(artifact: str | Path, name: str, write: Callable[[Path], None], *, made_by: str,
                 precision: str, recipe: dict[str, Any], file: str | None = None,
                 validation: dict[str, Any] | None = None, notes: Iterable[str] = (),
                 evaluate: bool = True, stamped: bool = False) -> Variant:
    """`write(tmp)` makes the model file; it lands as ARTIFACT/FILE only when complete. ONNX
    files get the card essentials in their metadata unless `write` put them in (`stamped`)."""
    file = file or f"{name}.onnx"
    with atomic_path(Path(artifact) / file) as tmp:
        write(tmp)
        if file.endswith(".onnx") and not stamped:
            save_onnx(onnx.load(str(tmp)), tmp, artifact, name)
    variant = make_variant(artifact, name, file, precision=precision, runtime="onnxruntime",
                           made_by=made_by, recipe=recipe, validation=validation, notes=list(notes))
    add_variant(artifact, variant)
    if evaluate:
        evaluate_variants(artifact, [name])
    return load_card(artifact).variants[name]


def update_variant(artifact: str | Path, name: str, *, validation: dict[str, Any] | None = None,
                   notes: Iterable[str] = (), latency: LatencyStats | None = None) -> Variant:
    """Add figures measured after a variant landed (its file, and so its sha256, is unchanged)."""
    card = load_card(artifact)
    v = card.variant(name)
    v.validation = {**(v.validation or {}), **(validation or {})}
    v.notes = [*v.notes, *[n for n in notes if n not in v.notes]]
    if latency is not None:
        v.latency[str(latency.batch)] = latency
    save_card(artifact, card)
    return v


def latency_of(artifact: str | Path, variant: str, x: np.ndarray, threads: int | None) -> LatencyStats:
    """Batch latency of a variant under ONNX Runtime (CPU, `threads` intra-op threads)."""
    options = RunOptions(threads=threads)
    runner = open_runner(artifact, variant, options)
    try:
        stats = measure(runner.run, x, SPEED_BENCH, label=variant)
    finally:
        runner.close()
    stats.settings = {**stats.settings, **runner.settings}
    return stats


def speed_figures(stats: LatencyStats, ref: LatencyStats, ref_name: str) -> dict[str, Any]:
    """The measured speed-up against the reference variant, for the card."""
    return {"speed": {"reference": ref_name, "batch": stats.batch, "p50_ms": round(stats.p50_ms, 4),
                      "reference_p50_ms": round(ref.p50_ms, 4),
                      "speedup": round(ref.p50_ms / stats.p50_ms, 3),
                      "threads": stats.settings.get("intra_op_threads")}}
