"""OpenVINO variants: an ONNX variant's own file, run by OpenVINO's CPU plugin.

`fp32-ov`, `fused-ov` and `int8-ov` run the very file of `fp32`, `fused` and `int8` (same bytes,
same sha256; OpenVINO reads zoodeploy's QDQ file and runs it with its own int8 kernels), so
evaluation, benchmarks, selection, serving and packaging see one more row each. `bf16` runs the
fused (else fp32) file with bf16 inference precision, on CPUs with AVX512_BF16 or AMX only:
elsewhere OpenVINO emulates bf16, slower than f32 and less accurate.

Each is checked against its source variant run by ONNX Runtime on validation images, within its
precision's tolerance (`export.validate.TOLERANCES`): f32 as tightly as fusion is, int8 by top-1
agreement (two runtimes' int8 kernels round differently), bf16 loosely (8 mantissa bits), its
errors recorded. Which variant each pass runs, and at which precision, is its pass record's
(`optimize.passes.PASSES`).
"""

from __future__ import annotations

from pathlib import Path

from zoodeploy.artifact import REFERENCE, Artifact
from zoodeploy.card import Precision, Runtime, Validation, Variant
from zoodeploy.errors import ArtifactError, MissingDependencyError, OptimizeError, first_line
from zoodeploy.export.validate import TOLERANCES, compare, validation_samples
from zoodeploy.optimize.isa import Isa, detect_isa
from zoodeploy.optimize.passes import PASSES, PassContext
from zoodeploy.optimize.record import record_existing
from zoodeploy.recipes import OpenVinoRecipe
from zoodeploy.runtime import RunOptions
from zoodeploy.runtime.ort import OrtRunner

SAMPLES = 64  # validation images: one int8 top-1 flip is 1.6%, not 6% as with 16
INSTALL = "pip install 'openvino>=2024.4' (a zoodeploy dependency)"


def _openvino():
    """zoodeploy's OpenVINO runner module, or one line naming the package to install."""
    try:
        from zoodeploy.runtime import openvino
    except (ImportError, OSError, RuntimeError) as e:
        raise MissingDependencyError(f"OpenVINO (import failed: {first_line(e, 200)})", INSTALL) from None
    return openvino


def has_bf16(isa: Isa | None = None) -> bool:
    """Whether this CPU runs bf16 natively (AVX512_BF16 or AMX), not emulated."""
    isa = isa or detect_isa()
    return isa.bf16 or isa.amx


def require_bf16(isa: Isa | None = None) -> None:
    isa = isa or detect_isa()
    if not has_bf16(isa):
        raise OptimizeError(f"bf16 needs a CPU with AVX512_BF16 or AMX; this one ({isa.model or isa.machine}) is "
                            f"{isa.summary}, where OpenVINO would emulate bf16 (slower than f32): use fused-ov here")


def unavailable(name: str, isa: Isa | None = None) -> str | None:
    """Why pass `name` cannot run on this machine, or None: `build` skips such a pass, where
    `optimize --passes` refuses it in one line."""
    try:
        _openvino()
    except MissingDependencyError as e:
        return str(e)
    isa = isa or detect_isa()
    if PASSES.get(name).precision is Precision.bf16 and not has_bf16(isa):
        return f"this CPU is {isa.summary}: no AVX512_BF16 or AMX, OpenVINO would emulate bf16"
    return None


def validate_on_openvino(artifact: Artifact | Path, source: Variant, name: str, precision: str,
                         threads: int | None) -> Validation:
    """Logits of `source`'s file on OpenVINO vs on ONNX Runtime, on validation images; raises
    one error listing every failure, or one line naming the op OpenVINO cannot run."""
    ov = _openvino()
    art = Artifact.of(artifact)
    path = art.file(source)
    samples = validation_samples(art, SAMPLES)
    options = RunOptions(threads=threads or 1)
    try:
        candidate = ov.OpenVinoRunner(path, name, options, precision=precision)
    except ArtifactError as e:
        raise OptimizeError(f"{e}; variant {source.name!r} stays usable on ONNX Runtime") from None
    made = Precision.bf16 if precision == "bf16" else source.precision
    with candidate, OrtRunner(path, source.name, options) as reference:
        return compare(candidate, reference, samples.x, f"{art.card.name} {name} (OpenVINO {precision})",
                       tol=TOLERANCES[made], against=f"{source.file} on ONNX Runtime", samples_from=samples.source,
                       runtime=f"openvino {ov.VERSION} CPU, inference precision {precision}")


def make_ov_variant(artifact: Artifact | Path, source_name: str, name: str, precision: str = "f32",
                    threads: int | None = None) -> Variant:
    """Record `name`: variant `source_name`'s file run by OpenVINO at `precision` (f32 | bf16)."""
    art = Artifact.of(artifact)
    source = art.card.variant(source_name)
    if source.runtime is not Runtime.onnxruntime or not source.file.endswith(".onnx"):
        raise OptimizeError(f"OpenVINO runs ONNX files; variant {source_name!r} is {source.file} on {str(source.runtime)}")
    validation = validate_on_openvino(art, source, name, precision, threads)
    ov = _openvino()
    recipe = OpenVinoRecipe(source=source_name, inference_precision=precision, performance_hint="LATENCY",
                            num_streams=1, openvino=ov.VERSION)
    return record_existing(art, name, file=source.file, runtime=Runtime.openvino, recipe=recipe,
                           precision=Precision.bf16 if precision == "bf16" else source.precision,
                           made_by=f"OpenVINO {ov.VERSION} CPU plugin running {source.file} "
                                   f"(inference precision {precision}, LATENCY hint, 1 stream)",
                           validation=validation)


def run_pass(artifact: Artifact, ctx: PassContext, name: str) -> Variant:
    """`ov-fp32`, `ov-fused`, `ov-int8`: the pass's source variant's file on OpenVINO, f32 kept f32;
    `bf16`: the fused (else fp32) file at bf16, where the CPU has BF16."""
    p = PASSES.get(name)
    art = Artifact.of(artifact)
    if p.precision is not Precision.bf16:
        return make_ov_variant(art, p.source, p.makes, "f32", ctx.threads)
    require_bf16()
    source = p.source if p.source in art.card.variants else REFERENCE
    return make_ov_variant(art, source, p.makes, "bf16", ctx.threads)
