"""Model store and Bento: `zoodeploy bento import`, `bentoml build`, `bentoml serve <bento>`, for real."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import httpx
import numpy as np
import pytest
import yaml
from cli_support import assert_one_line_error, invoke_cli, run_cli
from serve_helpers import REPO, start_server

from zoodeploy.card import load_card
from zoodeploy.preprocess import softmax
from zoodeploy.runtime import RunOptions, open_runner
from zoodeploy.serve import images_to_tensor


@pytest.fixture(scope="module")
def home(tmp_path_factory) -> dict[str, str]:
    """A private BENTOML_HOME for the module; nothing outside tmp is touched."""
    root = tmp_path_factory.mktemp("store")
    return {"BENTOML_HOME": str(root / "bentoml"), "BENTOML_DO_NOT_TRACK": "True", "ZOODEPLOY_ARTIFACT": "",
            "ZOODEPLOY_MODEL": ""}


def run(cmd: list[str], env: dict[str, str], cwd: Path = REPO) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, capture_output=True, text=True, cwd=cwd, env={**os.environ, **env}, timeout=600)


@pytest.fixture(scope="module")
def imported(served_artifact, home):
    r = run_cli("bento", "import", served_artifact, "--json", env=home, cwd=REPO)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def test_import_saves_the_served_variant_with_labels(imported, served_artifact, home):
    assert imported["created"] is True and imported["variant"] == "fp32"
    assert imported["tag"].startswith("zoodeploy-mobilenet_v2:")
    stored = Path(imported["path"])
    assert sorted(p.name for p in stored.iterdir()) == ["card.json", "fp32.onnx", "model.yaml"]
    info = yaml.safe_load((stored / "model.yaml").read_text())
    card = load_card(served_artifact)
    wanted = {"arch": "mobilenet_v2", "variant": "fp32", "precision": "fp32", "runtime": "onnxruntime"}
    assert {k: info["labels"][k] for k in wanted} == wanted
    assert info["metadata"]["card"]["labels"] == card.labels
    assert load_card(stored).selected == "fp32"
    again = run_cli("bento", "import", served_artifact, "--json", env=home, cwd=REPO)  # same content: same tag, no copy
    assert json.loads(again.stdout) == {**imported, "created": False}


@pytest.mark.parametrize("args, needle", [
    (["bento", "import", "no-such-dir"], "not an artifact directory"),
    (["bento", "import", "{art}", "--variant", "int8"], "no variant 'int8'"),
    (["bento", "import", "{art}", "--name", "Bad Name"], "lowercase"),
])
def test_bad_import_is_one_line(served_artifact, home, args, needle):
    assert_one_line_error(run_cli(*[a.format(art=served_artifact) for a in args], env=home, cwd=REPO), needle)


@pytest.mark.server  # starts `bentoml serve` itself (it must refuse to start)
def test_serving_an_unknown_store_model_fails_before_starting(home):
    r = run([str(Path(sys.executable).with_name("bentoml")), "serve", "--port", "0"],
            {**home, "ZOODEPLOY_MODEL": "zoodeploy-nothing:v1"})
    assert r.returncode != 0 and "is not in the BentoML model store" in r.stderr + r.stdout


def test_built_bento_carries_its_model_and_serves_it(imported, served_artifact, home, test_images, tmp_path):
    build = run([str(Path(sys.executable).with_name("bentoml")), "build", "--arg", f"model={imported['tag']}"], home)
    assert build.returncode == 0, build.stdout[-2000:] + build.stderr[-2000:]
    bento = re.search(r'Bento\(tag="([^"]+)"\)', build.stdout + build.stderr).group(1)
    info = yaml.safe_load(Path(home["BENTOML_HOME"], "bentos", *bento.split(":"), "bento.yaml").read_text())
    assert info["args"] == {"model": imported["tag"]}
    assert [m["tag"] for s in info["services"] for m in s["models"]] == [imported["tag"]]

    # served from the Bento alone: another working directory, no artifact, no ZOODEPLOY_* settings
    srv = start_server(tmp_path / "srv", home, target=bento, cwd=tmp_path)
    try:
        pngs = test_images[0][:4]
        answers = [httpx.post(srv.url + "/classify", files={"image": ("d.png", d)}, data={"top_k": "10"},
                              timeout=120).json() for d in pngs]
        meta = httpx.get(srv.url + "/metadata").json()
    finally:
        srv.stop()
    card = load_card(served_artifact)
    runner = open_runner(served_artifact, "fp32", RunOptions(threads=1))
    expected = softmax(runner.run(images_to_tensor(pngs, card.preprocessing, max_pixels=10_000)))
    served = np.array([[{e["index"]: e["probability"] for e in a["top_k"]}[i] for i in range(10)] for a in answers])
    np.testing.assert_allclose(served, expected, atol=1e-5)
    assert meta["sha256"] == card.variants["fp32"].sha256 and meta["variant"] == "fp32"


@pytest.mark.parametrize("how, env", [(["--port", "3201"], {}), ([], {"BENTOML_PORT": "3201"})])
def test_samples_print_the_port_the_server_listens_on(served_artifact, tmp_path, how, env):
    """`bento samples` (and scripts/demo.sh, which passes it the port) names the real port, not 3000."""
    r = invoke_cli("bento", "samples", served_artifact, "-o", tmp_path / "s", *how, env=env)
    assert r.returncode == 0, r.stderr
    said = " ".join((r.stdout + r.stderr).split())  # the console wraps long lines
    assert "localhost:3201/classify" in said and "localhost:3000" not in said, said
