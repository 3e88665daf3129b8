"""A torchvision model outside the zoo, and a 1,000-class ONNX model, through export and optimize
with unlabelled images; zoodeploy's own ONNX metadata used when a lone file carries it."""

from __future__ import annotations

import pytest
import torch
from cli_support import invoke_cli
from torch import nn

from zoodeploy.card import load_card
from zoodeploy.models.zoo import list_models

TV = "shufflenet_v2_x0_5"  # torchvision's, not the zoo's; 1.4 M parameters


def test_torchvision_name_outside_the_zoo(tmp_path, unlabelled):
    assert TV not in list_models()
    out = tmp_path / "tv"
    r = invoke_cli("export", TV, "--weights", "none", "--input-size", 64, "-o", out)
    assert r.returncode == 0, r.stderr
    card = load_card(out)
    assert card.source.kind == "torchvision" and card.num_classes == 1000 and card.data is None
    assert card.input_size == 64 and card.preprocessing.resize == 73  # the weights' 224/256, scaled
    assert card.labels[0] == "class_0"  # random init: torchvision's categories would be a lie
    r = invoke_cli("optimize", out, "--calib-data", unlabelled, "--passes", "fuse,int8", "--max-drop", "none",
                   "--no-bench")
    assert r.returncode == 0, r.stderr
    assert {"fused", "int8"} <= set(load_card(out).variants)


class Wide(nn.Module):
    """A tiny net with ImageNet's 1,000 outputs."""

    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.head = nn.Linear(8, 1000)

    def forward(self, x):
        return self.head(self.features(x))


@pytest.fixture
def onnx_1000(tmp_path):
    path = tmp_path / "wide.onnx"
    torch.manual_seed(0)
    torch.onnx.export(Wide().eval(), (torch.randn(2, 3, 32, 32),), str(path), input_names=["pixels"],
                      output_names=["scores"], dynamic_axes={"pixels": {0: "n"}, "scores": {0: "n"}},
                      opset_version=18, dynamo=False)
    return path


def test_thousand_class_onnx_with_unlabelled_folder(tmp_path, onnx_1000, unlabelled):
    out = tmp_path / "wide-art"
    r = invoke_cli("optimize", onnx_1000, "--calib-data", unlabelled, "--labels", "imagenet", "--passes", "int8",
                   "--max-drop", "none", "--no-bench", "-o", out)
    assert r.returncode == 0, r.stderr
    card = load_card(out)
    assert card.num_classes == 1000 and card.labels[:2] == ["tench", "goldfish"]
    assert (card.input_name, card.output_name, card.input_size) == ("pixels", "scores", 32)
    assert not card.data.labelled and card.checkpoint is None
    int8 = card.variants["int8"]
    assert int8.accuracy.kind == "agreement" and int8.accuracy.top1 is None  # no labels: agreement with fp32
    assert int8.accuracy.n == card.data.counts["test"]


def test_onnx_made_by_zoodeploy_keeps_its_card(tmp_path, unlabelled):
    net = tmp_path / "net.py"
    net.write_text("from torch import nn\n"
                   "def make():\n"
                   "    return nn.Sequential(nn.Conv2d(3, 4, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 3))\n")
    labels = tmp_path / "labels.json"
    labels.write_text('["cat", "dog", "bird"]')
    first = tmp_path / "first"
    r = invoke_cli("export", f"{net}:make", "--labels", labels, "--input-size", 24,
                   "--preprocessing", "crop=24,resize=28,interpolation=bicubic,mean=0.5,0.5,0.5,std=0.25,0.25,0.25",
                   "-o", first)
    assert r.returncode == 0, r.stderr
    second = tmp_path / "second"
    r = invoke_cli("export", first / "fp32.onnx", "-o", second)
    assert r.returncode == 0, r.stderr
    a, b = load_card(first), load_card(second)
    assert b.labels == ["cat", "dog", "bird"] and b.preprocessing == a.preprocessing
    assert b.preprocessing.interpolation == "bicubic" and b.source.kind == "onnx"


def test_exported_program_source(tmp_path):
    program = torch.export.export(Wide().eval(), (torch.randn(2, 3, 32, 32),),
                                  dynamic_shapes=({0: torch.export.Dim("batch")},))
    path = tmp_path / "wide.pt2"
    torch.export.save(program, str(path))
    out = tmp_path / "pt2-art"
    r = invoke_cli("export", path, "-o", out)
    assert r.returncode == 0, r.stderr
    card = load_card(out)
    assert card.source.kind == "exported-program" and card.input_size == 32 and card.num_classes == 1000
    assert card.checkpoint == "source.pt2" and "fp32" in card.variants
    assert card.labels[:1] == ["class_0"]  # a program names no labels of its own
