"""The Open Inference Protocol codec without a server: requests as tritonclient encodes them, answers
as tritonclient decodes them (the server tests in test_service.py run the same through HTTP)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from zoodeploy.serve import RequestError
from zoodeploy.serve.oip import HEADER_LENGTH, InferenceModel, encode_infer, parse_infer

th = pytest.importorskip("tritonclient.http")
from tritonclient.http._utils import _get_inference_request  # noqa: E402  (what InferenceServerClient.infer sends)

SPEC = InferenceModel("lenet5", "onnxruntime_onnx", "input", (3, 8, 8), "logits", tuple(f"c{i}" for i in range(5)))
X = np.arange(2 * 3 * 8 * 8, dtype=np.float32).reshape(2, 3, 8, 8) / 100
LOGITS = np.array([[0.5, 3.25, -1.0, 2.0, 0.0], [1.0, 0.0, 4.5, 4.5, -2.0]], np.float32)


def triton_request(x: np.ndarray, binary: bool, outputs=None) -> tuple[bytes, str | None]:
    inp = th.InferInput("input", list(x.shape), "FP32")
    inp.set_data_from_numpy(x, binary_data=binary)
    body, json_size = _get_inference_request([inp], "7", outputs, 0, False, False, 0, None, None)
    return body, None if json_size is None else str(json_size)


def round_trip(x: np.ndarray, binary: bool, outputs=None) -> th.InferResult:
    request = parse_infer(*triton_request(x, binary, outputs), SPEC, max_rows=8)
    np.testing.assert_array_equal(request.x, x)
    body, headers = encode_infer(SPEC, request, LOGITS[: len(x)])
    length = headers.get(HEADER_LENGTH)
    return th.InferResult.from_response_body(body, header_length=None if length is None else int(length))


@pytest.mark.parametrize("binary", [True, False])
def test_tritonclient_reads_the_logits_it_asked_for(binary):
    result = round_trip(X, binary, [th.InferRequestedOutput("logits", binary_data=binary)])
    np.testing.assert_array_equal(result.as_numpy("logits"), LOGITS)
    assert result.get_response()["id"] == "7" and result.get_response()["model_name"] == "lenet5"


def test_no_outputs_named_means_every_output_in_binary():
    result = round_trip(X, True)
    assert result.get_output("logits")["parameters"]["binary_data_size"] == LOGITS.nbytes
    np.testing.assert_array_equal(result.as_numpy("logits"), LOGITS)


def _text(s) -> str:
    return s.decode() if isinstance(s, bytes) else s  # tritonclient: bytes from binary, str from JSON


@pytest.mark.parametrize("binary", [True, False])
def test_classification_is_tritons_value_index_label(binary):
    result = round_trip(X, binary, [th.InferRequestedOutput("logits", binary_data=binary, class_count=2)])
    top = result.as_numpy("logits")
    assert top.shape == (2, 2)
    assert [_text(s) for s in top[0]] == ["3.250000:1:c1", "2.000000:3:c3"]
    assert [_text(s) for s in top[1]] == ["4.500000:2:c2", "4.500000:3:c3"]  # ties keep index order, as /classify


def test_classification_past_the_class_count_is_every_class():
    result = round_trip(X[:1], False, [th.InferRequestedOutput("logits", binary_data=False, class_count=50)])
    assert result.as_numpy("logits").shape == (1, 5)


def _doc(**tensor) -> bytes:
    t = {"name": "input", "shape": [1, 3, 8, 8], "datatype": "FP32", "data": [0.0] * 192, **tensor}
    return json.dumps({"inputs": [t]}).encode()


@pytest.mark.parametrize("body, header, needle", [
    (_doc(datatype="FP64"), None, "has datatype 'FP64'; this model takes FP32"),
    (_doc(shape=[1, 3, 9, 9]), None, "this model takes [N, 3, 8, 8]"),
    (_doc(shape=[1, 3, 8, True]), None, "needs a `shape` of integers"),
    (_doc(data=[0.0] * 10), None, "holds 10 values; shape [1, 3, 8, 8] needs 192"),
    (_doc(data=[[1.0, 2.0], [3.0]]), None, "ragged"),
    (_doc(data=["a"] * 192), None, "must hold numbers"),
    (_doc(data=[True] * 192), None, "must hold numbers"),
    (_doc(name="image"), None, "unknown input 'image'"),
    (_doc(data=None), None, "has no `data`"),
    (_doc(data=[float("nan")] * 192), None, "NaN"),
    (b"[1, 2]", None, "must be a JSON object"),
    (b"\xff\xfe", None, "not valid JSON"),
    (_doc() + b"\0" * 8, "ten", "must be a byte count"),
    (_doc() + b"\0" * 8, "99999", "the body has only"),
    (_doc() + b"\0" * 8, str(len(_doc())), "no input declares `binary_data_size`"),
    (_doc(data=None, parameters={"binary_data_size": 768}) + b"\0" * 764, str(len(_doc(
        data=None, parameters={"binary_data_size": 768}))), "declares binary_data_size 768, but 764 bytes follow"),
    (_doc(data=None, parameters={"binary_data_size": 8}) + b"\0" * 8, str(len(_doc(
        data=None, parameters={"binary_data_size": 8}))), "8 bytes are not 192 FP32 values"),
    (_doc(parameters={"binary_data_size": 768}), None, "both `data` and `binary_data_size`"),
    (json.dumps({"inputs": [json.loads(_doc())["inputs"][0]] * 2}).encode(), None, "a list of one tensor"),
    (json.dumps({"inputs": json.loads(_doc())["inputs"], "outputs": [{"name": "probs"}]}).encode(), None,
     "unknown output 'probs'"),
    (json.dumps({"inputs": json.loads(_doc())["inputs"], "outputs": [{"name": "logits"}] * 2}).encode(), None,
     "request it once"),
    (json.dumps({"inputs": json.loads(_doc())["inputs"],
                 "outputs": [{"name": "logits", "parameters": {"classification": -1}}]}).encode(), None,
     "`classification` must be"),
    (json.dumps({"inputs": json.loads(_doc())["inputs"], "parameters": {"binary_data_output": "yes"}}).encode(),
     None, "`binary_data_output` must be true or false"),
    (json.dumps({"id": 5, "inputs": json.loads(_doc())["inputs"]}).encode(), None, "`id` must be a string"),
])
def test_bad_requests_say_what_is_wrong(body, header, needle):
    with pytest.raises(RequestError) as e:  # ProtocolError, or tensor_input's RequestError (NaN)
        parse_infer(body, header, SPEC, max_rows=8)
    assert needle in str(e.value)


def test_too_many_rows_is_refused():
    with pytest.raises(RequestError, match="over the limit of 1"):
        parse_infer(*triton_request(X, True), SPEC, max_rows=1)
