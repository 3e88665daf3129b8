"""`fused`: onnxslim (constant folding, dead nodes) + ONNX Runtime's offline graph optimizations.

The saved file must run on any CPU, so the offline level stops at ORT_ENABLE_EXTENDED (and is
ORT_ENABLE_BASIC by default, see `fuse`):
ORT_ENABLE_LAYOUT / ALL add NCHWc layouts tied to the CPU's vector width, which belong in
the session that runs the model, never in a saved file.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort

from zoodeploy.card import Variant, load_card, variant_path
from zoodeploy.errors import OptimizeError
from zoodeploy.export.validate import Tolerance, check, compare_logits
from zoodeploy.optimize.data import validation_samples
from zoodeploy.optimize.quantize import op_counts
from zoodeploy.optimize.record import first_line, record_model, save_onnx
from zoodeploy.runtime import RunOptions
from zoodeploy.runtime.ort import create_session

FUSED = "fused"
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


def ort_offline(src: Path, dst: Path, level: str = "extended") -> None:
    """Save ONNX Runtime's graph optimizations at a portable `level` (basic | extended)."""
    if level not in OFFLINE_LEVELS:
        raise OptimizeError(f"offline optimization level must be one of {', '.join(OFFLINE_LEVELS)}, got {level!r}")
    so = ort.SessionOptions()
    so.graph_optimization_level = OFFLINE_LEVELS[level]
    so.optimized_model_filepath = str(dst)
    so.log_severity_level = 3
    try:
        ort.InferenceSession(str(src), so, providers=["CPUExecutionProvider"])
    except Exception as e:
        raise OptimizeError(f"ONNX Runtime could not optimize {src.name}: {first_line(e)}") from None


def optimized_graph(src: Path, dst: Path, level: str = "basic") -> tuple[dict[str, int], onnx.ModelProto]:
    """onnxslim then ORT offline optimization of `src` into `dst`: (op counts before, the result)."""
    model = onnx.load(str(src))
    before = op_counts(model)  # now: onnxslim edits the graph it is given
    with tempfile.TemporaryDirectory(prefix="zoodeploy-fuse-") as tmp:
        slimmed = Path(tmp) / "slim.onnx"
        onnx.save(slim(model), str(slimmed))
        del model
        ort_offline(slimmed, dst, level)
    return before, onnx.load(str(dst))


def compare_with(reference: Path, candidate: Path, x: np.ndarray, what: str,
                 tol: Tolerance | None = None) -> dict:
    """Logits of `candidate` vs `reference` on real images; raise one error listing every failure."""
    outs = []
    for path in (reference, candidate):
        session = create_session(path, RunOptions(threads=1))
        name = session.get_inputs()[0].name
        outs.append(np.concatenate([session.run(None, {name: x[i:i + 32]})[0] for i in range(0, len(x), 32)]))
    comparison = compare_logits(outs[1], outs[0], batch=32)
    if tol is None:
        from dataclasses import asdict
        return {"reference": reference.name, "comparison": asdict(comparison)}
    return {"reference": reference.name, **check([comparison], tol, what)}


def fuse(artifact: str | Path, level: str = "basic", samples: np.ndarray | None = None,
         evaluate: bool = True) -> Variant:
    """Make ARTIFACT/fused.onnx, check it against fp32 on `samples`, record op counts and accuracy.

    `basic` (the default) folds BatchNorm and constants and drops dead nodes, keeping standard
    ONNX ops that every runtime takes; `extended` adds ORT-only fusions (com.microsoft
    FusedConv & co) that an ORT session would otherwise derive at load time anyway.
    """
    card = load_card(artifact)
    fp32 = variant_path(artifact, card.variant("fp32"))
    samples = validation_samples(card, 16) if samples is None else samples
    figures: dict = {}

    def write(out: Path) -> None:
        before, after = optimized_graph(fp32, out, level)
        figures["op_counts_before"], figures["op_counts_after"] = before, op_counts(after)
        figures["nodes_before"], figures["nodes_after"] = sum(before.values()), len(after.graph.node)
        figures["batchnorm_left"] = figures["op_counts_after"].get("BatchNormalization", 0)
        save_onnx(after, out, artifact, FUSED)
        figures.update(compare_with(fp32, out, samples, f"{card.name} fused ONNX", Tolerance()))

    return record_model(artifact, FUSED, write, precision="fp32", validation=figures, evaluate=evaluate,
                        stamped=True,
                        made_by=f"onnxslim + ONNX Runtime offline optimization (ORT_ENABLE_{level.upper()}) "
                                "of fp32.onnx",
                        recipe={"onnxslim": True, "ort_level": f"ORT_ENABLE_{level.upper()}",
                                "onnxruntime": ort.__version__})
