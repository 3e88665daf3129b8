"""`package --format triton` on a real Triton server (tests/triton_server.py), started once for the module.

Skipped, with the reason, where the server cannot be installed (no network to PyPI, no shared
libpython). The model runs in the test-only stand-in for Triton's onnxruntime backend
(tests/triton_backend/onnxruntime/model.py); everything else a client sees is Triton's own.
"""

from __future__ import annotations

import shutil
import threading
from concurrent.futures import ThreadPoolExecutor

import httpx
import numpy as np
import pytest
from triton_server import TritonServer, refusal

from zoodeploy.artifact import Artifact
from zoodeploy.card import LatencyStats, load_card, save_card
from zoodeploy.evaluate.accuracy import variant_logits
from zoodeploy.package.triton import RepositoryConfig, make_repository, verify_repository
from zoodeploy.serve.oip import HEADER_LENGTH, InferenceModel, encode_infer, parse_infer

th = pytest.importorskip("tritonclient.http")
tg = pytest.importorskip("tritonclient.grpc")
from tritonclient.http._utils import _get_inference_request  # noqa: E402  (the body InferenceServerClient.infer sends)

MODEL, N = "lenet5", 16


@pytest.fixture(scope="module")
def art(trained, tmp_path_factory):
    """lenet5, fp32 selected, with a measured batch-1 p50 of 5 ms: the batcher may hold a request 5 ms."""
    art = tmp_path_factory.mktemp("triton-server") / MODEL
    shutil.copytree(trained(MODEL), art)
    card = load_card(art)
    card.variants["fp32"].latency = {str(b): LatencyStats(batch=b, runs=50, p50_ms=5.0, p90_ms=5.0, p99_ms=5.0,
                                                          mean_ms=5.0, throughput=t)
                                     for b, t in {1: 200.0, 8: 1000.0, 16: 1500.0}.items()}
    card.selected = "fp32"
    save_card(art, card)
    return art


@pytest.fixture(scope="module")
def repo(art, tmp_path_factory):
    return make_repository(art, tmp_path_factory.mktemp("repo") / "models")


@pytest.fixture(scope="module")
def server(triton_home, repo, tmp_path_factory):
    with TritonServer(repo.path, log=tmp_path_factory.mktemp("log") / "triton.log", install=triton_home) as s:
        yield s


@pytest.fixture(scope="module")
def images(art):
    """The held-out images `zoodeploy evaluate` scores, and its logits for them (the in-process runner)."""
    x = Artifact.of(art).test_data()[0][:N]
    return x, variant_logits(art, "fp32", x)


def _http_input(x):
    inp = th.InferInput("input", list(x.shape), "FP32")
    inp.set_data_from_numpy(x)
    return inp


def test_the_repository_loads_unmodified(server, repo, art):
    client = th.InferenceServerClient(server.url)
    assert client.is_model_ready(MODEL)
    meta = client.get_model_metadata(MODEL)
    card = load_card(art)
    assert meta["platform"] == "onnxruntime_onnx" and meta["versions"] == ["1"]
    assert meta["inputs"] == [{"name": card.input_name, "datatype": "FP32",
                               "shape": [-1, 3, card.input_size, card.input_size]}]
    assert meta["outputs"] == [{"name": card.output_name, "datatype": "FP32", "shape": [-1, card.num_classes]}]
    verify_repository(repo.path)  # every file still the one packaging wrote


def test_http_and_grpc_give_the_logits_of_evaluate(server, images):
    x, expected = images
    http = th.InferenceServerClient(server.url).infer(MODEL, [_http_input(x)]).as_numpy("logits")
    g = tg.InferInput("input", list(x.shape), "FP32")
    g.set_data_from_numpy(x)
    grpc = tg.InferenceServerClient(server.grpc_url).infer(MODEL, [g]).as_numpy("logits")
    np.testing.assert_allclose(http, expected, atol=1e-5)
    np.testing.assert_allclose(grpc, expected, atol=1e-5)
    assert (http.argmax(1) == expected.argmax(1)).all() and (grpc.argmax(1) == expected.argmax(1)).all()


def test_classification_strings_are_byte_identical_to_zoodeploys_v2(server, images, art):
    """The same request to Triton and through zoodeploy's /v2 codec, the logits from `zoodeploy evaluate`."""
    x, expected = images
    outputs = [th.InferRequestedOutput("logits", class_count=3)]
    triton = th.InferenceServerClient(server.url).infer(MODEL, [_http_input(x)], outputs=outputs).as_numpy("logits")

    spec = InferenceModel.from_card(load_card(art), "fp32")
    body, json_size = _get_inference_request([_http_input(x)], None, outputs, 0, False, False, 0, None, None)
    request = parse_infer(body, None if json_size is None else str(json_size), spec, max_rows=64)
    answer, headers = encode_infer(spec, request, expected)
    ours = th.InferResult.from_response_body(answer, header_length=int(headers[HEADER_LENGTH])).as_numpy("logits")
    assert triton.shape == ours.shape == (N, 3)
    assert triton.tolist() == ours.tolist(), f"Triton {triton[0].tolist()} vs /v2 {ours[0].tolist()}"


def _stats(server) -> dict:
    return httpx.get(f"http://{server.url}/v2/models/{MODEL}/stats", timeout=10).json()["model_stats"][0]


def test_dynamic_batching_groups_concurrent_requests(server, images):
    x, expected = images
    before = _stats(server)
    clients, start = [tg.InferenceServerClient(server.grpc_url) for _ in range(N)], threading.Barrier(N)

    def one(i: int) -> np.ndarray:
        inp = tg.InferInput("input", [1, *x.shape[1:]], "FP32")
        inp.set_data_from_numpy(x[i:i + 1])
        start.wait()
        return clients[i].infer(MODEL, [inp]).as_numpy("logits")

    with ThreadPoolExecutor(N) as pool:
        got = np.concatenate(list(pool.map(one, range(N))))
    np.testing.assert_allclose(got, expected, atol=1e-5)
    after = _stats(server)
    requests = after["inference_count"] - before["inference_count"]
    runs = after["execution_count"] - before["execution_count"]
    assert requests == N and runs < N, f"{requests} requests ran in {runs} executions: no batching"
    batches = {b["batch_size"]: b["compute_infer"]["count"] for b in after["batch_stats"]}
    assert max(batches) > 1, batches


def test_a_broken_config_is_refused_with_the_reason(triton_home, repo, tmp_path):
    broken = tmp_path / "broken"
    shutil.copytree(repo.path, broken)
    config = broken / MODEL / "config.pbtxt"
    config.write_text(config.read_text().replace("dims: [ 3, 32, 32 ]", "dims: [ 3, 28, 28 ]", 1))
    log = refusal(broken, tmp_path / "broken.log")
    assert "failed to load 'lenet5'" in log
    assert "input 'input' dims [3, 28, 28] in the configuration do not match the model's [3, 32, 32]" in log


def test_a_gpu_repository_is_refused_on_a_cpu_machine(triton_home, art, tmp_path):
    if shutil.which("nvidia-smi"):
        pytest.skip("this machine has an NVIDIA GPU")
    repo = make_repository(art, tmp_path / "gpu", RepositoryConfig(target="gpu"))
    log = refusal(repo.path, tmp_path / "gpu.log")
    assert "instance group lenet5_0 of model lenet5 has kind KIND_GPU but no GPUs are available" in log, log[-2000:]
