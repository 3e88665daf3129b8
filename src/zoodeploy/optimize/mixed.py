"""`int8-mixed`: int8 where int8 kernels win, float where they lose, chosen by op kind.

Measured on an AMX Xeon (issue 35): int8 loses to bf16 on depthwise convolutions and on the
squeeze-and-excitation and SiLU blocks of EfficientNet (efficientnet_b0: 12.4 ms int8 vs 7.2 ms
bf16 on ONNX Runtime and OpenVINO alike), and wins on dense convolutions. A depthwise conv does
k*k MACs per output, too few to repay the quantize/dequantize around it; an SE block's tensors are
1x1 spatially, all overhead. So the variant quantizes everything else and keeps those in float:
on ONNX Runtime they run in fp32, on OpenVINO with `mixed-bf16` in bf16 where the CPU has BF16.
Which variant is fastest on this machine is still measured, never assumed: selection compares it
with `int8`, `bf16` and the rest, and its accuracy is held to the same fp32 budget.
"""

from __future__ import annotations

from dataclasses import replace

import onnx

from zoodeploy.artifact import Artifact
from zoodeploy.card import Variant
from zoodeploy.errors import OptimizeError
from zoodeploy.optimize.passes import PassContext

GATES = ("Sigmoid", "HardSigmoid")  # an SE block's gate, and SiLU's / HardSwish's half


def _attr(node: onnx.NodeProto, name: str, default: int) -> int:
    return next((onnx.helper.get_attribute_value(a) for a in node.attribute if a.name == name), default)


def depthwise_convs(model: onnx.ModelProto) -> list[str]:
    """Conv nodes with one input channel per group (group > 1, weight shape [C, 1, kh, kw])."""
    shapes = {i.name: list(i.dims) for i in model.graph.initializer}
    return [n.name for n in model.graph.node if n.op_type == "Conv" and _attr(n, "group", 1) > 1
            and len(shapes.get(n.input[1], [])) == 4 and shapes[n.input[1]][1] == 1]


def gated_blocks(model: onnx.ModelProto) -> list[str]:
    """The nodes of squeeze-and-excitation blocks (GlobalAveragePool, 1x1 convs, Sigmoid -> Mul)
    and of SiLU-like gates (x * Sigmoid(x)): each Mul fed by a gate, with the path back from the
    gate to the pooling that starts an SE block, or the gate alone where no such path is found
    (a conv of kernel > 1 on the way back means the gate is not an SE block's)."""
    producer = {o: n for n in model.graph.node for o in n.output}
    shapes = {i.name: list(i.dims) for i in model.graph.initializer}

    def squeeze_path(gate: onnx.NodeProto) -> list[onnx.NodeProto]:
        path, node = [gate], gate
        while len(path) < 8 and node.input and (node := producer.get(node.input[0])) is not None:
            if node.op_type == "Conv" and shapes.get(node.input[1], [0, 0, 0])[2:] != [1, 1]:
                return []
            path.append(node)
            if node.op_type in ("GlobalAveragePool", "ReduceMean"):
                return path
        return []
    names = []
    for mul in (n for n in model.graph.node if n.op_type == "Mul"):
        for gate in (producer.get(i) for i in mul.input):
            if gate is not None and gate.op_type in GATES:
                names += [mul.name, *(n.name for n in squeeze_path(gate) or [gate])]
    return list(dict.fromkeys(names))


def slow_in_int8(model: onnx.ModelProto) -> list[str]:
    """The nodes int8 kernels run slower than float ones: depthwise convolutions and gated blocks."""
    return list(dict.fromkeys(depthwise_convs(model) + gated_blocks(model)))


def run_pass(artifact: Artifact, ctx: PassContext, name: str) -> Variant:
    """The `int8-mixed` pass: int8 but for `slow_in_int8`'s nodes, accuracy-controlled like `int8`."""
    from zoodeploy.optimize.accuracy_control import quantize_with_accuracy_control
    from zoodeploy.optimize.quantize import quantization_source, quantize
    art = Artifact.of(artifact)
    source, _ = quantization_source(art, art.card)
    slow = slow_in_int8(onnx.load(str(source), load_external_data=False))
    if not slow:
        raise OptimizeError(f"{art.card.name} has no depthwise convolution or SE/SiLU block: "
                            "int8-mixed would be int8 itself")
    cfg = replace(ctx.quant, nodes_to_exclude=tuple(dict.fromkeys([*ctx.quant.nodes_to_exclude, *slow])))
    if ctx.max_drop is None:
        return quantize(art, cfg, name)
    return quantize_with_accuracy_control(art, cfg, ctx.max_drop, name, ctx.threads)
