"""OpenVINO variants: an ONNX variant's own file, run by OpenVINO's CPU plugin.

`fp32-ov`, `fused-ov` and `int8-ov` run the very file of `fp32`, `fused` and `int8` (same bytes,
same sha256; OpenVINO reads zoodeploy's QDQ file and runs it with its own int8 kernels), so
evaluation, benchmarks, selection, serving and packaging see one more row each. `bf16` runs the
fused (else fp32) file with bf16 inference precision, on CPUs with AVX512_BF16 or AMX only:
elsewhere OpenVINO emulates bf16, slower than f32 and less accurate.

Each is checked against its source variant run by ONNX Runtime on validation images: f32 as
tightly as fusion is, int8 by top-1 agreement (two runtimes' int8 kernels round differently),
bf16 loosely (8 mantissa bits), its errors recorded.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from zoodeploy.card import Precision, Runtime, Validation, Variant, load_card, variant_path
from zoodeploy.errors import ArtifactError, MissingDependencyError, OptimizeError
from zoodeploy.evaluate.accuracy import run_batched
from zoodeploy.export.validate import Tolerance, check, compare_logits
from zoodeploy.optimize.data import validation_samples
from zoodeploy.optimize.isa import Isa, detect_isa
from zoodeploy.optimize.passes import PassContext
from zoodeploy.optimize.record import record_existing
from zoodeploy.recipes import OpenVinoRecipe
from zoodeploy.runtime import RunOptions

SOURCES = {"ov-fp32": "fp32", "ov-fused": "fused", "ov-int8": "int8"}  # pass -> the variant whose file it runs
BF16 = "bf16"
SAMPLES = 64  # validation images: one int8 top-1 flip is 1.6%, not 6% as with 16
INSTALL = "pip install 'openvino>=2024.4' (a zoodeploy dependency)"
NOT_GATED = 1e9  # logit errors recorded, not gated (a card is JSON, which has no infinity)
# int8 on two runtimes: the same QDQ scales, kernels that round differently. Top-1 agreement, and
# every logit within 10% of the sample's largest: a wrongly computed op moves logits far more.
# Not top-5: where the lower logits nearly tie (an untrained or unsure model) their order is
# rounding; random-init ResNet-50 at 224 px agreed on 87.5% of top-5 sets at 2.4% relative error.
INT8_TOLERANCE = Tolerance(atol=0.0, rtol=0.10, min_top1_agreement=95.0, min_top5_agreement=0.0)
# bf16 keeps 8 mantissa bits: logits move by a few percent, the class rarely does
BF16_TOLERANCE = Tolerance(atol=NOT_GATED, rtol=NOT_GATED, min_top1_agreement=90.0, min_top5_agreement=0.0)


def _openvino():
    """zoodeploy's OpenVINO runner module, or one line naming the package to install."""
    try:
        from zoodeploy.runtime import openvino
    except (ImportError, OSError, RuntimeError) as e:
        why = (str(e).strip().splitlines() or [type(e).__name__])[0][:200]
        raise MissingDependencyError(f"OpenVINO (import failed: {why})", INSTALL) from None
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
    if name == BF16 and not has_bf16(isa):
        return f"this CPU is {isa.summary}: no AVX512_BF16 or AMX, OpenVINO would emulate bf16"
    return None



def _tolerance(precision: str, source: Variant) -> Tolerance:
    if precision == "bf16":
        return BF16_TOLERANCE
    return INT8_TOLERANCE if source.precision in (Precision.int8, Precision.mixed) else Tolerance()


def validate_on_openvino(artifact: Path, source: Variant, name: str, precision: str, threads: int | None) -> Validation:
    """Logits of `source`'s file on OpenVINO vs on ONNX Runtime, on validation images; raises
    one error listing every failure, or one line naming the op OpenVINO cannot run."""
    ov = _openvino()
    from zoodeploy.runtime.ort import OrtRunner
    card = load_card(artifact)
    path = variant_path(artifact, source)
    x = validation_samples(card, SAMPLES)
    options = RunOptions(threads=threads or 1)
    try:
        candidate = ov.OpenVinoRunner(path, name, options, precision=precision)
    except ArtifactError as e:
        raise OptimizeError(f"{e}; variant {source.name!r} stays usable on ONNX Runtime") from None
    try:
        got = run_batched(candidate, x, 32)
    finally:
        candidate.close()
    reference = OrtRunner(path, source.name, options)
    try:
        want = run_batched(reference, x, 32)
    finally:
        reference.close()
    comparison = compare_logits(got, want, batch=32)
    return check([comparison], _tolerance(precision, source), f"{card.name} {name} (OpenVINO {precision})",
                 reference=f"{source.file} on ONNX Runtime", samples=f"{len(x)} images (val split)",
                 runtime=f"openvino {ov.VERSION} CPU, inference precision {precision}")


def make_ov_variant(artifact: Path, source_name: str, name: str, precision: str = "f32",
                    threads: int | None = None) -> Variant:
    """Record `name`: variant `source_name`'s file run by OpenVINO at `precision` (f32 | bf16)."""
    card = load_card(artifact)
    source = card.variant(source_name)
    if source.runtime is not Runtime.onnxruntime or not source.file.endswith(".onnx"):
        raise OptimizeError(f"OpenVINO runs ONNX files; variant {source_name!r} is {source.file} on {str(source.runtime)}")
    validation = validate_on_openvino(artifact, source, name, precision, threads)
    ov = _openvino()
    recipe = OpenVinoRecipe(source=source_name, inference_precision=precision, performance_hint="LATENCY",
                            num_streams=1, openvino=ov.VERSION)
    return record_existing(artifact, name, file=source.file, runtime=Runtime.openvino, recipe=recipe,
                           precision=Precision.bf16 if precision == "bf16" else source.precision,
                           made_by=f"OpenVINO {ov.VERSION} CPU plugin running {source.file} "
                                   f"(inference precision {precision}, LATENCY hint, 1 stream)",
                           validation=validation)


def run_pass(artifact: Path, ctx: PassContext, name: str) -> Variant:
    """`ov-fp32`, `ov-fused`, `ov-int8`: the source variant's file on OpenVINO, f32 kept f32;
    `bf16`: the fused (else fp32) file at bf16, where the CPU has BF16."""
    if name == BF16:
        require_bf16()
        card = load_card(artifact)
        return make_ov_variant(artifact, "fused" if "fused" in card.variants else "fp32", BF16, "bf16", ctx.threads)
    source = SOURCES[name]
    return make_ov_variant(artifact, source, f"{source}-ov", "f32", ctx.threads)
