"""Fusion on tiny graphs built with onnx.helper: op counts after the pass, a portable saved file."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

from zoodeploy.onnx_graph import op_counts
from zoodeploy.optimize.fuse import optimized_graph
from zoodeploy.target import detect_isa


def conv_bn_relu(path, channels=32, size=16, seed=0):
    """input -> Conv -> BatchNormalization -> Relu -> Conv -> (dead Identity branch) -> output."""
    rng = np.random.default_rng(seed)
    init = [numpy_helper.from_array(a.astype(np.float32), n) for n, a in {
        "w1": rng.standard_normal((channels, 3, 3, 3)) * 0.2, "b1": rng.standard_normal(channels) * 0.1,
        "scale": rng.uniform(0.5, 1.5, channels), "bias": rng.standard_normal(channels) * 0.1,
        "mean": rng.standard_normal(channels) * 0.1, "var": rng.uniform(0.5, 1.5, channels),
        "w2": rng.standard_normal((channels, channels, 3, 3)) * 0.05}.items()]
    nodes = [helper.make_node("Conv", ["x", "w1", "b1"], ["c1"], pads=[1, 1, 1, 1], name="conv1"),
             helper.make_node("BatchNormalization", ["c1", "scale", "bias", "mean", "var"], ["bn"], name="bn"),
             helper.make_node("Relu", ["bn"], ["r"], name="relu"),
             helper.make_node("Conv", ["r", "w2"], ["y"], pads=[1, 1, 1, 1], name="conv2"),
             helper.make_node("Identity", ["r"], ["unused"], name="dead")]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, size, size])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", channels, size, size])], init)
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    return path


def run(path, x):
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]


def test_batchnorm_and_dead_nodes_are_gone_and_outputs_agree(tmp_path):
    src = conv_bn_relu(tmp_path / "m.onnx")
    before, after = optimized_graph(src, tmp_path / "fused.onnx")
    assert before == {"BatchNormalization": 1, "Conv": 2, "Identity": 1, "Relu": 1}
    counts = op_counts(after)
    assert "BatchNormalization" not in counts and "Identity" not in counts
    assert all(n.domain in ("", "ai.onnx") for n in after.graph.node)  # standard ops: any runtime
    assert sum(counts.values()) < sum(before.values())
    x = np.random.default_rng(1).standard_normal((2, 3, 16, 16)).astype(np.float32)
    np.testing.assert_allclose(run(tmp_path / "fused.onnx", x), run(src, x), rtol=1e-4, atol=1e-5)


def test_saved_file_has_no_cpu_specific_layout(tmp_path):
    """ORT_ENABLE_ALL would save NCHWc ops tied to this CPU's vector width; the pass must not."""
    src = conv_bn_relu(tmp_path / "m.onnx")
    _, after = optimized_graph(src, tmp_path / "fused.onnx", level="extended")
    assert not any(n.domain == "com.microsoft.nchwc" for n in after.graph.node)
    so = ort.SessionOptions()  # the same model at ORT_ENABLE_ALL, to show the check can fail
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    so.optimized_model_filepath = str(tmp_path / "all.onnx")
    ort.InferenceSession(str(src), so, providers=["CPUExecutionProvider"])
    all_level = onnx.load(str(tmp_path / "all.onnx"))
    if detect_isa().avx2:  # NCHWc kernels exist for AVX2 / AVX-512: there ALL really adds them
        assert any(n.domain == "com.microsoft.nchwc" for n in all_level.graph.node)


def test_batchnorm_that_follows_no_conv_becomes_mul_add(tmp_path):
    """DenseNet-style pre-activation: Concat -> BatchNormalization -> Relu -> Conv."""
    rng = np.random.default_rng(2)
    c = 8
    init = [numpy_helper.from_array(a.astype(np.float32), n) for n, a in {
        "scale": rng.uniform(0.5, 1.5, c), "bias": rng.standard_normal(c), "mean": rng.standard_normal(c),
        "var": rng.uniform(0.5, 1.5, c), "w": rng.standard_normal((4, c, 1, 1))}.items()]
    nodes = [helper.make_node("Concat", ["x", "x"], ["cat"], axis=1, name="cat"),
             helper.make_node("BatchNormalization", ["cat", "scale", "bias", "mean", "var"], ["bn"], name="bn"),
             helper.make_node("Relu", ["bn"], ["r"], name="relu"),
             helper.make_node("Conv", ["r", "w"], ["y"], name="conv")]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", c // 2, 5, 5])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 4, 5, 5])], init)
    src = tmp_path / "pre.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(src))
    _, after = optimized_graph(src, tmp_path / "fused.onnx")
    counts = op_counts(after)
    assert "BatchNormalization" not in counts and counts["Mul"] == 1 and counts["Add"] == 1
    x = rng.standard_normal((3, c // 2, 5, 5)).astype(np.float32)
    np.testing.assert_allclose(run(tmp_path / "fused.onnx", x), run(src, x), rtol=1e-4, atol=1e-5)
