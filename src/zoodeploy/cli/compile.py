"""`zoodeploy compile`: a TensorRT engine (or Torch-TensorRT program) for an NVIDIA GPU."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from zoodeploy.cli.common import ArtifactArg, JsonFlag, console, print_json
from zoodeploy.optimize import GpuBuild, OptimizeConfig, optimize
from zoodeploy.optimize.tensorrt import Backend, CompileConfig, Precision


def compile_cmd(
    artifact: ArtifactArg,
    backend: Annotated[Backend, typer.Option(help="`tensorrt`: engine from the ONNX graph; "
                                                  "`torch-tensorrt`: from the exported program (.pt2).")] = Backend.tensorrt,
    precision: Annotated[Precision, typer.Option(help="int8 builds from the tensorrt-scheme QDQ graph "
                                                      "(made if missing).")] = Precision.fp16,
    max_batch: Annotated[int, typer.Option(help="Largest batch the engine accepts (smallest: 1).")] = 64,
    opt_batch: Annotated[int | None, typer.Option(help="Batch TensorRT tunes for (default: min(8, max)).")] = None,
    workspace: Annotated[float, typer.Option(help="Builder workspace limit, GB.")] = 4.0,
    timing_cache: Annotated[Path | None, typer.Option(
        help="Timing cache to load and update (default: one per GPU and TensorRT version in ~/.cache/zoodeploy).")] = None,
    source: Annotated[str | None, typer.Option(help="Variant to build from (default: by precision).")] = None,
    json: JsonFlag = False,
) -> None:
    """Build, verify against PyTorch, and record a GPU variant (trt-<precision> / torch-trt-<precision>)."""
    name = CompileConfig(backend=backend, precision=precision, max_batch=max_batch, opt_batch=opt_batch,
                         workspace_gb=workspace, timing_cache=timing_cache, source=source).variant_name  # validates
    gpu = GpuBuild(max_batch=max_batch, opt_batch=opt_batch, workspace_gb=workspace, timing_cache=timing_cache,
                   source=source)
    [variant] = optimize(artifact, OptimizeConfig(passes=(name,), gpu=gpu, progress=not json))
    if json:
        print_json(variant.model_dump(mode="json"))
        return
    val = variant.validation
    acc = variant.accuracy
    console.print(f"[green]compiled[/] {variant.name} -> {Path(artifact) / variant.file}: {variant.made_by}; "
                  f"vs PyTorch on {val.samples}: top-1 agreement {val.min_top1_agreement:.1f}%, "
                  f"max |logit error| {val.worst_abs_err:.3g}"
                  + (f"; test {acc.summary()} ({acc.change()} pt vs fp32)"
                     if acc is not None and acc.drop_pt is not None else ""))
