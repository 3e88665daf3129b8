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


class _Watched:
    """A real OpenVINO infer request that logs what is asked of it: (what, request, images, requests in
    flight then); `stuck`: it never finishes."""

    def __init__(self, request, i: int, log: list, flight: list[int], stuck: bool = False):
        self.request, self.i, self.log, self.flight, self.stuck = request, i, log, flight, stuck

    def infer(self, feed):
        self.log.append(("infer", self.i, feed[0].shape[0], self.flight[0]))
        return self.request.infer(feed)

    def start_async(self, feed):
        self.flight[0] += 1
        self.log.append(("start", self.i, feed[0].shape[0], self.flight[0]))
        return self.request.start_async(feed)

    def wait_for(self, ms):
        if self.stuck:
            return False
        done = self.request.wait_for(ms)
        if done:
            self.flight[0] -= 1
            self.log.append(("done", self.i, None, self.flight[0]))
        return done

    def cancel(self):
        self.log.append(("cancel", self.i, None, self.flight[0]))
        return self.request.cancel()

    def get_output_tensor(self, i):
        return self.request.get_output_tensor(i)


def test_openvino_requests_meet_a_new_shape_one_at_a_time_and_a_stuck_one_is_an_error(tmp_path, monkeypatch):
    """Several requests specializing to a new input shape at once can deadlock OpenVINO's CPU plugin on
    few cores (what AsyncInferQueue does): a request's first run of a shape runs alone and finishes
    before the next starts; requests that know their shape run together; a request that never
    finishes is an error after `STUCK_S`, not a hang."""
    pytest.importorskip("openvino")
    import zoodeploy.runtime.openvino as ovr
    r = ovr.OpenVinoRunner(_doubler(tmp_path / "d.onnx"), "d", RunOptions(threads=2), hint="THROUGHPUT", streams=2)
    log: list = []
    flight = [0]
    r.requests = [_Watched(q, i, log, flight) for i, q in enumerate(r.requests)]
    try:
        for n in (5, 5, 4, 4):  # parts 3+2, 3+2, 2+2 (request 0 meets 2 for the first time), 2+2
            x = _images(n)
            assert np.allclose(r.run(x), 2 * x.reshape(n, -1))
        alone, together = ["start 0", "done 0", "start 1", "done 1"], ["start 0", "start 1", "done 0", "done 1"]
        assert [f"{e[0]} {e[1]}" for e in log] == alone + together + alone + together, log
        assert max(e[3] for e in log) == 2 and flight == [0] and not any(e[0] == "infer" for e in log)
        r.requests[1].stuck = True
        monkeypatch.setattr(ovr, "STUCK_S", 0.3)
        with pytest.raises(ArtifactError, match="still running after 0.3 s with 2 in flight"):
            r.run(_images(4))
        assert ("cancel", 1) in [e[:2] for e in log]
    finally:
        r.close()
