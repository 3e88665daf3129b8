"""Optimize an artifact: passes (fuse, int8, fp16, ORT format, TensorRT) and the orchestrator.

`optimize(artifact, OptimizeConfig(passes=("fuse", "int8")))` runs the passes asked for (and
those they need); each variant lands in the artifact directory and in the card with how it
was made and how it was validated, then the orchestrator (`optimize.pipeline`) measures its
accuracy and drift on the held-out test split and (with `bench`) its latency against fused
fp32, once. The passes themselves are listed in `optimize.passes.PASSES`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from zoodeploy.artifact import Artifact
from zoodeploy.errors import OptimizeError
from zoodeploy.target import TargetIsa
from zoodeploy.optimize.passes import PASSES, GpuBuild, PassContext, parse_passes
from zoodeploy.optimize.pipeline import Made, Measure, make_variants
from zoodeploy.optimize.quantize import Calibration, QuantConfig, Scheme
from zoodeploy.optimize.source import resolve_artifact
from zoodeploy.progress import quiet, write

DEFAULT_PASSES = ("fuse", "int8")

__all__ = ["Calibration", "DEFAULT_PASSES", "GpuBuild", "Made", "Measure", "OptimizeConfig", "PASSES", "QuantConfig",
           "Scheme", "make_variants", "optimize"]


@dataclass
class OptimizeConfig:
    """Which passes to run and how; validated once, here."""

    passes: tuple[str, ...] = DEFAULT_PASSES  # names in optimize.passes.PASSES
    calib_data: str | None = None  # None: the card's own data (train split); "digits" or a directory
    calib_size: int = 128
    calibration: Calibration = Calibration.minmax
    scheme: Scheme = Scheme.auto
    target_isa: TargetIsa = TargetIsa.host  # the CPU int8 is quantized for (optimize/isa.py)
    max_drop: float | None = 0.5  # top-1 points on the validation split; None: no accuracy control
    threads: int | None = None  # intra-op threads for the measurements (None: all cores)
    bench: bool = True  # measure batch-1 latency and speed-up against fused fp32
    gpu: GpuBuild = field(default_factory=GpuBuild)
    out: str | Path | None = None  # for a lone .onnx file: the artifact directory to make
    progress: bool = False

    def __post_init__(self):
        self.passes = parse_passes(self.passes)
        if self.max_drop is not None and self.max_drop < 0:
            raise OptimizeError(f"--max-drop must be >= 0 percentage points (or `none`), got {self.max_drop:g}")
        if self.threads is not None and self.threads < 1:
            raise OptimizeError(f"--threads must be at least 1, got {self.threads}")
        self.quant = QuantConfig(scheme=self.scheme, calibration=self.calibration, calib_data=self.calib_data,
                                 calib_size=self.calib_size, progress=self.progress,
                                 target_isa=self.target_isa)  # validates those
        self.scheme, self.calibration = self.quant.scheme, self.quant.calibration

    def context(self) -> PassContext:
        return PassContext(quant=self.quant, max_drop=self.max_drop, threads=self.threads, gpu=self.gpu,
                           progress=self.progress)


def optimize(artifact: Artifact | str | Path, cfg: OptimizeConfig | None = None,
             measure: Measure | None = None) -> Made:
    """Make the variants `cfg` asks for in `artifact` (a directory, or a lone .onnx file with
    `calib_data`), measured by the orchestrator; returns them as recorded in the card, with the
    passes that failed in `.not_made` (an error only when none of those asked for made anything)."""
    cfg = cfg or OptimizeConfig()
    art = resolve_artifact(artifact, cfg.calib_data, cfg.out)
    gpu = any(PASSES.get(p).gpu for p in cfg.passes)
    measure = measure or Measure(bench=cfg.bench, threads=cfg.threads, device="cuda" if gpu else "cpu")
    return make_variants(art, cfg.passes, cfg.context(), measure,
                         say=write if cfg.progress else quiet)
