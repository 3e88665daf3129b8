"""Classifiers from elsewhere, in the shapes real ones come in: an NHWC uint8 input (a Transpose and a
Cast inside), a 1-channel model, a model trained on BGR images (Caffe-style 0..255 mean), a 32x96
non-square input letterboxed, and a dynamic-H/W ONNX deployed at a size. Each goes through export,
evaluate, bulk predict and an edge bundle (with its self-check); the NHWC uint8 one through `build` and
a real `bentoml serve` /classify. Every answer equals ONNX Runtime on the same file with the
preprocessing written by hand here."""

from __future__ import annotations

import json
import subprocess
import sys
import tarfile
from pathlib import Path

import httpx
import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from cli_support import assert_one_line_error, invoke_cli
from PIL import Image
from server_process import ServerProcess
from torch import nn

from zoodeploy.artifact import Artifact
from zoodeploy.card import load_card
from zoodeploy.export.metadata import read_card_metadata
from zoodeploy.preprocess import softmax
from zoodeploy.runtime import RunOptions, open_runner
from zoodeploy.serve.served import images_to_tensor

REPO = Path(__file__).resolve().parents[2]
LABELS = ["blue", "red"]
BILINEAR = Image.BILINEAR


class Colour(nn.Module):
    """Logits (blue - red, red - blue) of the mean of an NCHW float image, channels in `order`."""

    def __init__(self, order: str = "rgb", nhwc_uint8: bool = False, gray: bool = False):
        super().__init__()
        self.order, self.nhwc_uint8, self.gray = order, nhwc_uint8, gray

    def forward(self, x):
        if self.nhwc_uint8:
            x = x.permute(0, 3, 1, 2).float()
        m = x.mean((2, 3))
        if self.gray:  # brighter than the middle: "red" (red images are brighter in luma here)
            return torch.cat([-m, m], 1)
        red, blue = (m[:, 2], m[:, 0]) if self.order == "bgr" else (m[:, 0], m[:, 2])
        return torch.stack([blue - red, red - blue], 1)


def _export(module: nn.Module, example: torch.Tensor, path: Path, dynamic_hw: bool = False) -> Path:
    axes = {"x": {0: "n", **({2: "h", 3: "w"} if dynamic_hw else {})}, "y": {0: "n"}}
    torch.onnx.export(module.eval(), (example,), str(path), input_names=["x"], output_names=["y"],
                      dynamic_axes=axes, opset_version=17, dynamo=False)
    model = onnx.load(str(path))
    model.metadata_props.add(key="labels", value="\n".join(LABELS))
    onnx.save(model, str(path))
    return path


def _squash(img, h, w):
    return np.asarray(img.convert("RGB").resize((w, h), BILINEAR))


def _hand_nhwc_uint8(img):
    return _squash(img, 24, 40)[None]


def _hand_gray(img):
    g = np.asarray(img.convert("RGB").convert("L").resize((28, 28), BILINEAR), np.float32)
    return ((g / np.float32(255.0) - np.float32(0.3)) / np.float32(0.25))[None, None]


def _hand_bgr(img):
    bgr = _squash(img, 32, 32)[..., ::-1].astype(np.float32)
    return np.moveaxis((bgr - np.asarray([104, 117, 123], np.float32)) / np.float32(1.0), -1, 0)[None]


def _hand_imagenet(arr):
    x = arr.astype(np.float32) / np.float32(255.0)
    x = (x - np.asarray([0.485, 0.456, 0.406], np.float32)) / np.asarray([0.229, 0.224, 0.225], np.float32)
    return np.moveaxis(x, -1, 0)[None]


def _hand_letterbox(img):
    """32x96, the ratio kept, centred on grey 114."""
    img = img.convert("RGB")
    s = min(96 / img.width, 32 / img.height)
    nw, nh = min(96, max(1, round(img.width * s))), min(32, max(1, round(img.height * s)))
    canvas = Image.new("RGB", (96, 32), (114, 114, 114))
    canvas.paste(img.resize((nw, nh), BILINEAR), ((96 - nw) // 2, (32 - nh) // 2))
    return _hand_imagenet(np.asarray(canvas))


def _hand_crop_48x64(img):
    """Shorter side to 73 (64 / 0.875), centre crop 48x64."""
    img = img.convert("RGB")
    s = 73 / min(img.size)
    size = (max(73, round(img.width * s)), max(73, round(img.height * s)))
    img = img.resize(size, BILINEAR)
    left, top = (size[0] - 64) // 2, (size[1] - 48) // 2
    return _hand_imagenet(np.asarray(img.crop((left, top, left + 64, top + 48))))


# name -> (module, example input, dynamic H/W, --preprocessing, preprocessing by hand)
MODELS = {
    "nhwc-uint8": (Colour(nhwc_uint8=True), torch.zeros(1, 24, 40, 3, dtype=torch.uint8), False,
                   "mode=squash", _hand_nhwc_uint8),
    "gray": (Colour(gray=True), torch.zeros(1, 1, 28, 28), False, "mode=squash,mean=0.3,std=0.25", _hand_gray),
    "bgr": (Colour("bgr"), torch.zeros(1, 3, 32, 32), False,
            "mode=squash,channels=bgr,scale=255,mean=104,117,123,std=1,1,1", _hand_bgr),
    "wide": (Colour(), torch.zeros(1, 3, 32, 96), False, "mode=pad,pad=114,114,114", _hand_letterbox),
    "dynamic": (Colour(), torch.zeros(1, 3, 48, 64), True, "size=48x64", _hand_crop_48x64),
}


def colour_images(root: Path, n: int = 6) -> Path:
    """Blue-ish and red-ish images of several shapes, in folders named by the models' labels."""
    rng = np.random.default_rng(0)
    for k, label in enumerate(LABELS):
        (root / label).mkdir(parents=True, exist_ok=True)
        for i in range(n):
            h, w = (40, 100) if i % 2 else (90, 60)
            arr = rng.integers(0, 90, (h, w, 3)).astype(np.uint8)
            arr[..., 2 if label == "blue" else 0] += 150
            Image.fromarray(arr).save(root / label / f"{label}{i}.png")
    return root


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    return colour_images(tmp_path_factory.mktemp("colours") / "data")


def _files(data: Path) -> list[Path]:
    return sorted(data.rglob("*.png"))


def _ort(path: Path, xs: list[np.ndarray]) -> np.ndarray:
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return np.concatenate([sess.run(None, {"x": x})[0] for x in xs])


def _bundle_logits(bundle: Path, files: list[Path], tmp: Path) -> np.ndarray:
    with tarfile.open(bundle) as tar:
        tar.extractall(tmp, filter="data")
    root = next(p.parent for p in tmp.rglob("predict.py"))
    r = subprocess.run([sys.executable, "predict.py", *map(str, files), "--json", "--logits"], cwd=root,
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    return np.asarray([row["logits"] for row in json.loads(r.stdout)], np.float32)


@pytest.mark.parametrize("kind", list(MODELS))
def test_every_way_out_equals_onnx_runtime_by_hand(tmp_path, data, kind):
    module, example, dynamic, spec, by_hand = MODELS[kind]
    source = _export(module, example, tmp_path / f"{kind}.onnx", dynamic)
    files = _files(data)
    expected = _ort(source, [by_hand(Image.open(f)) for f in files])
    truth = [LABELS.index(f.parent.name) for f in files]
    assert (expected.argmax(1) == truth).all(), "the hand-written preprocessing is the model's"

    art = tmp_path / "art"
    r = invoke_cli("export", source, "--eval-data", data, "--preprocessing", spec, "-o", art)
    assert r.returncode == 0, r.stderr
    card = load_card(art)
    assert card.labels == LABELS and card.preprocessing_from[spec.split("=")[0]] == "user"
    if dynamic:
        assert card.preprocessing.size == (48, 64) and "fixed at 48x64" in card.variants["fp32"].made_by
        fixed = onnx.load(str(art / "fp32.onnx")).graph.input[0].type.tensor_type.shape.dim
        assert [d.dim_value for d in fixed[2:]] == [48, 64]

    r = invoke_cli("evaluate", art, "--json")  # the whole test split through the card's preprocessing
    assert r.returncode == 0, r.stderr
    assert load_card(art).variants["fp32"].accuracy.top1 == 100.0

    # the service's image -> tensor path and the runner it serves with, then a real `bentoml serve`
    blobs = [f.read_bytes() for f in files]
    with open_runner(Artifact.of(art), "fp32", RunOptions(threads=1)) as runner:
        served = runner.run(images_to_tensor(blobs, card.preprocessing, 10_000_000))
    np.testing.assert_allclose(served, expected, rtol=1e-5, atol=1e-4)
    env = {"ZOODEPLOY_ARTIFACT": str(art), "ZOODEPLOY_VARIANT": "fp32", "BENTOML_HOME": str(tmp_path / "bentoml"),
           "BENTOML_DO_NOT_TRACK": "True", "ZOODEPLOY_WORKERS": "1"}
    srv = ServerProcess(".", cwd=REPO, env=env, log=tmp_path / "server.log").start()
    try:
        answers = [httpx.post(srv.url + "/classify", data={"top_k": len(LABELS)}, timeout=60,
                              files={"image": (f.name, b, "image/png")}) for f, b in zip(files, blobs)]
    finally:
        srv.stop()
    assert all(a.status_code == 200 for a in answers), answers[0].text
    probs = np.asarray([[{t["label"]: t["probability"] for t in a.json()["top_k"]}[c] for c in LABELS]
                        for a in answers], np.float32)
    np.testing.assert_allclose(probs, softmax(expected), atol=1e-5)

    table = tmp_path / "pred.jsonl"
    r = invoke_cli("predict", art, data, "-o", table, "--logits", "--variant", "fp32")
    assert r.returncode == 0, r.stderr
    rows = {Path(row["path"]).name: row for row in map(json.loads, table.read_text().splitlines())}
    bulk = np.asarray([[rows[f.name][f"logit_{c}"] for c in LABELS] for f in files], np.float32)
    np.testing.assert_allclose(bulk, expected, rtol=1e-5, atol=1e-4)

    bundle = tmp_path / "bundle.tar.gz"
    r = invoke_cli("package", art, "-o", bundle, "--variant", "fp32")  # the bundle checks itself
    assert r.returncode == 0, r.stderr
    np.testing.assert_allclose(_bundle_logits(bundle, files, tmp_path / "unpacked"), expected, rtol=1e-5, atol=1e-4)


def test_dynamic_size_must_be_given(tmp_path, data):
    module, example, _, _, _ = MODELS["dynamic"]
    source = _export(module, example, tmp_path / "dyn.onnx", dynamic_hw=True)
    r = invoke_cli("export", source, "--eval-data", data, "-o", tmp_path / "art")
    assert_one_line_error(r, "--preprocessing size=HxW")
    assert not (tmp_path / "art").exists()


@pytest.mark.parametrize("spec, needle", [("channels=rgb", "channels gray"), ("channels=gray", "channels rgb"),
                                          ("layout=nchw", "layout nhwc"), ("dtype=float32", "dtype uint8"),
                                          ("size=32", "size 24x40")])
def test_a_value_the_input_contradicts_is_refused(tmp_path, spec, needle):
    module, example, _, _, _ = MODELS["nhwc-uint8"]
    source = _export(module, example, tmp_path / "m.onnx")
    if spec == "channels=rgb":  # a 1-channel model told it takes colour
        source = _export(*MODELS["gray"][:2], tmp_path / "g.onnx")
    r = invoke_cli("export", source, "--calib-data", colour_images(tmp_path / "d", 2), "--preprocessing", spec,
                   "-o", tmp_path / "art")
    assert_one_line_error(r, needle)
    assert not (tmp_path / "art").exists()


@pytest.fixture(scope="module")
def built(tmp_path_factory, data) -> Path:
    """The NHWC uint8 model through the whole `build`, with --name."""
    tmp = tmp_path_factory.mktemp("built")
    module, example, _, spec, _ = MODELS["nhwc-uint8"]
    source = _export(module, example, tmp / "m.onnx")
    out = tmp / "art"
    r = invoke_cli("build", source, "--eval-data", data, "--preprocessing", spec, "--name", "colours",
                   "--batch", "1", "--max-seconds", "1", "-o", out)
    assert r.returncode == 0, r.stderr
    assert "[1/5] load:" in r.stderr and "[1/5] train" not in r.stderr
    assert "labels from metadata_props['labels']" in r.stderr and "2 of 2 folders match" in r.stderr
    assert "24x40 squash" in r.stderr and "nhwc uint8" in r.stderr and "model input: size, channels, layout, dtype" in r.stderr
    return out


def test_built_and_served(built, data, tmp_path_factory):
    card = load_card(built)
    assert card.name == "colours" and card.selected
    meta = read_card_metadata(built / card.variants["int8"].file)  # a lone variant file describes itself
    assert meta["preprocessing"] == card.preprocessing.to_dict() and meta["input_shape"] == ["N", 24, 40, 3]
    files = _files(data)
    expected = _ort(built / "fp32.onnx", [_hand_nhwc_uint8(Image.open(f)) for f in files]).argmax(1)
    tmp = tmp_path_factory.mktemp("server")
    env = {"ZOODEPLOY_ARTIFACT": str(built), "BENTOML_HOME": str(tmp / "bentoml"), "BENTOML_DO_NOT_TRACK": "True",
           "ZOODEPLOY_WORKERS": "1"}
    srv = ServerProcess(".", cwd=REPO, env=env, log=tmp / "server.log").start()
    try:
        meta = httpx.get(srv.url + "/metadata", timeout=60).json()
        assert meta["input_shape"] == ["N", 24, 40, 3]
        answers = [httpx.post(srv.url + "/classify", files={"image": (f.name, f.read_bytes(), "image/png")},
                              timeout=60) for f in files]
    finally:
        srv.stop()
    assert all(a.status_code == 200 for a in answers), answers[0].text
    assert [a.json()["label"] for a in answers] == [LABELS[k] for k in expected]
