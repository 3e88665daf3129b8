"""The BentoML service through a real `bentoml serve` process and real HTTP clients.

One server per module (conftest.py); every hard edge is followed by a good request, so a
refused request must leave the server serving.
"""

from __future__ import annotations

import io
import json
import struct
import time
import zlib
from concurrent.futures import ThreadPoolExecutor

import bentoml
import httpx
import numpy as np
import pytest
from PIL import Image
from prometheus_client.parser import text_string_to_metric_families

from zoodeploy.artifact import Artifact
from zoodeploy.card import load_card
from zoodeploy.evaluate.accuracy import run_batched
from zoodeploy.fileio import sha256_file
from zoodeploy.preprocess import softmax
from zoodeploy.runtime import RunOptions, open_runner
from zoodeploy.serve import images_to_tensor, ort_threads
from zoodeploy.serve.batching import BATCH_METRIC

from serve_helpers import MODEL, png_bytes, start_server, v2_binary_request

TOL = 1e-5  # probabilities: same variant, same preprocessing; only the batch composition differs


def classify(url: str, data: bytes, route: str = "/classify", field: str = "image", **form) -> httpx.Response:
    return httpx.post(url + route, files={field: ("upload.png", data, "image/png")}, data=form, timeout=120)


def probs_of(answer: dict, num_classes: int = 10) -> np.ndarray:
    p = np.zeros(num_classes)
    for entry in answer["top_k"]:
        p[entry["index"]] = entry["probability"]
    return p


@pytest.fixture(scope="module")
def offline(served_artifact, test_images):
    """The evaluate path: the card's test arrays through open_runner, as `zoodeploy evaluate` runs them."""
    card = load_card(served_artifact)
    pngs, labels = test_images
    x = Artifact(served_artifact).test_data()[0][:len(pngs)]
    with open_runner(served_artifact, "fp32", RunOptions(threads=1)) as runner:
        logits = run_batched(runner, x)
    return {"x": x, "logits": logits, "probs": softmax(logits), "card": card, "artifact": served_artifact}


def test_ready_only_after_the_model_is_loaded_and_warm(server):
    assert "serving mobilenet_v2 variant 'fp32'" in server.log_at_ready  # logged after warm-up
    assert httpx.get(server.url + "/readyz").status_code == 200
    assert httpx.get(server.url + "/livez").status_code == 200


def test_uploads_are_the_evaluate_arrays(offline, test_images):
    """The PNGs the tests upload decode to exactly the arrays `zoodeploy evaluate` scores."""
    x = images_to_tensor(test_images[0], offline["card"].preprocessing, max_pixels=10_000)
    np.testing.assert_array_equal(x, offline["x"])


def test_served_answers_equal_offline_answers(server, offline, test_images):
    pngs, labels = test_images
    with ThreadPoolExecutor(8) as pool:  # concurrent, so adaptive batching groups them
        singles = list(pool.map(lambda d: classify(server.url, d, top_k="10"), pngs))
    assert all(r.status_code == 200 for r in singles), singles[0].text
    served = np.stack([probs_of(r.json()) for r in singles])
    assert [r.json()["label"] for r in singles] == [str(i) for i in offline["probs"].argmax(1)]
    np.testing.assert_allclose(served, offline["probs"], atol=TOL)

    batch = httpx.post(server.url + "/classify_batch", files=[("images", (f"{i}.png", d, "image/png"))
                                                              for i, d in enumerate(pngs[:8])],
                       data={"top_k": "10"}, timeout=120)
    assert batch.status_code == 200, batch.text
    np.testing.assert_allclose([probs_of(a) for a in batch.json()], offline["probs"][:8], atol=TOL)

    logits = httpx.post(server.url + "/predict", json={"tensor": offline["x"][:4].tolist()}, timeout=120)
    assert logits.status_code == 200, logits.text
    np.testing.assert_allclose(logits.json(), offline["logits"][:4], atol=1e-4)


@pytest.mark.parametrize("mode, fmt", [("RGBA", "PNG"), ("CMYK", "JPEG"), ("I;16", "PNG"), ("P", "PNG"),
                                       ("RGB", "JPEG")])
def test_any_image_mode_is_served_like_offline(server, offline, test_images, mode, fmt):
    digit = Image.open(io.BytesIO(test_images[0][0])).resize((64, 64))
    img = Image.fromarray(np.asarray(digit, np.uint16) * 257) if mode == "I;16" else digit.convert(mode)
    buf = io.BytesIO()
    img.save(buf, format=fmt)
    r = classify(server.url, buf.getvalue(), top_k="10")
    assert r.status_code == 200, r.text
    x = images_to_tensor([buf.getvalue()], offline["card"].preprocessing, max_pixels=10_000)
    runner = open_runner(offline["artifact"], "fp32", RunOptions(threads=1))
    expected = softmax(runner.run(x))[0]
    np.testing.assert_allclose(probs_of(r.json()), expected, atol=TOL)


def test_bentoml_client(server, offline, test_images, tmp_path):
    path = tmp_path / "digit.png"
    path.write_bytes(test_images[0][0])
    with bentoml.SyncHTTPClient(server.url) as client:
        answer = client.classify(image=path, top_k=3)
        logits = client.predict(tensor=offline["x"][:2])
        meta = client.metadata()
    assert answer["label"] == str(offline["probs"][0].argmax()) and len(answer["top_k"]) == 3
    np.testing.assert_allclose(logits, offline["logits"][:2], atol=1e-4)
    assert meta["variant"] == "fp32"


def test_metadata_is_the_cards_essentials(server, served_artifact):
    meta = httpx.get(server.url + "/metadata").json()
    card = load_card(served_artifact)
    assert (meta["model"], meta["variant"], meta["labels"]) == ("mobilenet_v2", "fp32", card.labels)
    assert meta["sha256"] == card.variants["fp32"].sha256 and meta["selected_by_card"] is True
    assert meta["input_shape"] == ["N", 3, 32, 32] and meta["preprocessing"]["size"] == [32, 32]
    # the providers the worker really uses, and threads from the worker count
    assert meta["serving"]["providers"] == ["CPUExecutionProvider"]
    assert meta["serving"]["intra_op_threads"] == ort_threads(1)
    assert httpx.post(server.url + "/metadata").json() == meta


# --- hard edges: a 4xx JSON error that says what was wrong, then a good request -----------------

def _png_claiming(width: int, height: int) -> bytes:
    """A tiny PNG whose header claims width x height pixels: how a decompression bomb starts."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")


def _big_png() -> bytes:
    return png_bytes(Image.new("L", (2100, 2000)))  # 4.2 M pixels: over the test server's limit of 4 M


BAD_REQUESTS = {
    "not-an-image": (lambda u, d: classify(u, b"%PDF-1.4 this is not an image"), "unknown image format"),
    "truncated-image": (lambda u, d: classify(u, d[: len(d) // 2]), "not a readable image"),
    "empty-file": (lambda u, d: classify(u, b""), "empty image data"),
    "empty-body": (lambda u, d: httpx.post(u + "/classify"), "Field required"),
    "missing-field": (lambda u, d: httpx.post(u + "/classify", data={"top_k": "3"}), "Field required"),
    "decompression-bomb": (lambda u, d: classify(u, _png_claiming(100_000, 100_000)), "decompression bomb"),
    "claims-too-many-pixels": (lambda u, d: classify(u, _png_claiming(3000, 3000)), "over the limit of 4000000"),
    "over-pixel-limit": (lambda u, d: classify(u, _big_png()), "over the limit of 4000000"),
    "file-in-another-field": (lambda u, d: classify(u, d, field="file"), "unexpected file field `file`"),
    "text-instead-of-file": (lambda u, d: httpx.post(u + "/classify", data={"image": "http://127.0.0.1:9/x.png"}),
                             "must be a file upload"),
    "unknown-form-field": (lambda u, d: classify(u, d, topk="3"), "unexpected form field `topk`"),
    "body-too-large": (lambda u, d: classify(u, b"\0" * (2 * 2**20)), "over the limit of 1 MiB"),
    "bad-top-k": (lambda u, d: classify(u, d, top_k="0"), "greater than or equal to 1"),
    "too-many-images": (lambda u, d: httpx.post(u + "/classify_batch", files=[("images", ("a.png", d))] * 9),
                        "over the limit of 8"),
    "tensor-wrong-shape": (lambda u, d: httpx.post(u + "/predict", json={"tensor": np.zeros((1, 3, 16, 16)).tolist()}),
                           "(N, 3, 32, 32)"),
    "tensor-wrong-dtype": (lambda u, d: httpx.post(u + "/predict", json={"tensor": [[["a"] * 32] * 32] * 3}),
                           "must hold numbers"),
    "tensor-ragged": (lambda u, d: httpx.post(u + "/predict", json={"tensor": [[1.0, 2.0], [3.0]]}), "tensor"),
    "tensor-missing": (lambda u, d: httpx.post(u + "/predict", json={}), "Field required"),
    "tensor-not-json": (lambda u, d: httpx.post(u + "/predict", content=b"{not json",
                                                headers={"content-type": "application/json"}), "error"),
}


@pytest.mark.parametrize("case", list(BAD_REQUESTS))
def test_bad_request_is_a_4xx_json_error_and_the_server_keeps_serving(server, offline, test_images, case):
    send, needle = BAD_REQUESTS[case]
    good = test_images[0][0]
    r = send(server.url, good)
    assert 400 <= r.status_code < 500, (r.status_code, r.text)
    body = r.json()
    assert isinstance(body, dict) and isinstance(body["error"], str), body
    assert needle in json.dumps(body), body
    after = classify(server.url, good)
    assert after.status_code == 200 and after.json()["label"] == str(offline["probs"][0].argmax()), after.text


# --- the Open Inference Protocol (KServe v2) at /v2, through NVIDIA's own client -----------------

@pytest.fixture(scope="module")
def triton(server):
    tritonclient_http = pytest.importorskip("tritonclient.http")
    client = tritonclient_http.InferenceServerClient(server.url.removeprefix("http://"), network_timeout=120)
    yield client
    client.close()


def _triton_infer(triton, x: np.ndarray, binary: bool, class_count: int = 0, version: str = ""):
    import tritonclient.http as th
    inp = th.InferInput("input", list(x.shape), "FP32")
    inp.set_data_from_numpy(x, binary_data=binary)
    out = th.InferRequestedOutput("logits", binary_data=binary, class_count=class_count)
    return triton.infer(MODEL, [inp], outputs=[out], model_version=version, request_id="r-1")


def test_v2_server_and_model_are_ready_and_described(triton, served_artifact):
    card = load_card(served_artifact)
    assert triton.is_server_live() and triton.is_server_ready()
    assert triton.is_model_ready(MODEL) and triton.is_model_ready(MODEL, "1")
    assert not triton.is_model_ready("resnet50") and not triton.is_model_ready(MODEL, "2")
    server_meta = triton.get_server_metadata()
    assert {"binary_tensor_data", "classification"} <= set(server_meta["extensions"])
    meta = triton.get_model_metadata(MODEL)
    assert (meta["name"], meta["versions"], meta["platform"]) == (MODEL, ["1"], "onnxruntime_onnx")
    assert meta["inputs"] == [{"name": card.input_name, "datatype": "FP32", "shape": [-1, 3, 32, 32]}]
    assert meta["outputs"] == [{"name": card.output_name, "datatype": "FP32", "shape": [-1, card.num_classes]}]
    assert triton.get_model_metadata(MODEL, "1") == meta


def test_v2_infer_answers_as_predict_classify_and_evaluate(server, triton, offline, test_images):
    x, n = offline["x"][:8], 8
    predict = np.array(httpx.post(server.url + "/predict", json={"tensor": x.tolist()}, timeout=120).json())
    labels = [classify(server.url, d, top_k="3").json() for d in test_images[0][:n]]
    for binary in (True, False):
        result = _triton_infer(triton, x, binary)
        logits = result.as_numpy("logits")
        assert logits.dtype == np.float32 and logits.shape == (n, 10)
        np.testing.assert_allclose(logits, offline["logits"][:n], atol=1e-4)  # zoodeploy evaluate
        np.testing.assert_allclose(logits, predict, atol=1e-4)
        assert result.get_response()["id"] == "r-1"
        top = _triton_infer(triton, x, binary, class_count=3, version="1").as_numpy("logits")
        assert top.shape == (n, 3)
        for row, logit_row, answer in zip(top, logits, labels):
            values, indices, names = zip(*((s.decode() if isinstance(s, bytes) else s).split(":") for s in row))
            assert list(names) == [e["label"] for e in answer["top_k"]]  # /classify's top 3
            assert [int(i) for i in indices] == [e["index"] for e in answer["top_k"]]
            np.testing.assert_allclose([float(v) for v in values], logit_row[[int(i) for i in indices]], atol=1e-5)


def test_v2_json_request_without_outputs_gets_every_output_as_json(server, offline):
    x = offline["x"][:2]
    doc = {"id": "j", "inputs": [{"name": "input", "shape": [2, 3, 32, 32], "datatype": "FP32",
                                  "data": x.tolist()}]}  # nested data, as JSON clients send it
    r = httpx.post(f"{server.url}/v2/models/{MODEL}/versions/1/infer", json=doc, timeout=120)
    assert r.status_code == 200 and r.headers["content-type"] == "application/json", r.text
    body = r.json()
    assert (body["model_name"], body["model_version"], body["id"]) == (MODEL, "1", "j")
    [out] = body["outputs"]
    assert (out["name"], out["datatype"], out["shape"]) == ("logits", "FP32", [2, 10])
    np.testing.assert_allclose(np.reshape(out["data"], (2, 10)), offline["logits"][:2], atol=1e-4)


def _infer_raw(url: str, content: bytes, headers: dict | None = None, model: str = MODEL) -> httpx.Response:
    return httpx.post(f"{url}/v2/models/{model}/infer", content=content, timeout=120,
                      headers=headers or {"content-type": "application/json"})


def _v2_doc(x: np.ndarray, **tensor) -> bytes:
    t = {"name": "input", "shape": list(x.shape), "datatype": "FP32", "data": x.reshape(-1).tolist(), **tensor}
    return json.dumps({"inputs": [t]}).encode()


def _lying_header(x: np.ndarray, by: int) -> tuple[bytes, dict]:
    body, headers = v2_binary_request(x)
    return body, {**headers, "Inference-Header-Content-Length": str(int(headers["Inference-Header-Content-Length"]) + by)}


def _truncated(x: np.ndarray, by: int) -> tuple[bytes, dict]:
    body, headers = v2_binary_request(x)
    return body[:-by], headers


ONE = np.zeros((1, 3, 32, 32), np.float32)
BAD_V2 = {
    "wrong-datatype": (lambda u: _infer_raw(u, *v2_binary_request(ONE.astype(np.float64), datatype="FP64")),
                       400, "this model takes FP32"),
    "wrong-datatype-json": (lambda u: _infer_raw(u, _v2_doc(ONE, datatype="INT64")), 400, "takes FP32"),
    "wrong-shape": (lambda u: _infer_raw(u, *v2_binary_request(np.zeros((1, 3, 16, 16), np.float32))),
                    400, "this model takes [N, 3, 32, 32]"),
    "shape-and-data-disagree": (lambda u: _infer_raw(u, _v2_doc(ONE, shape=[2, 3, 32, 32])), 400, "needs 6144"),
    "unknown-model": (lambda u: _infer_raw(u, _v2_doc(ONE), model="resnet50"), 404, "unknown model 'resnet50'"),
    "unknown-model-metadata": (lambda u: httpx.get(u + "/v2/models/resnet50"), 404, "unknown model"),
    "unknown-version": (lambda u: httpx.post(f"{u}/v2/models/{MODEL}/versions/7/infer", content=_v2_doc(ONE)),
                        404, "no version '7'"),
    "malformed-json": (lambda u: _infer_raw(u, b'{"inputs": [{"name": "input",'), 400, "not valid JSON"),
    "header-longer-than-body": (lambda u: _infer_raw(u, *_lying_header(ONE, 1 << 20)), 400, "the body has only"),
    "header-length-mismatch": (lambda u: _infer_raw(u, *_lying_header(ONE, -3)), 400, "not valid JSON"),
    "binary-body-truncated": (lambda u: _infer_raw(u, *_truncated(ONE, 4)), 400,
                              "declares binary_data_size 12288, but 12284 bytes follow"),
    "header-not-a-number": (lambda u: _infer_raw(u, _v2_doc(ONE), {"Inference-Header-Content-Length": "ten"}),
                            400, "must be a byte count"),
    "unknown-input": (lambda u: _infer_raw(u, *v2_binary_request(ONE, name="image")), 400, "unknown input 'image'"),
    "unknown-output": (lambda u: _infer_raw(u, *v2_binary_request(ONE, outputs=[{"name": "probs"}])),
                       400, "unknown output 'probs'"),
    "bad-classification": (lambda u: _infer_raw(u, *v2_binary_request(
        ONE, outputs=[{"name": "logits", "parameters": {"classification": "all"}}])), 400, "classification"),
    "nan": (lambda u: _infer_raw(u, *v2_binary_request(np.full_like(ONE, np.nan))), 400, "NaN"),
    "too-many-rows": (lambda u: _infer_raw(u, *v2_binary_request(np.zeros((9, 3, 32, 32), np.float32))),
                      400, "over the limit of 8"),
    "body-too-large": (lambda u: _infer_raw(u, b" " * (2 * 2**20)), 413, "over the limit of 1 MiB"),
    "unknown-endpoint": (lambda u: httpx.get(f"{u}/v2/models/{MODEL}/stats"), 404, "no Open Inference Protocol"),
}


@pytest.mark.parametrize("case", list(BAD_V2))
def test_bad_v2_request_is_a_4xx_json_error_and_the_server_keeps_serving(server, offline, case):
    send, status, needle = BAD_V2[case]
    r = send(server.url)
    assert r.status_code == status, (r.status_code, r.text)
    assert needle in r.json()["error"], r.json()
    assert httpx.get(server.url + "/v2/health/ready").json() == {"ready": True}
    after = _infer_raw(server.url, *v2_binary_request(offline["x"][:1], outputs=[{"name": "logits"}]))
    assert after.status_code == 200 and after.json()["outputs"][0]["data"] is not None, after.text


# --- load ------------------------------------------------------------------------------------------

def _batch_counts(url: str) -> tuple[float, float]:
    """(model runs, runs of one request) from the adaptive batch size histogram on /metrics."""
    text = httpx.get(url + "/metrics").text
    family = next(f for f in text_string_to_metric_families(text) if f.name == BATCH_METRIC)
    buckets = [s for s in family.samples if s.name.endswith("_bucket")]
    total = sum(s.value for s in buckets if s.labels["le"] == "+Inf")
    single = sum(s.value for s in buckets if s.labels["le"] == "1.0")
    return total, single


def _classify_label(c: httpx.Client, png: bytes, x: np.ndarray) -> tuple[httpx.Response, str | None]:
    r = c.post("/classify", files={"image": ("d.png", png, "image/png")})
    return r, r.json()["label"] if r.status_code == 200 else None


def _v2_label(c: httpx.Client, png: bytes, x: np.ndarray) -> tuple[httpx.Response, str | None]:
    """The same image, preprocessed, through /v2 infer: binary tensor in, classification (k=1) out."""
    body, headers = v2_binary_request(x, outputs=[{"name": "logits", "parameters": {"classification": 1}}])
    r = c.post(f"/v2/models/{MODEL}/infer", content=body, headers=headers)
    return r, r.json()["outputs"][0]["data"][0].split(":")[2] if r.status_code == 200 else None


@pytest.mark.parametrize("send", [_classify_label, _v2_label], ids=["classify", "v2-infer"])
def test_sixteen_clients_fifty_requests_each_no_errors_and_real_batches(server, offline, test_images, send):
    pngs, _ = test_images
    expected = {i: classify(server.url, pngs[i]).json()["label"] for i in range(16)}
    runs_before, singles_before = _batch_counts(server.url)

    def client(i: int) -> list[str]:
        failures = []
        with httpx.Client(base_url=server.url, timeout=120) as c:
            for _ in range(50):
                r, label = send(c, pngs[i], offline["x"][i:i + 1])
                if r.status_code != 200 or label != expected[i]:
                    failures.append(f"{r.status_code} {r.text[:200]}")
        return failures

    with ThreadPoolExecutor(16) as pool:
        failures = [f for fs in pool.map(client, range(16)) for f in fs]
    assert failures == []
    runs, singles = _batch_counts(server.url)
    runs, singles = runs - runs_before, singles - singles_before
    assert runs < 800, "every request ran the model on its own: adaptive batching formed no batch"
    assert runs - singles > 0  # model runs that served more than one request


def _sequential_p50_ms(url: str, png: bytes, n: int = 40) -> float:
    times = []
    with httpx.Client(base_url=url, timeout=60) as c:
        for _ in range(n):
            start = time.perf_counter()
            r = c.post("/classify", files={"image": ("d.png", png, "image/png")})
            times.append((time.perf_counter() - start) * 1000)
            assert r.status_code == 200, r.text
    return float(np.median(times))


def test_latency_returns_to_idle_a_second_after_a_burst(server, test_images):
    """Adaptive batching holds no request back once the load is gone: BentoML's CORK dispatcher, used
    before, learned a burst's wait and kept it (sequential p50 2.1 ms idle, 15-34 ms for over a
    minute after 16 clients). A ratio to the same server's idle p50, measured in this test."""
    pngs, _ = test_images
    idle = _sequential_p50_ms(server.url, pngs[0])

    def client(i: int) -> None:
        with httpx.Client(base_url=server.url, timeout=120) as c:
            for _ in range(30):
                assert c.post("/classify", files={"image": ("d.png", pngs[i], "image/png")}).status_code == 200

    with ThreadPoolExecutor(16) as pool:
        list(pool.map(client, range(16)))
    time.sleep(1.0)
    after = _sequential_p50_ms(server.url, pngs[0])
    assert after <= 3.0 * idle, f"sequential p50 {after:.2f} ms a second after the burst, {idle:.2f} ms before"


def test_conform_finds_classify_and_v2_in_agreement_with_the_runner(server, served_artifact):
    """`zoodeploy conform --serve URL`: the canaries through this server's /classify and /v2 (issue 32)."""
    from zoodeploy.conform import Options, conform
    rows = conform(served_artifact, options=Options(serve=server.url), ways=["serve-classify", "serve-v2"])
    assert [r.way for r in rows] == ["runner", "serve-classify", "serve-v2"]
    assert all(r.ok for r in rows), rows


# --- restart: last, it replaces the module's server ------------------------------------------------

def test_restart_loses_nothing_and_needs_only_the_artifact(server, served_artifact, test_images, tmp_path):
    pngs = test_images[0][:6]
    before = [classify(server.url, d, top_k="10").json() for d in pngs]
    meta = httpx.get(server.url + "/metadata").json()
    files = {p.name: sha256_file(p) for p in served_artifact.iterdir()}
    server.stop()
    # a fresh BENTOML_HOME: nothing from the first run is needed, only the artifact directory
    again = start_server(tmp_path, {"ZOODEPLOY_ARTIFACT": str(served_artifact)})
    try:
        after = [classify(again.url, d, top_k="10").json() for d in pngs]
        assert httpx.get(again.url + "/metadata").json() == meta
    finally:
        again.stop()
    assert [a["label"] for a in after] == [b["label"] for b in before]
    np.testing.assert_allclose([probs_of(a) for a in after], [probs_of(b) for b in before], atol=TOL)
    assert {p.name: sha256_file(p) for p in served_artifact.iterdir()} == files  # serving wrote nothing
