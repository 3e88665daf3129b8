"""GPU compilation: the `trt-*` and `torch-trt-*` passes, one entry point for both backends.

TensorRT builds from the ONNX graph (`optimize.tensorrt`), Torch-TensorRT from the exported
program (`optimize.torch_tensorrt`); both verify against PyTorch before anything is recorded.
"""

from __future__ import annotations

from pathlib import Path

from zoodeploy.card import Variant, load_card
from zoodeploy.optimize.passes import PassContext
from zoodeploy.optimize.tensorrt import Backend, CompileConfig, compile_tensorrt


def compile_variant(artifact: str | Path, cfg: CompileConfig | None = None) -> Variant:
    """Build, verify against PyTorch and record a GPU variant (`trt-*` or `torch-trt-*`); the
    orchestrator (`optimize.pipeline`) measures its accuracy and latency. Needs a GPU and TensorRT."""
    cfg = cfg or CompileConfig()
    artifact = Path(artifact)
    card = load_card(artifact)
    if cfg.backend is Backend.torch_tensorrt:
        from zoodeploy.optimize.torch_tensorrt import compile_torch_tensorrt  # imports torch_tensorrt
        return compile_torch_tensorrt(artifact, card, cfg)
    return compile_tensorrt(artifact, card, cfg)


def compile_config(ctx: PassContext, name: str) -> CompileConfig:
    """The CompileConfig of pass `name` (trt-fp16, torch-trt-fp32, ...)."""
    backend = Backend.torch_tensorrt if name.startswith("torch-trt-") else Backend.tensorrt
    g = ctx.gpu
    return CompileConfig(backend=backend, precision=name.rpartition("-")[2], max_batch=g.max_batch,
                         opt_batch=g.opt_batch, workspace_gb=g.workspace_gb, timing_cache=g.timing_cache,
                         source=g.source, progress=ctx.progress)


def run_pass(artifact: Path, ctx: PassContext, name: str) -> Variant:
    """The `trt-*` and `torch-trt-*` passes."""
    return compile_variant(artifact, compile_config(ctx, name))
