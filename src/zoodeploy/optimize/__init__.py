"""Optimize an artifact for CPU and mobile-class targets: fused, INT8, FP16 and ORT-format variants.

`optimize(artifact, OptimizeConfig(...)) -> list[Variant]` runs the passes asked for; each
variant lands in the artifact directory and in the card with how it was made, its sha256,
its accuracy on the held-out test split and its drift from fp32, and (with `bench`) its
batch-1 latency against fused fp32, measured here.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

from tqdm.auto import tqdm

from zoodeploy.card import LatencyStats, Variant, load_card
from zoodeploy.errors import OptimizeError
from zoodeploy.evaluate.accuracy import evaluate_variants
from zoodeploy.optimize.accuracy_control import quantize_with_accuracy_control
from zoodeploy.optimize.data import validation_samples
from zoodeploy.optimize.fp16 import FP16, to_fp16
from zoodeploy.optimize.fuse import FUSED, fuse
from zoodeploy.optimize.isa import Isa, detect_isa
from zoodeploy.optimize.ort_format import to_ort_format
from zoodeploy.optimize.quantize import Calibration, QuantConfig, Scheme, quantize
from zoodeploy.optimize.record import latency_of, speed_figures, update_variant
from zoodeploy.optimize.source import resolve_artifact

INT8 = "int8"

__all__ = ["Calibration", "OptimizeConfig", "QuantConfig", "Scheme", "fuse", "optimize", "quantize",
           "quantize_with_accuracy_control", "to_fp16", "to_ort_format"]


@dataclass
class OptimizeConfig:
    """Which variants to make and how. With every pass flag False, nothing is asked: an error."""

    fuse: bool = True
    int8: bool = True
    fp16: bool = False
    ort_format: bool = False  # converts the int8 variant (made now, or before) to ORT format
    calib_data: str | None = None  # None: the card's own data (train split); "digits" or a directory
    calib_size: int = 128
    calibration: Calibration = Calibration.minmax
    scheme: Scheme = Scheme.auto
    max_drop: float | None = 0.5  # top-1 points on the validation split; None: no accuracy control
    threads: int | None = None  # intra-op threads for the latency measurements (None: all cores)
    bench: bool = True  # measure batch-1 latency and speed-up against fused fp32
    out: str | Path | None = None  # for a lone .onnx file: the artifact directory to make
    progress: bool = False

    def __post_init__(self):
        if not (self.fuse or self.int8 or self.fp16 or self.ort_format):
            raise OptimizeError("nothing to do: ask for at least one of --fuse, --int8, --fp16, --ort-format")
        if self.max_drop is not None and self.max_drop < 0:
            raise OptimizeError(f"--max-drop must be >= 0 percentage points (or `none`), got {self.max_drop:g}")
        if self.threads is not None and self.threads < 1:
            raise OptimizeError(f"--threads must be at least 1, got {self.threads}")
        self.quant = QuantConfig(scheme=self.scheme, calibration=self.calibration, calib_data=self.calib_data,
                                 calib_size=self.calib_size, progress=self.progress)  # validates those
        self.scheme, self.calibration = self.quant.scheme, self.quant.calibration


def _int8(artifact: Path, cfg: OptimizeConfig) -> Variant:
    if cfg.max_drop is None:
        return quantize(artifact, cfg.quant, INT8, evaluate=False)
    return quantize_with_accuracy_control(artifact, cfg.quant, cfg.max_drop, INT8, cfg.threads, evaluate=False)


def optimize(artifact: str | Path, cfg: OptimizeConfig | None = None) -> list[Variant]:
    """Make the variants `cfg` asks for in `artifact` (a directory, or a lone .onnx file with
    `calib_data`); returns them as recorded in the card."""
    cfg = cfg or OptimizeConfig()
    root = resolve_artifact(artifact, cfg.calib_data, cfg.out)
    card = load_card(root)
    card.variant("fp32")  # a clear error before any work when there is no fp32 model
    int8 = cfg.int8 or (cfg.ort_format and INT8 not in card.variants)  # ORT format converts int8
    passes = [(cfg.fuse, "fusing", lambda: fuse(root, evaluate=False)),
              (int8, "quantizing", lambda: _int8(root, cfg)),
              (cfg.fp16, "converting to fp16", lambda: to_fp16(root, evaluate=False)),
              (cfg.ort_format, "converting int8 to ORT format",
               lambda: to_ort_format(root, INT8, evaluate=False))]
    names = []
    for wanted, doing, run in passes:
        if wanted:
            _say(cfg, f"{doing} {card.name} in {root}")
            names.append(run().name)
    _say(cfg, f"measuring accuracy and drift of {', '.join(names)} on the test split")
    evaluate_variants(root, names, progress=cfg.progress)
    if cfg.bench:
        _say(cfg, "measuring batch-1 latency against fused fp32")
        measure_speedups(root, names, cfg.threads, cfg.quant.isa)
    card = load_card(root)
    return [card.variants[n] for n in names]


def _say(cfg: OptimizeConfig, line: str) -> None:
    if cfg.progress:
        tqdm.write(line, file=sys.stderr)


def measure_speedups(artifact: Path, names: list[str], threads: int | None, isa: Isa | None = None) -> None:
    """Batch-1 latency of each variant against fused fp32 (fp32 without it), noted in the card
    where an INT8 variant is not faster or an FP16 one is slower on this CPU."""
    card = load_card(artifact)
    ref_name = FUSED if FUSED in card.variants else "fp32"
    x = validation_samples(card, 1)
    ref = latency_of(artifact, ref_name, x, threads)
    update_variant(artifact, ref_name, latency=ref)
    for name in names:
        if name == ref_name:
            continue
        stats = latency_of(artifact, name, x, threads)
        figures = speed_figures(stats, ref, ref_name)
        update_variant(artifact, name, latency=stats, validation=figures,
                       notes=speed_notes(name, card.variants[name].precision, stats, ref, ref_name,
                                         isa or detect_isa()))


def speed_notes(name: str, precision: str, stats: LatencyStats, ref: LatencyStats, ref_name: str,
                isa: Isa) -> list[str]:
    """What a person must know about a measured latency (a slower "optimized" variant)."""
    where = (f"{stats.p50_ms:.3f} ms vs {ref_name} fp32 {ref.p50_ms:.3f} ms at batch {stats.batch}, "
             f"{stats.settings.get('intra_op_threads')} thread(s), {isa.summary}")
    if precision in ("int8", "mixed") and stats.p50_ms >= ref.p50_ms:
        return [f"{name} is not faster than {ref_name} fp32 on this CPU: {where}"]
    if name == FP16 and stats.p50_ms > ref.p50_ms:
        return [f"fp16 is for GPU targets; on this CPU it is slower: {where} (ONNX Runtime wraps fp16 ops "
                "in casts where it has no fp16 CPU kernel)"]
    return []
