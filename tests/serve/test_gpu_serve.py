"""Serving on the GPU: the service asks BentoML for one GPU and runs on CUDA, never the CPU."""

from __future__ import annotations

import httpx
import numpy as np
import pytest
from serve_helpers import start_server

from zoodeploy.card import load_card
from zoodeploy.preprocess import softmax
from zoodeploy.runtime import RunOptions, open_runner
from zoodeploy.serve import images_to_tensor

pytestmark = pytest.mark.gpu


def test_cuda_provider_is_used_and_answers_like_the_cpu(served_artifact, test_images, tmp_path):
    ort = pytest.importorskip("onnxruntime")
    if "CUDAExecutionProvider" not in ort.get_available_providers():
        pytest.skip("onnxruntime has no CUDAExecutionProvider (install the gpu extra: onnxruntime-gpu)")
    srv = start_server(tmp_path, {"ZOODEPLOY_ARTIFACT": str(served_artifact), "ZOODEPLOY_PROVIDER": "cuda"})
    try:
        meta = httpx.get(srv.url + "/metadata").json()
        pngs = test_images[0][:8]
        answers = [httpx.post(srv.url + "/classify", files={"image": ("d.png", d)}, data={"top_k": "10"},
                              timeout=120).json() for d in pngs]
    finally:
        srv.stop()
    assert meta["serving"]["providers"][0] == "CUDAExecutionProvider" and meta["serving"]["provider"] == "cuda"
    runner = open_runner(served_artifact, "fp32", RunOptions(threads=1))
    x = images_to_tensor(pngs, load_card(served_artifact).preprocessing, max_pixels=10_000)
    cpu = softmax(runner.run(x))
    gpu = np.array([[{e["index"]: e["probability"] for e in a["top_k"]}[i] for i in range(10)] for a in answers])
    assert (gpu.argmax(1) == cpu.argmax(1)).all()
    np.testing.assert_allclose(gpu, cpu, atol=1e-3)  # cuDNN kernels differ from MLAS in the last bits
