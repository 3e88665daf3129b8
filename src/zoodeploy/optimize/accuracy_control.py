"""Quantization with accuracy control, as NNCF's quantize_with_accuracy_control, for ONNX Runtime.

Quantize; measure the top-1 drop on the *validation* split (never the test split: that would
tune on the evaluation data); while it is over budget, keep the nodes whose quantization
hurts the output most in float and measure again.

Ranking runs the real INT8 kernels. A fake-quantized graph (DequantizeLinear -> float op,
what qdq_loss_debug compares) cannot show the int16 saturation of x86 kernels without VNNI,
the main cause of lost accuracy there: measured on MobileNetV2 with S8S8, the worst layers'
SQNR is ~20 dB lower with the real kernels than in the fake-quantized graph. So each node is
ranked by how much closer the optimized INT8 model's logits come to fp32's when that node
alone is kept in float (NNCF's ranking, on calibration images).

The search grows the kept-in-float set geometrically (1, 2, 4, ... worst nodes), then
bisects down to the smallest prefix of the ranking that meets the budget: O(log n)
re-quantizations, each cheap because calibration ranges are cached. The candidates are written
in a staging folder inside the artifact directory, so the chosen one is renamed into place.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort

from zoodeploy.artifact import REFERENCE, Artifact
from zoodeploy.card import Precision, Variant
from zoodeploy.errors import OptimizeError
from zoodeploy.fileio import staging_dir
from zoodeploy.evaluate.accuracy import drop_measure, run_batched, top1_score
from zoodeploy.optimize.data import validation_arrays
from zoodeploy.optimize.passes import PassContext
from zoodeploy.optimize.quantize import (QuantConfig, Quantizer, keep_in_float, open_quantizer, quantize,
                                        record_target_isa)
from zoodeploy.optimize.record import record_model
from zoodeploy.progress import bar as progress_bar
from zoodeploy.recipes import AccuracyControl, ControlStep, RankedNode
from zoodeploy.runtime import RunOptions
from zoodeploy.runtime.ort import OrtRunner

RANKING_SAMPLES = 32  # calibration (training) images the ranking is measured on
MAX_FLOAT_FRACTION = 0.5  # beyond this share of nodes in float, INT8 no longer pays off


def logits_of(path: Path, x: np.ndarray, threads: int | None) -> np.ndarray:
    with OrtRunner(path, path.stem, RunOptions(threads=threads)) as runner:
        return run_batched(runner, x)


# --- ranking: what keeping each node in float buys, with the real INT8 kernels ---------------

def _session(model: onnx.ModelProto, threads: int | None) -> ort.InferenceSession:
    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL  # fuse into QLinear* kernels
    so.intra_op_num_threads = threads or 0
    so.log_severity_level = 3
    return ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])


def _output(model: onnx.ModelProto, x: np.ndarray, input_name: str, threads: int | None) -> np.ndarray:
    return _session(model, threads).run(None, {input_name: x})[0]


def _sqnr(reference: np.ndarray, candidate: np.ndarray) -> float:
    """Signal-to-quantization-noise ratio in dB (qdq_loss_debug's measure)."""
    from onnxruntime.quantization.qdq_loss_debug import compute_signal_to_quantization_noice_ratio
    return float(compute_signal_to_quantization_noice_ratio(reference, candidate))


def quantized_nodes(qdq: onnx.ModelProto, float_names: set[str]) -> list[onnx.NodeProto]:
    """Nodes of the QDQ model that take a dequantized input and exist in the float model."""
    dq_outputs = {n.output[0] for n in qdq.graph.node if n.op_type == "DequantizeLinear"}
    return [n for n in qdq.graph.node if n.name in float_names and n.op_type not in ("QuantizeLinear", "DequantizeLinear")
            and any(i in dq_outputs for i in n.input)]


def rank_nodes(prepared: Path, qdq_path: Path, x: np.ndarray, input_name: str, threads: int | None = None,
               progress: bool = False) -> list[RankedNode]:
    """Quantized nodes, most harmful first: how much closer (in output SQNR, dB) the quantized
    model's logits come to the float model's when that one node alone runs in float.

    As NNCF ranks quantizer groups by reverting each one; here the revert is a graph edit (the
    node takes its float inputs and weights back) and both models run in optimized ORT
    sessions, so the INT8 kernels' own behaviour (e.g. int16 saturation without VNNI), which
    a fake-quantized graph does not show, is in the measurement.
    """
    float_model = onnx.load(str(prepared))
    reference = _output(float_model, x, input_name, threads)
    qdq = onnx.load(str(qdq_path))
    base = _sqnr(reference, _output(qdq, x, input_name, threads))
    ranking = []
    for node in progress_bar(quantized_nodes(qdq, {n.name for n in float_model.graph.node}), desc="rank nodes",
                     unit="node", disable=not progress, leave=False):
        candidate = onnx.ModelProto()
        candidate.CopyFrom(qdq)
        keep_in_float(candidate, float_model, {node.name})  # what re-quantizing with it excluded gives
        try:
            sqnr = _sqnr(reference, _output(candidate, x, input_name, threads))
        except Exception:  # noqa: BLE001 - a node ORT cannot run this way is simply not ranked
            continue
        ranking.append(RankedNode(node=node.name, op=node.op_type, output_sqnr_db=round(sqnr, 3),
                                  gain_db=round(sqnr - base, 3)))
    return sorted(ranking, key=lambda r: -r.gain_db)


# --- the search ------------------------------------------------------------------------------

class _Search:
    """Re-quantize with the k worst nodes in float and measure the validation drop."""

    def __init__(self, quantizer: Quantizer, base: list[str], x: np.ndarray, y: np.ndarray,
                 ref_logits: np.ndarray, threads: int | None, workdir: Path):
        self.quantizer, self.base = quantizer, base
        self.x, self.y, self.ref, self.threads = x, y, ref_logits, threads
        self.ref_top1 = top1_score(ref_logits, y, ref_logits)
        self.workdir = workdir
        self.order: list[str] = []
        self.tried: dict[int, ControlStep] = {}

    def excluded(self, k: int) -> list[str]:
        return self.base + self.order[:k]

    def path(self, k: int) -> Path:
        return self.workdir / f"candidate-{k}.onnx"

    def drop(self, k: int) -> ControlStep:
        if k not in self.tried:
            self.quantizer.write(self.path(k), self.excluded(k))
            top1 = top1_score(logits_of(self.path(k), self.x, self.threads), self.y, self.ref)
            self.tried[k] = ControlStep(kept_in_float=k, val_top1=top1, val_drop_pt=self.ref_top1 - top1)
        return self.tried[k]


def _search(s: _Search, budget: float, limit: int) -> tuple[int, str]:
    """Smallest k (nodes from the ranking kept in float) meeting the budget, and why it stopped."""
    lo, hi = 0, None
    k = 1
    while hi is None:
        if k > limit:
            return min(s.tried, key=lambda i: (s.tried[i].val_drop_pt, i)), (
                f"budget not met with up to {limit} nodes in float ({MAX_FLOAT_FRACTION:.0%} of "
                "the quantized nodes): beyond that INT8 stops paying off")
        if s.drop(k).val_drop_pt <= budget:
            hi = k
        else:
            lo, k = k, min(2 * k, limit) if k < limit else k + 1
    while hi - lo > 1:  # the smallest prefix of the ranking that meets the budget
        mid = (lo + hi) // 2
        lo, hi = (lo, mid) if s.drop(mid).val_drop_pt <= budget else (mid, hi)
    return hi, f"budget met with {hi} node(s) in float"


def control(quantizer: Quantizer, x_val: np.ndarray, y_val: np.ndarray, fp32: Path, max_drop: float,
            workdir: Path, threads: int | None = None, progress: bool = False) -> tuple[AccuracyControl, Path]:
    """Find the nodes to keep in float so that the validation top-1 drop (the agreement drop,
    without labels) is within `max_drop`; returns the report and the chosen quantized model."""
    base = list(quantizer.cfg.nodes_to_exclude)
    s = _Search(quantizer, base, x_val, y_val, logits_of(fp32, x_val, threads), threads, workdir)
    report = AccuracyControl(max_drop_pt=max_drop, split="val", n=len(y_val), fp32_top1=s.ref_top1, candidates=0,
                           measure=drop_measure(y_val))
    if s.drop(0).val_drop_pt <= max_drop:
        k, report.stopped = 0, "plain quantization is within budget"
    else:
        ranking = rank_nodes(quantizer.prepared, s.path(0), quantizer.calib[:RANKING_SAMPLES],
                             quantizer.input_name, threads, progress)
        s.order = [r.node for r in ranking if r.node not in base]
        report.candidates, report.ranking = len(s.order), ranking
        if not s.order:
            raise OptimizeError("accuracy control found no quantized node it could rank; "
                                "pass --max-drop none or another --scheme")
        k, report.stopped = _search(s, max_drop, max(1, int(len(s.order) * MAX_FLOAT_FRACTION)))
    report.steps = [s.tried[i] for i in sorted(s.tried)]
    report.nodes_kept_in_float = s.excluded(k)
    report.val_drop_pt = s.tried[k].val_drop_pt
    report.met = report.val_drop_pt <= max_drop
    return report, s.path(k)


def quantize_with_accuracy_control(artifact: Artifact | str | Path, cfg: QuantConfig | None = None,
                                   max_drop: float = 0.5, variant_name: str = "int8",
                                   threads: int | None = None) -> Variant:
    """Quantize, keeping in float the fewest worst nodes that hold the top-1 drop within
    `max_drop` points on the validation split; record the variant and the search in the card."""
    cfg = cfg or QuantConfig()
    if max_drop < 0:
        raise OptimizeError(f"--max-drop must be >= 0 percentage points, got {max_drop}")
    art = Artifact.of(artifact)
    x_val, y_val = validation_arrays(art)
    quantizer, desc = open_quantizer(art, art.card, cfg, variant_name)
    fp32 = art.file(REFERENCE)
    # the candidates beside the artifact's files (one file system): the chosen one is renamed into place
    with quantizer, staging_dir(".zoodeploy-control", parent=art.path) as tmp:
        report, chosen = control(quantizer, x_val, y_val, fp32, max_drop, Path(tmp), threads, cfg.progress)
        kept = report.nodes_kept_in_float
        notes = [] if report.met else [
            f"accuracy budget not met: validation drop {report.val_drop_pt:.2f} pt > {max_drop:g} pt "
            f"({report.stopped}); try another --scheme or a larger --max-drop"]
        variant = record_model(
            art, variant_name, lambda out: os.replace(chosen, out), stamped=quantizer.stamped,
            precision=Precision.mixed if kept else Precision.int8, made_by=quantizer.made_by(desc) + (
                f", {len(kept)} node(s) kept in float by accuracy control" if kept else ""),
            recipe=quantizer.recipe(desc, max_drop_pt=max_drop, nodes_to_exclude=kept, control=report),
            notes=notes)
    record_target_isa(art, cfg)
    return variant


def run_pass(artifact: Artifact, ctx: PassContext, name: str) -> Variant:
    """The `int8` pass: static QDQ, with accuracy control unless the budget is None."""
    if ctx.max_drop is None:
        return quantize(artifact, ctx.quant, name)
    return quantize_with_accuracy_control(artifact, ctx.quant, ctx.max_drop, name, ctx.threads)
