"""Optimization passes as a registry: each pass makes one variant and validates it.

A pass is one small record: its name (what `--passes` takes), the variant it makes, the
passes whose variants it reads, and the `module:function` that runs it (imported only when
the pass runs, so listing passes imports no TensorRT). Passes never evaluate or time what they
made: `optimize.pipeline.make_variants` does that once for every new variant.

Adding a pass: one module with `run_pass(artifact, ctx, name) -> Variant`, its recipe class in
`zoodeploy.recipes`, and one `PASSES.add(...)` line below.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from zoodeploy.card import ModelCard, Variant
from zoodeploy.errors import OptimizeError
from zoodeploy.registry import Registry

if TYPE_CHECKING:
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
    name: str
    makes: str  # the variant's name
    target: str  # "module:function" taking (artifact, ctx, pass name), returning the recorded Variant
    doing: str  # for progress lines: "fusing", "quantizing"
    needs: tuple[str, ...] = ()  # passes whose variants this one reads
    gpu: bool = False  # needs an NVIDIA GPU and TensorRT

    def run(self, artifact: Path, ctx: PassContext) -> Variant:
        module, _, func = self.target.partition(":")
        return getattr(importlib.import_module(module), func)(artifact, ctx, self.name)


PASSES: Registry[Pass] = Registry("pass")


def add_pass(p: Pass) -> Pass:
    return PASSES.add(p.name, p)


_O = "zoodeploy.optimize"
add_pass(Pass("fuse", "fused", f"{_O}.fuse:run_pass", "fusing"))
add_pass(Pass("int8", "int8", f"{_O}.accuracy_control:run_pass", "quantizing"))
add_pass(Pass("fp16", "fp16", f"{_O}.fp16:run_pass", "converting to fp16"))
add_pass(Pass("ort-format", "int8-ort", f"{_O}.ort_format:run_pass", "converting int8 to ORT format", ("int8",)))
add_pass(Pass("ov-fp32", "fp32-ov", f"{_O}.openvino:run_pass", "checking fp32 on OpenVINO"))
add_pass(Pass("ov-fused", "fused-ov", f"{_O}.openvino:run_pass", "checking fused on OpenVINO", ("fuse",)))
add_pass(Pass("ov-int8", "int8-ov", f"{_O}.openvino:run_pass", "checking int8 on OpenVINO", ("int8",)))
add_pass(Pass("bf16", "bf16", f"{_O}.openvino:run_pass", "checking bf16 on OpenVINO"))
add_pass(Pass("trt-fp32", "trt-fp32", f"{_O}.compile:run_pass", "building a TensorRT fp32 engine", gpu=True))
add_pass(Pass("trt-fp16", "trt-fp16", f"{_O}.compile:run_pass", "building a TensorRT fp16 engine", gpu=True))
add_pass(Pass("trt-int8", "trt-int8", f"{_O}.compile:run_pass", "building a TensorRT int8 engine", gpu=True))
add_pass(Pass("torch-trt-fp32", "torch-trt-fp32", f"{_O}.compile:run_pass",
              "compiling with Torch-TensorRT (fp32)", gpu=True))
add_pass(Pass("torch-trt-fp16", "torch-trt-fp16", f"{_O}.compile:run_pass",
              "compiling with Torch-TensorRT (fp16)", gpu=True))


def parse_passes(text: str | Iterable[str]) -> tuple[str, ...]:
    """`fuse,int8` -> ("fuse", "int8"), each name checked against the registry."""
    names = [n.strip() for n in (text.split(",") if isinstance(text, str) else text) if n.strip()]
    if not names:
        raise OptimizeError(f"no pass named; choose from {', '.join(PASSES)}")
    for n in names:
        PASSES.get(n)
    return tuple(dict.fromkeys(names))


def plan_passes(names: Iterable[str], card: ModelCard) -> list[Pass]:
    """The passes to run, in registry order: those asked for, and those whose variants they need
    that the card does not hold yet."""
    wanted = set(parse_passes(names))
    grew = True
    while grew:
        needed = {d for n in wanted for d in PASSES.get(n).needs if PASSES.get(d).makes not in card.variants}
        grew = not needed <= wanted
        wanted |= needed
    return [PASSES.get(n) for n in PASSES if n in wanted]
