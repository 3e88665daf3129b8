"""Several requests in flight (`RunOptions.streams`): a batch cut into one part per request, every
part run at once, the logits back in order; ONNX Runtime as that many sessions with their share of the
threads, OpenVINO as streams under its THROUGHPUT hint. Tiny `onnx.helper` graphs: no model is trained."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from zoodeploy.errors import ArtifactError
from zoodeploy.runtime import RunOptions
from zoodeploy.runtime.base import split_batch
from zoodeploy.runtime.concurrent import ConcurrentRunner
from zoodeploy.runtime.ort import OrtRunner


def _doubler(path: Path, batch: int | str = "N") -> Path:
    """y = flatten(2 x): each image's output is its own, so a part returned out of order shows."""
    g = helper.make_graph([helper.make_node("Mul", ["x", "two"], ["m"]), helper.make_node("Flatten", ["m"], ["y"])],
                          "doubler", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [batch, 3, 4, 4])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [batch, 48])],
                          [numpy_helper.from_array(np.array(2, np.float32), "two")])
    onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    return path


def _images(n: int) -> np.ndarray:
    return np.random.default_rng(n).standard_normal((n, 3, 4, 4)).astype(np.float32)


def test_a_batch_is_cut_into_one_even_part_per_request_and_never_an_empty_one():
    x = _images(7)
    assert [len(p) for p in split_batch(x, 2)] == [4, 3]
    assert [len(p) for p in split_batch(x[:2], 4)] == [1, 1]  # fewer images than requests
    assert np.array_equal(np.concatenate(split_batch(x, 3)), x)
    with pytest.raises(ArtifactError, match="streams must be at least 1"):
        RunOptions(streams=0)


def test_concurrent_sessions_share_the_threads_and_return_logits_in_order(tmp_path):
    path = _doubler(tmp_path / "d.onnx")
    with ConcurrentRunner(lambda one: OrtRunner(path, "d", one), RunOptions(threads=4, streams=2)) as r:
        x = _images(9)
        assert np.allclose(r.run(x), 2 * x.reshape(9, -1)) and np.allclose(r.run(x[:1]), 2 * x[:1].reshape(1, -1))
        assert len(r.runners) == 2 and r.batch is None
        assert [s.settings["intra_op_threads"] for s in r.runners] == [2, 2]  # 4 threads in all, not 8
        assert r.settings["config"]["streams"] == "2"
    fixed = _doubler(tmp_path / "f.onnx", batch=2)
    with ConcurrentRunner(lambda one: OrtRunner(fixed, "f", one), RunOptions(threads=2, streams=2)) as r:
        assert r.batch == 4  # a fixed batch of 2 per session: 4 images per call
        assert np.allclose(r.run(_images(4)), 2 * _images(4).reshape(4, -1))


def test_openvino_streams_keep_requests_in_flight_and_return_logits_in_order(tmp_path):
    pytest.importorskip("openvino")
    from zoodeploy.runtime.openvino import OpenVinoRunner
    r = OpenVinoRunner(_doubler(tmp_path / "d.onnx"), "d", RunOptions(threads=2), hint="THROUGHPUT", streams=2)
    try:
        x = _images(5)
        assert np.allclose(r.run(x), 2 * x.reshape(5, -1))
        # the settings in effect, read back: OpenVINO runs no more streams than the cores it may use (the
        # suite pins each xdist worker to one core), while both requests stay in flight
        effect = r.settings["config"]
        assert effect["PERFORMANCE_HINT"] == "THROUGHPUT" and effect["NUM_STREAMS"] in ("1", "2"), effect
        assert f"2 requests in flight on {effect['NUM_STREAMS']} streams" in r.settings["mode"]
    finally:
        r.close()
