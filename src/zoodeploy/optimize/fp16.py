"""`fp16`: FP16 weights and activations, FP32 inputs and outputs, for GPU targets.

Made from a BASIC-level optimized graph (BatchNorm folded into the convolutions in fp32
first, so fp16 rounds the folded weights once) of standard ONNX ops only, so any GPU runtime
(ORT CUDA / TensorRT EP) takes it. On x86 CPUs ONNX Runtime has almost no fp16 kernels and
wraps the ops in casts: slower than fp32 there, which the CLI and the card say when measured.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import onnx
import onnxruntime as ort

from zoodeploy.artifact import REFERENCE, Artifact
from zoodeploy.card import Precision, Variant
from zoodeploy.fileio import staging_dir
from zoodeploy.errors import OptimizeError, first_line
from zoodeploy.export.metadata import set_card_metadata
from zoodeploy.export.validate import compare, validation_samples
from zoodeploy.optimize.fuse import optimized_graph
from zoodeploy.optimize.passes import PassContext
from zoodeploy.optimize.record import Made, record_model
from zoodeploy.recipes import Fp16Recipe
from zoodeploy.runtime import RunOptions
from zoodeploy.runtime.ort import OrtRunner

FP16 = "fp16"


def convert(src: Path, out: Path, stamp: Callable[[onnx.ModelProto], object] | None = None) -> None:
    """`src` -> fp16 graph at `out`, keeping fp32 graph inputs and outputs; `stamp` edits the
    model before it is saved (the card essentials: the file is written once)."""
    from onnxruntime.transformers.float16 import convert_float_to_float16
    with staging_dir("zoodeploy-fp16") as tmp:
        _, basic = optimized_graph(src, Path(tmp) / "basic.onnx", level="basic")
        try:
            model = convert_float_to_float16(basic, keep_io_types=True)
        except Exception as e:
            raise OptimizeError(f"fp16 conversion failed: {first_line(e)}") from None
    if stamp is not None:
        stamp(model)
    onnx.save(model, str(out))


def to_fp16(artifact: Artifact | str | Path) -> Variant:
    """Make ARTIFACT/fp16.onnx from fp32.onnx and record its logit error against fp32 (measured,
    not gated: fp16 rounding is expected; accuracy and drift come from the orchestrator)."""
    art = Artifact.of(artifact)
    card = art.card
    fp32 = art.file(REFERENCE)

    def write(out: Path) -> Made:
        convert(fp32, out, stamp=lambda m: set_card_metadata(m, card, variant=FP16))
        samples = validation_samples(art)
        one = RunOptions(threads=1)
        with OrtRunner(out, FP16, one) as fp16, OrtRunner(fp32, REFERENCE, one) as reference:
            return Made(compare(fp16, reference, samples.x, f"{card.name} fp16", tol=None, against=fp32.name,
                                samples_from=samples.source, runtime=f"onnxruntime {ort.__version__} CPU"))

    return record_model(art, FP16, write, precision=Precision.fp16, stamped=True,
                        made_by="onnxruntime.transformers.float16.convert_float_to_float16(keep_io_types=True) "
                                "of fp32.onnx after onnxslim + ORT_ENABLE_BASIC",
                        recipe=Fp16Recipe(onnxruntime=ort.__version__))


def run_pass(artifact: Artifact, ctx: PassContext, name: str) -> Variant:
    """The `fp16` pass."""
    return to_fp16(artifact)
