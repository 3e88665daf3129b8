"""KServe deployments: the Triton repository plus an InferenceService and a Bento Deployment, as YAML."""

from __future__ import annotations

import json
import re
import shutil

import numpy as np
import pytest
import yaml
from cli_support import run_cli

from zoodeploy.card import load_card, save_card
from zoodeploy.fileio import sha256_file
from zoodeploy.package.kserve import STORAGE_PLACEHOLDER, k8s_name, make_deployment
from zoodeploy.package.triton import RepositoryConfig

DNS_1035 = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")


@pytest.fixture(scope="module")
def selected(trained, tmp_path_factory):
    art = tmp_path_factory.mktemp("kserve") / "lenet5"
    shutil.copytree(trained("lenet5"), art)
    card = load_card(art)
    card.selected = "fp32"
    save_card(art, card)
    return art


@pytest.fixture(scope="module")
def deployment(selected, tmp_path_factory):
    return make_deployment(selected, tmp_path_factory.mktemp("out") / "deploy")


def test_inference_service_has_what_kserve_requires(deployment, selected):
    docs = list(yaml.safe_load_all((deployment.path / "inferenceservice.yaml").read_text()))
    assert len(docs) == 1
    isvc = docs[0]
    assert (isvc["apiVersion"], isvc["kind"]) == ("serving.kserve.io/v1beta1", "InferenceService")
    assert DNS_1035.match(isvc["metadata"]["name"]) and len(isvc["metadata"]["name"]) <= 45
    model = isvc["spec"]["predictor"]["model"]
    assert model["modelFormat"] == {"name": "triton"} and model["protocolVersion"] == "v2"
    assert model["storageUri"] == STORAGE_PLACEHOLDER.format(model="lenet5")
    assert set(model["resources"]) == {"requests", "limits"} and "nvidia.com/gpu" not in model["resources"]["limits"]
    assert re.fullmatch(r"\d+Gi", model["resources"]["requests"]["memory"])
    card = load_card(selected)
    assert isvc["metadata"]["annotations"]["zoodeploy/variant-sha256"] == card.variants["fp32"].sha256
    # the predictor serves the repository beside it, under the card's name
    repo = deployment.path / "repository" / "lenet5"
    assert sha256_file(repo / "1" / "model.onnx") == card.variants["fp32"].sha256
    assert (repo / "config.pbtxt").is_file()


def test_bento_route_is_a_deployment_with_the_services_probes(deployment):
    deploy, service = yaml.safe_load_all((deployment.path / "bento-deployment.yaml").read_text())
    assert (deploy["kind"], service["kind"]) == ("Deployment", "Service")
    [container] = deploy["spec"]["template"]["spec"]["containers"]
    assert container["ports"] == [{"name": "http", "containerPort": 3000}]
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["livenessProbe"]["httpGet"]["path"] == "/livez"
    assert deploy["spec"]["selector"]["matchLabels"] == service["spec"]["selector"]
    assert service["spec"]["ports"][0]["targetPort"] == 3000


def test_manifest_hashes_what_is_there(deployment):
    manifest = json.loads((deployment.path / "manifest.json").read_text())
    for name, entry in manifest["files"].items():
        assert sha256_file(deployment.path / name) == entry["sha256"]
    assert manifest["repository_manifest_sha256"] == sha256_file(deployment.path / "repository/lenet5/manifest.json")


def test_gpu_target_asks_for_a_gpu(selected, tmp_path):
    d = make_deployment(selected, tmp_path / "gpu", RepositoryConfig(target="gpu"))
    isvc = yaml.safe_load((d.path / "inferenceservice.yaml").read_text())
    assert isvc["spec"]["predictor"]["model"]["resources"]["limits"]["nvidia.com/gpu"] == "1"
    assert "KIND_GPU" in (d.path / "repository/lenet5/config.pbtxt").read_text()


@pytest.mark.parametrize("name, expected", [("mobilenet_v2", "mobilenet-v2"), ("resnext50_32x4d", "resnext50-32x4d"),
                                            ("3d_net", "m-3d-net")])
def test_kubernetes_names(name, expected):
    assert k8s_name(name) == expected and DNS_1035.match(expected)


def test_cli_writes_a_deployment(selected, tmp_path):
    r = run_cli("package", selected, "--format", "kserve", "--target", "gpu", "-o", tmp_path / "d")
    assert r.returncode == 0, r.stderr
    assert "packaged lenet5 fp32 (onnxruntime_onnx, gpu)" in r.stderr and "InferenceService lenet5" in r.stderr
    assert "storageUri is a placeholder" in r.stderr


def test_the_repository_loads_unmodified_on_a_real_triton_server(deployment, selected, tmp_path):
    """What the InferenceService's Triton predictor loads: repository/ as written, on a real tritonserver."""
    from triton_server import TritonServer, TritonUnavailable, triton_install
    th = pytest.importorskip("tritonclient.http")
    try:
        install = triton_install()
    except TritonUnavailable as e:
        pytest.skip(str(e))
    from zoodeploy.artifact import Artifact
    from zoodeploy.evaluate.accuracy import variant_logits
    from zoodeploy.package.triton import verify_repository
    x = Artifact.of(selected).test_data()[0][:4]
    with TritonServer(deployment.path / "repository", log=tmp_path / "triton.log", install=install) as server:
        inp = th.InferInput("input", list(x.shape), "FP32")
        inp.set_data_from_numpy(x)
        logits = th.InferenceServerClient(server.url).infer("lenet5", [inp]).as_numpy("logits")
    np.testing.assert_allclose(logits, variant_logits(selected, "fp32", x), atol=1e-5)
    verify_repository(deployment.path / "repository")
