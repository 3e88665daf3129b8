"""`package --format triton --input image` on a real Triton server: encoded image bytes in, labels out.

The ensemble `<model>_image` runs the preprocessing model (Triton's Python backend, the card's
preprocessing by the bundles' preprocess.py) and then the classifier (the test-only onnxruntime
stand-in). One server for the module; skipped with the reason where it cannot be installed.
"""

from __future__ import annotations

import io
import json
import shutil

import httpx
import numpy as np
import pytest
from cli_support import assert_one_line_error, run_cli
from triton_server import TritonServer

from zoodeploy.card import load_card, save_card
from zoodeploy.fileio import sha256_file
from zoodeploy.package.triton import RepositoryConfig, make_repository, verify_repository
from zoodeploy.predict import PredictConfig, predict

th = pytest.importorskip("tritonclient.http")
model_config_pb2 = pytest.importorskip("tritonclient.grpc.model_config_pb2")
text_format = pytest.importorskip("google.protobuf.text_format")

MODEL, N = "lenet5", 12


@pytest.fixture(scope="module")
def art(trained, tmp_path_factory):
    art = tmp_path_factory.mktemp("triton-image") / MODEL
    shutil.copytree(trained(MODEL), art)
    return art


@pytest.fixture(scope="module")
def repo(art, tmp_path_factory):
    return make_repository(art, tmp_path_factory.mktemp("repo") / "models",
                           RepositoryConfig(variant="fp32", input="image"))


@pytest.fixture(scope="module")
def server(triton_home, repo, tmp_path_factory):
    with TritonServer(repo.path, log=tmp_path_factory.mktemp("log") / "triton.log", install=triton_home) as s:
        yield s


@pytest.fixture(scope="module")
def files(digits, tmp_path_factory):
    """Held-out digits written as PNG (even rows) and JPEG (odd rows): what a client has on disk."""
    folder = tmp_path_factory.mktemp("images")
    paths = []
    for i, img in enumerate(digits.test.items[:N]):
        path = folder / f"{i:02d}.{'png' if i % 2 == 0 else 'jpg'}"
        img.convert("RGB").save(path)
        paths.append(path)
    return paths


def _bytes_input(blobs: list[bytes]):
    inp = th.InferInput("image", [len(blobs), 1], "BYTES")
    inp.set_data_from_numpy(np.array([[b] for b in blobs], dtype=object))
    return inp


def test_the_repository_is_an_ensemble_tritons_schema_reads(repo):
    assert repo.image_model == "lenet5_image" and repo.manifest["input"] == "image"
    assert sorted(p.name for p in repo.path.iterdir()) == ["lenet5", "lenet5_image", "lenet5_preprocess"]
    ensemble = text_format.Parse((repo.path / "lenet5_image/config.pbtxt").read_text(), model_config_pb2.ModelConfig())
    assert ensemble.platform == "ensemble" and ensemble.input[0].data_type == model_config_pb2.TYPE_STRING
    assert [s.model_name for s in ensemble.ensemble_scheduling.step] == ["lenet5_preprocess", "lenet5"]
    assert ensemble.output[0].label_filename == "labels.txt"
    from zoodeploy import preprocess
    copied = repo.path / "lenet5_preprocess/1/preprocess.py"
    assert copied.read_bytes() == open(preprocess.__file__, "rb").read()  # the bundles' very file
    verify_repository(repo.path)  # every model folder against its manifest


def test_png_and_jpeg_bytes_get_the_top1_of_zoodeploy_predict(server, files, art, tmp_path):
    client = th.InferenceServerClient(server.url)
    assert client.is_model_ready("lenet5_image") and client.is_model_ready(MODEL)
    out = th.InferRequestedOutput("logits", class_count=1)
    got = client.infer("lenet5_image", [_bytes_input([p.read_bytes() for p in files])], outputs=[out])
    triton_top1 = [s.decode().split(":", 2)[2] for s in got.as_numpy("logits")[:, 0]]
    predict(art, files, PredictConfig(out=tmp_path / "p.jsonl", variant="fp32", top_k=1))
    rows = {r["path"]: r["label_1"] for r in map(json.loads, (tmp_path / "p.jsonl").read_text().splitlines())}
    assert triton_top1 == [rows[str(p)] for p in files]


def test_a_corrupt_image_is_a_400_naming_it(server, files):
    blobs = [files[0].read_bytes(), files[1].read_bytes()[:100]]  # a truncated JPEG
    r = httpx.post(f"http://{server.url}/v2/models/lenet5_image/infer", timeout=30, content=json.dumps(
        {"inputs": [{"name": "image", "shape": [1, 1], "datatype": "BYTES", "data": ["not an image"]}]}))
    assert r.status_code == 400 and "image 0 of the request" in r.json()["error"], r.text
    with pytest.raises(Exception) as e:
        th.InferenceServerClient(server.url).infer("lenet5_image", [_bytes_input(blobs)])
    assert "image 1 of the request" in str(e.value) and "not a readable image" in str(e.value)
    # the server keeps serving
    ok = th.InferenceServerClient(server.url).infer("lenet5_image", [_bytes_input(blobs[:1])])
    assert ok.as_numpy("logits").shape == (1, 10)


def test_cli_input_image_and_its_refusals(art, tmp_path):
    r = run_cli("package", art, "--format", "kserve", "--input", "image", "--variant", "fp32", "-o", tmp_path / "k")
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "k/repository/lenet5_image/config.pbtxt").is_file() and "Pillow" in r.stderr
    import yaml
    isvc = yaml.safe_load((tmp_path / "k/inferenceservice.yaml").read_text())
    assert isvc["metadata"]["annotations"]["zoodeploy/image-model"] == "lenet5_image"
    import onnx
    fixed = tmp_path / "fixed"
    shutil.copytree(art, fixed)
    model = onnx.load(str(fixed / "fp32.onnx"))
    model.graph.input[0].type.tensor_type.shape.dim[0].dim_value = 1
    onnx.save(model, str(fixed / "fp32.onnx"))
    card = load_card(fixed)
    card.variants["fp32"].sha256 = sha256_file(fixed / "fp32.onnx")
    save_card(fixed, card)
    assert_one_line_error(run_cli("package", fixed, "--format", "triton", "--input", "image", "--variant", "fp32",
                                  "-o", tmp_path / "x"), "--input image needs a model with a dynamic batch")
    assert not (tmp_path / "x").exists()


def test_pngs_encode_what_predict_reads(files):
    """The JPEG rows really are JPEG (lossy): Triton and predict decode the same bytes, not the arrays."""
    from PIL import Image
    assert Image.open(io.BytesIO(files[1].read_bytes())).format == "JPEG"
    assert Image.open(io.BytesIO(files[0].read_bytes())).format == "PNG"
