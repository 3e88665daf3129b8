"""`fp16`: FP16 weights and activations, FP32 inputs and outputs, for GPU targets.

Made from a BASIC-level optimized graph (BatchNorm folded into the convolutions in fp32
first, so fp16 rounds the folded weights once) of standard ONNX ops only, so any GPU runtime
(ORT CUDA / TensorRT EP) takes it. On x86 CPUs ONNX Runtime has almost no fp16 kernels and
wraps the ops in casts: slower than fp32 there, which the CLI and the card say when measured.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import onnx
import onnxruntime as ort

from zoodeploy.card import Precision, Variant, load_card, variant_path
from zoodeploy.errors import OptimizeError
from zoodeploy.optimize.data import validation_samples
from zoodeploy.optimize.passes import PassContext
from zoodeploy.optimize.fuse import compare_with, optimized_graph
from zoodeploy.optimize.record import Made, first_line, record_model
from zoodeploy.recipes import Fp16Recipe

FP16 = "fp16"


def convert(src: Path, out: Path) -> None:
    """`src` -> fp16 graph at `out`, keeping fp32 graph inputs and outputs."""
    from onnxruntime.transformers.float16 import convert_float_to_float16
    with tempfile.TemporaryDirectory(prefix="zoodeploy-fp16-") as tmp:
        _, basic = optimized_graph(src, Path(tmp) / "basic.onnx", level="basic")
        try:
            model = convert_float_to_float16(basic, keep_io_types=True)
        except Exception as e:
            raise OptimizeError(f"fp16 conversion failed: {first_line(e)}") from None
    onnx.save(model, str(out))


def to_fp16(artifact: str | Path) -> Variant:
    """Make ARTIFACT/fp16.onnx from fp32.onnx and record its logit error against fp32 (measured,
    not gated: fp16 rounding is expected; accuracy and drift come from the orchestrator)."""
    card = load_card(artifact)
    fp32 = variant_path(artifact, card.variant("fp32"))

    def write(out: Path) -> Made:
        convert(fp32, out)
        samples = validation_samples(card)
        return Made(compare_with(fp32, out, samples, f"{card.name} fp16", samples=f"{len(samples)} images (val split)"))

    return record_model(artifact, FP16, write, precision=Precision.fp16,
                        made_by="onnxruntime.transformers.float16.convert_float_to_float16(keep_io_types=True) "
                                "of fp32.onnx after onnxslim + ORT_ENABLE_BASIC",
                        recipe=Fp16Recipe(onnxruntime=ort.__version__))


def run_pass(artifact: Path, ctx: PassContext, name: str) -> Variant:
    """The `fp16` pass."""
    return to_fp16(artifact)
