"""Quantization pieces: the calibration reader, where calibration data comes from, the schemes."""

from __future__ import annotations


import numpy as np
import onnx
import pytest
from onnx import numpy_helper
from onnxruntime.quantization import CalibrationDataReader

from zoodeploy.artifact import Artifact
from zoodeploy.card import load_card
from zoodeploy.errors import DataError, OptimizeError
from zoodeploy.optimize import OptimizeConfig
from zoodeploy.optimize.data import calibration_arrays
from zoodeploy.optimize.quantize import CalibrationReader, QuantConfig, Scheme, quantize


def test_reader_follows_ort_protocol_including_strided_ranges():
    x = np.arange(10 * 3 * 2 * 2, dtype=np.float32).reshape(10, 3, 2, 2)
    reader = CalibrationReader(x, "input", batch=4)
    assert isinstance(reader, CalibrationDataReader) and len(reader) == 3
    assert [b["input"].shape[0] for b in reader] == [4, 4, 2]
    assert reader.get_next() is None
    reader.set_range(1, 2)
    np.testing.assert_array_equal(reader.get_next()["input"], x[4:8])
    assert reader.get_next() is None


@pytest.mark.parametrize("kw, needle", [({"scheme": "s4s4"}, "--scheme"), ({"calibration": "kl"}, "--calibration"),
                                        ({"calib_size": 0}, "--calib-size")])
def test_bad_quant_config_is_one_clear_error(kw, needle):
    with pytest.raises(OptimizeError, match=needle):
        QuantConfig(**kw)


@pytest.mark.parametrize("kw, needle", [({"passes": ()}, "no pass named"),
                                        ({"max_drop": -1.0}, "--max-drop"), ({"threads": 0}, "--threads")])
def test_bad_optimize_config_is_one_clear_error(kw, needle):
    with pytest.raises(OptimizeError, match=needle):
        OptimizeConfig(**kw)


def _digests(x: np.ndarray) -> set[bytes]:
    return {a.tobytes() for a in x}


def test_calibration_uses_training_images_only(trained, digits):
    card = load_card(trained("lenet5"))
    calib, desc = calibration_arrays(card, None, 64)
    assert len(calib) == 64 and "train split" in desc
    prep = card.preprocessing
    assert _digests(calib) <= _digests(digits.train.arrays(prep))
    assert not _digests(calib) & _digests(digits.test.arrays(prep))
    assert not _digests(calib) & _digests(digits.val.arrays(prep))


def test_calibration_directory_without_images_is_a_clear_error(trained, tmp_path):
    card = load_card(trained("lenet5"))
    (tmp_path / "empty" / "sub").mkdir(parents=True)
    (tmp_path / "empty" / "notes.txt").write_text("no images here")
    with pytest.raises(DataError, match="has no images"):
        calibration_arrays(card, str(tmp_path / "empty"), 8)


def test_calibration_from_a_plain_folder_of_images(trained, tmp_path, digits):
    card = load_card(trained("lenet5"))
    for i in range(5):
        digits.train.image(i).save(tmp_path / f"{i}.png")
    calib, desc = calibration_arrays(card, str(tmp_path), 100)
    assert calib.shape == (5, 3, card.input_size, card.input_size) and "5 of 5 images" in desc


def test_tensorrt_scheme_is_symmetric_s8s8_per_channel_qdq(zoo_artifact):
    artifact = zoo_artifact("resnet18")
    v = quantize(artifact, QuantConfig(scheme=Scheme.tensorrt, calib_size=8), variant_name="int8-trt-qdq")
    assert v.name == "int8-trt-qdq" and v.file == "int8-trt-qdq.onnx" and v.recipe.scheme == "tensorrt"
    assert v.accuracy is None  # a pass makes and validates; the orchestrator measures accuracy
    model = onnx.load(str(Artifact(artifact).file(v)))
    inits = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
    q_nodes = [n for n in model.graph.node if n.op_type == "QuantizeLinear"]
    dq_weights = [n for n in model.graph.node if n.op_type == "DequantizeLinear" and n.input[0] in inits
                  and inits[n.input[0]].dtype == np.int8 and inits[n.input[0]].ndim == 4]
    assert q_nodes and dq_weights
    for q in q_nodes:  # activations: int8, zero point 0 (symmetric)
        zp = inits[q.input[2]]
        assert zp.dtype == np.int8 and not zp.any()
    for dq in dq_weights:  # conv weights: int8, one scale per output channel, zero points 0
        assert inits[dq.input[1]].shape == (inits[dq.input[0]].shape[0],)
        assert not inits[dq.input[2]].any()
    assert any(n.op_type == "Relu" for n in model.graph.node)  # kept explicit for TensorRT to fuse
    assert load_card(artifact).variants["int8-trt-qdq"].sha256 == v.sha256


def _concat_graph(path):
    """input -> two convs of very different output ranges -> Concat -> conv -> pool -> (N, 4)."""
    from onnx import TensorProto, helper
    rng = np.random.default_rng(0)
    w = {"wa": rng.standard_normal((4, 3, 3, 3)) * 0.1, "wb": rng.standard_normal((4, 3, 3, 3)) * 10,
         "wc": rng.standard_normal((4, 8, 1, 1))}
    nodes = [helper.make_node("Conv", ["input", "wa"], ["a"], name="conv_a", pads=[1, 1, 1, 1]),
             helper.make_node("Conv", ["input", "wb"], ["b"], name="conv_b", pads=[1, 1, 1, 1]),
             helper.make_node("Concat", ["a", "b"], ["ab"], name="concat", axis=1),
             helper.make_node("Conv", ["ab", "wc"], ["c"], name="conv_c"),
             helper.make_node("GlobalAveragePool", ["c"], ["p"], name="pool"),
             helper.make_node("Flatten", ["p"], ["logits"], name="flatten")]
    graph = helper.make_graph(nodes, "concat", [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", 3, 8, 8])],
                              [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", 4])],
                              [numpy_helper.from_array(v.astype(np.float32), k) for k, v in w.items()])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)]), str(path))


@pytest.mark.parametrize("optimized", [False, True])
def test_calibrated_once_and_concat_inputs_share_the_output_range(tmp_path, optimized):
    """One calibration (cached) serves every quantization; a Concat's inputs and output carry one
    scale and zero point, so the INT8 concat is a copy, although one branch is 100x wider."""
    from zoodeploy.optimize.quantize import Quantizer
    _concat_graph(tmp_path / "model.onnx")
    calib = np.random.default_rng(1).standard_normal((16, 3, 8, 8)).astype(np.float32)
    with Quantizer(tmp_path / "model.onnx", QuantConfig(scheme=Scheme.u8s8), calib, "input", optimized) as q:
        assert [sorted(g) for g in q.concat_groups] == [["a", "ab", "b"]]
        q.write(tmp_path / "int8.onnx")
        cached = q.cache.read_bytes()
        q.write(tmp_path / "int8-kept.onnx", ["conv_c"])  # accuracy control's re-quantization
        assert q.cache.read_bytes() == cached
    model = onnx.load(str(tmp_path / "int8.onnx"))
    inits = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
    made = {o: n for n in model.graph.node for o in n.output}
    concat = next(n for n in model.graph.node if n.op_type == "Concat")
    scales = {float(inits[made[t].input[1]]) for t in concat.input}  # the DequantizeLinear feeding each input
    readers = [n for n in model.graph.node if concat.output[0] in n.input]
    assert [n.op_type for n in readers] == ["QuantizeLinear"]
    scales.add(float(inits[readers[0].input[1]]))
    assert len(scales) == 1, scales
    assert {n.op_type for n in onnx.load(str(tmp_path / "int8-kept.onnx")).graph.node} >= {"QuantizeLinear", "Conv"}


def test_op_types_narrow_the_quantized_ops(tmp_path):
    """`Quantizer.op_types` (benchmarks/ort_int8_options.py's placements): Conv only leaves the
    pooling in float, where the default quantizes around it."""
    from zoodeploy.optimize.quantize import Quantizer
    _concat_graph(tmp_path / "model.onnx")
    calib = np.random.default_rng(1).standard_normal((16, 3, 8, 8)).astype(np.float32)
    readers = {}
    for op_types in (None, ("Conv",)):
        with Quantizer(tmp_path / "model.onnx", QuantConfig(scheme=Scheme.u8s8), calib, "input") as q:
            q.op_types = op_types
            q.write(tmp_path / "int8.onnx")
        graph = onnx.load(str(tmp_path / "int8.onnx")).graph
        pool_out = next(n for n in graph.node if n.op_type == "GlobalAveragePool").output[0]
        readers[op_types] = {n.op_type for n in graph.node if pool_out in n.input}
    assert readers == {None: {"QuantizeLinear"}, ("Conv",): {"Flatten"}}
