"""Quantization with accuracy control, as NNCF's quantize_with_accuracy_control, for ONNX Runtime.

Quantize; measure the top-1 drop on the *validation* split (never the test split: that would
tune on the evaluation data); while it is over budget, keep the nodes with the worst
quantization error in float and measure again.

Ranking uses the real INT8 kernels. ORT's qdq_loss_debug compares activations of the
fake-quantized graph (DequantizeLinear -> float op), which cannot show the int16
saturation of x86 kernels without VNNI, the main cause of lost accuracy there. So the float
model's activations are collected with qdq_loss_debug, and each quantized node is then run
alone, as the optimized session runs it (QLinearConv & co), on exactly those inputs; its
output's signal-to-quantization-noise ratio against the float output ranks it.

The search grows the kept-in-float set geometrically (1, 2, 4, ... worst nodes), then
bisects down to the smallest prefix of the ranking that meets the budget: O(log n)
re-quantizations, each cheap because calibration ranges are cached.
"""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
from tqdm.auto import tqdm

from zoodeploy.card import Variant, load_card
from zoodeploy.errors import OptimizeError
from zoodeploy.evaluate.accuracy import topk_accuracy
from zoodeploy.optimize.data import validation_arrays
from zoodeploy.optimize.quantize import QuantConfig, Quantizer, open_quantizer, quiet_ort_quantization
from zoodeploy.optimize.record import record_model
from zoodeploy.runtime import RunOptions
from zoodeploy.runtime.ort import create_session

RANKING_SAMPLES = 16  # calibration (training) images the per-node errors are measured on
MAX_FLOAT_FRACTION = 0.5  # beyond this share of nodes in float, INT8 no longer pays off


@dataclass
class Step:
    kept_in_float: int
    val_top1: float
    val_drop_pt: float


@dataclass
class ControlReport:
    """What the search did, for the card."""

    max_drop_pt: float
    split: str
    n: int
    fp32_top1: float
    candidates: int
    steps: list[Step] = field(default_factory=list)
    ranking: list[dict] = field(default_factory=list)  # worst first: node, sqnr_db
    nodes_kept_in_float: list[str] = field(default_factory=list)
    val_drop_pt: float = 0.0
    met: bool = False
    stopped: str = ""

    def to_dict(self) -> dict:
        return asdict(self)


def logits_of(path: Path, x: np.ndarray, threads: int | None, batch: int = 64) -> np.ndarray:
    session = create_session(path, RunOptions(threads=threads))
    name = session.get_inputs()[0].name
    return np.concatenate([session.run(None, {name: x[i:i + batch]})[0] for i in range(0, len(x), batch)])


# --- ranking: per-node error with the real INT8 kernels -------------------------------------

def float_activations(prepared: Path, x: np.ndarray, input_name: str) -> dict[str, np.ndarray]:
    """Every float tensor of the (pre-processed) float model on `x`, in its real shape."""
    from onnxruntime.quantization.qdq_loss_debug import collect_activations, modify_model_output_intermediate_tensors
    with tempfile.TemporaryDirectory(prefix="zoodeploy-acts-") as tmp:
        augmented = Path(tmp) / "augmented.onnx"
        with quiet_ort_quantization():
            modify_model_output_intermediate_tensors(str(prepared), str(augmented))
            flat = collect_activations(str(augmented), [{input_name: x}])
    shapes = _static_shapes(onnx.load(str(prepared), load_external_data=False), len(x))
    acts = {input_name: x}
    for name, arrays in flat.items():  # qdq_loss_debug flattens; restore the shapes
        if name in shapes and arrays[0].size == int(np.prod(shapes[name])):
            acts[name] = arrays[0].reshape(shapes[name])
    return acts


def _static_shapes(model: onnx.ModelProto, batch: int) -> dict[str, tuple[int, ...]]:
    out = {}
    for vi in [*model.graph.value_info, *model.graph.output, *model.graph.input]:
        dims = vi.type.tensor_type.shape.dim
        if dims and all(d.HasField("dim_value") for d in dims[1:]):
            out[vi.name] = (batch, *(d.dim_value for d in dims[1:]))
    return out


def _producers(graph: onnx.GraphProto) -> dict[str, onnx.NodeProto]:
    return {o: n for n in graph.node for o in n.output}


def _consumers(graph: onnx.GraphProto) -> dict[str, list[onnx.NodeProto]]:
    out: dict[str, list[onnx.NodeProto]] = {}
    for n in graph.node:
        for i in n.input:
            out.setdefault(i, []).append(n)
    return out


def quantized_nodes(qdq: onnx.ModelProto) -> list[tuple[onnx.NodeProto, list[str], str]]:
    """(node, float inputs feeding its QuantizeLinear nodes, its dequantized output) per node
    whose activations are quantized."""
    g = qdq.graph
    producers, consumers = _producers(g), _consumers(g)
    initializers = {i.name for i in g.initializer}
    out = []
    for node in g.node:
        if node.op_type in ("QuantizeLinear", "DequantizeLinear") or not node.output:
            continue
        inputs, quantized = [], False
        for name in node.input:
            dq = producers.get(name)
            q = producers.get(dq.input[0]) if dq is not None and dq.op_type == "DequantizeLinear" else None
            if q is not None and q.op_type == "QuantizeLinear":
                inputs.append(q.input[0])  # the float tensor before its Q/DQ pair
                quantized = True
            elif name and name not in initializers and not (dq is not None and dq.op_type == "DequantizeLinear"):
                inputs.append(name)
        if not quantized:
            continue
        y = node.output[0]
        q_out = [c for c in consumers.get(y, []) if c.op_type == "QuantizeLinear"]
        dq_out = [c for c in consumers.get(q_out[0].output[0], []) if c.op_type == "DequantizeLinear"] if q_out else []
        out.append((node, sorted(set(inputs)), dq_out[0].output[0] if dq_out else y))
    return out


def node_model(qdq: onnx.ModelProto, producers: dict[str, onnx.NodeProto], inputs: list[str],
               output: str) -> onnx.ModelProto:
    """The part of `qdq` between the float `inputs` and `output`: one node with its Q/DQ pairs."""
    initializers = {i.name: i for i in qdq.graph.initializer}
    nodes, seen, todo = [], set(), [output]
    while todo:
        name = todo.pop()
        node = producers.get(name)
        if name in inputs or name in initializers or node is None or node.name in seen:
            continue
        seen.add(node.name)
        nodes.append(node)
        todo.extend(i for i in node.input if i)
    used = {i for n in nodes for i in n.input}
    graph = onnx.helper.make_graph(
        list(reversed(nodes)), "node", [onnx.helper.make_tensor_value_info(i, onnx.TensorProto.FLOAT, None)
                                        for i in inputs],
        [onnx.helper.make_tensor_value_info(output, onnx.TensorProto.FLOAT, None)],
        [initializers[i] for i in sorted(used) if i in initializers])
    return onnx.helper.make_model(graph, opset_imports=qdq.opset_import, ir_version=qdq.ir_version)


def _sqnr(reference: np.ndarray, candidate: np.ndarray) -> float:
    from onnxruntime.quantization.qdq_loss_debug import compute_signal_to_quantization_noice_ratio
    return float(compute_signal_to_quantization_noice_ratio(reference, candidate))


def rank_nodes(prepared: Path, qdq_path: Path, x: np.ndarray, input_name: str,
               progress: bool = False) -> list[dict]:
    """Quantized nodes, worst first, by the SQNR (dB) of each node run alone with INT8 kernels."""
    acts = float_activations(prepared, x, input_name)
    qdq = onnx.load(str(qdq_path))
    producers = _producers(qdq.graph)
    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL  # fuse into QLinear* kernels
    so.intra_op_num_threads = 1
    so.log_severity_level = 3
    ranking = []
    nodes = quantized_nodes(qdq)
    for node, inputs, output in tqdm(nodes, desc="rank nodes", unit="node", disable=not progress, leave=False):
        reference = acts.get(node.output[0])
        if reference is None or any(i not in acts for i in inputs):
            continue  # a tensor whose shape is not static: cannot be run alone, keep it quantized
        try:
            sub = node_model(qdq, producers, inputs, output)
            session = ort.InferenceSession(sub.SerializeToString(), so, providers=["CPUExecutionProvider"])
            got = session.run(None, {i: acts[i] for i in inputs})[0]
        except Exception:  # noqa: BLE001 - a node ORT cannot run alone is simply not ranked
            continue
        ranking.append({"node": node.name, "op": node.op_type, "sqnr_db": round(_sqnr(reference, got), 3)})
    return sorted(ranking, key=lambda r: r["sqnr_db"])


# --- the search ------------------------------------------------------------------------------

class _Search:
    """Re-quantize with the k worst nodes in float and measure the validation drop."""

    def __init__(self, quantizer: Quantizer, base: list[str], x: np.ndarray, y: np.ndarray,
                 ref_top1: float, threads: int | None, workdir: Path):
        self.quantizer, self.base = quantizer, base
        self.x, self.y, self.ref_top1, self.threads = x, y, ref_top1, threads
        self.workdir = workdir
        self.order: list[str] = []
        self.tried: dict[int, Step] = {}

    def excluded(self, k: int) -> list[str]:
        return self.base + self.order[:k]

    def path(self, k: int) -> Path:
        return self.workdir / f"candidate-{k}.onnx"

    def drop(self, k: int) -> Step:
        if k not in self.tried:
            self.quantizer.write(self.path(k), self.excluded(k))
            top1 = topk_accuracy(logits_of(self.path(k), self.x, self.threads), self.y, 1)
            self.tried[k] = Step(kept_in_float=k, val_top1=top1, val_drop_pt=self.ref_top1 - top1)
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
            workdir: Path, threads: int | None = None, progress: bool = False) -> tuple[ControlReport, Path]:
    """Find the nodes to keep in float so that the validation top-1 drop is within `max_drop`;
    returns the report and the chosen quantized model (a file in `workdir`)."""
    ref_top1 = topk_accuracy(logits_of(fp32, x_val, threads), y_val, 1)
    base = list(quantizer.cfg.nodes_to_exclude)
    s = _Search(quantizer, base, x_val, y_val, ref_top1, threads, workdir)
    report = ControlReport(max_drop_pt=max_drop, split="val", n=len(y_val), fp32_top1=ref_top1, candidates=0)
    if s.drop(0).val_drop_pt <= max_drop:
        k, report.stopped = 0, "plain quantization is within budget"
    else:
        ranking = rank_nodes(quantizer.prepared, s.path(0), quantizer.calib[:RANKING_SAMPLES],
                             quantizer.input_name, progress)
        s.order = [r["node"] for r in ranking if r["node"] not in base]
        report.candidates, report.ranking = len(s.order), ranking[:20]
        if not s.order:
            raise OptimizeError("accuracy control found no quantized node it could rank; "
                                "pass --max-drop none or another --scheme")
        k, report.stopped = _search(s, max_drop, max(1, int(len(s.order) * MAX_FLOAT_FRACTION)))
    report.steps = [s.tried[i] for i in sorted(s.tried)]
    report.nodes_kept_in_float = s.excluded(k)
    report.val_drop_pt = s.tried[k].val_drop_pt
    report.met = report.val_drop_pt <= max_drop
    return report, s.path(k)


def quantize_with_accuracy_control(artifact: str | Path, cfg: QuantConfig | None = None,
                                   max_drop: float = 0.5, variant_name: str = "int8",
                                   threads: int | None = None, evaluate: bool = True) -> Variant:
    """Quantize, keeping in float the fewest worst nodes that hold the top-1 drop within
    `max_drop` points on the validation split; record the variant and the search in the card."""
    cfg = cfg or QuantConfig()
    if max_drop < 0:
        raise OptimizeError(f"--max-drop must be >= 0 percentage points, got {max_drop}")
    card = load_card(artifact)
    x_val, y_val = validation_arrays(card)
    quantizer, desc = open_quantizer(artifact, card, cfg)
    fp32 = Path(artifact) / card.variant("fp32").file
    with quantizer, tempfile.TemporaryDirectory(prefix="zoodeploy-control-") as tmp:
        report, chosen = control(quantizer, x_val, y_val, fp32, max_drop, Path(tmp), threads, cfg.progress)
        kept = report.nodes_kept_in_float
        notes = [] if report.met else [
            f"accuracy budget not met: validation drop {report.val_drop_pt:.2f} pt > {max_drop:g} pt "
            f"({report.stopped}); try another --scheme or a larger --max-drop"]
        return record_model(
            artifact, variant_name, lambda out: shutil.copyfile(chosen, out),
            precision="mixed" if kept else "int8", made_by=quantizer.made_by(desc) + (
                f", {len(kept)} node(s) kept in float by accuracy control" if kept else ""),
            recipe={**quantizer.recipe(), "calib_data": desc, "max_drop_pt": max_drop,
                    "nodes_to_exclude": kept},
            validation={"accuracy_control": report.to_dict()}, notes=notes, evaluate=evaluate)
