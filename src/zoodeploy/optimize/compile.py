"""GPU compilation: the `trt-*` and `torch-trt-*` passes, one entry point for both backends.

TensorRT builds from the ONNX graph (`optimize.tensorrt`), Torch-TensorRT from the exported
program (`optimize.torch_tensorrt`); both verify against PyTorch before anything is recorded.
"""

from __future__ import annotations

from pathlib import Path

from zoodeploy.artifact import Artifact
from zoodeploy.card import Runtime, Variant
from zoodeploy.optimize.passes import PASSES, PassContext
from zoodeploy.optimize.tensorrt import Backend, CompileConfig, compile_tensorrt


def compile_variant(artifact: Artifact | str | Path, cfg: CompileConfig | None = None) -> Variant:
    """Build, verify against PyTorch and record a GPU variant (`trt-*` or `torch-trt-*`); the
    orchestrator (`optimize.pipeline`) measures its accuracy and latency. Needs a GPU and TensorRT."""
    cfg = cfg or CompileConfig()
    art = Artifact.of(artifact)
    if cfg.backend is Backend.torch_tensorrt:
        from zoodeploy.optimize.torch_tensorrt import compile_torch_tensorrt  # imports torch_tensorrt
        return compile_torch_tensorrt(art, art.card, cfg)
    return compile_tensorrt(art, art.card, cfg)


def compile_config(ctx: PassContext, name: str) -> CompileConfig:
    """The CompileConfig of pass `name` (trt-fp16, torch-trt-fp32, ...): its backend and precision
    are the pass record's."""
    p = PASSES.get(name)
    backend = Backend.torch_tensorrt if p.runtime == Runtime.torch_tensorrt else Backend.tensorrt
    g = ctx.gpu
    return CompileConfig(backend=backend, precision=p.precision.value, max_batch=g.max_batch,
                         opt_batch=g.opt_batch, workspace_gb=g.workspace_gb, timing_cache=g.timing_cache,
                         source=g.source, progress=ctx.progress)


def run_pass(artifact: Artifact, ctx: PassContext, name: str) -> Variant:
    """The `trt-*` and `torch-trt-*` passes."""
    return compile_variant(artifact, compile_config(ctx, name))
