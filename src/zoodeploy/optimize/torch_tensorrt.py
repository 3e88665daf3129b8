"""Exported program (.pt2) -> Torch-TensorRT program (`torch-trt-fp32` / `torch-trt-fp16`).

torch_tensorrt compiles the program's graph into TensorRT engines; `torch_tensorrt.save`
writes it back as an ExportedProgram that `torch.export.load` reloads (after `import
torch_tensorrt`, which registers the engine op). Verified against PyTorch before it lands.
"""

from __future__ import annotations

import inspect
from collections.abc import Collection
from pathlib import Path
from typing import Any

from zoodeploy.artifact import Artifact
from zoodeploy.card import ModelCard, Precision, Variant
from zoodeploy.errors import OptimizeError, first_line
from zoodeploy.optimize.tensorrt import CompileConfig, default_timing_cache, profile_batches, record_verified
from zoodeploy.recipes import TorchTensorRTRecipe
from zoodeploy.runtime.gpu import ProfileShapes, current_target, profile_shapes
from zoodeploy.runtime.torch_tensorrt import import_torch_tensorrt, tensorrt_version

EXPORTED_PROGRAM_SUFFIX = ".pt2"


def exported_program_variant(card: ModelCard) -> str | None:
    """The card's exported program (the export step's `--format exported-program`), if any."""
    for name, v in card.variants.items():
        if v.file.endswith(EXPORTED_PROGRAM_SUFFIX) and v.runtime != "torch-tensorrt":
            return name
    return None


def program_input_dims(program: Any) -> list[int | str]:
    """Dims of the program's single user input: ints, or the symbol's name where dynamic."""
    user_inputs = set(program.graph_signature.user_inputs)
    shapes = [node.meta["val"].shape for node in program.graph.nodes
              if node.op == "placeholder" and node.name in user_inputs]
    if len(shapes) != 1:
        raise OptimizeError(f"the exported program has {len(shapes)} inputs; expected one image tensor")
    return [d if isinstance(d, int) else str(d) for d in shapes[0]]


def precision_kwargs(compile_params: Collection[str], precision: Precision) -> dict[str, Any]:
    """torch_tensorrt.dynamo.compile settings for a precision, for the API this release has:
    `enabled_precisions` (weak typing, up to 2.9) or autocast on a strongly typed graph (later)."""
    import torch
    kwargs: dict[str, Any] = {"disable_tf32": precision is Precision.fp32}
    if precision is Precision.fp32:
        if "enabled_precisions" in compile_params:
            kwargs["enabled_precisions"] = {torch.float32}
        return kwargs
    if precision is not Precision.fp16:
        raise OptimizeError(f"--backend torch-tensorrt builds fp32 or fp16, not {precision.value}")
    if "enabled_precisions" in compile_params:
        kwargs["enabled_precisions"] = {torch.float16, torch.float32}
    elif "enable_autocast" in compile_params:
        kwargs.update(enable_autocast=True, autocast_low_precision_type=torch.float16)
    else:
        raise OptimizeError("this torch_tensorrt has neither enabled_precisions nor enable_autocast; "
                            "install a supported release: pip install 'zoodeploy[gpu]'")
    return kwargs


def _compile(torch_tensorrt: Any, program: Any, profile: ProfileShapes, cfg: CompileConfig,
             cache: Path) -> Any:
    import torch
    compile_fn = torch_tensorrt.dynamo.compile
    inputs = [torch_tensorrt.Input(min_shape=profile.min, opt_shape=profile.opt, max_shape=profile.max,
                                   dtype=torch.float32)]
    try:
        return compile_fn(program, arg_inputs=inputs, workspace_size=int(cfg.workspace_gb * (1 << 30)),
                          min_block_size=1, timing_cache_path=str(cache),
                          **precision_kwargs(inspect.signature(compile_fn).parameters, cfg.precision))
    except Exception as e:
        raise OptimizeError(f"torch_tensorrt could not compile the exported program: {first_line(e)}") from None


def _save(torch_tensorrt: Any, module: Any, profile: ProfileShapes, path: Path) -> None:
    """Save with the batch dimension kept dynamic over the profile's range."""
    import torch
    example = torch.randn(profile.opt, device="cuda")
    batch = torch.export.Dim("batch", min=profile.min[0], max=profile.max[0])
    with open(path, "wb") as f:  # a file object: torch.export wants a .pt2 name otherwise
        torch_tensorrt.save(module, f, output_format="exported_program", arg_inputs=[example],
                            dynamic_shapes=({0: batch},) if profile.min[0] != profile.max[0] else None,
                            retrace=True)


def compile_torch_tensorrt(artifact: Artifact | Path, card: ModelCard, cfg: CompileConfig) -> Variant:
    """Compile the card's exported program with torch_tensorrt, verify and record it."""
    import torch
    art = Artifact.of(artifact)
    torch_tensorrt = import_torch_tensorrt()  # GPU first, then the package
    source = cfg.source or exported_program_variant(card)
    if source is None:
        raise OptimizeError(f"{card.name}: no exported program in the card; make one with "
                            f"`zoodeploy export {artifact} --format exported-program`")
    src = card.variant(source)
    if not src.file.endswith(EXPORTED_PROGRAM_SUFFIX):
        raise OptimizeError(f"--source {source!r} is {src.file}, not an exported program (.pt2)")
    program = torch.export.passes.move_to_device_pass(torch.export.load(str(art.file(src))), "cuda")
    profile = profile_shapes(program_input_dims(program), cfg.max_batch, cfg.opt_batch)
    target = current_target(tensorrt_version())
    cache = cfg.timing_cache or default_timing_cache(target)
    cache.parent.mkdir(parents=True, exist_ok=True)
    module = _compile(torch_tensorrt, program, profile, cfg, cache)
    recipe = TorchTensorRTRecipe(source=source, source_sha256=src.sha256, profile=profile.to_dict(),
                                 workspace_gb=cfg.workspace_gb, timing_cache=str(cache),
                                 torch_tensorrt=torch_tensorrt.__version__, target=target)
    return record_verified(
        art, cfg.variant_name, EXPORTED_PROGRAM_SUFFIX,
        lambda path: _save(torch_tensorrt, module, profile, path), cfg.precision, profile_batches(profile),
        runtime="torch-tensorrt", recipe=recipe,
        made_by=f"torch_tensorrt {torch_tensorrt.__version__} (TensorRT {target.tensorrt}) from {src.file} "
                f"on {target.gpu}")
