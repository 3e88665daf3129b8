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

from zoodeploy.card import Variant, load_card, variant_path
from zoodeploy.errors import OptimizeError
from zoodeploy.optimize.data import validation_samples
from zoodeploy.optimize.fuse import compare_with, optimized_graph
from zoodeploy.optimize.record import first_line, record_model

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


def to_fp16(artifact: str | Path, evaluate: bool = True) -> Variant:
    """Make ARTIFACT/fp16.onnx from fp32.onnx and record it with its drift from fp32."""
    card = load_card(artifact)
    fp32 = variant_path(artifact, card.variant("fp32"))
    figures: dict = {}

    def write(out: Path) -> None:
        convert(fp32, out)
        figures.update(compare_with(fp32, out, validation_samples(card), f"{card.name} fp16"))

    return record_model(artifact, FP16, write, precision="fp16", validation=figures, evaluate=evaluate,
                        made_by="onnxruntime.transformers.float16.convert_float_to_float16(keep_io_types=True) "
                                "of fp32.onnx after onnxslim + ORT_ENABLE_BASIC",
                        recipe={"keep_io_types": True, "ort_level": "ORT_ENABLE_BASIC", "target": "gpu",
                                "onnxruntime": ort.__version__})
