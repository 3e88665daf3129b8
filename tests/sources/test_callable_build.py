"""Bring your own nn.Module: a net written here (not in the zoo), trained for seconds on digits,
deployed with `zoodeploy build FILE.py:FUNCTION --weights CKPT`, served by a real `bentoml serve`
and packaged as an edge bundle. One build for the module, one server."""

from __future__ import annotations

import io
import json
from pathlib import Path

import httpx
import pytest
import torch
from cli_support import invoke_cli
from server_process import ServerProcess
from torch import nn

from zoodeploy.card import load_card
from zoodeploy.evaluate.accuracy import variant_logits
from zoodeploy.fileio import sha256_file
from zoodeploy.models.artifact import load_model
from zoodeploy.models.data import digits_preprocessing, load_splits, splits_for
from zoodeploy.runtime import RunOptions

pytestmark = pytest.mark.slow  # every test here needs the module's build (training + optimize + bench)

SIZE = 16
REPO = Path(__file__).resolve().parents[2]
HELD_OUT = 20  # digits test-split images uploaded to the server


def tiny_net() -> nn.Module:
    """What the user's callable returns: an untrained module (the weights come from --weights).

    It flattens the last 4x4 maps, keeping where the strokes are: ending in a global pool it
    reached only 66-83% on digits test across three training recipes."""
    return nn.Sequential(
        nn.Conv2d(3, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(16, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(32 * (SIZE // 4) ** 2, 10))


def _train(path: Path) -> Path:
    splits = load_splits("digits")
    x = torch.from_numpy(splits.train.arrays(digits_preprocessing(SIZE)))
    y = torch.from_numpy(splits.train.labels)
    torch.manual_seed(0)
    model = tiny_net()
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(8):
        for i in range(0, len(x), 64):
            opt.zero_grad()
            nn.functional.cross_entropy(model(x[i:i + 64]), y[i:i + 64]).backward()
            opt.step()
    torch.save({"state_dict": model.state_dict(), "epoch": 8}, path)  # a checkpoint dict, not a bare state_dict
    return path


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> tuple[Path, Path, str]:
    """(artifact, checkpoint, source ref): the net trained and built once for every test here."""
    tmp = tmp_path_factory.mktemp("own-module")
    ckpt = _train(tmp / "tiny.pt")
    ref = f"{Path(__file__).resolve()}:tiny_net"
    out = tmp / "art"
    r = invoke_cli("build", ref, "--weights", ckpt, "--calib-data", "digits", "--image-size", SIZE,
                   "--batch", "1", "--max-seconds", "2", "--max-drop", "2", "-o", out)
    assert r.returncode == 0, r.stderr
    return out, ckpt, ref


@pytest.fixture(scope="module")
def server(built, tmp_path_factory):
    """`bentoml serve` from the repository root on the built artifact (1 worker, 127.0.0.1, a free port)."""
    tmp = tmp_path_factory.mktemp("own-module-server")
    env = {"ZOODEPLOY_ARTIFACT": str(built[0]), "BENTOML_HOME": str(tmp / "bentoml"),
           "BENTOML_DO_NOT_TRACK": "True", "ZOODEPLOY_WORKERS": "1"}
    srv = ServerProcess(".", cwd=REPO, env=env, log=tmp / "server.log").start()
    yield srv
    srv.stop()


def test_own_module_builds(built):
    out, ckpt, ref = built
    card = load_card(out)
    assert card.source.kind == "callable" and card.source.ref == ref
    assert card.source.weights_sha256 == sha256_file(ckpt)
    assert card.labels == [str(i) for i in range(10)] and card.data.labelled
    assert {"fp32", "fused", "int8"} <= set(card.variants) and card.selected
    assert card.variants["fp32"].accuracy.top1 > 80.0, card.variants["fp32"].accuracy
    assert card.eager_latency, "the user's module is the eager baseline"
    # the artifact reloads the user's module from its card (the callable runs again)
    model = load_model(out, card)
    assert isinstance(model, nn.Sequential) and not model.training


def _upload(url: str, png: bytes) -> httpx.Response:
    return httpx.post(url + "/classify", files={"image": ("digit.png", png, "image/png")}, timeout=60)


def _png(img) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def test_own_module_is_served(built, server):
    """Held-out digits uploaded as PNGs get the card's label the selected variant gives offline, and
    mostly the true one; garbage gets a 4xx JSON error and the server keeps answering."""
    out = built[0]
    card = load_card(out)
    meta = httpx.get(server.url + "/metadata", timeout=60).json()
    assert (meta["variant"], meta["labels"]) == (card.selected, card.labels)

    test = splits_for(card.data, card.labels).test  # held out from calibration; --calib-data digits split it
    x, truth = test.arrays(card.preprocessing, HELD_OUT), test.labels[:HELD_OUT]
    offline = variant_logits(out, card.selected, x, RunOptions(threads=1)).argmax(1)
    pngs = [_png(test.image(i)) for i in range(HELD_OUT)]
    answers = [_upload(server.url, png) for png in pngs]
    assert all(r.status_code == 200 for r in answers), answers[0].text
    served = [r.json()["label"] for r in answers]
    assert served == [card.labels[k] for k in offline]
    right = sum(s == card.labels[t] for s, t in zip(served, truth))
    assert right >= 0.8 * HELD_OUT, (served, [card.labels[t] for t in truth])

    garbage = _upload(server.url, b"%PDF-1.4 not an image at all")
    assert 400 <= garbage.status_code < 500, (garbage.status_code, garbage.text)
    assert isinstance(garbage.json()["error"], str)
    again = _upload(server.url, pngs[0])
    assert again.status_code == 200 and again.json()["label"] == served[0], again.text


def test_own_module_packages(built, tmp_path):
    out = built[0]
    card = load_card(out)
    bundle = tmp_path / "tiny.tar.gz"
    r = invoke_cli("package", out, "--variant", card.selected, "-o", bundle)
    assert r.returncode == 0, r.stderr
    r = invoke_cli("verify-bundle", bundle, "--json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)
