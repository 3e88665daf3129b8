"""Optimization passes as a registry: each pass makes one variant and validates it.

A pass is one small record: its name (what `--passes` takes), the variant it makes, the
passes whose variants it reads, and the `module:function` that runs it (imported only when
the pass runs, so listing passes imports no TensorRT). Passes never evaluate or time what they
made: `optimize.pipeline.make_variants` does that once for every new variant.

Adding a pass: one module with `run_pass(artifact, ctx, name) -> Variant` (the artifact is a
`zoodeploy.artifact.Artifact`), its recipe class in `zoodeploy.recipes`, and one `add_pass(...)` line
below that states its facts: what it makes, from which variant, at which precision, on which runtime.
"""

from __future__ import annotations

import difflib
import importlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from zoodeploy.artifact import stale_reason
from zoodeploy.card import ModelCard, Precision, Runtime, Variant
from zoodeploy.errors import OptimizeError, UnknownNameError
from zoodeploy.registry import Registry

if TYPE_CHECKING:
    from zoodeploy.artifact import Artifact
    from zoodeploy.optimize.quantize import QuantConfig


@dataclass(frozen=True)
class GpuBuild:
    """Settings of the TensorRT / Torch-TensorRT passes."""

    max_batch: int = 64  # the profile accepts batches 1..max_batch
    opt_batch: int | None = None  # the batch TensorRT tunes kernels for (default min(8, max_batch))
    workspace_gb: float = 4.0
    timing_cache: Path | None = None  # default: one per GPU and TensorRT version in the user cache
    source: str | None = None  # variant to build from (default: by the precision rules)


@dataclass(frozen=True)
class PassContext:
    """What every pass may read: the quantization config and the few knobs passes share."""

    quant: QuantConfig
    max_drop: float | None = 0.5  # int8 accuracy control budget (val split, points); None: off
    threads: int | None = None  # threads for the measurements a pass makes while it works
    gpu: GpuBuild = field(default_factory=GpuBuild)
    progress: bool = False


@dataclass(frozen=True)
class Pass:
    """One pass and the facts about it that other code needs (never parsed out of its name)."""

    name: str
    makes: str  # the variant's name
    target: str  # "module:function" taking (artifact, ctx, pass name), returning the recorded Variant
    doing: str  # for progress lines: "fusing", "quantizing"
    precision: Precision  # of the variant it makes
    runtime: Runtime = Runtime.onnxruntime  # what runs the variant it makes
    source: str | None = None  # the variant it starts from (whose file it converts or runs)
    needs: tuple[str, ...] = ()  # passes whose variants this one reads
    gpu: bool = False  # needs an NVIDIA GPU and TensorRT
    compute: Precision | None = None  # what its runtime computes the float parts at, when not fp32 (bf16)
    unavailable: str | None = None  # "module:function": (pass name) -> why it cannot run here, or None

    def run(self, artifact: Artifact, ctx: PassContext) -> Variant:
        return _load(self.target)(artifact, ctx, self.name)

    def why_not_here(self) -> str | None:
        """Why this pass cannot run on this machine (OpenVINO missing, no BF16), or None."""
        return _load(self.unavailable)(self.name) if self.unavailable else None


def _load(target: str):
    module, _, func = target.partition(":")
    return getattr(importlib.import_module(module), func)


PASSES: Registry[Pass] = Registry("pass")


def add_pass(p: Pass) -> Pass:
    return PASSES.add(p.name, p)


_O = "zoodeploy.optimize"
_OV, _OV_NO = f"{_O}.openvino:run_pass", f"{_O}.openvino:unavailable"
_TRT = f"{_O}.compile:run_pass"
P, R = Precision, Runtime
add_pass(Pass("fuse", "fused", f"{_O}.fuse:run_pass", "fusing", P.fp32, source="fp32"))
add_pass(Pass("int8", "int8", f"{_O}.accuracy_control:run_pass", "quantizing", P.int8, source="fp32"))
add_pass(Pass("fp16", "fp16", f"{_O}.fp16:run_pass", "converting to fp16", P.fp16, source="fp32"))
add_pass(Pass("ort-format", "int8-ort", f"{_O}.ort_format:run_pass", "converting int8 to ORT format", P.int8,
              source="int8", needs=("int8",)))
add_pass(Pass("ov-fp32", "fp32-ov", _OV, "checking fp32 on OpenVINO", P.fp32, R.openvino, "fp32",
              unavailable=_OV_NO))
add_pass(Pass("ov-fused", "fused-ov", _OV, "checking fused on OpenVINO", P.fp32, R.openvino, "fused", ("fuse",),
              unavailable=_OV_NO))
add_pass(Pass("ov-int8", "int8-ov", _OV, "checking int8 on OpenVINO", P.int8, R.openvino, "int8", ("int8",),
              unavailable=_OV_NO))
add_pass(Pass("bf16", "bf16", _OV, "checking bf16 on OpenVINO", P.bf16, R.openvino, "fused",
              unavailable=_OV_NO, compute=P.bf16))  # the fused file when there is one, else fp32's
add_pass(Pass("int8-mixed", "int8-mixed", f"{_O}.mixed:run_pass", "quantizing all but depthwise and SE/SiLU blocks",
              P.mixed, source="fp32"))
add_pass(Pass("int8-bf16", "int8-bf16", _OV, "checking int8 with bf16 on OpenVINO", P.mixed, R.openvino, "int8",
              ("int8",), unavailable=_OV_NO, compute=P.bf16))
add_pass(Pass("mixed-bf16", "mixed-bf16", _OV, "checking int8-mixed with bf16 on OpenVINO", P.mixed, R.openvino,
              "int8-mixed", ("int8-mixed",), unavailable=_OV_NO, compute=P.bf16))
add_pass(Pass("trt-fp32", "trt-fp32", _TRT, "building a TensorRT fp32 engine", P.fp32, R.tensorrt, gpu=True))
add_pass(Pass("trt-fp16", "trt-fp16", _TRT, "building a TensorRT fp16 engine", P.fp16, R.tensorrt, gpu=True))
add_pass(Pass("trt-int8", "trt-int8", _TRT, "building a TensorRT int8 engine", P.int8, R.tensorrt, gpu=True))
add_pass(Pass("torch-trt-fp32", "torch-trt-fp32", _TRT, "compiling with Torch-TensorRT (fp32)", P.fp32,
              R.torch_tensorrt, gpu=True))
add_pass(Pass("torch-trt-fp16", "torch-trt-fp16", _TRT, "compiling with Torch-TensorRT (fp16)", P.fp16,
              R.torch_tensorrt, gpu=True))


def pass_name(name: str) -> str:
    """The pass `name` means: a pass name, or the name of the variant a pass makes (`int8-ov` ->
    `ov-int8`, `fused` -> `fuse`); an unknown name fails with a did-you-mean over both."""
    if name in PASSES:
        return name
    by_variant = {PASSES.get(p).makes: p for p in PASSES}
    if name in by_variant:
        return by_variant[name]
    close = difflib.get_close_matches(name, [*PASSES, *by_variant], n=3, cutoff=0.5)
    close = list(dict.fromkeys(by_variant.get(c, c) for c in close))
    suggest = f"; did you mean {', '.join(close)}?" if close else ""
    raise UnknownNameError(f"unknown pass {name!r}{suggest} (known: {', '.join(PASSES)}; a variant's name "
                           "means the pass that makes it)")


def parse_passes(text: str | Iterable[str]) -> tuple[str, ...]:
    """`fuse,int8` -> ("fuse", "int8"), each name checked against the registry (variant names
    are taken for the passes that make them)."""
    names = [n.strip() for n in (text.split(",") if isinstance(text, str) else text) if n.strip()]
    if not names:
        raise OptimizeError(f"no pass named; choose from {', '.join(PASSES)}")
    return tuple(dict.fromkeys(pass_name(n) for n in names))


def plan_passes(names: Iterable[str], card: ModelCard) -> list[Pass]:
    """The passes to run, in registry order: those asked for, and those whose variants they need
    that the card does not hold yet, or holds stale (made from a source that changed since)."""
    wanted = set(parse_passes(names))

    def usable(variant: str) -> bool:
        return variant in card.variants and stale_reason(card, variant) is None
    grew = True
    while grew:
        needed = {d for n in wanted for d in PASSES.get(n).needs if not usable(PASSES.get(d).makes)}
        grew = not needed <= wanted
        wanted |= needed
    return [PASSES.get(n) for n in PASSES if n in wanted]
