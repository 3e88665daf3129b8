"""Bring your own nn.Module: a net written here (not in the zoo), trained for seconds on digits,
deployed with `zoodeploy build FILE.py:FUNCTION --weights CKPT` and packaged as an edge bundle.
(`bentoml serve` of such an artifact is covered with the other serving tests, not here.)"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from cli_support import invoke_cli
from torch import nn

from zoodeploy.card import load_card
from zoodeploy.fileio import sha256_file
from zoodeploy.models.artifact import load_model
from zoodeploy.models.data import digits_preprocessing, load_splits

SIZE = 16


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


@pytest.mark.slow
def test_own_module_build_then_package(tmp_path):
    ckpt = _train(tmp_path / "tiny.pt")
    ref = f"{Path(__file__).resolve()}:tiny_net"
    out = tmp_path / "art"
    r = invoke_cli("build", ref, "--weights", ckpt, "--calib-data", "digits", "--image-size", SIZE,
                   "--batch", "1", "--max-seconds", "2", "--max-drop", "2", "-o", out)
    assert r.returncode == 0, r.stderr
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

    bundle = tmp_path / "tiny.tar.gz"
    r = invoke_cli("package", out, "--variant", card.selected, "-o", bundle)
    assert r.returncode == 0, r.stderr
    r = invoke_cli("verify-bundle", bundle, "--json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)
