"""Which nodes `int8-mixed` keeps in float: depthwise convolutions and gated (SE, SiLU) blocks,
found on tiny onnx.helper graphs."""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from zoodeploy.optimize.mixed import depthwise_convs, gated_blocks, slow_in_int8


def _w(name: str, *shape: int) -> onnx.TensorProto:
    return numpy_helper.from_array(np.ones(shape, np.float32), name)


def _model(nodes, inits) -> onnx.ModelProto:
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 8, 4, 4])
    y = helper.make_tensor_value_info(nodes[-1].output[0], TensorProto.FLOAT, None)
    return helper.make_model(helper.make_graph(nodes, "g", [x], [y], inits))


def test_depthwise_is_one_input_channel_per_group():
    nodes = [helper.make_node("Conv", ["x", "w_dense"], ["a"], name="dense"),
             helper.make_node("Conv", ["a", "w_dw"], ["b"], name="dw", group=8),
             helper.make_node("Conv", ["b", "w_grouped"], ["c"], name="grouped", group=2)]  # ResNeXt: 4 per group
    m = _model(nodes, [_w("w_dense", 8, 8, 1, 1), _w("w_dw", 8, 1, 3, 3), _w("w_grouped", 8, 4, 3, 3)])
    assert depthwise_convs(m) == ["dw"]


def test_an_se_block_is_kept_whole_and_silu_by_its_gate():
    nodes = [helper.make_node("Conv", ["x", "w"], ["a"], name="conv"),
             helper.make_node("Sigmoid", ["a"], ["sa"], name="silu_gate"),
             helper.make_node("Mul", ["a", "sa"], ["s"], name="silu"),
             helper.make_node("GlobalAveragePool", ["s"], ["p"], name="squeeze"),
             helper.make_node("Conv", ["p", "w1"], ["r"], name="reduce"),
             helper.make_node("Relu", ["r"], ["rr"], name="act"),
             helper.make_node("Conv", ["rr", "w2"], ["e"], name="expand"),
             helper.make_node("Sigmoid", ["e"], ["g"], name="gate"),
             helper.make_node("Mul", ["s", "g"], ["out"], name="excite"),
             helper.make_node("Conv", ["out", "w3"], ["z"], name="project")]
    m = _model(nodes, [_w("w", 8, 8, 1, 1), _w("w1", 2, 8, 1, 1), _w("w2", 8, 2, 1, 1), _w("w3", 8, 8, 1, 1)])
    assert set(gated_blocks(m)) == {"silu_gate", "silu", "squeeze", "reduce", "act", "expand", "gate", "excite"}
    assert "conv" not in slow_in_int8(m) and "project" not in slow_in_int8(m)


def test_a_silu_after_a_spatial_conv_is_not_taken_for_an_se_block():
    nodes = [helper.make_node("GlobalAveragePool", ["x"], ["p"], name="pool"),
             helper.make_node("Conv", ["p", "w"], ["a"], name="conv3x3"),
             helper.make_node("Sigmoid", ["a"], ["sa"], name="silu_gate"),
             helper.make_node("Mul", ["a", "sa"], ["s"], name="silu")]
    m = _model(nodes, [_w("w", 8, 8, 3, 3)])
    assert gated_blocks(m) == ["silu", "silu_gate"]
