"""`fused`: onnxslim (constant folding, dead nodes) + ONNX Runtime's offline graph optimizations.

The saved file must run on any CPU, so the offline level stops at ORT_ENABLE_EXTENDED (and is
ORT_ENABLE_BASIC by default, see `fuse`):
ORT_ENABLE_LAYOUT / ALL add NCHWc layouts tied to the CPU's vector width, which belong in
the session that runs the model, never in a saved file.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
from onnx import helper, numpy_helper

from zoodeploy.artifact import FUSED, REFERENCE, Artifact
from zoodeploy.card import GraphStats, Precision, Variant
from zoodeploy.errors import OptimizeError, first_line
from zoodeploy.export.metadata import set_card_metadata
from zoodeploy.export.validate import TOLERANCES, compare, validation_samples
from zoodeploy.onnx_graph import op_counts
from zoodeploy.optimize.passes import PassContext
from zoodeploy.optimize.record import Made, record_model
from zoodeploy.recipes import FuseRecipe
from zoodeploy.runtime import RunOptions
from zoodeploy.runtime.ort import OrtRunner

SAMPLES = 16  # validation images the fused graph is checked on against fp32
OFFLINE_LEVELS = {"basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
                  "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED}


def slim(model: onnx.ModelProto) -> onnx.ModelProto:
    """onnxslim's constant folding, dead-node removal and shape inference."""
    import onnxslim
    try:
        out = onnxslim.slim(model)
    except Exception as e:
        raise OptimizeError(f"onnxslim failed: {first_line(e)}") from None
    if out is None:
        raise OptimizeError("onnxslim returned no model (its own output check failed)")
    return out


def ort_offline(model: onnx.ModelProto, dst: Path, level: str = "extended") -> None:
    """Save ONNX Runtime's graph optimizations of `model` at a portable `level` (basic | extended).

    The session reads the model from memory, not from a file written for it: on our VMs every
    fresh page of a written file costs a fault to the hypervisor (~4 s for ResNet-152's 240 MB)."""
    if level not in OFFLINE_LEVELS:
        raise OptimizeError(f"offline optimization level must be one of {', '.join(OFFLINE_LEVELS)}, got {level!r}")
    so = ort.SessionOptions()
    so.graph_optimization_level = OFFLINE_LEVELS[level]
    so.optimized_model_filepath = str(dst)
    so.log_severity_level = 3
    try:
        ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])
    except Exception as e:
        raise OptimizeError(f"ONNX Runtime could not optimize {model.graph.name or 'the model'}: "
                            f"{first_line(e)}") from None


def _unique(name: str, taken: set[str]) -> str:
    out, i = name, 1
    while out in taken:
        out, i = f"{name}_{i}", i + 1
    taken.add(out)
    return out


def batchnorm_to_affine(model: onnx.ModelProto) -> int:
    """Rewrite the BatchNormalization nodes fusion could not fold into a convolution (DenseNet's
    pre-activation BN follows a concat, not a conv) as Mul + Add by per-channel constants: the
    same inference arithmetic, in ops every runtime and the INT8 quantizer handle. Returns how many."""
    graph = model.graph
    inits = {i.name: i for i in graph.initializer}
    todo = [n for n in graph.node if n.op_type == "BatchNormalization" and len(n.output) == 1
            and all(i in inits for i in n.input[1:5])]
    if not todo:
        return 0
    ranks = {vi.name: len(vi.type.tensor_type.shape.dim)
             for vi in onnx.shape_inference.infer_shapes(model).graph.value_info}
    taken = {t for n in graph.node for t in (*n.input, *n.output, n.name)} | set(inits)
    replaced: dict[int, list[onnx.NodeProto]] = {}
    for bn in todo:
        gamma, beta, mean, var = (numpy_helper.to_array(inits[i]).astype(np.float64) for i in bn.input[1:5])
        eps = next((a.f for a in bn.attribute if a.name == "epsilon"), 1e-5)
        scale = gamma / np.sqrt(var + eps)
        shape = (-1,) + (1,) * (ranks.get(bn.input[0], 4) - 2)  # per channel, broadcast over N and space
        names = [_unique(f"{bn.name or 'batchnorm'}_{k}", taken) for k in ("scale", "shift", "scaled", "mul", "add")]
        graph.initializer.extend([numpy_helper.from_array(scale.reshape(shape).astype(np.float32), names[0]),
                                  numpy_helper.from_array((beta - mean * scale).reshape(shape).astype(np.float32),
                                                          names[1])])
        replaced[id(bn)] = [helper.make_node("Mul", [bn.input[0], names[0]], [names[2]], name=names[3]),
                            helper.make_node("Add", [names[2], names[1]], [bn.output[0]], name=names[4])]
    nodes = [m for n in graph.node for m in replaced.get(id(n), [n])]
    del graph.node[:]
    graph.node.extend(nodes)
    used = {i for n in graph.node for i in n.input}
    keep = [i for i in graph.initializer if i.name in used]
    del graph.initializer[:]
    graph.initializer.extend(keep)
    return len(todo)


def optimized_graph(src: Path, dst: Path, level: str = "basic",
                    stamp: Callable[[onnx.ModelProto], object] | None = None) -> tuple[dict[str, int], onnx.ModelProto]:
    """onnxslim, ORT offline optimization, then the BatchNorms left as Mul + Add, from `src`
    into `dst`: (op counts before, the result). `stamp` edits the model before ORT writes it (ORT
    keeps its metadata_props), so that the file is written once, not rewritten to stamp it."""
    model = onnx.load(str(src))
    before = op_counts(model)  # now: onnxslim edits the graph it is given
    slimmed = slim(model)
    del model
    if stamp is not None:
        stamp(slimmed)
    ort_offline(slimmed, dst, level)
    del slimmed
    after = onnx.load(str(dst))
    if batchnorm_to_affine(after):
        onnx.save(after, str(dst))
    return before, after


def fuse(artifact: Artifact | str | Path, level: str = "basic") -> Variant:
    """Make ARTIFACT/fused.onnx, check it against fp32 on validation images, record its op counts.

    `basic` (the default) folds BatchNorm and constants and drops dead nodes, keeping standard
    ONNX ops that every runtime takes; `extended` adds ORT-only fusions (com.microsoft
    FusedConv & co) that an ORT session would otherwise derive at load time anyway.
    """
    art = Artifact.of(artifact)
    card = art.card
    fp32 = art.file(REFERENCE)
    samples = validation_samples(art, SAMPLES)

    def write(out: Path) -> Made:
        before, after = optimized_graph(fp32, out, level, stamp=lambda m: set_card_metadata(m, card, variant=FUSED))
        graph = GraphStats(nodes=len(after.graph.node), op_counts=op_counts(after),
                           nodes_before=sum(before.values()), op_counts_before=before)
        one = RunOptions(threads=1)
        with OrtRunner(out, FUSED, one) as fused, OrtRunner(fp32, REFERENCE, one) as reference:
            validation = compare(fused, reference, samples.x, f"{card.name} fused ONNX", tol=TOLERANCES[Precision.fp32],
                                 against=fp32.name, samples_from=samples.source,
                                 runtime=f"onnxruntime {ort.__version__} CPU")
        return Made(validation, graph)

    return record_model(art, FUSED, write, precision=Precision.fp32, stamped=True,
                        made_by=f"onnxslim + ONNX Runtime offline optimization (ORT_ENABLE_{level.upper()}) "
                                "of fp32.onnx",
                        recipe=FuseRecipe(ort_level=f"ORT_ENABLE_{level.upper()}", onnxruntime=ort.__version__))


def run_pass(artifact: Artifact, ctx: PassContext, name: str) -> Variant:
    """The `fuse` pass."""
    return fuse(artifact)
