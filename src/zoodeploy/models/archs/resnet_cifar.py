"""The CIFAR-10 ResNets of "Deep Residual Learning for Image Recognition" (He et al. 2016, Sec. 4.2).

6n+2 layers: a 3x3 conv, three stages of n basic units on 32x32, 16x16 and 8x8 maps with 16,
32 and 64 filters, global average pooling and the FC. Shortcuts are option A, as in the paper's
CIFAR experiments: identity everywhere, and where a stage halves the map and doubles the
filters, the identity is subsampled and zero-padded with the new channels, so shortcuts add no
parameters (the paper's 0.85M / 1.7M / 19.4M for 56 / 110 / 1202 layers count this way).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from zoodeploy.models.spec import ModelSpec, register_model
from zoodeploy.preprocess import Preprocessing

# CIFAR-10's per-channel statistics, what networks trained there expect
CIFAR_PREPROCESSING = Preprocessing(size=32, resize=32, mean=(0.4914, 0.4822, 0.4465),
                                    std=(0.2470, 0.2435, 0.2616))


class ZeroPadShortcut(nn.Module):
    """Option A: take every second pixel and append zero channels up to `out_channels`."""

    def __init__(self, in_channels: int, out_channels: int, stride: int):
        super().__init__()
        self.extra = out_channels - in_channels
        self.stride = stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x[:, :, ::self.stride, ::self.stride]
        return F.pad(x, (0, 0, 0, 0, 0, self.extra))


class BasicBlock(nn.Module):
    """conv3x3-BN-ReLU-conv3x3-BN, plus the shortcut, then ReLU (the paper's Fig. 2)."""

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.relu = nn.ReLU(inplace=True)
        same = stride == 1 and in_channels == out_channels
        self.shortcut = nn.Identity() if same else ZeroPadShortcut(in_channels, out_channels,
                                                                    stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        return self.relu(self.bn2(self.conv2(out)) + self.shortcut(x))


class CifarResNet(nn.Module):
    """ResNet-(6n+2) for 32x32 images; adaptive pooling lets it take other sizes too."""

    def __init__(self, n: int, num_classes: int = 10):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 16, 3, 1, 1, bias=False), nn.BatchNorm2d(16),
                                  nn.ReLU(inplace=True))
        stages, in_channels = [], 16
        for i, width in enumerate((16, 32, 64)):
            units = [BasicBlock(in_channels if j == 0 else width, width,
                                2 if i > 0 and j == 0 else 1) for j in range(n)]
            stages.append(nn.Sequential(*units))
            in_channels = width
        self.layer1, self.layer2, self.layer3 = stages
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(64, num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        # each unit's last BN starts at zero (Goyal et al. 2017), so that a freshly built
        # ResNet-1202 is the identity chain rather than 600 additions that overflow float32
        for m in self.modules():
            if isinstance(m, BasicBlock):
                nn.init.zeros_(m.bn2.weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.layer3(self.layer2(self.layer1(self.stem(x))))
        return self.fc(torch.flatten(self.avgpool(x), 1))


def resnet110(*, num_classes: int = 10) -> CifarResNet:
    return CifarResNet(18, num_classes=num_classes)


def resnet1202(*, num_classes: int = 10) -> CifarResNet:
    return CifarResNet(200, num_classes=num_classes)


_PAPER = "Deep Residual Learning for Image Recognition"
for _name, _builder, _params in (("resnet110", resnet110, 1_700_000),
                                 ("resnet1202", resnet1202, 19_400_000)):
    register_model(ModelSpec(
        name=_name, family="ResNet", year=2016, paper=_PAPER, builder=_builder, head="fc",
        input_size=32, min_input_size=1, preprocessing=CIFAR_PREPROCESSING,
        published_params=_params, figures_num_classes=10,
        figures_source=f"He et al. 2016, Table 6 (CIFAR-10, option A shortcuts: "
                       f"{_params / 1e6:.1f}M; no operation counts for CIFAR)",
        # digits' 8x8 images hold no more at 32 px than at 16, where an epoch costs a quarter:
        # 12 epochs at 16 px, one core, test 98.89% for both ResNet-110 (114 s) and ResNet-1202
        # (1,233 s; 32 px would take ~2 h)
        train_input_size=16,
    ))
